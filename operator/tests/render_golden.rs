//! Render of the `web/edge` fixture against checked-in YAML, determinism, every mistake
//! condition, and what the status keeps from one render to the next.
//!
//! `UPDATE_GOLDEN=1 cargo test -p haproxy-peers-operator --test render_golden` rewrites the
//! files under tests/golden/edge/; review the diff before committing it.

#[path = "golden/fixture.rs"]
mod fixture;
#[path = "golden/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::SystemTime;

use fixture::{certs, now, peer_group, pod_mut, pods, DAY};
use haproxy_peers_operator::api::PeerGroup;
use haproxy_peers_operator::certs::CertInventory;
use haproxy_peers_operator::render::checks::reasons as mistakes;
use haproxy_peers_operator::render::names::{MEMBERS_KEY, PEERS_CFG_KEY};
use haproxy_peers_operator::render::status::{conditions, reasons};
use haproxy_peers_operator::render::{member_identities, render, Desired, EventType, Objects};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
use serde::Serialize;
use support::{assert_condition, condition, diff, set_ready};

fn render_at(
    pg: &PeerGroup,
    pods: &[Pod],
    others: &[PeerGroup],
    certs: &CertInventory,
    at: SystemTime,
) -> Desired {
    render(pg, pods, others, certs, at).expect("render")
}

fn render_fixture() -> Desired {
    render_at(&peer_group(), &pods(), &[], &certs(), now())
}

fn objects(d: &Desired) -> &Objects {
    d.objects.as_ref().expect("a valid spec renders objects")
}

fn yaml<T: Serialize>(value: &T) -> String {
    serde_yaml::to_string(value).expect("serialise")
}

/// An event as the golden file shows it.
#[derive(Serialize)]
struct GoldenEvent<'a> {
    #[serde(rename = "type")]
    type_: String,
    reason: &'a str,
    note: &'a str,
}

/// Every output of a render as (file name, text).
fn outputs(d: &Desired) -> Vec<(&'static str, String)> {
    let o = objects(d);
    let data = o.config_map.data.as_ref().expect("configmap data");
    let events: Vec<GoldenEvent> = d
        .events
        .iter()
        .map(|e| GoldenEvent {
            type_: format!("{:?}", e.type_),
            reason: &e.reason,
            note: &e.note,
        })
        .collect();
    let identities: BTreeMap<&str, &[String]> = d
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.dns_names.as_slice()))
        .collect();
    vec![
        ("configmap.yaml", yaml(&o.config_map)),
        ("peers.cfg", data[PEERS_CFG_KEY].clone()),
        ("members.yaml", data[MEMBERS_KEY].clone()),
        ("peer-tls-secret.yaml", yaml(&o.tls_secret)),
        ("ca-secret.yaml", yaml(&o.ca_secret)),
        ("service.yaml", yaml(&o.service)),
        ("networkpolicy.yaml", yaml(&o.network_policy)),
        ("status.yaml", yaml(&d.status)),
        ("events.yaml", yaml(&events)),
        ("member-identities.yaml", yaml(&identities)),
    ]
}

#[test]
fn golden_render_of_a_three_pod_statefulset() {
    let dir = fixture::golden_dir().join("edge");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for (file, actual) in outputs(&render_fixture()) {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).expect("create golden dir");
            std::fs::write(&path, &actual).expect("write golden file");
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "--- {}\n{}",
                path.display(),
                diff(&expected, &actual)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "render differs from the golden files (- golden, + rendered). If the change is intended, run\n  \
         UPDATE_GOLDEN=1 cargo test -p haproxy-peers-operator --test render_golden\nand review the diff.\n\n{}",
        failures.join("\n")
    );
}

#[test]
fn same_input_in_any_order_gives_identical_bytes() {
    let reference = outputs(&render_fixture());
    assert_eq!(
        outputs(&render_fixture()),
        reference,
        "second render differs"
    );

    let mut shuffled = pods();
    shuffled.reverse();
    shuffled.rotate_left(2);
    let mut dup = shuffled.clone();
    dup.extend(pods()); // the same pods twice, e.g. from overlapping watch snapshots
    let mut other = peer_group();
    other.metadata.name = Some("unrelated".into());
    other.spec.selector.match_labels =
        Some([("app.kubernetes.io/name".to_string(), "api".to_string())].into());
    let mut other_ns = peer_group();
    other_ns.metadata.namespace = Some("staging".into());
    for others in [vec![other.clone(), other_ns.clone()], vec![other_ns, other]] {
        let d = render_at(&peer_group(), &dup, &others, &certs(), now());
        assert_eq!(
            outputs(&d),
            reference,
            "order of pods or of other groups changed the output"
        );
    }
}

