//! 3. A fresh HAProxy process does not reset the replica. Node 0's HAProxy (master-worker) is
//!    reloaded (SIGUSR2) several times, then killed and restarted, while traffic keeps hitting
//!    it: a writer sets a counter to n+1 through the runtime API as fast as it answers, and HTTP
//!    requests count on a tracked key (`http_req_cnt`), on top of 5000 entries written before, so
//!    that lessons and the old worker's handover take a while. A new process counts from zero
//!    for keys it has not been taught yet and pushes those values; the sidecar must not take
//!    them. The mesh runs without TLS (not the subject here). Checks, from every node's
//!    `show table` read all along:
//!    * nodes 1 and 2 never show a counter lower than they showed before;
//!    * once the new process has confirmed the sidecar's lesson, node 0 never shows less than
//!      what was acknowledged (written, or read on node 0) before the event began;
//!    * in the end every node shows the last value written and the same request count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use haproxy_peers_testkit::cluster::{render_peers_cfg, Cluster, PEERS_SECTION};
use haproxy_peers_testkit::{http_get, wait_until, Haproxy, HaproxyOptions, RuntimeApi};

use crate::admin;
use crate::expect::log_tails;
use crate::lab::{self, T_INT, T_STR};
use crate::replicate::CONVERGE;
use crate::writes::{bulk_write, key};

/// The key the writer sets (`data.gpc0 n`).
const WRITE_TAG: u32 = 7_001;
/// The key the HTTP requests carry (`x-client`).
const HTTP_TAG: u32 = 7_002;
/// Entries written on node 0 before the traffic starts, so that lessons and the old worker's
/// handover take more than an instant.
const BULK: u32 = 5_000;
/// Reloads in a row.
const RELOADS: usize = 3;
/// Kills and restarts after them.
const RESTARTS: usize = 2;
/// Traffic between two events.
const BETWEEN: Duration = Duration::from_millis(1_500);
/// How long HAProxy stays dead before it is restarted.
const DEAD_FOR: Duration = Duration::from_millis(300);
/// A value acknowledged this long before an event has reached the sidecar: HAProxy pushes a
/// change at once (§7.2); a SIGKILL may cut a push that was still queued.
const MARGIN: Duration = Duration::from_millis(50);
/// Pause between two writes, two requests, two rounds of reads.
const WRITE_PAUSE: Duration = Duration::from_millis(1);
const READ_PAUSE: Duration = Duration::from_millis(5);
/// Problems listed when the test fails.
const SHOWN: usize = 30;

/// What the counters are called in the reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counter {
    /// `gpc0` of the written key.
    Written,
    /// `http_req_cnt` of the requested key.
    Requests,
}

const COUNTERS: [Counter; 2] = [Counter::Written, Counter::Requests];

/// One `show table … key …` of one node.
#[derive(Debug, Clone, Copy)]
struct Read {
    node: usize,
    counter: Counter,
    began: Instant,
    ended: Instant,
    value: u64,
}

/// One reload or restart of node 0's HAProxy.
#[derive(Debug, Clone, Copy)]
struct Event {
    what: &'static str,
    began: Instant,
    /// The new process confirmed the sidecar's lesson (the sidecar is Ready with its pid).
    settled: Instant,
}

#[derive(Default)]
struct Log {
    /// Values of the written key with the moment `set table` returned.
    acked: Vec<(Instant, u64)>,
    reads: Vec<Read>,
    answered: u64,
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Log>>);

impl Shared {
    fn with<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Stops a thread when dropped, also by a panic.
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Sets the written key to n+1 each time, retrying at once while HAProxy does not answer.
/// Ends on an acknowledged write.
fn writer(api: RuntimeApi, log: Shared, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let written = key(T_INT, WRITE_TAG).sent;
    std::thread::spawn(move || {
        let mut n = 0u64;
        loop {
            n += 1;
            let ok = api.set_table(T_INT.name, &written, &[("gpc0", n)]).is_ok();
            if ok {
                log.with(|l| l.acked.push((Instant::now(), n)));
                if stop.load(Ordering::SeqCst) {
                    return;
                }
            }
            std::thread::sleep(WRITE_PAUSE);
        }
    })
}

/// GET requests on node 0 carrying the counted key.
fn requester(node: std::net::SocketAddr, log: Shared, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let sent = key(T_STR, HTTP_TAG).sent;
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            if let Ok(r) = http_get(node, "/", &[(T_STR.header, &sent)]) {
                if r.status == 200 {
                    log.with(|l| l.answered += 1);
                }
            }
            std::thread::sleep(WRITE_PAUSE);
        }
    })
}

