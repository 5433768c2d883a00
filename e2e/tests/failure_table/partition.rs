//! A partition between members, then heal: both sides keep serving; after the heal they
//! converge. What converges, pinned down here and in the README ("Conflicts are
//! last-writer-wins, by write time"):
//! * keys written on one side only: everywhere, with their last value;
//! * a key written on both sides: everywhere, the value of the write made last (by the clock of
//!   the pod that wrote it, compared through the entries' remaining lifetimes), whichever side
//!   it was on and in whichever order the two sides' messages cross;
//! * counters are values, not sums: a client counted on both sides ends with the count of the
//!   side that counted last; what the other side counted meanwhile is lost.

use std::time::{Duration, Instant, SystemTime};

use haproxy_peers_e2e::haproxy_cfg::{CLIENT_HEADER, RATE_TABLE};
use haproxy_peers_e2e::workload::WorkloadOptions;
use haproxy_peers_e2e::Fleet;

use crate::support::{check, flowing, nothing_lost, ready, serial, start, traffic, until};

/// Longer than a session's liveness timeout (10 s): the sessions across the cut really end.
const PARTITION: Duration = Duration::from_secs(12);
const ISLAND: &str = "edge-0";
const MAINLAND: [&str; 2] = ["edge-1", "edge-2"];

fn gpc0(fleet: &Fleet, pod: &str, key: &str) -> Option<u64> {
    check(
        fleet,
        fleet
            .pod(pod)
            .and_then(|p| Ok(p.runtime().table_entry(RATE_TABLE, key)?)),
    )
    .and_then(|e| e.u64("gpc0"))
}

fn set(fleet: &Fleet, pod: &str, key: &str, value: u64) {
    check(
        fleet,
        fleet
            .pod(pod)
            .and_then(|p| Ok(p.runtime().set_table(RATE_TABLE, key, &[("gpc0", value)])?)),
    );
}

fn requests(fleet: &Fleet, pod: &str, client: &str, count: u64) {
    let tally = check(fleet, fleet.http(pod, count, &[(CLIENT_HEADER, client)]));
    assert_eq!(tally.status(200), count, "{pod}: {tally:?}");
}

fn request_count(fleet: &Fleet, pod: &str, client: &str) -> Option<u64> {
    check(
        fleet,
        fleet
            .pod(pod)
            .and_then(|p| Ok(p.runtime().table_entry(RATE_TABLE, client)?)),
    )
    .and_then(|e| e.u64("http_req_cnt"))
}

/// Waits until `pod` shows `gpc0 = value` for `key`.
fn shows(fleet: &Fleet, pod: &str, key: &str, value: u64) {
    until(fleet, &format!("{key}={value} on {pod}"), || {
        Ok((gpc0(fleet, pod, key) == Some(value)).then_some(()))
    });
}

#[test]
fn a_partition_heals_into_the_last_write_everywhere() {
    let _serial = serial();
    let fleet = start(3, SystemTime::now());
    // Sessions revisited only through the pod that made them: across the partition the other
    // side cannot know them (a revisit there would choose a server of its own).
    let workload = traffic(
        &fleet,
        WorkloadOptions {
            revisit_foreign: false,
            ..WorkloadOptions::default()
        },
    );
    // Before: one client counted through the island and the mainland alike.
    requests(&fleet, ISLAND, "c-both", 10);
    until(&fleet, "c-both=10 on the mainland", || {
        Ok((request_count(&fleet, MAINLAND[0], "c-both") == Some(10)).then_some(()))
    });

    for m in MAINLAND {
        check(&fleet, fleet.partition(ISLAND, m));
    }
    let cut_at = Instant::now();

    // Both sides keep serving: traffic flows through all three pods, and a write on one side
    // reaches the rest of that side only.
    flowing(&fleet, &workload);
    set(&fleet, MAINLAND[0], "mainland-only", 1);
    shows(&fleet, MAINLAND[1], "mainland-only", 1);
    set(&fleet, ISLAND, "island-only", 2);
    // The same key on both sides: "a" last on the mainland, "b" last on the island.
    set(&fleet, ISLAND, "a", 10);
    set(&fleet, MAINLAND[0], "b", 20);
    std::thread::sleep(Duration::from_millis(200));
    set(&fleet, MAINLAND[0], "a", 11);
    set(&fleet, ISLAND, "b", 21);
    shows(&fleet, MAINLAND[1], "a", 11);
    shows(&fleet, MAINLAND[1], "b", 20);
    // The counter: 5 more on the island, then 3 more on the mainland (counted last).
    requests(&fleet, ISLAND, "c-both", 5);
    std::thread::sleep(Duration::from_millis(200));
    requests(&fleet, MAINLAND[0], "c-both", 3);
    assert_eq!(request_count(&fleet, ISLAND, "c-both"), Some(15));
    assert_eq!(request_count(&fleet, MAINLAND[0], "c-both"), Some(13));
    // Nothing crosses: the island never heard of the mainland's writes, nor the reverse.
    assert_eq!(gpc0(&fleet, ISLAND, "mainland-only"), None);
    assert_eq!(gpc0(&fleet, ISLAND, "a"), Some(10));
    for m in MAINLAND {
        assert_eq!(gpc0(&fleet, m, "island-only"), None);
        assert_eq!(gpc0(&fleet, m, "b"), Some(20));
    }
    // Long enough for the sessions across the cut to be declared dead.
    if let Some(left) = PARTITION.checked_sub(cut_at.elapsed()) {
        std::thread::sleep(left);
    }
    for m in MAINLAND {
        let snap = check(&fleet, fleet.admin(m));
        assert!(
            !snap.established_members().contains(&ISLAND.to_string()),
            "{m} still has a session with {ISLAND} after {PARTITION:?} of partition: {snap:?}"
        );
    }
    flowing(&fleet, &workload);

    for m in MAINLAND {
        check(&fleet, fleet.unpartition(ISLAND, m));
    }
    ready(&fleet);
    for pod in fleet.pod_names() {
        shows(&fleet, &pod, "mainland-only", 1);
        shows(&fleet, &pod, "island-only", 2);
        shows(&fleet, &pod, "a", 11);
        shows(&fleet, &pod, "b", 21);
        until(
            &fleet,
            &format!("c-both on {pod} to be the mainland's 13"),
            || Ok((request_count(&fleet, &pod, "c-both") == Some(13)).then_some(())),
        );
    }
    nothing_lost(&fleet, workload);
    // And it stays converged: nothing flips back afterwards.
    std::thread::sleep(Duration::from_secs(2));
    for pod in fleet.pod_names() {
        assert_eq!(gpc0(&fleet, &pod, "a"), Some(11), "{pod}");
        assert_eq!(gpc0(&fleet, &pod, "b"), Some(21), "{pod}");
        assert_eq!(request_count(&fleet, &pod, "c-both"), Some(13), "{pod}");
    }
}