#[test]
fn secrets_hold_the_inventory_verbatim() {
    let d = render_fixture();
    let o = objects(&d);
    let decoded = |s: &Option<k8s_openapi::api::core::v1::Secret>| -> BTreeMap<String, String> {
        let data = s
            .as_ref()
            .and_then(|s| s.data.clone())
            .expect("secret data");
        data.into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).expect("utf-8 PEM")))
            .collect()
    };
    assert_eq!(decoded(&o.tls_secret), certs().tls_secret_data());
    assert_eq!(decoded(&o.ca_secret), certs().ca_secret_data());
    assert!(decoded(&o.ca_secret).contains_key("ca.key"));
    assert!(
        !decoded(&o.tls_secret).contains_key("ca.key"),
        "the CA key never goes to the pods"
    );
}

#[test]
fn member_identities_match_the_render() {
    assert_eq!(
        member_identities(&peer_group(), &pods()).expect("identities"),
        render_fixture().members
    );
}

#[test]
fn healthy_group_is_ready() {
    let d = render_fixture();
    assert_condition(
        &d,
        conditions::READY,
        "True",
        reasons::ALL_MEMBERS_READY,
        &["3/3"],
    );
    assert_condition(
        &d,
        conditions::CERTIFICATES_READY,
        "True",
        reasons::CERTIFICATES_VALID,
        &[],
    );
    assert_condition(&d, conditions::DEGRADED, "False", reasons::AS_EXPECTED, &[]);
    let names: Vec<&str> = d.status.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["edge-0", "edge-1", "edge-2"],
        "api-0 and staging/edge-0 are not members"
    );
}

#[test]
fn pod_not_in_a_statefulset_degrades_but_still_replicates() {
    let mut pods = pods();
    pod_mut(&mut pods, "edge-1").metadata.owner_references = None;
    let d = render_at(&peer_group(), &pods, &[], &certs(), now());
    assert_condition(
        &d,
        conditions::DEGRADED,
        "True",
        mistakes::NOT_IN_STATEFUL_SET,
        &["pod edge-1 is", "StatefulSet"],
    );
    assert_condition(
        &d,
        conditions::READY,
        "True",
        reasons::ALL_MEMBERS_READY,
        &[],
    );
    assert!(d.objects.is_some());
}

#[test]
fn pod_selected_by_two_groups_names_both() {
    let mut other = peer_group();
    other.metadata.name = Some("edge-canary".into());
    other.metadata.uid = Some("uid-canary".into());
    let d = render_at(
        &peer_group(),
        &pods(),
        &[peer_group(), other],
        &certs(),
        now(),
    );
    assert_condition(
        &d,
        conditions::DEGRADED,
        "True",
        mistakes::SELECTED_BY_TWO_GROUPS,
        &[
            "pods edge-0, edge-1, edge-2 are also selected by PeerGroup edge-canary",
            "overlap",
        ],
    );
    assert_condition(
        &d,
        conditions::READY,
        "False",
        mistakes::SELECTED_BY_TWO_GROUPS,
        &["edge-canary"],
    );
    let events: Vec<&str> = d
        .events
        .iter()
        .filter(|e| e.type_ == EventType::Warning)
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(events, [mistakes::SELECTED_BY_TWO_GROUPS]);
}

#[test]
fn selector_matching_nothing_says_how_to_check() {
    let mut pg = peer_group();
    pg.spec.selector.match_labels = Some([("app".to_string(), "hproxy".to_string())].into());
    let d = render_at(&pg, &pods(), &[], &certs(), now());
    assert_condition(
        &d,
        conditions::READY,
        "False",
        mistakes::NO_PODS_SELECTED,
        &[
            "app=hproxy",
            "namespace web",
            "kubectl get pods -n web -l 'app=hproxy'",
        ],
    );
    assert_eq!(d.status.ready_members.as_deref(), Some("0/0"));
    let members = &objects(&d).config_map.data.as_ref().expect("data")[MEMBERS_KEY];
    assert!(members.contains("members: []"), "{members}");
}

#[test]
fn invalid_peers_section_renders_no_objects() {
    let mut pg = peer_group();
    pg.spec.peers_section = Some("edge peers".into());
    let d = render_at(&pg, &pods(), &[], &certs(), now());
    assert!(
        d.objects.is_none(),
        "HAProxy would refuse the section: keep the applied config"
    );
    assert_condition(
        &d,
        conditions::DEGRADED,
        "True",
        mistakes::INVALID_PEERS_SECTION,
        &["\"edge peers\"", "letters, digits"],
    );
    assert_condition(
        &d,
        conditions::READY,
        "False",
        mistakes::INVALID_PEERS_SECTION,
        &[],
    );
    assert_eq!(
        d.status.members.len(),
        3,
        "status still reports the members"
    );
}

