//! Which pods are members, and the `members.yaml` contract built from them.

use std::collections::BTreeMap;

use haproxy_peers_members as contract;
use k8s_openapi::api::core::v1::Pod;
use kube::core::{Selector, SelectorExt};

use super::names::GroupRef;
use crate::api::{PeerGroupSpec, TablePolicy};

/// The pods of the group's namespace that the selector matches, sorted by name, each name once
/// (a list that holds a pod twice, e.g. from two watch snapshots, keeps the first).
pub fn select<'a>(selector: &Selector, group: &GroupRef, pods: &'a [Pod]) -> Vec<&'a Pod> {
    let mut by_name: BTreeMap<&str, &Pod> = BTreeMap::new();
    for pod in pods {
        let Some(name) = group.sibling_name(&pod.metadata) else {
            continue;
        };
        if selects(selector, pod) {
            by_name.entry(name).or_insert(pod);
        }
    }
    by_name.into_values().collect()
}

/// Whether a selector matches a pod's labels.
pub fn selects(selector: &Selector, pod: &Pod) -> bool {
    let empty = BTreeMap::new();
    selector.matches(pod.metadata.labels.as_ref().unwrap_or(&empty))
}

pub fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// The contract value for the sidecars. `members` must be sorted (as [`select`] returns them).
pub fn members_contract(
    group: &GroupRef,
    spec: &PeerGroupSpec,
    generation: i64,
    resync_timeout_seconds: u32,
    members: &[&Pod],
) -> contract::Members {
    contract::Members {
        version: contract::FORMAT_VERSION,
        group: group.name.clone(),
        namespace: group.namespace.clone(),
        generation,
        peers_section: spec.peers_section_or(&group.name).to_string(),
        tls: spec.tls.enabled,
        ports: spec.ports.to_contract(),
        resync_timeout_seconds,
        tables: spec
            .tables
            .iter()
            .map(|t| contract::TablePolicy {
                name: t.name.clone(),
                policy: policy(t.policy),
            })
            .collect(),
        default_policy: contract::Policy::Replicate,
        members: members
            .iter()
            .map(|pod| {
                let name = pod_name(pod);
                contract::Member {
                    name: name.to_string(),
                    address: group.member_address(name),
                }
            })
            .collect(),
    }
}

fn policy(p: TablePolicy) -> contract::Policy {
    match p {
        TablePolicy::Replicate => contract::Policy::Replicate,
        TablePolicy::Ignore => contract::Policy::Ignore,
    }
}
