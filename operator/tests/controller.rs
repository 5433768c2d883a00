//! The reconcile against the in-memory API: a group's objects, status and events appear,
//! follow scaling, survive pod IP changes without certificate churn, leave nothing behind when
//! the group is deleted, and a reconcile with nothing to do writes nothing.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use haproxy_peers_operator::render::names::{GroupRef, MANAGER};
use http::Method;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;
use support::fake_api::selector_matches;
use support::fixtures::*;

fn edge() -> GroupRef {
    GroupRef {
        namespace: NS.into(),
        name: GROUP.into(),
    }
}

/// Every leaf in the Secrets is readable, signed by the signing CA, and has the names its
/// member needs; returns the leaf PEMs by member.
fn assert_certificates(b: &Bench, members: &[&str]) -> BTreeMap<String, String> {
    let parsed = inventory(&b.api);
    assert!(parsed.problems.is_empty(), "{:#?}", parsed.problems);
    let inv = parsed.inventory;
    let signing = inv.signing_ca.clone().expect("a signing CA");
    assert_eq!(
        inv.leaves.keys().map(String::as_str).collect::<Vec<_>>(),
        members
    );
    for (name, leaf) in &inv.leaves {
        let mut want = edge().member_dns_names(name, "cluster.local");
        want.sort();
        assert_eq!(leaf.dns_names, want, "{name}");
        assert_eq!(leaf.issuer_fingerprint, signing, "{name}");
    }
    assert_eq!(
        secret_text(&b.api, "edge-peer-tls", "ca.crt"),
        secret_text(&b.api, "edge-ca", "ca.crt"),
        "both Secrets carry the same bundle"
    );
    inv.leaves
        .into_iter()
        .map(|(k, l)| (k, l.cert_pem))
        .collect()
}

#[tokio::test]
async fn a_new_group_gets_its_objects_status_and_events() {
    let b = Bench::new();
    let pg = seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    seed_bystanders(&b.api);
    let out = b.reconcile(start()).await;

    // Writes in the order the certificate planner relies on, then status, then events.
    let log = b.api.requests();
    let w = writes(&log);
    let described = describe(&w);
    assert_eq!(
        described[..6],
        [
            "PATCH /api/v1/namespaces/web/secrets/edge-ca",
            "PATCH /api/v1/namespaces/web/secrets/edge-peer-tls",
            "PATCH /api/v1/namespaces/web/configmaps/edge-peers",
            "PATCH /api/v1/namespaces/web/services/edge-peers",
            "PATCH /apis/networking.k8s.io/v1/namespaces/web/networkpolicies/edge-peers",
            "PATCH /apis/haproxy-peers.io/v1alpha1/namespaces/web/peergroups/edge/status",
        ],
        "{described:#?}"
    );
    assert!(
        described[6..]
            .iter()
            .all(|d| d == "POST /apis/events.k8s.io/v1/namespaces/web/events"),
        "{described:#?}"
    );
    for r in &w[..5] {
        assert!(
            r.content_type
                .as_deref()
                .is_some_and(|c| c.contains("apply-patch")),
            "server-side apply: {:?}",
            r.content_type
        );
        assert!(
            r.query.contains(&format!("fieldManager={MANAGER}")) && r.query.contains("force=true"),
            "{}",
            r.query
        );
    }
    assert_eq!(out.wrote.len(), 5, "{:?}", out.wrote);
    assert!(out.status_written);

    // ConfigMap: peers.cfg for HAProxy, members.yaml with the three pods (not the bystanders).
    let cm = config_map(&b.api, "edge-peers").expect("ConfigMap");
    let peers_cfg = &cm.data.as_ref().expect("data")["peers.cfg"];
    assert!(peers_cfg.contains("peers edge\n"), "{peers_cfg}");
    assert!(peers_cfg.contains("bind 127.0.0.1:10001"), "{peers_cfg}");
    let m = members(&b.api);
    assert_eq!(member_names(&b.api), ["edge-0", "edge-1", "edge-2"]);
    assert_eq!(
        m.member("edge-1").map(|m| m.address.as_str()),
        Some("edge-1.edge-peers.web.svc")
    );
    assert!(m.tls);

    // Secrets: the bundle and three leaves; the CA key only in edge-ca.
    assert_eq!(
        secret_keys(&b.api, "edge-peer-tls"),
        [
            "ca.crt",
            "edge-0.crt",
            "edge-0.key",
            "edge-1.crt",
            "edge-1.key",
            "edge-2.crt",
            "edge-2.key"
        ]
    );
    assert_eq!(secret_keys(&b.api, "edge-ca"), ["ca.crt", "ca.key"]);
    assert_certificates(&b, &["edge-0", "edge-1", "edge-2"]);

    // The headless Service and the NetworkPolicy select the group's pods.
    let svc: Service = serde_json::from_value(
        b.api
            .get(&format!("{SERVICES}/edge-peers"))
            .expect("Service"),
    )
    .expect("a Service");
    let spec = svc.spec.expect("spec");
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    assert_eq!(
        spec.selector
            .expect("selector")
            .get(APP_LABEL)
            .map(String::as_str),
        Some(GROUP)
    );
    let np: NetworkPolicy =
        serde_json::from_value(b.api.get(&format!("{NETPOLS}/edge-peers")).expect("NP"))
            .expect("a NetworkPolicy");
    assert_eq!(
        np.spec.expect("spec").ingress.expect("ingress")[0]
            .ports
            .as_ref()
            .expect("ports")[0]
            .port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(10000))
    );

    // Status: three members, the three conditions, the generation it was computed from.
    let status = b.status();
    assert_eq!(status.members.len(), 3);
    assert_eq!(
        status.members[2].pod_ip.as_deref(),
        Some(pod_ip(2).as_str())
    );
    assert_eq!(status.ready_members.as_deref(), Some("3/3"));
    assert_eq!(status.observed_generation, pg.metadata.generation);
    assert!(status.certificate_expiry.is_some() && status.ca_expiry.is_some());
    b.assert_condition("Ready", "True", "AllMembersReady", &["3/3"]);
    b.assert_condition("CertificatesReady", "True", "CertificatesValid", &[]);
    b.assert_condition("Degraded", "False", "AsExpected", &[]);

    // Events: the CA, the certificates, each member.
    let mut got = reasons(&b.api);
    got.sort();
    assert_eq!(
        got,
        [
            "CaIssued",
            "CertificatesIssued",
            "MemberJoined",
            "MemberJoined",
            "MemberJoined"
        ]
    );
    let notes: Vec<String> = events(&b.api).into_iter().map(|(_, _, n)| n).collect();
    for pod in ["edge-0", "edge-1", "edge-2"] {
        assert!(
            notes
                .iter()
                .any(|n| n.contains(&format!("pod {pod} joined"))),
            "{notes:#?}"
        );
    }
    assert_eq!(out.events_published, 5);
}

