//! Checks of a PeerGroup that the CRD schema states too, repeated in Rust: an object stored
//! before a rule existed, or applied with validation off, must still be caught, and the
//! certificate planner needs the durations as numbers.

use std::collections::BTreeSet;

use haproxy_peers_members::is_peer_name;
use kube::core::Selector;

use super::duration::parse_duration;
use super::v1alpha1::{PeerGroupSpec, TlsSpec, MAX_GROUP_NAME_LEN};
use crate::certs::{CertPolicy, CertPolicyError};

/// One thing wrong with a spec: the field (as written in YAML) and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl TlsSpec {
    /// The certificate policy the spec asks for (with the planner's default propagation delay);
    /// every problem at once.
    pub fn cert_policy(&self) -> Result<CertPolicy, Vec<SpecProblem>> {
        let mut problems = Vec::new();
        let mut parse = |field: &str, text: &str| match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                problems.push(problem(
                    field,
                    format!("{text:?} is zero: give a positive duration"),
                ));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(problem(field, e.to_string()));
                None
            }
        };
        let leaf_lifetime = parse(LEAF_LIFETIME, &self.leaf_lifetime);
        let leaf_renew_before = parse(LEAF_RENEW_BEFORE, &self.leaf_renew_before);
        let ca_lifetime = parse("spec.tls.caLifetime", &self.ca_lifetime);
        let ca_renew_before = parse(CA_RENEW_BEFORE, &self.ca_renew_before);
        let (
            Some(leaf_lifetime),
            Some(leaf_renew_before),
            Some(ca_lifetime),
            Some(ca_renew_before),
        ) = (
            leaf_lifetime,
            leaf_renew_before,
            ca_lifetime,
            ca_renew_before,
        )
        else {
            return Err(problems);
        };
        let policy = CertPolicy {
            leaf_lifetime,
            leaf_renew_before,
            ca_lifetime,
            ca_renew_before,
            ..CertPolicy::default()
        };
        policy.validate().map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let field = match e {
                        CertPolicyError::LeafRenewTooLong { .. }
                        | CertPolicyError::LeafRenewShorterThanPropagation { .. } => {
                            LEAF_RENEW_BEFORE
                        }
                        CertPolicyError::CaRenewTooLong { .. }
                        | CertPolicyError::CaRenewShorterThanPropagation { .. } => CA_RENEW_BEFORE,
                    };
                    problem(field, e.to_string())
                })
                .collect::<Vec<_>>()
        })?;
        Ok(policy)
    }
}

const LEAF_LIFETIME: &str = "spec.tls.leafLifetime";
const LEAF_RENEW_BEFORE: &str = "spec.tls.leafRenewBefore";
const CA_RENEW_BEFORE: &str = "spec.tls.caRenewBefore";

impl PeerGroupSpec {
    /// `resyncTimeout` in whole seconds, as the members contract carries it.
    pub fn resync_timeout_seconds(&self) -> Result<u32, SpecProblem> {
        let field = "spec.resyncTimeout";
        let d = parse_duration(&self.resync_timeout).map_err(|e| problem(field, e.to_string()))?;
        u32::try_from(d.as_secs()).map_err(|_| {
            problem(
                field,
                format!("{:?} is too long: keep it under a day", self.resync_timeout),
            )
        })
    }

    /// The parsed label selector, or why it cannot be used.
    pub fn pod_selector(&self) -> Result<Selector, SpecProblem> {
        let labels = self
            .selector
            .match_labels
            .as_ref()
            .filter(|m| !m.is_empty());
        if labels.is_none() {
            return Err(problem(
                "spec.selector.matchLabels",
                "is empty: name at least one label of the group's pods (the headless Service selects by it)",
            ));
        }
        Selector::try_from(self.selector.clone()).map_err(|e| {
            problem(
                "spec.selector.matchExpressions",
                format!(
                    "{}: use In, NotIn (with values), Exists or DoesNotExist",
                    e.0
                ),
            )
        })
    }

