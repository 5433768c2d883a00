//! Restarts around a pair of pods: a restarted sidecar learns the table again (from its
//! HAProxy and from the other member), and a HAProxy killed with SIGKILL and started again is
//! taught the whole table by its sidecar before the pod is Ready again.

#[path = "mesh_support/mod.rs"]
mod support;

use std::time::Duration;

use haproxy_peers_sidecar::admin::views::SessionState;
use support::{gpc0, ready_pair, wait_gpc0, Group, Pair};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn sidecar_and_haproxy_restarts_keep_the_table() {
    let group = Group::new(&["edge-0", "edge-1"], &[], true, 2);
    // Both start empty: their lessons to each other are partial, so both become complete by
    // the resync timeout.
    let Pair {
        a: _a,
        mut b,
        hap_a,
        mut hap_b,
    } = ready_pair(&group, WAIT);
    for i in 1..=20u64 {
        hap_a
            .runtime()
            .set_table("be", &format!("10.1.0.{i}"), &[("gpc0", i)])
            .unwrap();
    }
    wait_gpc0(&hap_b, "B", "10.1.0.20", 20, WAIT);

    // The sidecar of B restarts (same addresses): it relearns, and becomes ready.
    b.restart_and_learn(&group, "edge-0", WAIT);
    let (status, body) = b.get("/tables/be?key=10.1.0.7&format=json");
    assert_eq!(status, 200, "{body}");

    // HAProxy B dies and comes back empty: its sidecar teaches it everything.
    hap_b.kill().unwrap();
    b.wait_for("HAProxy gone", WAIT, |s| {
        s.peer("edge-1").state != SessionState::Established
    });
    assert!(!b.readiness().ready);
    hap_b.restart().unwrap();
    b.wait_ready(WAIT);
    for i in 1..=20u64 {
        assert_eq!(gpc0(&hap_b, &format!("10.1.0.{i}")), Some(i));
    }
    // And it still replicates.
    hap_b
        .runtime()
        .set_table("be", "10.1.0.99", &[("gpc0", 99)])
        .unwrap();
    wait_gpc0(&hap_a, "A", "10.1.0.99", 99, WAIT);
}
