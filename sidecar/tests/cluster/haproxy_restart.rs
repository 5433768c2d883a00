//! 2. HAProxy killed with SIGKILL and restarted: its own sidecar teaches it the whole table, and
//!    the pod turns Ready only after that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use haproxy_peers_testkit::wait_until;

use crate::expect::{log_tails, Expected};
use crate::lab::{self, T_INT};
use crate::replicate::CONVERGE;
use crate::writes::{bulk_write, write_round};

/// How fast `/readyz` is polled while HAProxy restarts.
const READYZ_POLL: Duration = Duration::from_millis(5);
/// Entries written in bulk on top of the round, so that teaching takes more than an instant.
const BULK: u32 = 2_000;

/// `/readyz` answers, each with the moment it was received.
#[derive(Default)]
struct Polls(Mutex<Vec<(Instant, u16)>>);

impl Polls {
    fn first_ready(&self) -> Option<Instant> {
        let polls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        polls.iter().find(|(_, s)| *s == 200).map(|(at, _)| *at)
    }

    fn statuses(&self) -> Vec<u16> {
        let polls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        polls.iter().map(|(_, s)| *s).collect()
    }
}

/// Stops the poller when the test ends, also by a panic.
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_killed_haproxy_is_taught_its_whole_table_before_the_pod_is_ready() {
    let mut cluster = lab::start(lab::three(true));
    let mut expected = write_round(&cluster, &[0, 1, 2], 1);
    let since = Instant::now();
    let bulk = bulk_write(cluster.node(0), T_INT, 50_000, BULK);
    let mut bulk_expected = Expected::new();
    bulk_expected.capture(cluster.node(0), &bulk, since);
    expected.merge(bulk_expected);
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);

    let victim = 1;
    cluster.node_mut(victim).haproxy.kill().unwrap();
    let sidecar = &cluster.node(victim).sidecar;
    wait_until(
        "the victim's /readyz to turn 503 once its HAProxy is gone",
        Duration::from_secs(15),
        || Ok((sidecar.readyz()?.0 != 200).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tails(&cluster)));

    // Poll /readyz fast from now on, while the test restarts HAProxy and reads its table.
    let polls = Arc::new(Polls::default());
    let stop = Stop(Arc::new(AtomicBool::new(false)));
    let poller = {
        let (polls, stop) = (Arc::clone(&polls), Arc::clone(&stop.0));
        let sidecar_admin = cluster.node(victim).sidecar.admin_addr();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Ok(response) = haproxy_peers_testkit::http_get(sidecar_admin, "/readyz", &[])
                {
                    let mut list = polls.0.lock().unwrap_or_else(|e| e.into_inner());
                    list.push((Instant::now(), response.status));
                }
                std::thread::sleep(READYZ_POLL);
            }
        })
    };
    // At least one answer while HAProxy is down, before it starts again.
    wait_until("a first /readyz poll", Duration::from_secs(10), || {
        Ok((!polls.statuses().is_empty()).then_some(()))
    })
    .unwrap();
    let restarting = Instant::now();
    cluster.node_mut(victim).haproxy.restart().unwrap();

    // Read the restarted HAProxy's table until it is complete; remember when each incomplete
    // read began.
    let node = cluster.node(victim);
    let mut incomplete_reads: Vec<(Instant, usize)> = Vec::new();
    let complete = wait_until(
        "the restarted HAProxy to hold every entry",
        CONVERGE,
        || {
            let began = Instant::now();
            let problems = expected.problems(node);
            if problems.is_empty() {
                Ok(Some(began))
            } else {
                incomplete_reads.push((began, problems.len()));
                Ok(None)
            }
        },
    );
    let ready = wait_until("the victim to be ready again", CONVERGE, || {
        Ok(polls.first_ready())
    });
    drop(stop);
    poller.join().unwrap();
    let complete = complete.unwrap_or_else(|e| {
        panic!(
            "{e}: still {:?}\n{}",
            expected.problems(node),
            log_tails(&cluster)
        )
    });
    let ready = ready
        .unwrap_or_else(|e| panic!("{e}: polls {:?}\n{}", polls.statuses(), log_tails(&cluster)));

    // Never Ready while the table was incomplete: no incomplete read began after a 200.
    if let Some((began, missing)) = incomplete_reads.iter().rev().find(|(b, _)| *b > ready) {
        panic!(
            "/readyz answered 200 {:?} before a table read that still found {missing} problems \
             (restart began {:?} before that read)\n{}",
            *began - ready,
            *began - restarting,
            log_tails(&cluster)
        );
    }
    let statuses = polls.statuses();
    assert_ne!(
        statuses.first(),
        Some(&200),
        "ready before HAProxy even ran again: {statuses:?}"
    );
    assert!(ready > restarting, "{statuses:?}");
    eprintln!(
        "HAProxy restart: {} /readyz polls, {} incomplete table reads, complete {:?} and \
         ready {:?} after the restart began",
        statuses.len(),
        incomplete_reads.len(),
        complete.saturating_duration_since(restarting),
        ready.saturating_duration_since(restarting),
    );
    // Every node, the restarted one included, holds every value.
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);
}