    /// Every problem of the spec (not of its name: see [`group_name_problem`]).
    pub fn problems(&self, group: &str) -> Vec<SpecProblem> {
        let mut problems = Vec::new();
        if let Err(p) = self.pod_selector() {
            problems.push(p);
        }
        let section = self.peers_section_or(group);
        if !is_peer_name(section) {
            problems.push(problem(
                "spec.peersSection",
                format!(
                    "{section:?} is not a name HAProxy accepts: use letters, digits, '-', '_', '.', ':'"
                ),
            ));
        }
        for p in self.ports.to_contract().problems() {
            problems.push(problem(&format!("spec.ports.{}", p.field), p.message));
        }
        if self.tls.enabled {
            if let Err(mut tls) = self.tls.cert_policy() {
                problems.append(&mut tls);
            }
        }
        if let Err(p) = self.resync_timeout_seconds() {
            problems.push(p);
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.tables.iter().enumerate() {
            let valid = t.name.strip_prefix('/').unwrap_or(&t.name);
            if !is_peer_name(valid) {
                problems.push(problem(
                    &format!("spec.tables[{i}].name"),
                    format!(
                        "{:?} is not a table wire name: a proxy name (be_rate) or /<name>",
                        t.name
                    ),
                ));
            }
            if !seen.insert(t.name.as_str()) {
                problems.push(problem(
                    &format!("spec.tables[{i}].name"),
                    format!("{:?} is listed twice: keep one entry per table", t.name),
                ));
            }
        }
        if self.cluster_domain.is_empty() {
            problems.push(problem(
                "spec.clusterDomain",
                "is empty: use the cluster's DNS domain, e.g. cluster.local",
            ));
        }
        problems
    }

    /// The HAProxy peers section name: `spec.peersSection`, or the group's name.
    pub fn peers_section_or<'a>(&'a self, group: &'a str) -> &'a str {
        self.peers_section.as_deref().unwrap_or(group)
    }
}

/// The group name becomes the prefix of the Service `<name>-peers`, an RFC 1035 label.
pub fn group_name_problem(group: &str) -> Option<SpecProblem> {
    let starts_with_letter = group.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    let chars_ok = group
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if group.len() <= MAX_GROUP_NAME_LEN && starts_with_letter && chars_ok && !group.ends_with('-')
    {
        return None;
    }
    Some(problem(
        "metadata.name",
        format!(
            "{group:?} cannot prefix the Service name \"{group}-peers\": use at most {MAX_GROUP_NAME_LEN} \
             lowercase letters, digits and '-', starting with a letter (recreate the PeerGroup under such a name)"
        ),
    ))
}

fn problem(field: &str, message: impl Into<String>) -> SpecProblem {
    SpecProblem {
        field: field.to_string(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::{Ports, TablePolicy, TableSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn spec() -> PeerGroupSpec {
        serde_yaml::from_str("selector: {matchLabels: {app: edge}}").expect("minimal spec")
    }

    #[test]
    fn defaults_have_no_problems() {
        let s = spec();
        assert_eq!(s.problems("edge"), vec![]);
        assert_eq!(s.ports, Ports::default());
        assert_eq!(s.resync_timeout_seconds(), Ok(30));
        assert_eq!(s.tls.cert_policy(), Ok(CertPolicy::default()));
        let mut tls = s.tls.clone();
        tls.leaf_lifetime = "720h".into();
        tls.ca_renew_before = "1440h".into();
        assert_eq!(
            tls.cert_policy(),
            Ok(CertPolicy::default()),
            "same durations in hours"
        );
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let mut s = spec();
        s.selector = LabelSelector::default();
        s.peers_section = Some("bad name".into());
        s.ports.admin = s.ports.mesh;
        s.tls.leaf_renew_before = "30d".into();
        s.tls.ca_lifetime = "1y".into();
        s.resync_timeout = "soon".into();
        s.tables = vec![
            TableSpec {
                name: "/t".into(),
                policy: TablePolicy::Replicate,
            },
            TableSpec {
                name: "/t".into(),
                policy: TablePolicy::Ignore,
            },
        ];
        let fields: Vec<String> = s.problems("edge").into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchLabels",
                "spec.peersSection",
                "spec.ports.admin",
                "spec.tls.caLifetime",
                "spec.resyncTimeout",
                "spec.tables[1].name",
            ]
        );
        // leafRenewBefore is compared only once every duration parses.
        s.tls.ca_lifetime = "365d".into();
        let msgs: Vec<String> = s.problems("edge").iter().map(ToString::to_string).collect();
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("spec.tls.leafRenewBefore: ")
                    && m.contains("shorter than the leaf lifetime")),
            "{msgs:?}"
        );
    }

    #[test]
    fn tls_off_skips_duration_checks() {
        let mut s = spec();
        s.tls.enabled = false;
        s.tls.leaf_lifetime = "0s".into();
        assert_eq!(s.problems("edge"), vec![]);
        s.tls.enabled = true;
        assert!(s.problems("edge")[0].message.contains("zero"));
    }

    #[test]
    fn bad_selector_operator_is_named() {
        let s: PeerGroupSpec = serde_yaml::from_str(
            "selector: {matchLabels: {app: edge}, matchExpressions: [{key: tier, operator: Like}]}",
        )
        .expect("spec");
        let p = s.pod_selector().expect_err("Like is no operator");
        assert_eq!(p.field, "spec.selector.matchExpressions");
        assert!(p.message.contains("Exists"), "{p}");
    }

    #[test]
    fn group_names() {
        assert_eq!(group_name_problem("edge"), None);
        assert_eq!(group_name_problem("edge-2"), None);
        assert_eq!(group_name_problem(&"a".repeat(57)), None);
        for bad in ["", "2edge", "edge.web", "edge-", &"a".repeat(58)] {
            let p = group_name_problem(bad).expect("refused");
            assert!(p.message.contains("-peers"), "{p}");
        }
    }
}