#[tokio::test]
async fn scaling_up_and_down_is_followed_by_members_and_certificates() {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    b.reconcile(start()).await;
    let first = assert_certificates(&b, &["edge-0", "edge-1", "edge-2"]);

    seed_pods(&b.api, 3..5);
    b.reconcile(start() + Duration::from_secs(60)).await;
    assert_eq!(
        member_names(&b.api),
        ["edge-0", "edge-1", "edge-2", "edge-3", "edge-4"]
    );
    let scaled = assert_certificates(&b, &["edge-0", "edge-1", "edge-2", "edge-3", "edge-4"]);
    for (name, pem) in &first {
        assert_eq!(&scaled[name], pem, "{name}'s certificate is kept");
    }
    assert_eq!(b.status().members.len(), 5);

    // A StatefulSet scales down from the highest ordinal.
    for i in [4, 3, 2] {
        b.api.delete(&format!("{PODS}/edge-{i}"));
    }
    b.clock.set(start() + Duration::from_secs(120));
    b.api.clear_requests();
    b.reconcile(start() + Duration::from_secs(120)).await;
    assert_eq!(member_names(&b.api), ["edge-0", "edge-1"]);
    let down = assert_certificates(&b, &["edge-0", "edge-1"]);
    assert_eq!(
        secret_keys(&b.api, "edge-peer-tls"),
        [
            "ca.crt",
            "edge-0.crt",
            "edge-0.key",
            "edge-1.crt",
            "edge-1.key"
        ],
        "the removed members' certificates and keys are gone"
    );
    assert_eq!(down["edge-0"], first["edge-0"]);
    b.assert_condition("Ready", "True", "AllMembersReady", &["2/2"]);
    let evs = events(&b.api);
    let left: Vec<&String> = evs
        .iter()
        .filter(|(_, r, _)| r == "MemberLeft")
        .map(|(_, _, n)| n)
        .collect();
    assert_eq!(left.len(), 3, "{left:#?}");
    assert!(evs
        .iter()
        .any(|(_, r, n)| r == "CertificatesRemoved" && n.contains("edge-4")));
    let log = b.api.requests();
    assert!(
        !writes(&log)
            .iter()
            .any(|r| r.path.ends_with("/secrets/edge-ca")),
        "the CA is untouched by scaling"
    );
}

