//! What every process the harness starts shares: its own process group (so that it and its
//! children die together), stdout and stderr appended to a log file, a start-up wait that
//! notices an early exit, and a kill that returns only once the whole group is gone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};

use crate::error::{Error, Result};
use crate::wait::{wait_until, POLL_INTERVAL};

/// Spawns `command` in a new process group, its output appended to `log_path` after a header
/// line naming start number `start` and the command.
pub(crate) fn spawn_logged(
    mut command: Command,
    log_path: &Path,
    start: u32,
    who: &str,
) -> Result<Child> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(Error::io(format!("open {}", log_path.display())))?;
    command
        .stdin(Stdio::null())
        .stdout(clone_handle(&log)?)
        .stderr(clone_handle(&log)?)
        .process_group(0);
    writeln!(log, "--- haproxy-peers-testkit: start {start}: {command:?}")
        .map_err(Error::io(format!("write the {who} log")))?;
    command
        .spawn()
        .map_err(Error::io(format!("spawn {who} ({command:?})")))
}

/// How a start-up wait ended without the process serving.
pub(crate) enum NotStarted {
    Exited(ExitStatus),
    TimedOut {
        last_error: String,
        waited: Duration,
    },
}

/// Calls `serving` until it succeeds, the child exits, or `timeout` passes.
pub(crate) fn wait_started(
    child: &mut Child,
    timeout: Duration,
    who: &str,
    mut serving: impl FnMut() -> Result<()>,
) -> Result<Result<(), NotStarted>> {
    let start = Instant::now();
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(Error::io(format!("wait for {who}")))?
        {
            return Ok(Err(NotStarted::Exited(status)));
        }
        let last_error = match serving() {
            Ok(()) => return Ok(Ok(())),
            Err(err) => err.to_string(),
        };
        if start.elapsed() >= timeout {
            return Ok(Err(NotStarted::TimedOut {
                last_error,
                waited: start.elapsed(),
            }));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// SIGKILL to the child's process group; returns once the child is reaped and no process of
/// the group runs any more.
pub(crate) fn kill_group(mut child: Child, who: &str) -> Result<()> {
    let group = Pid::from_child(&child);
    // ESRCH (already gone) is fine: reaping below is what matters.
    let _ = kill_process_group(group, Signal::KILL);
    child
        .wait()
        .map_err(Error::io(format!("reap the killed {who}")))?;
    wait_group_gone(group)
}

/// A timeout error with the process's output appended.
pub(crate) fn with_output(err: Error, who: &str, log: &str) -> Error {
    match err {
        Error::Timeout { what, waited } => Error::Timeout {
            what: format!("{what}; {who} output:\n{log}"),
            waited,
        },
        other => other,
    }
}

/// Waits until no process of the group still runs. Children of the started process are not
/// ours: once killed they are reaped by whoever inherits them, so zombies count as gone.
pub(crate) fn wait_group_gone(group: Pid) -> Result<()> {
    let group = group.as_raw_pid();
    wait_until(
        &format!("the processes of group {group} to die"),
        Duration::from_secs(5),
        || Ok((!group_has_live_process(group)).then_some(())),
    )
}

fn group_has_live_process(group: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .any(|stat| {
            // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            matches!(fields.as_slice(), [state, _ppid, pgrp, ..]
                if *state != "Z" && *state != "X" && pgrp.parse() == Ok(group))
        })
}

fn clone_handle(file: &File) -> Result<File> {
    file.try_clone()
        .map_err(Error::io("duplicate a log file handle"))
}
