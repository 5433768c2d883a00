//! Mistakes a human must fix, found in the spec and in the pods the group selects. Each becomes
//! part of the `Degraded` condition (and, when blocking, of `Ready`) with a message that says
//! what to change.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::core::Selector;

use super::members::{pod_name, selects};
use super::names::GroupRef;
use crate::api::validate::{group_name_problem, SpecProblem};
use crate::api::{PeerGroup, PeerGroupSpec};
use crate::text::name_list;

/// Condition reasons for mistakes.
pub mod reasons {
    /// The PeerGroup name cannot prefix its Service name.
    pub const INVALID_NAME: &str = "InvalidName";
    /// `spec.peersSection` is not a name HAProxy accepts.
    pub const INVALID_PEERS_SECTION: &str = "InvalidPeersSection";
    /// Two of the four ports are equal, or one is 0.
    pub const PORT_CONFLICT: &str = "PortConflict";
    /// Any other spec field is invalid (durations, selector, tables, domain).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The selector matches no pod.
    pub const NO_PODS_SELECTED: &str = "NoPodsSelected";
    /// A selected pod is also selected by another PeerGroup.
    pub const SELECTED_BY_TWO_GROUPS: &str = "SelectedByTwoGroups";
    /// A selected pod is not managed by a StatefulSet, so its name is not stable.
    pub const NOT_IN_STATEFUL_SET: &str = "PodsNotInStatefulSet";
    /// A selected pod's DNS name is not `<pod>.<group>-peers`.
    pub const SUBDOMAIN_MISMATCH: &str = "PodSubdomainMismatch";
}

/// One mistake: a reason for the condition, a message with the remedy, and whether the group
/// cannot work until it is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mistake {
    pub reason: &'static str,
    pub message: String,
    pub blocking: bool,
}

/// Mistakes in the name and the spec. Any of them stops render from producing objects: the
/// objects already applied stay as they are until the spec is fixed.
pub fn spec_mistakes(group: &GroupRef, spec: &PeerGroupSpec) -> Vec<Mistake> {
    let mut by_reason: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let problems = group_name_problem(&group.name)
        .into_iter()
        .chain(spec.problems(&group.name));
    for SpecProblem { field, message } in problems {
        let reason = if field == "metadata.name" {
            reasons::INVALID_NAME
        } else if field == "spec.peersSection" {
            reasons::INVALID_PEERS_SECTION
        } else if field.starts_with("spec.ports.") {
            reasons::PORT_CONFLICT
        } else {
            reasons::INVALID_SPEC
        };
        by_reason
            .entry(reason)
            .or_default()
            .push(format!("{field}: {message}"));
    }
    // Name first, then the spec in a fixed order.
    let order = [
        reasons::INVALID_NAME,
        reasons::INVALID_PEERS_SECTION,
        reasons::PORT_CONFLICT,
        reasons::INVALID_SPEC,
    ];
    order
        .into_iter()
        .filter_map(|reason| {
            by_reason.remove(reason).map(|msgs| Mistake {
                reason,
                message: msgs.join("; "),
                blocking: true,
            })
        })
        .collect()
}

/// Mistakes about the selected pods (`selected` sorted by name).
pub fn pod_mistakes(
    group: &GroupRef,
    selector: &Selector,
    selected: &[&Pod],
    others: &[PeerGroup],
) -> Vec<Mistake> {
    let mut mistakes = Vec::new();
    let ns = &group.namespace;
    if selected.is_empty() {
        mistakes.push(Mistake {
            reason: reasons::NO_PODS_SELECTED,
            message: format!(
                "the selector {selector} matches no pod in namespace {ns}: check the labels of the HAProxy \
                 pods (kubectl get pods -n {ns} -l '{selector}')"
            ),
            blocking: true,
        });
    }
    if let Some(m) = two_groups(group, selected, others) {
        mistakes.push(m);
    }
    if let Some(m) = subdomain_mismatch(group, selected) {
        mistakes.push(m);
    }
    let loose: Vec<&str> = selected
        .iter()
        .filter(|p| !in_stateful_set(p))
        .map(|p| pod_name(p))
        .collect();
    if !loose.is_empty() {
        mistakes.push(Mistake {
            reason: reasons::NOT_IN_STATEFUL_SET,
            message: format!(
                "{} not managed by a StatefulSet: a recreated pod gets a new name, and with it a new peer \
                 name and certificate; run HAProxy as a StatefulSet",
                pods_are(&loose)
            ),
            blocking: false,
        });
    }
    mistakes
}

/// Pods selected by another PeerGroup of the namespace too, grouped by that group.
fn two_groups(group: &GroupRef, selected: &[&Pod], others: &[PeerGroup]) -> Option<Mistake> {
    let mut overlaps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for other in others {
        let Some(name) = group.sibling_name(&other.metadata) else {
            continue;
        };
        if name == group.name {
            continue;
        }
        // A group whose own selector is invalid selects nothing; it reports that itself.
        let Ok(sel) = other.spec.pod_selector() else {
            continue;
        };
        let shared: Vec<&str> = selected
            .iter()
            .filter(|p| selects(&sel, p))
            .map(|p| pod_name(p))
            .collect();
        if !shared.is_empty() {
            overlaps.insert(name, shared);
        }
    }
    if overlaps.is_empty() {
        return None;
    }
    let detail: Vec<String> = overlaps
        .iter()
        .map(|(other, pods)| format!("{} also selected by PeerGroup {other}", pods_are(pods)))
        .collect();
    Some(Mistake {
        reason: reasons::SELECTED_BY_TWO_GROUPS,
        message: format!(
            "{}: a pod can belong to one PeerGroup only; change the selectors so that they do not overlap",
            detail.join("; ")
        ),
        blocking: true,
    })
}

/// A pod's DNS name `<hostname>.<subdomain>` must be `<pod>.<group>-peers`, or the address in
/// members.yaml does not resolve.
fn subdomain_mismatch(group: &GroupRef, selected: &[&Pod]) -> Option<Mistake> {
    let service = group.service_name();
    let wrong: Vec<String> = selected
        .iter()
        .filter_map(|pod| {
            let name = pod_name(pod);
            let spec = pod.spec.as_ref();
            let hostname = spec.and_then(|s| s.hostname.as_deref());
            let subdomain = spec.and_then(|s| s.subdomain.as_deref());
            (hostname != Some(name) || subdomain != Some(service.as_str())).then(|| {
                format!(
                    "{name} (hostname {}, subdomain {})",
                    hostname.unwrap_or("unset"),
                    subdomain.unwrap_or("unset")
                )
            })
        })
        .collect();
    if wrong.is_empty() {
        return None;
    }
    let example = group.member_address(pod_name(selected[0]));
    Some(Mistake {
        reason: reasons::SUBDOMAIN_MISMATCH,
        message: format!(
            "the sidecars dial members as <pod>.{service}.{ns}.svc (e.g. {example}), which resolves only for \
             pods with hostname = pod name and subdomain = {service}; not so for {}: set the StatefulSet's \
             serviceName to {service} (it cannot change in place: delete the StatefulSet with \
             --cascade=orphan and apply it again)",
            name_list(&wrong),
            ns = group.namespace,
        ),
        blocking: true,
    })
}

fn in_stateful_set(pod: &Pod) -> bool {
    pod.metadata.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true) && o.kind == "StatefulSet" && o.api_version == "apps/v1"
    })
}

/// "pod a is" / "pods a, b are", listing at most a few names.
fn pods_are(names: &[&str]) -> String {
    let owned: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    match names {
        [one] => format!("pod {one} is"),
        _ => format!("pods {} are", name_list(&owned)),
    }
}
