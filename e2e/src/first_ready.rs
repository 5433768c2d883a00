//! The moment a new pod first reports Ready, and what its HAProxy held at that moment: the
//! "Ready only once taught" ordering, observed from outside as a kubelet would.
//!
//! The probe ([`watch`]) runs in the pod's namespace from before the sidecar serves: it asks
//! `/readyz` every few milliseconds and, at the first `200`, reads `show table` of the pod's
//! HAProxy right away. [`ReadyWatch`] starts it in the *next* incarnation of a pod's namespace
//! (a replaced pod gets a new namespace under the same name), so that the old pod's `200` can
//! never be taken for the new one's.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use haproxy_peers_testkit::show_table::{parse_show_table, TableDump};
use haproxy_peers_testkit::{http_get, RuntimeApi};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::netns::{netns_file, Host};
use crate::probe::run_probe;

/// Pause between two `/readyz` requests.
pub const POLL: Duration = Duration::from_millis(3);

/// What the probe saw, up to the first `200`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstReady {
    /// Requests that got no answer (the sidecar not serving yet).
    pub unanswered: u64,
    /// Answers other than `200`.
    pub not_ready: u64,
    /// Since the probe started, when the first `200` came (`None`: it never came).
    pub ready_after_ms: Option<u64>,
    /// `show table <name>` read right after the first `200`: the table's name and the
    /// answer, or why it could not be read.
    pub tables: Vec<(String, std::result::Result<String, String>)>,
}

impl FirstReady {
    /// The parsed dump of `table` read at the first `200`.
    pub fn table(&self, table: &str) -> Result<TableDump> {
        let fail = |detail: String| Error::Probe {
            netns: "first ready".into(),
            detail,
        };
        let (_, text) = self
            .tables
            .iter()
            .find(|(name, _)| name == table)
            .ok_or_else(|| fail(format!("{table} was not read: {self:?}")))?;
        let text = text
            .as_ref()
            .map_err(|e| fail(format!("show table {table} at the first 200: {e}")))?;
        parse_show_table(text).map_err(|e| fail(format!("show table {table}: {e}")))
    }
}

/// Asks `admin`'s `/readyz` every [`POLL`] until it answers `200` (or `timeout` passes), then
/// reads `tables` through the HAProxy stats socket `stats`. Runs inside the pod's namespace.
pub fn watch(admin: SocketAddr, stats: &Path, tables: &[String], timeout: Duration) -> FirstReady {
    let started = Instant::now();
    let mut seen = FirstReady::default();
    while started.elapsed() < timeout {
        match http_get(admin, "/readyz", &[]) {
            Ok(r) if r.status == 200 => {
                seen.ready_after_ms = Some(millis(started.elapsed()));
                break;
            }
            Ok(_) => seen.not_ready += 1,
            Err(_) => seen.unanswered += 1,
        }
        std::thread::sleep(POLL);
    }
    if seen.ready_after_ms.is_some() {
        let api = RuntimeApi::new(stats);
        for table in tables {
            let answer = api
                .command(&format!("show table {table}"))
                .map_err(|e| e.to_string());
            seen.tables.push((table.clone(), answer));
        }
    }
    seen
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A [`watch`] of the next incarnation of a pod, running in a thread of the harness.
pub struct ReadyWatch {
    thread: JoinHandle<Result<FirstReady>>,
}

impl ReadyWatch {
    /// Waits (in a thread) for `pod`'s namespace to be replaced by a new one, then watches the
    /// new pod come up: call it before [`Fleet::replace_pod`]. `tables` are read at the first
    /// `200`; everything must happen within `timeout`.
    pub fn next_incarnation(
        fleet: &Fleet,
        pod: &str,
        tables: &[&str],
        timeout: Duration,
    ) -> Result<ReadyWatch> {
        let pod = fleet.pod(pod)?;
        let host: Host = pod.host().clone();
        let file = netns_file(&host.netns);
        let old = identity(&file)?;
        let admin = fleet.control().peer_group().spec.ports.admin;
        let mut args = vec![
            "first-ready".to_string(),
            format!("127.0.0.1:{admin}"),
            "--stats".to_string(),
            pod.runtime().socket().display().to_string(),
        ];
        for t in tables {
            args.extend(["--table".to_string(), t.to_string()]);
        }
        let probe = fleet.options().binaries.probe.clone();
        let deadline = Instant::now() + timeout;
        let thread =
            std::thread::spawn(move || watch_next(&probe, &host, (&file, old), &args, deadline));
        Ok(ReadyWatch { thread })
    }

    /// What the probe saw; an error if the new namespace never came or the probe could not run.
    pub fn wait(self) -> Result<FirstReady> {
        self.thread.join().unwrap_or_else(|_| {
            Err(Error::Probe {
                netns: "first ready".into(),
                detail: "the watching thread panicked".into(),
            })
        })
    }
}

/// The namespace a `/run/netns` file is bound to (its device and inode): a new namespace under
/// the same name has another.
fn identity(file: &Path) -> Result<(u64, u64)> {
    std::fs::metadata(file)
        .map(|m| (m.dev(), m.ino()))
        .map_err(Error::io(format!("stat {}", file.display())))
}

/// Starts the probe with `args` in the namespace of `file` once it is no longer `old`.
fn watch_next(
    probe: &Path,
    host: &Host,
    (file, old): (&Path, (u64, u64)),
    args: &[String],
    deadline: Instant,
) -> Result<FirstReady> {
    let mut last = String::from("the namespace was never replaced");
    while Instant::now() < deadline {
        // While `ip netns add` is under way the file exists but is not bound yet: the probe
        // fails to enter it and is started again.
        if identity(file).is_ok_and(|now| now != old) {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut args = args.to_vec();
            args.extend(["--timeout-ms".to_string(), millis(left).to_string()]);
            match run_probe::<FirstReady>(probe, host, &args) {
                Ok(seen) => return Ok(seen),
                Err(e) => last = e.to_string(),
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(Error::Probe {
        netns: host.netns.clone(),
        detail: format!("no first-ready watch in the new namespace: {last}"),
    })
}