#[tokio::test]
async fn a_pod_ip_change_touches_only_the_status() {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    b.reconcile(start()).await;
    let tls_before = b.api.get(&format!("{SECRETS}/edge-peer-tls")).expect("tls");
    let ca_before = b.api.get(&format!("{SECRETS}/edge-ca")).expect("ca");
    let cm_before = b.api.get(&format!("{CONFIGMAPS}/edge-peers")).expect("cm");

    // The pod is recreated by its StatefulSet: same name, new IP.
    let path = format!("{PODS}/edge-1");
    let mut pod = b.api.get(&path).expect("pod");
    pod["status"]["podIP"] = json!("10.244.9.99");
    b.api.put(&path, pod);
    b.api.clear_requests();
    let out = b.reconcile(start() + Duration::from_secs(600)).await;

    let log = b.api.requests();
    assert_eq!(
        describe(&writes(&log)),
        ["PATCH /apis/haproxy-peers.io/v1alpha1/namespaces/web/peergroups/edge/status"],
        "only the status changes"
    );
    assert!(out.wrote.is_empty(), "{:?}", out.wrote);
    assert_eq!(
        b.api.get(&format!("{SECRETS}/edge-peer-tls")),
        Some(tls_before),
        "Secret edge-peer-tls is byte-identical, resourceVersion included"
    );
    assert_eq!(b.api.get(&format!("{SECRETS}/edge-ca")), Some(ca_before));
    assert_eq!(
        b.api.get(&format!("{CONFIGMAPS}/edge-peers")),
        Some(cm_before)
    );
    let status = b.status();
    let m = status
        .members
        .iter()
        .find(|m| m.name == "edge-1")
        .expect("edge-1");
    assert_eq!(m.pod_ip.as_deref(), Some("10.244.9.99"));
    assert!(events(&b.api).iter().all(|(_, r, _)| r != "MemberLeft"));
}

#[tokio::test]
async fn a_second_reconcile_without_change_writes_nothing() {
    let b = Bench::new();
    seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    b.reconcile(start()).await;
    b.api.clear_requests();
    let out = b.reconcile(start() + Duration::from_secs(3600)).await;
    let log = b.api.requests();
    assert!(writes(&log).is_empty(), "{:#?}", describe(&writes(&log)));
    assert!(out.wrote.is_empty() && !out.status_written && out.events_published == 0);
    assert!(
        log.iter().all(|r| r.method == Method::GET),
        "reads only: {:#?}",
        log.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn deleting_the_group_leaves_nothing_of_the_operator_behind() {
    let b = Bench::new();
    let pg = seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    b.reconcile(start()).await;
    seed_pods(&b.api, 3..4);
    b.reconcile(start() + Duration::from_secs(60)).await;
    let uid = pg.metadata.uid.clone().expect("uid");

    // Every object the operator created carries the group's controller reference.
    let log = b.api.requests();
    let created: Vec<String> = log
        .iter()
        .filter(|r| r.method == Method::PATCH && r.status == 201)
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(created.len(), 5, "{created:#?}");
    for path in &created {
        let o = b.api.get(path).expect("still there");
        let refs = o["metadata"]["ownerReferences"].as_array().expect("owners");
        assert!(
            refs.iter().any(|r| r["uid"] == json!(uid)
                && r["controller"] == json!(true)
                && r["kind"] == json!("PeerGroup")),
            "{path}: {refs:?}"
        );
    }

    let removed = b.api.delete_with_gc(&format!("{PEERGROUPS}/{GROUP}"));
    assert_eq!(removed.len(), 5, "{removed:#?}");
    let ours = format!("app.kubernetes.io/managed-by={MANAGER}");
    for key in b.api.all_keys() {
        let path = match &key.namespace {
            Some(ns) => {
                let (prefix, plural) = key.resource.rsplit_once('/').expect("resource path");
                format!("{prefix}/namespaces/{ns}/{plural}/{}", key.name)
            }
            None => format!("{}/{}", key.resource, key.name),
        };
        let o = b.api.get(&path).expect("listed object");
        assert!(
            !selector_matches(&ours, &o["metadata"]["labels"]),
            "left behind: {path}"
        );
        assert!(
            key.resource.ends_with("/pods") || key.resource.ends_with("/events"),
            "only the pods and the (expiring) events remain, not {path}"
        );
    }

    // A reconcile that was already queued finds the group gone and does nothing.
    b.api.clear_requests();
    let out = haproxy_peers_operator::controller::reconcile_at(&pg, &b.ctx, start()).await;
    assert!(out.expect("gone is not an error").wrote.is_empty());
    assert!(writes(&b.api.requests()).is_empty());
}
