//! A process of a pod dies (`SIGKILL`) under traffic and starts again.
//! * HAProxy: its sidecar teaches it the whole table before the pod is Ready again. The pod's
//!   traffic stops while it is not Ready, as a Service's would.
//! * The sidecar: it relearns the table from HAProxy and the other sidecars.

use std::time::SystemTime;

use haproxy_peers_e2e::workload::WorkloadOptions;

use crate::support::{act, flowing, nothing_lost, ready, serial, start, traffic};

#[test]
fn haproxy_killed_under_traffic_is_taught_everything_again() {
    let _serial = serial();
    let mut fleet = start(3, SystemTime::now());
    let workload = traffic(&fleet, WorkloadOptions::default());
    for name in fleet.pod_names() {
        workload.crash(&name, || act(&mut fleet, |f| f.kill_haproxy(&name)));
        // As a Service would: no traffic to the pod while it is not Ready. The other lanes
        // keep writing while it is down.
        workload.pause(&name);
        flowing(&fleet, &workload);
        act(&mut fleet, |f| f.start_haproxy(&name));
        ready(&fleet);
        workload.resume(&name);
        flowing(&fleet, &workload);
    }
    nothing_lost(&fleet, workload);
}

#[test]
fn sidecar_killed_under_traffic_relearns_everything() {
    let _serial = serial();
    let mut fleet = start(3, SystemTime::now());
    // The pod keeps serving while its sidecar is down (a readiness probe takes a while to
    // notice), so its HAProxy counts on alone; it cannot learn sessions made elsewhere
    // meanwhile, so those are revisited only through the pod that made them.
    let workload = traffic(
        &fleet,
        WorkloadOptions {
            revisit_foreign: false,
            ..WorkloadOptions::default()
        },
    );
    for name in fleet.pod_names() {
        // No grace here: HAProxy keeps what it wrote and gives it to the new sidecar.
        act(&mut fleet, |f| f.kill_sidecar(&name));
        flowing(&fleet, &workload);
        act(&mut fleet, |f| f.start_sidecar(&name));
        ready(&fleet);
        flowing(&fleet, &workload);
    }
    nothing_lost(&fleet, workload);
}
