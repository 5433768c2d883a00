//! `members.yaml` changes while sidecars run: a pod that is not listed yet waits (a readiness
//! blocker, not a crash) and joins once the file lists it; a member removed from the file has
//! its session closed and its series dropped from the metrics.

#[path = "mesh_support/mod.rs"]
mod support;

use std::time::Duration;

use haproxy_peers_members::Member;
use haproxy_peers_sidecar::admin::views::{BlockerKind, SessionState};
use support::{mesh_ip, Group, Sidecar};

const WAIT: Duration = Duration::from_secs(20);

fn established(s: &Sidecar, peer: &str) -> bool {
    s.peers()
        .peers
        .iter()
        .any(|p| p.name == peer && p.state == SessionState::Established)
}

fn not_member(s: &Sidecar) -> Option<String> {
    s.readiness()
        .blockers
        .into_iter()
        .find(|b| b.kind == BlockerKind::NotMember)
        .map(|b| b.message)
}

#[test]
fn a_pod_joins_when_listed_and_leaves_when_removed() {
    let mut group = Group::new(&["edge-0"], &["edge-1"], true, 1);
    let a = group.sidecar("edge-0", 0);
    let b = group.sidecar("edge-1", 1);

    assert_eq!(
        not_member(&b).as_deref(),
        Some(
            "pod 'edge-1' is not in members.yaml (members: edge-0): is the pod selected by the \
             PeerGroup's selector?; waiting for members.yaml to list it"
        )
    );
    assert_eq!(b.get("/healthz").0, 200);
    assert!(!a.peers().peers.iter().any(|p| p.name == "edge-1"));

    group.members.generation = 2;
    group.members.members.push(Member {
        name: "edge-1".into(),
        address: mesh_ip(1).to_string(),
    });
    group.write_members();
    a.wait_for("a session with edge-1", WAIT, |s| established(s, "edge-1"));
    b.wait_for("a session with edge-0", WAIT, |s| established(s, "edge-0"));
    // B may be called before it re-reads the file itself: it accepts members either way.
    b.wait_for("the blocker lifted", WAIT, |s| not_member(s).is_none());
    let series =
        "haproxy_peers_sidecar_sessions{peer=\"edge-1\",role=\"member\",state=\"established\"}";
    assert_eq!(a.metric(series), Some(1.0));

    group.members.generation = 3;
    group.members.members.retain(|m| m.name == "edge-0");
    group.write_members();
    a.wait_for("edge-1 gone", WAIT, |s| {
        !s.peers().peers.iter().any(|p| p.name == "edge-1")
    });
    assert_eq!(a.metric(series), None);
    b.wait_for("the session closed by edge-0", WAIT, |s| {
        !established(s, "edge-0")
    });
    b.wait_for("the blocker back", WAIT, |s| not_member(s).is_some());
    // B is not a member: it does not dial, and nothing replaces the session.
    std::thread::sleep(Duration::from_millis(1_500));
    assert!(!established(&a, "edge-1") && !established(&b, "edge-0"));
}