/// Reads both counters on every node in turn.
fn monitor(apis: Vec<RuntimeApi>, log: Shared, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    let keys = [
        (
            Counter::Written,
            T_INT.name,
            key(T_INT, WRITE_TAG).sent,
            "gpc0",
        ),
        (
            Counter::Requests,
            T_STR.name,
            key(T_STR, HTTP_TAG).sent,
            "http_req_cnt",
        ),
    ];
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            for (node, api) in apis.iter().enumerate() {
                for (counter, table, k, field) in &keys {
                    let began = Instant::now();
                    let entry = api.table_entry(table, k);
                    let ended = Instant::now();
                    if let Ok(Some(value)) = entry.map(|e| e.and_then(|e| e.u64(field))) {
                        log.with(|l| {
                            l.reads.push(Read {
                                node,
                                counter: *counter,
                                began,
                                ended,
                                value,
                            })
                        });
                    }
                }
            }
            std::thread::sleep(READ_PAUSE);
        }
    })
}

/// Node 0's HAProxy again, in master-worker mode (reloads need it), with the lab's
/// configuration and the operator's `peers.cfg`, as the cluster started it.
fn master_worker(cluster: &mut Cluster) {
    let node = cluster.node_mut(0);
    let addrs = node.addrs.clone();
    node.haproxy.terminate().unwrap();
    let config = format!(
        "{}\n{}",
        lab::haproxy_config(&addrs),
        render_peers_cfg(
            PEERS_SECTION,
            addrs.haproxy_peers.port(),
            addrs.sidecar_local.port()
        )
    );
    let options = HaproxyOptions::new(config)
        .env("POD_NAME", &addrs.name)
        .master_worker(true);
    node.haproxy = Haproxy::start(options).unwrap();
}

/// Waits until node 0's sidecar is Ready with HAProxy process `pid`: that process confirmed the
/// sidecar's lesson.
fn taught(cluster: &Cluster, pid: u32) -> Instant {
    let node = cluster.node(0);
    wait_until(
        "node 0's sidecar to be Ready with the new HAProxy process",
        CONVERGE,
        || {
            let ready = node.sidecar.readyz().is_ok_and(|(s, _)| s == 200);
            let current = admin::peer(node, node.name()).pid == Some(pid);
            Ok((ready && current).then(Instant::now))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tails(cluster)))
}

/// Runs `act` on node 0's HAProxy (it returns the new worker's pid), waits until the sidecar
/// taught the new process, then lets the traffic run on.
fn event(
    cluster: &mut Cluster,
    what: &'static str,
    act: impl FnOnce(&mut Haproxy) -> u32,
) -> Event {
    let began = Instant::now();
    let pid = act(&mut cluster.node_mut(0).haproxy);
    let settled = taught(cluster, pid);
    std::thread::sleep(BETWEEN);
    Event {
        what,
        began,
        settled,
    }
}

/// The highest value of `counter` acknowledged before `at`: written (the writer's key) or read
/// on node 0 (the request count).
fn floor(log: &Log, counter: Counter, at: Instant) -> u64 {
    match counter {
        Counter::Written => log
            .acked
            .iter()
            .filter(|(t, _)| *t <= at)
            .map(|(_, n)| *n)
            .max(),
        Counter::Requests => log
            .reads
            .iter()
            .filter(|r| r.node == 0 && r.counter == counter && r.ended <= at)
            .map(|r| r.value)
            .max(),
    }
    .unwrap_or(0)
}

