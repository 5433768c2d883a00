//! HAProxy reload (master-worker, SIGUSR2) under traffic: no entry lost, no counter reset.

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
            let new = act(&mut fleet, |f| f.reload_haproxy(&name));
            assert_ne!(new, old, "round {round}: {name} has no new worker");
            flowing(&fleet, &workload);
        }
    }
    ready(&fleet);
    nothing_lost(&fleet, workload);
}
