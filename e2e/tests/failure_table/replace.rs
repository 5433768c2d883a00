//! A pod deleted and recreated under the same name with a new IP, under traffic: the other pods
//! reconnect to its new address without any HAProxy reloading, the table is intact, and the new
//! pod reports Ready only once its HAProxy holds every key written before it was replaced.

use std::time::{Instant, SystemTime};

use haproxy_peers_e2e::first_ready::ReadyWatch;
use haproxy_peers_e2e::haproxy_cfg::{RATE_TABLE, STICKY_TABLE};
use haproxy_peers_e2e::holds::{drain, shortfalls};
use haproxy_peers_e2e::ledger::FIELDS;
use haproxy_peers_e2e::workload::WorkloadOptions;

use crate::lifecycle::{others, session_from, workers};
use crate::support::{
    act, check, flowing, nothing_lost, ready, serial, start, traffic, CONVERGE, READY,
};

const TARGET: &str = "edge-1";

#[test]
fn a_replaced_pod_is_reconnected_without_reload_and_ready_only_once_taught() {
    let _serial = serial();
    let mut fleet = start(3, SystemTime::now());
    let mut workload = traffic(&fleet, WorkloadOptions::default());
    let others = others(&fleet, &[TARGET]);
    let workers_before = workers(&fleet, &others);
    let old_ip = check(&fleet, fleet.pod(TARGET)).ip();

    // Deleted gracefully, as Kubernetes does: out of the Service's endpoints first, and its last
    // writes reach the other pods before it goes.
    let at_replacement = check(&fleet, drain(&fleet, &workload, &[TARGET], CONVERGE));
    let replaced_at = Instant::now();
    // Watching from before the new pod exists: its first 200 and its HAProxy's table then.
    let watch = check(
        &fleet,
        ReadyWatch::next_incarnation(&fleet, TARGET, &[RATE_TABLE, STICKY_TABLE], READY),
    );
    act(&mut fleet, |f| f.replace_pod(TARGET));
    workload.follow(&fleet);
    // The others serve (and write) while it comes up.
    flowing(&fleet, &workload);
    ready(&fleet);
    let first = check(&fleet, watch.wait());
    workload.resume(TARGET);
    flowing(&fleet, &workload);

    let new_ip = check(&fleet, fleet.pod(TARGET)).ip();
    assert_ne!(new_ip, old_ip, "the replacement kept its address");
    assert_eq!(
        workers(&fleet, &others),
        workers_before,
        "a replacement reloaded (or restarted) another pod's HAProxy"
    );
    for name in &others {
        session_from(&fleet, name, TARGET, new_ip);
    }

    // Ready only once taught: watched from before the sidecar served (it answered "not ready"
    // first), and at its first 200 its HAProxy held everything acknowledged before the
    // replacement.
    assert!(
        first.ready_after_ms.is_some(),
        "{TARGET} never answered 200 to the watch: {first:?}\n{}",
        fleet.logs()
    );
    assert!(
        first.not_ready > 0,
        "the watch saw no /readyz answer before the first 200, so it did not watch from the \
         start: {first:?}"
    );
    let counters = check(&fleet, first.table(RATE_TABLE));
    let sticky = check(&fleet, first.table(STICKY_TABLE));
    let missing = shortfalls(
        &at_replacement,
        replaced_at,
        TARGET,
        &counters,
        &sticky,
        &FIELDS,
    );
    assert!(
        missing.is_empty(),
        "{TARGET} was Ready before its HAProxy held everything: at the first 200 ({:?} ms into \
         the watch) it held {} + {} entries, {} shortfalls (first 40):\n{}\n{}",
        first.ready_after_ms,
        counters.entries.len(),
        sticky.entries.len(),
        missing.len(),
        missing
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        fleet.logs()
    );
    assert!(
        at_replacement.totals().acked_writes > 0 && at_replacement.totals().sessions > 0,
        "nothing was written before the replacement: {:?}",
        at_replacement.totals()
    );
    nothing_lost(&fleet, workload);
}
