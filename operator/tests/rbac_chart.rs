//! The Helm chart grants exactly the permissions of `controller::rbac::RULES`: nothing missing
//! (the operator would fail with 403), nothing extra (least privilege), each where the operator
//! needs it (watched namespaces, or the Lease in its own namespace).
//!
//! The chart is rendered by Helm in CI (`.ci/validate-manifests` runs `charts/tests/check_chart.py`), which fails when the
//! rendered RBAC differs from `charts/tests/golden/rbac.yaml`; this test compares that file with
//! the Rust list, so a change on either side fails one of the two.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use haproxy_peers_operator::controller::rbac::{Scope, RULES};
use serde_yaml::Value;

const GOLDEN: &str = "charts/tests/golden/operator.yaml";
const REGENERATE: &str = ".ci/validate-manifests --update";

/// Where a permission holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Cluster,
    Namespace(String),
}

/// One granted (or needed) permission.
type Grant = (Place, String, String, String);

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(GOLDEN)
}

fn golden() -> Value {
    let path = golden_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; render it with {REGENERATE}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
}

fn text<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{GOLDEN}: {what} is not a string: {v:?}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| text(x, "a list item").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// What the operator's code needs, for a release in `release_ns` watching `watched` (all
/// namespaces when `None`).
fn needed(release_ns: &str, watched: Option<&str>) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for rule in RULES {
        let place = match (rule.scope, watched) {
            (Scope::Watched, None) => Place::Cluster,
            (Scope::Watched, Some(ns)) => Place::Namespace(ns.to_string()),
            (Scope::OperatorNamespace, _) => Place::Namespace(release_ns.to_string()),
        };
        for verb in rule.verbs {
            out.insert((
                place.clone(),
                rule.api_group.to_string(),
                rule.resource.to_string(),
                verb.to_string(),
            ));
        }
    }
    out
}

