//! Running iproute2's `ip`: the only tool that changes network namespaces here.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Where Debian installs `ip`, for a PATH without /usr/sbin or /sbin.
const FALLBACKS: [&str; 3] = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"];

/// The `ip` executable: the first on PATH, else a Debian location.
pub fn ip_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("ip"));
    on_path
        .chain(FALLBACKS.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("ip"))
}

/// Runs `ip <args>` and returns its stdout; a failure carries its stderr.
pub fn ip<S: AsRef<OsStr>>(args: &[S]) -> Result<String> {
    run(Command::new(ip_binary()).args(args))
}

/// Runs a command to completion; a non-zero exit is an error naming the command.
pub fn run(command: &mut Command) -> Result<String> {
    let shown = format!("{command:?}");
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(Error::io(format!("run {shown}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: shown,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// `ip netns exec <netns> <program>`: a command that runs `program` inside the namespace, with
/// `/etc/netns/<netns>/*` bind-mounted over `/etc/*` (so its `hosts` file is the pod's).
/// `ip` execs the program in place: the child's pid is the program's pid.
pub fn netns_exec(netns: &str, program: &Path) -> Command {
    let mut command = Command::new(ip_binary());
    command.arg("netns").arg("exec").arg(netns).arg(program);
    command
}
