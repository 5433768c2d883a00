//! What we ship beside the code agrees with it: the Helm chart carries the generated CRD, and
//! every PeerGroup in examples/ passes the operator's own checks, the ones the CRD schema
//! cannot express (certificate lifetimes against renewal windows, selector syntax), so that no
//! example lands in `Degraded`. (operator/tests/crd.rs judges the same files by the schema.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use haproxy_peers_operator::api::crd::crd_yaml;
use haproxy_peers_operator::api::validate::group_name_problem;
use haproxy_peers_operator::api::PeerGroup;
use serde::Deserialize;

const CHART_CRD: &str = "charts/haproxy-peers/crds/peergroups.yaml";
const REGENERATE: &str = "cargo run -p haproxy-peers-operator -- crdgen | tee crds/peergroups.yaml > charts/haproxy-peers/crds/peergroups.yaml";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Helm installs `crds/` of the chart; it cannot reach files outside the chart, so the chart
/// holds a copy, and this keeps the copy exact.
#[test]
fn the_chart_carries_the_generated_crd() {
    let path = repo_root().join(CHART_CRD);
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = crd_yaml().expect("serialise the CRD");
    assert!(
        shipped == generated,
        "{} is not the CRD the Rust types generate. Regenerate both copies from the repository \
         root with\n  {REGENERATE}",
        path.display()
    );
}

fn example_groups() -> Vec<(PathBuf, PeerGroup)> {
    let dir = repo_root().join("examples");
    // Sorted, so that a failure names the same file first every time.
    let paths: BTreeSet<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    let mut groups = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read example");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
            if value["kind"].as_str() != Some("PeerGroup") {
                continue;
            }
            let group: PeerGroup = serde_yaml::from_value(value)
                .unwrap_or_else(|e| panic!("{}: not a PeerGroup: {e}", path.display()));
            groups.push((path.clone(), group));
        }
    }
    groups
}

#[test]
fn every_example_group_passes_the_operators_checks() {
    let groups = example_groups();
    assert!(
        groups.len() >= 4,
        "peergroup.yaml, per-region.yaml (two) and custom-certificates.yaml hold PeerGroups; found {}",
        groups.len()
    );
    for (path, group) in &groups {
        let name = group.metadata.name.as_deref().expect("metadata.name");
        let mut problems: Vec<String> = group
            .spec
            .problems(name)
            .iter()
            .map(ToString::to_string)
            .collect();
        problems.extend(group_name_problem(name).map(|p| p.to_string()));
        assert!(
            problems.is_empty(),
            "{} ({name}): {}",
            path.display(),
            problems.join("; ")
        );
    }
}

/// Per-region groups share one haproxy.cfg (the same peers section name) but no pod.
#[test]
fn per_region_groups_split_the_fleet() {
    let groups: Vec<PeerGroup> = example_groups()
        .into_iter()
        .filter(|(p, _)| p.ends_with("per-region.yaml"))
        .map(|(_, g)| g)
        .collect();
    assert_eq!(groups.len(), 2, "two regions");
    let sections: Vec<&str> = groups
        .iter()
        .map(|g| {
            g.spec
                .peers_section_or(g.metadata.name.as_deref().expect("name"))
        })
        .collect();
    assert_eq!(
        sections[0], sections[1],
        "one haproxy.cfg serves both regions"
    );
    let labels: Vec<_> = groups
        .iter()
        .map(|g| g.spec.selector.match_labels.clone().unwrap_or_default())
        .collect();
    // Two equality selectors select disjoint pods when they give one key different values.
    let disjoint = labels[0]
        .iter()
        .any(|(k, v)| labels[1].get(k).is_some_and(|other| other != v));
    assert!(
        disjoint,
        "the two selectors can select the same pod: {labels:?}"
    );
}
