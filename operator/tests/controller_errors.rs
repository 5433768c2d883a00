//! Failures: an API error mid-apply is reported with what to do, retried with a growing
//! backoff, and the next reconcile converges without losing the CA it already stored; objects
//! of someone else's are never taken over nor deleted; switching TLS and the NetworkPolicy off
//! deletes exactly the operator's own objects.

mod support;

use std::sync::Arc;
use std::time::Duration;

use haproxy_peers_operator::controller::{error_policy, reconcile};
use haproxy_peers_operator::Error;
use http::Method;
use kube::runtime::controller::Action;
use serde_json::json;
use support::fixtures::*;

#[tokio::test]
async fn an_api_error_backs_off_and_the_next_reconcile_converges() {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    let ctx = Arc::new(context(&b.api, &b.clock));
    b.api
        .fail_next(Method::PATCH, "/secrets/edge-peer-tls", 500);

    let err = reconcile(Arc::new(group(&b.api, GROUP)), ctx.clone())
        .await
        .expect_err("the apply fails");
    let text = err.to_string();
    assert!(
        matches!(err, Error::Kube { .. }) && text.contains("apply Secret web/edge-peer-tls"),
        "{text}"
    );
    assert!(text.contains("retries with backoff"), "{text}");
    assert_eq!(err.metric_label(), "kube_api");
    let pg = Arc::new(group(&b.api, GROUP));
    assert_eq!(
        error_policy(pg.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(5))
    );
    assert_eq!(
        error_policy(pg.clone(), &err, ctx.clone()),
        Action::requeue(Duration::from_secs(10)),
        "a second failure in a row waits twice as long"
    );
    assert!(
        events(&b.api).iter().any(|(t, r, n)| t == "Warning"
            && r == "ReconcileFailed"
            && n.contains("edge-peer-tls")),
        "{:#?}",
        events(&b.api)
    );
    let metrics = ctx.metrics.encode().expect("metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == "haproxy_peers_operator_reconcile_errors_total{error=\"kube_api\"} 1"),
        "{metrics}"
    );

    // G-ca was stored before the failure: the retry keeps that CA and only issues the leaves.
    let ca_key = secret_text(&b.api, "edge-ca", "ca.key").expect("CA key stored first");
    assert!(secret_text(&b.api, "edge-peer-tls", "ca.crt").is_none());
    b.clock.set(start() + Duration::from_secs(5));
    let action = reconcile(Arc::new(group(&b.api, GROUP)), ctx.clone())
        .await
        .expect("converges");
    assert_eq!(action, Action::requeue(ctx.resync));
    assert_eq!(secret_text(&b.api, "edge-ca", "ca.key"), Some(ca_key));
    assert_eq!(secret_keys(&b.api, "edge-peer-tls").len(), 7);
    assert!(inventory(&b.api).problems.is_empty());
    b.assert_condition("Ready", "True", "AllMembersReady", &[]);
    assert_eq!(
        error_policy(pg, &err, ctx),
        Action::requeue(Duration::from_secs(5)),
        "a success resets the backoff"
    );
}

#[tokio::test]
async fn objects_of_someone_else_are_never_taken_over() {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    let foreign = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "edge-ca", "namespace": NS},
        "data": {"ca.key": "c2VjcmV0"}
    });
    b.api.seed(SECRETS, foreign.clone());
    let err = b.try_reconcile(start()).await.expect_err("refused");
    assert!(matches!(err, Error::NotOwned { .. }), "{err}");
    assert!(
        err.to_string().contains(
            "Secret web/edge-ca exists but is not owned by PeerGroup edge: delete or rename it"
        ),
        "{err}"
    );
    let stored = b.api.get(&format!("{SECRETS}/edge-ca")).expect("kept");
    assert_eq!(stored["data"], foreign["data"], "not overwritten");

    // With TLS off the operator needs no Secret: the foreign one is left alone, not deleted.
    edit_spec(&b.api, GROUP, json!({"tls": {"enabled": false}}));
    b.reconcile(start()).await;
    assert!(b.api.get(&format!("{SECRETS}/edge-ca")).is_some());
    b.assert_condition("CertificatesReady", "True", "TLSDisabled", &[]);
}

#[tokio::test]
async fn switching_tls_and_the_network_policy_off_deletes_them() {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    b.reconcile(start()).await;
    edit_spec(
        &b.api,
        GROUP,
        json!({"tls": {"enabled": false}, "networkPolicy": {"enabled": false}}),
    );
    b.api.clear_requests();
    b.reconcile(start() + Duration::from_secs(60)).await;
    let log = b.api.requests();
    assert_eq!(
        changes(&log),
        [
            "PATCH /api/v1/namespaces/web/configmaps/edge-peers",
            "DELETE /apis/networking.k8s.io/v1/namespaces/web/networkpolicies/edge-peers",
            "DELETE /api/v1/namespaces/web/secrets/edge-peer-tls",
            "DELETE /api/v1/namespaces/web/secrets/edge-ca",
            "PATCH /apis/haproxy-peers.io/v1alpha1/namespaces/web/peergroups/edge/status",
        ],
        "the new configuration first, then the removals"
    );
    for r in writes(&log).iter().filter(|r| r.method == Method::DELETE) {
        assert!(
            r.body["preconditions"]["uid"].is_string(),
            "deletes name the uid they checked: {}",
            r.body
        );
    }
    assert!(!members(&b.api).tls);
    assert!(secret(&b.api, "edge-peer-tls").is_none() && secret(&b.api, "edge-ca").is_none());
    assert!(b.api.get(&format!("{NETPOLS}/edge-peers")).is_none());
    let status = b.status();
    assert!(status.certificate_expiry.is_none() && status.ca_expiry.is_none());
}
