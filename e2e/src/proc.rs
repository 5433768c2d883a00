//! A long-running process inside a pod's namespace (HAProxy, a sidecar, the traffic client):
//! started through `ip netns exec` in its own process group, output appended to a log file,
//! killed with its whole group on drop, also when a test panics.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use haproxy_peers_testkit::wait_until;
use rustix::process::{kill_process, kill_process_group, Pid, Signal};

use crate::error::{Error, Result};
use crate::ip::netns_exec;

/// What to run, and where.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// `haproxy`, `sidecar`, … (for messages).
    pub role: &'static str,
    /// The pod (or host) it belongs to (for messages).
    pub pod: String,
    pub netns: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// The whole environment besides `PATH`: nothing leaks in from the caller's.
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub cwd: PathBuf,
}

/// A started (or stopped, restartable) process.
#[derive(Debug)]
pub struct Proc {
    spec: ProcSpec,
    child: Option<Child>,
    starts: u32,
}

impl Proc {
    /// A process that is not started yet.
    pub fn new(spec: ProcSpec) -> Proc {
        Proc {
            spec,
            child: None,
            starts: 0,
        }
    }

    pub fn spec(&self) -> &ProcSpec {
        &self.spec
    }

    /// Changes what the next start runs (a replaced pod lives in a new namespace).
    pub fn spec_mut(&mut self) -> &mut ProcSpec {
        &mut self.spec
    }

    /// Starts the process; an already running one is an error.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Err(Error::Command {
                command: format!("start {} of {}", self.spec.role, self.spec.pod),
                status: "refused".into(),
                stderr: "it is already running: kill it first".into(),
            });
        }
        let spec = &self.spec;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(Error::io(format!("open {}", spec.log.display())))?;
        let handle = |log: &std::fs::File| {
            log.try_clone()
                .map_err(Error::io("duplicate a log file handle"))
        };
        let mut command = netns_exec(&spec.netns, &spec.program);
        command
            .args(&spec.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .stdout(handle(&log)?)
            .stderr(handle(&log)?)
            .process_group(0);
        self.starts += 1;
        writeln!(
            log,
            "--- haproxy-peers-e2e: start {}: {command:?}",
            self.starts
        )
        .map_err(Error::io("write a log"))?;
        let child = command
            .spawn()
            .map_err(Error::io(format!("spawn {command:?}")))?;
        self.child = Some(child);
        Ok(())
    }

    /// The started process's pid (`ip` execs in place, so it is the program's own).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether it was started and has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// An error if the process has exited (with its log); `Ok` while it runs.
    pub fn check_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(self.exited("not started".into()));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(self.exited(status.to_string()))
            }
            Err(e) => Err(Error::io("wait for a child")(e)),
        }
    }

    fn exited(&self, status: String) -> Error {
        Error::Exited {
            process: self.spec.role,
            pod: self.spec.pod.clone(),
            status,
            log: self.log(),
        }
    }

    /// Sends `signal` to the started process only (SIGUSR2 to a HAProxy master: reload).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        let child = self.child.as_ref().ok_or(Error::Exited {
            process: self.spec.role,
            pod: self.spec.pod.clone(),
            status: "not running".into(),
            log: String::new(),
        })?;
        kill_process(Pid::from_child(child), signal).map_err(|e| {
            Error::io(format!("signal {} of {}", self.spec.role, self.spec.pod))(e.into())
        })
    }

    /// SIGKILL to the whole process group (a HAProxy master and its workers); returns once
    /// none of them runs. Not running is fine.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let group = Pid::from_child(&child);
        let _ = kill_process_group(group, Signal::KILL);
        child.wait().map_err(Error::io("reap a killed child"))?;
        let raw = group.as_raw_pid();
        wait_until(
            &format!(
                "process group {raw} ({} of {}) to die",
                self.spec.role, self.spec.pod
            ),
            Duration::from_secs(10),
            || Ok((!group_alive(raw)).then_some(())),
        )?;
        Ok(())
    }

    /// Everything the process wrote, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.spec.log).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.spec.log
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Whether any live (not zombie) process belongs to process group `group`.
fn group_alive(group: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
        .any(|stat| {
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
            let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
            state != "Z" && state != "X" && pgrp == Some(group)
        })
}
