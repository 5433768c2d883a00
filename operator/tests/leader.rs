//! Two operator replicas electing a leader through a Lease on the in-memory API.

mod support;

use std::time::{Duration, SystemTime};

use haproxy_peers_operator::controller::leader::{LeaderElector, Round};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use support::fake_api::FakeApi;

fn at(s: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
}

#[tokio::test]
async fn one_leader_and_takeover_after_expiry() {
    let api = FakeApi::new();
    let leases: Api<Lease> = Api::namespaced(api.client(), "ops");
    let a = LeaderElector::new(
        leases.clone(),
        "haproxy-peers-operator",
        "op-a",
        Duration::from_secs(15),
    );
    let b = LeaderElector::new(
        leases.clone(),
        "haproxy-peers-operator",
        "op-b",
        Duration::from_secs(15),
    );

    assert_eq!(a.round(at(0)).await.expect("a"), Round::Leader);
    assert_eq!(
        b.round(at(1)).await.expect("b"),
        Round::Follower {
            holder: "op-a".into()
        }
    );
    assert_eq!(a.round(at(5)).await.expect("a renews"), Round::Leader);
    assert_eq!(
        b.round(at(19)).await.expect("b"),
        Round::Follower {
            holder: "op-a".into()
        },
        "renewed at 5, live until 20"
    );

    // a stops renewing (crashed): b takes over once the lease ran out, and a then follows.
    assert_eq!(b.round(at(21)).await.expect("b takes over"), Round::Leader);
    assert_eq!(
        a.round(at(22)).await.expect("a"),
        Round::Follower {
            holder: "op-b".into()
        }
    );
    let lease = leases.get("haproxy-peers-operator").await.expect("lease");
    let spec = lease.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("op-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(spec.lease_duration_seconds, Some(15));
}

#[tokio::test]
async fn a_write_that_races_another_replica_loses() {
    let api = FakeApi::new();
    let leases: Api<Lease> = Api::namespaced(api.client(), "ops");
    let a = LeaderElector::new(leases.clone(), "l", "op-a", Duration::from_secs(15));
    assert_eq!(a.round(at(0)).await.expect("a"), Round::Leader);
    // Another replica's write lands between our read and our write: the API answers 409.
    api.fail_next(http::Method::PUT, "/leases/l", 409);
    assert_eq!(a.round(at(5)).await.expect("a"), Round::LostRace);
    api.fail_next(http::Method::GET, "/leases/l", 500);
    assert!(
        a.round(at(6)).await.is_err(),
        "API errors surface to the caller"
    );
}
