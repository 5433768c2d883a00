//! Item 3: full resync of a restarted HAProxy (the learner, R), taught by a native HAProxy peer
//! (the teacher, T) or by its own sidecar, which holds the entries it learned over the mesh.
//!
//! Both teachers get the same `entries` distinct keys from the benchmark's fake peer
//! ([`crate::peer`]): T directly (as peer `bench` of its section), the sidecar through the mesh
//! (fake HAProxy A → sidecar A → sidecar B). R learns them once, then each run kills it with
//! SIGKILL and starts it again; the time runs from the start until R's `show table` header says
//! `used:<entries>` (headers only: a full dump of a million entries would itself take seconds).
//! A watcher thread polls the new process's stats socket every millisecond until it answers,
//! then every 2 ms, on one interactive connection.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use haproxy_peers_members::SIDECAR_PEER_NAME;
use haproxy_peers_testkit::cluster::pod_name;
use haproxy_peers_testkit::{free_addr, Haproxy, HaproxyOptions};

use crate::haproxy_cfg::{self, TABLE};
use crate::pair::Pair;
use crate::peer::Peer;
use crate::procfs::{cpu_seconds, rss};
use crate::prompt::Prompt;

/// `size 2m` (HAProxy's units), the table of the issue.
const SIZE: u64 = 2 << 20;
/// Longest wait for a fill or a resync.
const TIMEOUT: Duration = Duration::from_secs(300);
/// Pause between the kill and the start: the teacher sees the old session close first.
const DOWN: Duration = Duration::from_millis(500);

/// Who teaches the restarted HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teacher {
    Native,
    Sidecar,
}

/// One restart of the learner, times from its start.
#[derive(Debug, Clone, Copy)]
pub struct Restart {
    /// Until its stats socket answered.
    pub serving: Duration,
    /// Until `used` was first above 0 (the lesson is arriving).
    pub first_entry: Duration,
    /// Until `used` reached the entry count.
    pub complete: Duration,
    /// CPU seconds the teacher and the learner used from the start until complete.
    pub teacher_cpu: f64,
    pub learner_cpu: f64,
}

/// Every restart with one teacher, and the memory of both processes after the last one.
#[derive(Debug, Clone)]
pub struct Resync {
    pub teacher: Teacher,
    pub entries: u64,
    /// Seconds until the learner first held every entry (fill of the teacher included).
    pub fill_seconds: f64,
    pub restarts: Vec<Restart>,
    pub teacher_rss: u64,
    pub learner_rss: u64,
}

/// Fills the teacher, waits for the learner's first lesson, then restarts the learner `runs`
/// times.
pub fn run(teacher: Teacher, sidecar: &Path, entries: u64, runs: usize) -> crate::Result<Resync> {
    let mut setup = match teacher {
        Teacher::Native => native(entries)?,
        Teacher::Sidecar => with_sidecar(sidecar, entries)?,
    };
    let learner = &mut setup.learner;
    wait_used(&learner.stats_socket(), entries, "the first lesson")?;
    let fill_seconds = setup.start.elapsed().as_secs_f64();
    let restarts = (0..runs)
        .map(|_| restart(learner, setup.teacher_pid, entries))
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(Resync {
        teacher,
        entries,
        fill_seconds,
        restarts,
        teacher_rss: rss(setup.teacher_pid)?,
        learner_rss: rss(learner.pid().ok_or("the learner is not running")?)?,
    })
}

/// The learner and what must stay alive while it is restarted.
struct Setup {
    learner: Haproxy,
    teacher_pid: u32,
    /// When the fill started.
    start: Instant,
    _loader: Peer,
    _teacher: Option<Haproxy>,
    _pair: Option<Pair>,
}

