//! Steady traffic for the demo: the probe's `traffic` command as a child process (in the
//! client namespace, or on loopback), its per-second tallies summed as they arrive.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use rustix::process::{kill_process_group, Pid, Signal};

use crate::error::{Error, Result};
use crate::probe::HttpTally;

/// The traffic client; killed on drop.
#[derive(Debug)]
pub struct Traffic {
    child: Child,
    total: Arc<Mutex<HttpTally>>,
}

impl Traffic {
    /// Starts `command` (a probe `traffic` invocation) in its own process group.
    pub fn start(mut command: Command) -> Result<Traffic> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(Error::io(format!("start the traffic client {command:?}")))?;
        let total = Arc::new(Mutex::new(HttpTally::default()));
        if let Some(stdout) = child.stdout.take() {
            let total = Arc::clone(&total);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(tally) = serde_json::from_str::<HttpTally>(&line) {
                        if let Ok(mut t) = total.lock() {
                            t.merge(&tally);
                        }
                    }
                }
            });
        }
        Ok(Traffic { child, total })
    }

    /// Everything counted so far.
    pub fn total(&self) -> HttpTally {
        self.total.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        let _ = kill_process_group(Pid::from_child(&self.child), Signal::KILL);
        let _ = self.child.wait();
    }
}
