//! HAProxy reload (master-worker, SIGUSR2) under traffic: no entry lost, no counter reset. The
//! only thing a reload may cost is what the new worker counted before it was taught (see
//! [`haproxy_peers_e2e::ledger::RELOAD_GRACE`]): every write, session and earlier count stays.

use std::time::SystemTime;

use haproxy_peers_e2e::workload::WorkloadOptions;

use crate::support::{act, check, flowing, nothing_lost, ready, serial, start, traffic};

#[test]
fn a_reload_under_traffic_loses_nothing() {
    let _serial = serial();
    let mut fleet = start(3, SystemTime::now());
    let workload = traffic(&fleet, WorkloadOptions::default());
    // Every pod reloads twice while every lane, its own included, keeps writing and requesting.
    for round in 0..2 {
        for name in fleet.pod_names() {
            let old = check(
                &fleet,
                fleet.pod(&name).and_then(|p| Ok(p.runtime().pid()?)),
            );
            let new = workload.reload(&name, || act(&mut fleet, |f| f.reload_haproxy(&name)));
            assert_ne!(new, old, "round {round}: {name} has no new worker");
            flowing(&fleet, &workload);
        }
    }
    ready(&fleet);
    nothing_lost(&fleet, workload);
}