/// T and R peered natively; T filled by the fake peer.
fn native(entries: u64) -> crate::Result<Setup> {
    let err = |e: haproxy_peers_testkit::Error| e.to_string();
    let (t, r, bench) = (
        free_addr().map_err(err)?,
        free_addr().map_err(err)?,
        free_addr().map_err(err)?,
    );
    let teacher = Haproxy::start(
        HaproxyOptions::new(haproxy_cfg::native(
            "t",
            t,
            &[("r", r), ("bench", bench)],
            SIZE,
        ))
        .local_peer("t"),
    )
    .map_err(err)?;
    let start = Instant::now();
    let mut loader = Peer::connect(t, "t", "bench", start)?;
    loader.fill(entries)?;
    wait_used(
        &teacher.stats_socket(),
        entries,
        "the teacher to hold every entry",
    )?;
    let learner = Haproxy::start(
        HaproxyOptions::new(haproxy_cfg::native("r", r, &[("t", t)], SIZE)).local_peer("r"),
    )
    .map_err(err)?;
    Ok(Setup {
        learner,
        teacher_pid: teacher.pid().ok_or("the teacher is not running")?,
        start,
        _loader: loader,
        _teacher: Some(teacher),
        _pair: None,
    })
}

/// R with its sidecar (B of a pair, mutual TLS on the mesh); sidecar A filled by the fake peer
/// standing in for its HAProxy, B learning everything over the mesh.
fn with_sidecar(binary: &Path, entries: u64) -> crate::Result<Setup> {
    let pair = Pair::start(binary, true)?;
    let learner = Haproxy::start(
        HaproxyOptions::new(haproxy_cfg::pod_with_peers(
            SIZE,
            pair.haproxy[1],
            pair.local[1],
        ))
        .env("POD_NAME", pod_name(1)),
    )
    .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut loader = Peer::connect(pair.local[0], SIDECAR_PEER_NAME, &pod_name(0), start)?;
    loader.wait_ready(Duration::from_secs(15))?;
    loader.fill(entries)?;
    Ok(Setup {
        learner,
        teacher_pid: pair.pids()?[1],
        start,
        _loader: loader,
        _teacher: None,
        _pair: Some(pair),
    })
}

/// SIGKILL to the learner, a pause, then a start timed until it holds `entries` again.
fn restart(learner: &mut Haproxy, teacher_pid: u32, entries: u64) -> crate::Result<Restart> {
    learner.kill().map_err(|e| e.to_string())?;
    std::thread::sleep(DOWN);
    let socket = learner.stats_socket();
    let abort = Arc::new(AtomicBool::new(false));
    let teacher_cpu0 = cpu_seconds(teacher_pid)?;
    let t0 = Instant::now();
    let watcher = {
        let abort = Arc::clone(&abort);
        std::thread::spawn(move || watch(&socket, entries, t0, &abort))
    };
    let started = learner.restart().map_err(|e| e.to_string());
    if started.is_err() {
        abort.store(true, Ordering::Relaxed);
    }
    let watched = watcher
        .join()
        .map_err(|_| "the resync watcher panicked".to_string())?;
    started?;
    let (serving, first_entry, complete) = watched?;
    let learner_pid = learner.pid().ok_or("the learner is not running")?;
    Ok(Restart {
        serving,
        first_entry,
        complete,
        teacher_cpu: cpu_seconds(teacher_pid)? - teacher_cpu0,
        learner_cpu: cpu_seconds(learner_pid)?,
    })
}

/// Times from `t0` until the stats socket answers, until `used > 0` and until `used ≥ entries`.
fn watch(
    socket: &Path,
    entries: u64,
    t0: Instant,
    abort: &AtomicBool,
) -> crate::Result<(Duration, Duration, Duration)> {
    let mut cli = loop {
        match Prompt::connect(socket) {
            Ok(cli) => break cli,
            Err(e) if abort.load(Ordering::Relaxed) || t0.elapsed() > TIMEOUT => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    };
    let serving = t0.elapsed();
    let mut first_entry = None;
    loop {
        let used = cli.used(TABLE)?;
        let now = t0.elapsed();
        if used > 0 {
            first_entry.get_or_insert(now);
        }
        if used >= entries {
            return Ok((serving, first_entry.unwrap_or(now), now));
        }
        if abort.load(Ordering::Relaxed) || now > TIMEOUT {
            return Err(format!(
                "the restarted HAProxy holds {used} of {entries} entries after {now:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls `used` every 50 ms until it reaches `entries`.
fn wait_used(socket: &Path, entries: u64, what: &str) -> crate::Result<()> {
    let mut cli = Prompt::connect(socket)?;
    let start = Instant::now();
    loop {
        let used = cli.used(TABLE)?;
        if used >= entries {
            return Ok(());
        }
        if start.elapsed() > TIMEOUT {
            return Err(format!(
                "waiting for {what}: {used} of {entries} entries after {TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