/// What a rendered set of RBAC objects grants to the ServiceAccount that the bindings name,
/// which must be one and the same in every binding.
fn granted(objects: &[Value]) -> (BTreeSet<Grant>, BTreeSet<(String, String)>) {
    let mut grants = BTreeSet::new();
    let mut subjects = BTreeSet::new();
    let find = |kind: &str, name: &str, ns: Option<&str>| {
        objects
            .iter()
            .find(|o| {
                o["kind"].as_str() == Some(kind)
                    && o["metadata"]["name"].as_str() == Some(name)
                    && o["metadata"]["namespace"].as_str() == ns
            })
            .unwrap_or_else(|| {
                panic!("{GOLDEN}: a binding refers to {kind} {name}, which is not rendered")
            })
    };
    for binding in objects.iter().filter(|o| {
        matches!(
            o["kind"].as_str(),
            Some("RoleBinding" | "ClusterRoleBinding")
        )
    }) {
        let binding_ns = binding["metadata"]["namespace"].as_str();
        for s in binding["subjects"].as_sequence().into_iter().flatten() {
            assert_eq!(text(&s["kind"], "subject kind"), "ServiceAccount");
            subjects.insert((
                text(&s["namespace"], "subject namespace").to_string(),
                text(&s["name"], "subject name").to_string(),
            ));
        }
        let role_kind = text(&binding["roleRef"]["kind"], "roleRef.kind");
        let role_name = text(&binding["roleRef"]["name"], "roleRef.name");
        let role = match role_kind {
            "ClusterRole" => find("ClusterRole", role_name, None),
            _ => find("Role", role_name, binding_ns),
        };
        // A ClusterRole bound by a RoleBinding holds only in the binding's namespace.
        let place = match binding_ns {
            None => Place::Cluster,
            Some(ns) => Place::Namespace(ns.to_string()),
        };
        for rule in role["rules"].as_sequence().into_iter().flatten() {
            assert!(
                rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(),
                "{GOLDEN}: operator/src/controller/rbac.rs has no resourceNames or nonResourceURLs: {rule:?}"
            );
            for group in strings(&rule["apiGroups"]) {
                for resource in strings(&rule["resources"]) {
                    for verb in strings(&rule["verbs"]) {
                        grants.insert((place.clone(), group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    (grants, subjects)
}

fn show(set: &BTreeSet<Grant>) -> String {
    set.iter()
        .map(|(place, group, resource, verb)| {
            let group = if group.is_empty() { "core" } else { group };
            let place = match place {
                Place::Cluster => "cluster-wide".to_string(),
                Place::Namespace(ns) => format!("in namespace {ns}"),
            };
            format!("  {verb} {group}/{resource} {place}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every difference between what the chart grants and what the code needs, as one message.
fn mismatch(scenario: &Value, name: &str) -> Option<String> {
    let release_ns = text(&scenario["release"]["namespace"], "release.namespace");
    let watched = scenario["values"]["watchNamespace"]
        .as_str()
        .filter(|s| !s.is_empty());
    let objects = scenario["rbac"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{GOLDEN}: {name}.rbac is not a list"));
    let (grants, subjects) = granted(objects);
    let need = needed(release_ns, watched);
    let missing: BTreeSet<Grant> = need.difference(&grants).cloned().collect();
    let extra: BTreeSet<Grant> = grants.difference(&need).cloned().collect();
    let mut problems = Vec::new();
    if subjects.len() != 1 {
        problems.push(format!(
            "the bindings must name the operator's one ServiceAccount, found {subjects:?}"
        ));
    }
    if !missing.is_empty() {
        problems.push(format!(
            "the chart lacks what operator/src/controller/rbac.rs needs (add it to \
             charts/haproxy-peers/templates/rbac.yaml):\n{}",
            show(&missing)
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "the chart grants what operator/src/controller/rbac.rs does not use (remove it \
             from charts/haproxy-peers/templates/rbac.yaml, or add the rule to RULES if the \
             code now needs it):\n{}",
            show(&extra)
        ));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{GOLDEN} [{name}]: {}\n(after changing the chart, regenerate {GOLDEN} with {REGENERATE})",
            problems.join("\n")
        )
    })
}

fn scenarios(doc: &Value) -> Vec<(String, Value)> {
    doc.as_mapping()
        .expect("the golden file is a mapping of scenarios")
        .iter()
        .map(|(k, v)| (text(k, "scenario name").to_string(), v.clone()))
        .collect()
}

#[test]
fn the_chart_grants_exactly_what_the_operator_uses() {
    let doc = golden();
    let all = scenarios(&doc);
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["default", "watchNamespace"],
        "{GOLDEN}: one cluster-wide and one namespaced install"
    );
    let problems: Vec<String> = all
        .iter()
        .filter_map(|(name, scenario)| mismatch(scenario, name))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn a_namespaced_install_grants_nothing_cluster_wide() {
    let doc = golden();
    let scenario = &doc["watchNamespace"];
    let (grants, _) = granted(scenario["rbac"].as_sequence().expect("rbac"));
    assert!(!grants.is_empty());
    assert!(
        grants.iter().all(|g| g.0 != Place::Cluster),
        "cluster-wide grants with watchNamespace set:\n{}",
        show(&grants)
    );
}

/// The rendered ClusterRole of the cluster-wide install.
fn cluster_role(doc: &mut Value) -> &mut Value {
    doc["default"]["rbac"]
        .as_sequence_mut()
        .expect("rbac")
        .iter_mut()
        .find(|o| o["kind"].as_str() == Some("ClusterRole"))
        .expect("a ClusterRole")
}

/// The comparison above finds a missing verb, an extra verb, a wildcard, and a permission in
/// the wrong place.
#[test]
fn the_comparison_catches_every_kind_of_drift() {
    let doc = golden();
    assert!(mismatch(&doc["default"], "default").is_none());

    let mut dropped = doc.clone();
    let rules = cluster_role(&mut dropped)["rules"]
        .as_sequence_mut()
        .expect("rules");
    rules.pop();
    let found = mismatch(&dropped["default"], "default").expect("a dropped rule is found");
    assert!(
        found.contains("lacks") && found.contains("create events.k8s.io/events cluster-wide"),
        "{found}"
    );

    for (what, verbs) in [
        ("an extra verb", "[\"create\", \"delete\"]"),
        ("a wildcard", "[\"*\"]"),
    ] {
        let mut changed = doc.clone();
        let rules = cluster_role(&mut changed)["rules"]
            .as_sequence_mut()
            .expect("rules");
        *rules.last_mut().expect("a rule") = serde_yaml::from_str(&format!(
            "{{apiGroups: [events.k8s.io], resources: [events], verbs: {verbs}}}"
        ))
        .expect("rule");
        let found =
            mismatch(&changed["default"], "default").unwrap_or_else(|| panic!("{what} is found"));
        assert!(found.contains("does not use"), "{what}: {found}");
    }

    // The Lease permissions moved into the watched (cluster-wide) role.
    let mut moved = doc.clone();
    let lease_rule: Value = serde_yaml::from_str(
        "{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update]}",
    )
    .expect("rule");
    cluster_role(&mut moved)["rules"]
        .as_sequence_mut()
        .expect("rules")
        .push(lease_rule);
    let found = mismatch(&moved["default"], "default").expect("a misplaced rule is found");
    assert!(
        found.contains("update coordination.k8s.io/leases cluster-wide"),
        "{found}"
    );
}