/// Everything that went wrong, one line each.
fn problems(log: &Log, events: &[Event]) -> Vec<String> {
    let mut found = Vec::new();
    // Members: never lower than before.
    for node in [1, 2] {
        for counter in COUNTERS {
            let mut highest: Option<&Read> = None;
            for r in log
                .reads
                .iter()
                .filter(|r| r.node == node && r.counter == counter)
            {
                match highest {
                    Some(h) if r.value < h.value => found.push(format!(
                        "node {node} {counter:?}: {} read at {:?} after {} at {:?}",
                        r.value,
                        r.began - events[0].began,
                        h.value,
                        h.began - events[0].began
                    )),
                    Some(h) if r.value == h.value => {}
                    _ => highest = Some(r),
                }
            }
        }
    }
    // Node 0, from the confirm of each new process's lesson to the next event.
    for (i, e) in events.iter().enumerate() {
        let until = events.get(i + 1).map(|n| n.began);
        for counter in COUNTERS {
            let least = floor(log, counter, e.began - MARGIN);
            for r in log.reads.iter().filter(|r| {
                r.node == 0
                    && r.counter == counter
                    && r.began >= e.settled
                    && until.is_none_or(|u| r.ended < u)
            }) {
                if r.value < least {
                    found.push(format!(
                        "node 0 {counter:?} after {} #{i}: {} read {:?} after the event began, \
                         but {least} was acknowledged before it",
                        e.what,
                        r.value,
                        r.began - e.began
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn reloads_and_restarts_under_traffic_never_lower_a_counter() {
    let mut cluster = lab::start(lab::three(false));
    master_worker(&mut cluster);
    let pid = cluster.node(0).haproxy.worker_pid().unwrap();
    taught(&cluster, pid);
    bulk_write(cluster.node(0), T_INT, 50_000, BULK);

    let log = Shared::default();
    let stop_writes = Stop(Arc::new(AtomicBool::new(false)));
    let stop_reads = Stop(Arc::new(AtomicBool::new(false)));
    let apis: Vec<RuntimeApi> = cluster.nodes().iter().map(|n| n.api()).collect();
    let threads = [
        writer(apis[0].clone(), log.clone(), Arc::clone(&stop_writes.0)),
        requester(
            cluster.node(0).addrs.http,
            log.clone(),
            Arc::clone(&stop_writes.0),
        ),
    ];
    let reads = monitor(apis, log.clone(), Arc::clone(&stop_reads.0));
    // The traffic flows and reaches every node.
    wait_until("both counters on every node", CONVERGE, || {
        Ok(log
            .with(|l| {
                (0..3).all(|n| {
                    COUNTERS
                        .iter()
                        .all(|c| l.reads.iter().any(|r| r.node == n && r.counter == *c))
                })
            })
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tails(&cluster)));
    std::thread::sleep(BETWEEN);

    let mut events = Vec::new();
    for _ in 0..RELOADS {
        events.push(event(&mut cluster, "reload", |h| h.reload().unwrap()));
    }
    for _ in 0..RESTARTS {
        events.push(event(&mut cluster, "kill and restart", |h| {
            h.kill().unwrap();
            std::thread::sleep(DEAD_FOR);
            h.restart().unwrap();
            h.worker_pid().unwrap()
        }));
    }

    drop(stop_writes);
    for t in threads {
        t.join().unwrap();
    }
    // Every node ends on the last value written and on one request count.
    let last = log.with(|l| l.acked.last().map(|(_, n)| *n)).unwrap();
    let settled = wait_until("every node to show the last values", CONVERGE, || {
        Ok(log.with(|l| {
            let latest = |node: usize, counter: Counter| {
                l.reads
                    .iter()
                    .rev()
                    .find(|r| r.node == node && r.counter == counter)
                    .map(|r| r.value)
            };
            let written: Vec<_> = (0..3).map(|n| latest(n, Counter::Written)).collect();
            let requests: Vec<_> = (0..3).map(|n| latest(n, Counter::Requests)).collect();
            (written.iter().all(|w| *w == Some(last))
                && requests.iter().all(|r| r.is_some() && *r == requests[0]))
            .then(|| requests[0].unwrap_or(0))
        }))
    });
    drop(stop_reads);
    reads.join().unwrap();
    let requests = settled.unwrap_or_else(|e| {
        let tail: Vec<Read> = log.with(|l| l.reads.iter().rev().take(12).copied().collect());
        panic!(
            "{e}: last write {last}, last reads {tail:#?}\n{}",
            log_tails(&cluster)
        )
    });

    let found = log.with(|l| problems(l, &events));
    let (reads, answered, writes) = log.with(|l| (l.reads.len(), l.answered, l.acked.len()));
    assert!(
        found.is_empty(),
        "{} problems in {reads} reads (the first {SHOWN}):\n{}\n{}",
        found.len(),
        found[..found.len().min(SHOWN)].join("\n"),
        log_tails(&cluster)
    );
    // The rule was exercised: the new processes' pushes of entries held in the replica
    // waited for the lesson.
    let ignored: u64 = admin::tables(cluster.node(0))
        .tables
        .iter()
        .map(|t| t.untaught_ignored)
        .sum();
    eprintln!(
        "fresh HAProxy: {writes} writes acknowledged (last {last}), {answered} requests \
         answered, {requests} counted everywhere, {reads} reads, {ignored} untaught updates \
         ignored; settled after {:?}",
        events
            .iter()
            .map(|e| e.settled - e.began)
            .collect::<Vec<_>>()
    );
    assert!(ignored > 0, "no update of a fresh process was held back");
}
