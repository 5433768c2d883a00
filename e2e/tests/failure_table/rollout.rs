//! A rolling restart of every pod, one at a time in reverse ordinal order as a StatefulSet rolls,
//! under traffic: each pod leaves gracefully, comes back under its name with a new IP, and the
//! next one goes only once the whole fleet is Ready again. The table outlives the rollout: what
//! was written before it began is still on every (new) pod at the end.

use std::time::{Instant, SystemTime};

use haproxy_peers_e2e::holds::{drain, fleet_shortfalls};
use haproxy_peers_e2e::workload::WorkloadOptions;
use haproxy_peers_e2e::Fleet;

use crate::lifecycle::others;
use crate::support::{act, check, flowing, nothing_lost, ready, serial, start, traffic, CONVERGE};

/// Which of `pods` answer Ready right now.
fn ready_now(fleet: &Fleet, pods: &[String]) -> Vec<String> {
    pods.iter()
        .filter(|n| fleet.admin(n).is_ok_and(|s| s.is_ready()))
        .cloned()
        .collect()
}

#[test]
fn the_table_outlives_a_rolling_restart_of_every_pod() {
    let _serial = serial();
    let mut fleet = start(3, SystemTime::now());
    let mut workload = traffic(&fleet, WorkloadOptions::default());
    let before = workload.ledger();
    let began = Instant::now();
    assert!(
        before.totals().acked_writes > 0 && before.totals().sessions > 0,
        "nothing written before the rollout: {:?}",
        before.totals()
    );
    let mut order = fleet.pod_names();
    order.reverse();
    let mut ips = Vec::new();
    for name in &order {
        let rest = others(&fleet, &[name]);
        // Never more than one pod down: the others are all Ready before this one goes, and
        // stay Ready (and serve) while it is replaced.
        assert_eq!(
            ready_now(&fleet, &rest),
            rest,
            "{name} would go while others are not Ready\n{}",
            fleet.logs()
        );
        ips.push(check(&fleet, fleet.pod(name)).ip());
        check(&fleet, drain(&fleet, &workload, &[name], CONVERGE));
        act(&mut fleet, |f| f.replace_pod(name));
        workload.follow(&fleet);
        assert_eq!(
            ready_now(&fleet, &rest),
            rest,
            "the others stopped being Ready while {name} was replaced\n{}",
            fleet.logs()
        );
        flowing(&fleet, &workload);
        ready(&fleet);
        workload.resume(name);
        flowing(&fleet, &workload);
    }
    for (name, old) in order.iter().zip(&ips) {
        assert_ne!(
            check(&fleet, fleet.pod(name)).ip(),
            *old,
            "{name} kept its IP"
        );
    }
    // Every pod is a new one now: what was acknowledged before the rollout is on each of them.
    let missing = check(
        &fleet,
        fleet_shortfalls(&fleet, &before, began, &fleet.pod_names()),
    );
    assert!(
        missing.is_empty(),
        "lost in the rollout:\n{}\n{}",
        missing.join("\n"),
        fleet.logs()
    );
    nothing_lost(&fleet, workload);
}