#[test]
fn unusable_selector_keeps_the_known_members() {
    let mut pg = peer_group();
    pg.status = Some(render_fixture().status);
    pg.spec.selector.match_expressions = Some(vec![LabelSelectorRequirement {
        key: "tier".into(),
        operator: "Like".into(),
        values: None,
    }]);
    let d = render_at(&pg, &pods(), &[], &certs(), now() + DAY);
    assert!(d.objects.is_none());
    assert_condition(
        &d,
        conditions::READY,
        "False",
        mistakes::INVALID_SPEC,
        &["spec.selector.matchExpressions", "Exists"],
    );
    assert_eq!(
        d.status.members,
        render_fixture().status.members,
        "members are unknown, not gone"
    );
    let reasons: Vec<&str> = d.events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, [mistakes::INVALID_SPEC], "no MemberLeft events");
    let known = render_fixture().members;
    assert_eq!(
        d.members, known,
        "the certificate planner must not drop the members' certificates"
    );
    assert_eq!(member_identities(&pg, &pods()).expect("identities"), known);
}

#[test]
fn port_clash_names_both_ports() {
    let mut pg = peer_group();
    pg.spec.ports.admin = pg.spec.ports.sidecar;
    let d = render_at(&pg, &pods(), &[], &certs(), now());
    assert!(d.objects.is_none());
    assert_condition(
        &d,
        conditions::DEGRADED,
        "True",
        mistakes::PORT_CONFLICT,
        &["spec.ports.admin", "10002 is also ports.sidecar"],
    );
}

#[test]
fn wrong_subdomain_tells_to_fix_the_statefulset_service_name() {
    let mut pods = pods();
    for i in 0..3 {
        pod_mut(&mut pods, &format!("edge-{i}"))
            .spec
            .as_mut()
            .expect("spec")
            .subdomain = Some("edge".into());
    }
    let d = render_at(&peer_group(), &pods, &[], &certs(), now());
    assert_condition(
        &d,
        conditions::READY,
        "False",
        mistakes::SUBDOMAIN_MISMATCH,
        &[
            "edge-0 (hostname edge-0, subdomain edge)",
            "edge-0.edge-peers.web.svc",
            "serviceName to edge-peers",
        ],
    );
}

#[test]
fn invalid_durations_and_names_are_reported_without_objects() {
    let mut pg = peer_group();
    pg.metadata.name = Some("edge.v2".into());
    pg.spec.tls.leaf_renew_before = "45d".into();
    let d = render(&pg, &pods(), &[], &certs(), now()).expect("render");
    assert!(d.objects.is_none());
    assert_condition(
        &d,
        conditions::DEGRADED,
        "True",
        mistakes::INVALID_NAME,
        &[
            "edge.v2",
            "leafRenewBefore",
            "shorter than the leaf lifetime",
        ],
    );
}

#[test]
fn transition_times_move_only_when_a_status_changes() {
    let t0 = now();
    let t1 = t0 + DAY;
    let t2 = t1 + DAY;
    let mut pg = peer_group();
    let mut pods = pods();
    let first = render_at(&pg, &pods, &[], &certs(), t0);
    pg.status = Some(first.status.clone());

    // Nothing changed a day later: every time is kept, no event.
    let second = render_at(&pg, &pods, &[], &certs(), t1);
    assert_eq!(second.status, first.status);
    assert_eq!(second.events, vec![]);
    pg.status = Some(second.status);

    // edge-2 turns unready: Ready and edge-2 move to t2, the rest stays at t0.
    set_ready(&mut pods, "edge-2", false);
    let third = render_at(&pg, &pods, &[], &certs(), t2);
    let t0k = haproxy_peers_operator::render::status::time(t0);
    let t2k = haproxy_peers_operator::render::status::time(t2);
    assert_condition(
        &third,
        conditions::READY,
        "False",
        reasons::MEMBERS_NOT_READY,
        &["2/3", "edge-2"],
    );
    assert_eq!(
        condition(&third.status, conditions::READY).last_transition_time,
        t2k
    );
    assert_eq!(
        condition(&third.status, conditions::DEGRADED).last_transition_time,
        t0k
    );
    assert_eq!(
        condition(&third.status, conditions::CERTIFICATES_READY).last_transition_time,
        t0k
    );
    let since: Vec<_> = third
        .status
        .members
        .iter()
        .map(|m| (m.name.as_str(), m.since.clone()))
        .collect();
    assert_eq!(
        since,
        [
            ("edge-0", t0k.clone()),
            ("edge-1", t0k.clone()),
            ("edge-2", t2k)
        ]
    );
    // A changed reason or message alone keeps the transition time.
    pg.status = Some(third.status);
    set_ready(&mut pods, "edge-1", false);
    let fourth = render_at(&pg, &pods, &[], &certs(), t2 + DAY);
    assert_condition(
        &fourth,
        conditions::READY,
        "False",
        reasons::MEMBERS_NOT_READY,
        &["1/3"],
    );
    assert_eq!(
        condition(&fourth.status, conditions::READY).last_transition_time,
        haproxy_peers_operator::render::status::time(t2)
    );
}

