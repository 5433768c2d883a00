//! Two pods, each a real HAProxy and an in-process sidecar, over mutual TLS: what one HAProxy
//! writes, the other shows, both ways; both become Ready; `/peers` and `/metrics` show the
//! sessions.

#[path = "mesh_support/mod.rs"]
mod support;

use std::time::Duration;

use haproxy_peers_members::{Policy, TablePolicy};
use haproxy_peers_sidecar::admin::views::{
    Direction, LastStatus, PeerRole, ReplicaSync, SessionState, Value,
};
use haproxy_peers_testkit::Haproxy;
use support::{gpc0, gpc0_in, ready_pair, Group, Pair};

const WAIT: Duration = Duration::from_secs(20);

fn wait_gpc0(h: &Haproxy, who: &str, key: &str, want: u64) {
    support::wait_gpc0(h, who, key, want, WAIT);
}

#[test]
fn two_pods_replicate_both_ways_over_mutual_tls() {
    pair(true);
}

#[test]
fn two_pods_replicate_both_ways_in_plain_text() {
    pair(false);
}

fn pair(tls: bool) {
    let group = Group::new(&["edge-0", "edge-1"], &[], tls, 2);
    let Pair { a, b, hap_a, hap_b } = ready_pair(&group, WAIT);

    hap_a
        .runtime()
        .set_table("be", "10.0.0.1", &[("gpc0", 7)])
        .unwrap();
    wait_gpc0(&hap_b, "B", "10.0.0.1", 7);
    hap_b
        .runtime()
        .set_table("be", "10.0.0.2", &[("gpc0", 9)])
        .unwrap();
    wait_gpc0(&hap_a, "A", "10.0.0.2", 9);
    // A change of an entry learned from the other side travels back (last writer wins).
    hap_a
        .runtime()
        .set_table("be", "10.0.0.2", &[("gpc0", 11)])
        .unwrap();
    wait_gpc0(&hap_b, "B", "10.0.0.2", 11);
    assert_eq!(gpc0(&hap_a, "10.0.0.1"), Some(7));

    // The sidecar's own replica holds it too, with the origin of the last write.
    let (status, body) = a.get("/tables/be?key=10.0.0.2&format=json");
    assert_eq!(status, 200, "{body}");
    let view: haproxy_peers_sidecar::admin::views::TableView = serde_json::from_str(&body).unwrap();
    let entry = view.entry.unwrap();
    assert_eq!(entry.origin, "haproxy");
    let gpc0 = entry.values.iter().find(|v| v.name == "gpc0").unwrap();
    assert_eq!(gpc0.value, Value::Unsigned { value: 11 });

    for (me, other) in [(&a, "edge-1"), (&b, "edge-0")] {
        let peers = me.peers();
        assert!(peers.replica.is_complete(), "{:?}", peers.replica);
        assert!(
            matches!(
                peers.replica,
                ReplicaSync::Learned { .. } | ReplicaSync::TimedOut
            ),
            "{:?}",
            peers.replica
        );
        let local = &peers.peers[0];
        assert_eq!(
            (local.role, local.name.as_str()),
            (PeerRole::Haproxy, me.pod.as_str())
        );
        assert_eq!(local.state, SessionState::Established);
        assert!(local.pid.is_some(), "{local:?}");
        let member = peers.peers.iter().find(|p| p.name == other).unwrap();
        assert_eq!(member.role, PeerRole::Member);
        assert_eq!(member.state, SessionState::Established, "{member:#?}");
        assert_eq!(member.last_status, LastStatus::Esta);
        assert!(member.direction.is_some());
        let be = member.tables.iter().find(|t| t.table == "be").unwrap();
        assert!(be.pushed > 0, "{be:?}");
        assert_eq!(member.protocol_errors, 0);
        let series = format!(
            "haproxy_peers_sidecar_sessions{{peer=\"{other}\",role=\"member\",state=\"established\"}}"
        );
        assert_eq!(me.metric(&series), Some(1.0));
        assert_eq!(me.metric("haproxy_peers_sidecar_ready"), Some(1.0));
    }
    // One session per pair: A's outgoing is B's incoming or the other way round.
    let (ab, ba) = (a.peer("edge-1"), b.peer("edge-0"));
    assert_ne!(ab.direction, ba.direction, "{ab:#?}\n{ba:#?}");
    assert!(matches!(
        ab.direction,
        Some(Direction::Inbound | Direction::Outbound)
    ));
    let received =
        a.metric("haproxy_peers_sidecar_updates_received_total{peer=\"edge-1\",table=\"be\"}");
    assert!(received.is_some_and(|n| n >= 1.0), "{received:?}");
}

/// A table whose PeerGroup policy is `ignore` stays between each HAProxy and its own sidecar:
/// never pushed, taught or accepted between members, while the other tables replicate.
#[test]
fn tables_with_policy_ignore_stay_in_their_pod() {
    let mut group = Group::new(&["edge-0", "edge-1"], &[], true, 2);
    group.members.tables = vec![TablePolicy {
        name: "scratch".into(),
        policy: Policy::Ignore,
    }];
    group.write_members();
    let Pair { a, b, hap_a, hap_b } = ready_pair(&group, WAIT);

    // Written first, so that if it were replicated it would be on its way before `be`'s entry.
    hap_a
        .runtime()
        .set_table("scratch", "10.9.9.9", &[("gpc0", 5)])
        .unwrap();
    hap_a
        .runtime()
        .set_table("be", "10.0.0.1", &[("gpc0", 7)])
        .unwrap();
    wait_gpc0(&hap_b, "B", "10.0.0.1", 7);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(gpc0_in(&hap_a, "scratch", "10.9.9.9"), Some(5));
    assert_eq!(
        gpc0_in(&hap_b, "scratch", "10.9.9.9"),
        None,
        "an ignored table crossed the mesh"
    );
    // A's own replica has it (it can teach its HAProxy after a restart); nothing went to B.
    let (status, body) = a.get("/tables/scratch?key=10.9.9.9&format=json");
    assert_eq!(status, 200, "{body}");
    let (status, _) = b.get("/tables/scratch?key=10.9.9.9&format=json");
    assert_eq!(status, 404, "B's replica must not hold A's scratch entry");
    let member = a.peer("edge-1");
    assert!(
        member
            .tables
            .iter()
            .all(|t| t.table != "scratch" || t.pushed == 0),
        "{member:#?}"
    );
}
