//! Each mistake a person can make shows up in the PeerGroup's conditions through the real
//! reconcile; an invalid spec changes nothing that was applied before.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fixtures::*;

#[tokio::test]
async fn pods_not_owned_by_a_stateful_set() {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    for i in 0..2 {
        let mut pod = sts_pod(&format!("edge-{i}"), &pod_ip(i));
        pod["metadata"]
            .as_object_mut()
            .expect("metadata")
            .remove("ownerReferences");
        b.api.seed(PODS, pod);
    }
    b.reconcile(start()).await;
    b.assert_condition(
        "Degraded",
        "True",
        "PodsNotInStatefulSet",
        &["edge-0, edge-1", "StatefulSet"],
    );
    // Not blocking: the group still works, with a warning.
    b.assert_condition("Ready", "True", "AllMembersReady", &[]);
    assert_eq!(member_names(&b.api), ["edge-0", "edge-1"]);
    assert!(events(&b.api)
        .iter()
        .any(|(t, r, _)| t == "Warning" && r == "PodsNotInStatefulSet"));
}

#[tokio::test]
async fn a_pod_selected_by_two_groups() {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    seed_group(&b.api, "edge-too", json!({}));
    seed_pods(&b.api, 0..2);
    b.reconcile(start()).await;
    b.assert_condition(
        "Degraded",
        "True",
        "SelectedByTwoGroups",
        &["edge-0", "PeerGroup edge-too", "change the selectors"],
    );
    b.assert_condition("Ready", "False", "SelectedByTwoGroups", &[]);
}

#[tokio::test]
async fn a_selector_matching_nothing() {
    let b = Bench::new();
    seed_group(
        &b.api,
        GROUP,
        json!({"selector": {"matchLabels": {APP_LABEL: "edgy"}}}),
    );
    seed_pods(&b.api, 0..3);
    b.reconcile(start()).await;
    b.assert_condition(
        "Degraded",
        "True",
        "NoPodsSelected",
        &["matches no pod in namespace web", "kubectl get pods -n web"],
    );
    b.assert_condition("Ready", "False", "NoPodsSelected", &[]);
    assert!(member_names(&b.api).is_empty());
}

/// A valid group first, then `patch` to its spec: the status names the mistake and nothing
/// applied before is written again.
async fn invalid_spec_after_a_valid_one(patch: serde_json::Value) -> Bench {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    b.reconcile(start()).await;
    let cm = b.api.get(&format!("{CONFIGMAPS}/edge-peers"));
    let tls = b.api.get(&format!("{SECRETS}/edge-peer-tls"));
    edit_spec(&b.api, GROUP, patch);
    b.api.clear_requests();
    b.reconcile(start() + Duration::from_secs(60)).await;
    let log = b.api.requests();
    assert_eq!(
        changes(&log),
        ["PATCH /apis/haproxy-peers.io/v1alpha1/namespaces/web/peergroups/edge/status"],
        "an invalid spec writes only the status"
    );
    assert_eq!(b.api.get(&format!("{CONFIGMAPS}/edge-peers")), cm);
    assert_eq!(b.api.get(&format!("{SECRETS}/edge-peer-tls")), tls);
    assert_eq!(b.status().observed_generation, Some(2));
    b
}

#[tokio::test]
async fn a_bad_peers_section_name() {
    let b = invalid_spec_after_a_valid_one(json!({"peersSection": "edge peers!"})).await;
    b.assert_condition(
        "Degraded",
        "True",
        "InvalidPeersSection",
        &["spec.peersSection"],
    );
    b.assert_condition("Ready", "False", "InvalidPeersSection", &[]);
    // The members are unknown, not gone: they stay in the status.
    assert_eq!(b.status().members.len(), 3);
}

#[tokio::test]
async fn a_port_clash() {
    let b = invalid_spec_after_a_valid_one(json!({"ports": {"mesh": 10001}})).await;
    b.assert_condition("Degraded", "True", "PortConflict", &["spec.ports."]);
    b.assert_condition("Ready", "False", "PortConflict", &[]);
}