#[test]
fn membership_changes_become_events() {
    let mut pg = peer_group();
    pg.status = Some(render_fixture().status);
    let mut pods = pods();
    pods.retain(|p| p.metadata.name.as_deref() != Some("edge-2"));
    let mut edge3 = pod_mut(&mut pods, "edge-1").clone();
    edge3.metadata.name = Some("edge-3".into());
    edge3.spec.as_mut().expect("spec").hostname = Some("edge-3".into());
    pods.push(edge3);
    let d = render_at(&pg, &pods, &[], &certs(), now() + DAY);
    let got: Vec<(&str, &str)> = d
        .events
        .iter()
        .map(|e| (e.reason.as_str(), e.note.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "MemberJoined",
                "pod edge-3 joined the group as peer edge-3 (edge-3.edge-peers.web.svc)"
            ),
            ("MemberLeft", "pod edge-2 left the group"),
        ]
    );
    // edge-3 has no certificate yet.
    assert_condition(
        &d,
        conditions::CERTIFICATES_READY,
        "False",
        reasons::CERTIFICATES_MISSING,
        &["edge-3 has no certificate"],
    );
}

#[test]
fn certificate_problems_are_named_per_member() {
    type Break = fn(&mut CertInventory);
    let cases: [(&str, Break, &str); 4] = [
        (
            "expired",
            |c| c.leaves.get_mut("edge-1").expect("leaf").not_after = now() - DAY,
            reasons::CERTIFICATES_EXPIRED,
        ),
        (
            "future",
            |c| c.leaves.get_mut("edge-1").expect("leaf").not_before = now() + DAY,
            reasons::CERTIFICATES_NOT_YET_VALID,
        ),
        (
            "foreign CA",
            |c| c.leaves.get_mut("edge-1").expect("leaf").issuer_fingerprint = "other".into(),
            reasons::UNTRUSTED_ISSUER,
        ),
        (
            "old names",
            |c| {
                c.leaves.get_mut("edge-1").expect("leaf").dns_names.pop();
            },
            reasons::NAMES_OUTDATED,
        ),
    ];
    for (what, break_it, reason) in cases {
        let mut certs = certs();
        break_it(&mut certs);
        let d = render_at(&peer_group(), &pods(), &[], &certs, now());
        assert_condition(
            &d,
            conditions::CERTIFICATES_READY,
            "False",
            reason,
            &["edge-1"],
        );
        assert_condition(
            &d,
            conditions::READY,
            "False",
            reasons::CERTIFICATES_NOT_READY,
            &["edge-1"],
        );
        let msg = &condition(&d.status, conditions::CERTIFICATES_READY).message;
        assert!(
            !msg.contains("edge-0") && !msg.contains("edge-2"),
            "{what}: only edge-1 is broken: {msg}"
        );
    }
    // An expired CA distrusts every leaf it signed.
    let mut certs = certs();
    certs.cas[0].not_after = now();
    let d = render_at(&peer_group(), &pods(), &[], &certs, now());
    assert_condition(
        &d,
        conditions::CERTIFICATES_READY,
        "False",
        reasons::UNTRUSTED_ISSUER,
        &["edge-0", "edge-1", "edge-2"],
    );
}

#[test]
fn switches_remove_objects() {
    let mut pg = peer_group();
    pg.spec.tls.enabled = false;
    pg.spec.network_policy.enabled = false;
    let d = render_at(&pg, &pods(), &[], &CertInventory::default(), now());
    let o = objects(&d);
    assert!(o.tls_secret.is_none() && o.ca_secret.is_none() && o.network_policy.is_none());
    assert_condition(
        &d,
        conditions::CERTIFICATES_READY,
        "True",
        reasons::TLS_DISABLED,
        &[],
    );
    assert_eq!(
        (
            d.status.certificate_expiry.clone(),
            d.status.ca_expiry.clone()
        ),
        (None, None)
    );
    assert!(o.config_map.data.as_ref().expect("data")[MEMBERS_KEY].contains("tls: false"));
}

#[test]
fn other_ports_rule_is_left_out_on_request() {
    let mut pg = peer_group();
    pg.spec.network_policy.allow_other_ports = false;
    let d = render_at(&pg, &pods(), &[], &certs(), now());
    let np = objects(&d).network_policy.as_ref().expect("policy");
    let ingress = np
        .spec
        .as_ref()
        .and_then(|s| s.ingress.as_ref())
        .expect("ingress");
    assert_eq!(ingress.len(), 1, "only the mesh rule");
    assert!(
        ingress[0].from.is_some(),
        "the mesh rule admits only group pods"
    );
}
