//! Scaling the StatefulSet 3 -> 5 -> 2 under traffic. Up: the new members get certificates, are
//! listed everywhere, connected to every other member, taught the whole table, then Ready (and
//! only then given traffic, as a Service does). Down: the leaving pods drain first; once gone
//! they are absent from every remaining pod's peers (not merely disconnected), their
//! certificates and keys leave the Secret, and nothing written through them is lost.

use std::time::{Instant, SystemTime};

use haproxy_peers_e2e::fleet::pod_name;
use haproxy_peers_e2e::holds::{drain, fleet_shortfalls};
use haproxy_peers_e2e::workload::WorkloadOptions;

use crate::lifecycle::{listed_members, members_yaml, others, tls_files};
use crate::support::{
    act, check, flowing, nothing_lost, ready, serial, start, traffic, until, CONVERGE,
};

fn names(n: usize) -> Vec<String> {
    (0..n).map(pod_name).collect()
}

#[test]
fn scaling_up_then_down_syncs_new_members_and_forgets_removed_ones() {
    let _serial = serial();
    let mut fleet = start(3, SystemTime::now());
    let mut workload = traffic(&fleet, WorkloadOptions::default());
    let started = Instant::now();

    // ----- 3 -> 5 -----
    let before_up = workload.ledger();
    let up_at = Instant::now();
    act(&mut fleet, |f| f.scale_to(5, SystemTime::now()));
    flowing(&fleet, &workload);
    ready(&fleet);
    let all = names(5);
    let new = names(5).split_off(3);
    // Ready means taught: their HAProxy holds everything acknowledged before they existed.
    let missing = check(&fleet, fleet_shortfalls(&fleet, &before_up, up_at, &new));
    assert!(
        missing.is_empty(),
        "new pods Ready but not taught:\n{}\n{}",
        missing.join("\n"),
        fleet.logs()
    );
    for pod in &all {
        assert_eq!(members_yaml(&fleet, pod), all, "{pod}'s members.yaml");
        let tls = tls_files(&fleet, pod);
        for member in &all {
            assert!(
                tls.contains_key(&format!("{member}.crt"))
                    && tls.contains_key(&format!("{member}.key")),
                "{pod}'s Secret volume lacks {member}'s certificate or key: {:?}",
                tls.keys().collect::<Vec<_>>()
            );
        }
        let mut want = others(&fleet, &[pod]);
        want.sort();
        until(
            &fleet,
            &format!("{pod} established with every member"),
            || {
                let mut established = fleet.admin(pod)?.established_members();
                established.sort();
                Ok((established == want).then_some(()))
            },
        );
    }
    // A Service sends to the new pods once they are Ready.
    workload.follow(&fleet);
    flowing(&fleet, &workload);

    // ----- 5 -> 2 -----
    let leaving = ["edge-2", "edge-3", "edge-4"];
    let drained = check(&fleet, drain(&fleet, &workload, &leaving, CONVERGE));
    for pod in leaving {
        assert!(
            drained.acked_since(pod, started) > 0,
            "nothing was written through {pod} before it left"
        );
    }
    act(&mut fleet, |f| f.scale_to(2, SystemTime::now()));
    workload.follow(&fleet);
    flowing(&fleet, &workload);
    let remaining = names(2);
    assert_eq!(fleet.pod_names(), remaining);
    for pod in &remaining {
        assert_eq!(members_yaml(&fleet, pod), remaining, "{pod}'s members.yaml");
        let tls = tls_files(&fleet, pod);
        for gone in leaving {
            for file in [format!("{gone}.crt"), format!("{gone}.key")] {
                assert!(
                    !tls.contains_key(&file),
                    "{pod}'s Secret volume still holds {file}: {:?}",
                    tls.keys().collect::<Vec<_>>()
                );
            }
        }
        // Absent, not merely disconnected: /peers lists exactly the remaining members.
        let want = others(&fleet, &[pod]);
        until(&fleet, &format!("{pod} to forget {leaving:?}"), || {
            let snap = fleet.admin(pod)?;
            Ok((listed_members(&snap) == want && snap.is_ready()).then_some(()))
        });
    }
    ready(&fleet);
    nothing_lost(&fleet, workload);
}
