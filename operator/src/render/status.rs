//! The PeerGroup status: members, conditions and expiry, from what was observed and `now`.
//! A condition keeps its `lastTransitionTime` while its status stays the same; a member keeps
//! its `since` while its readiness stays the same.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::checks::Mistake;
use super::members::pod_name;
use super::names::GroupRef;
use crate::api::{MemberStatus, PeerGroupStatus};
use crate::certs::CertInventory;
use crate::text::name_list;

/// Condition types.
pub mod conditions {
    pub const READY: &str = "Ready";
    pub const CERTIFICATES_READY: &str = "CertificatesReady";
    pub const DEGRADED: &str = "Degraded";
}

/// Reasons of conditions that are not mistakes (those are in `checks::reasons`).
pub mod reasons {
    pub const ALL_MEMBERS_READY: &str = "AllMembersReady";
    pub const MEMBERS_NOT_READY: &str = "MembersNotReady";
    pub const CERTIFICATES_NOT_READY: &str = "CertificatesNotReady";
    pub const AS_EXPECTED: &str = "AsExpected";
    pub const CERTIFICATES_VALID: &str = "CertificatesValid";
    pub const TLS_DISABLED: &str = "TLSDisabled";
    pub const CERTIFICATES_MISSING: &str = "CertificatesMissing";
    pub const CERTIFICATES_EXPIRED: &str = "CertificatesExpired";
    pub const CERTIFICATES_NOT_YET_VALID: &str = "CertificatesNotYetValid";
    pub const UNTRUSTED_ISSUER: &str = "UntrustedIssuer";
    pub const NAMES_OUTDATED: &str = "CertificateNamesOutdated";
}

/// A condition before it is merged with the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionSpec {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// A Kubernetes time at whole seconds (what the API server keeps).
pub fn time(t: SystemTime) -> Time {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
    };
    Time(Timestamp::from_second(secs).unwrap_or(if secs < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    }))
}

pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Members in pod order (sorted); `since` is kept from `previous` while `ready` is unchanged.
pub fn member_statuses(
    previous: Option<&PeerGroupStatus>,
    selected: &[&Pod],
    now: &Time,
) -> Vec<MemberStatus> {
    selected
        .iter()
        .map(|pod| {
            let name = pod_name(pod);
            let ready = is_pod_ready(pod);
            let before = previous
                .into_iter()
                .flat_map(|s| &s.members)
                .find(|m| m.name == name);
            let since = match before {
                Some(m) if m.ready == ready => m.since.clone(),
                _ => now.clone(),
            };
            MemberStatus {
                name: name.to_string(),
                pod_ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
                ready,
                since,
            }
        })
        .collect()
}

/// `CertificatesReady`: every member has a leaf valid at `now`, with the names it needs,
/// signed by a CA of the trust bundle that is itself valid.
pub fn certificates_condition(
    tls_enabled: bool,
    group: &GroupRef,
    cluster_domain: &str,
    members: &[MemberStatus],
    certs: &CertInventory,
    now: SystemTime,
) -> ConditionSpec {
    let cond = |status, reason, message: String| ConditionSpec {
        type_: conditions::CERTIFICATES_READY,
        status,
        reason,
        message,
    };
    if !tls_enabled {
        return cond(
            true,
            reasons::TLS_DISABLED,
            "spec.tls.enabled is false: the mesh is plain text".into(),
        );
    }
    let trusted: BTreeSet<&str> = certs
        .cas
        .iter()
        .filter(|ca| ca.not_before <= now && now < ca.not_after)
        .map(|ca| ca.fingerprint.as_str())
        .collect();
    let mut first_reason = None;
    let mut problems = Vec::new();
    for m in members {
        let problem = match certs.leaves.get(&m.name) {
            None => Some((
                reasons::CERTIFICATES_MISSING,
                format!("{} has no certificate", m.name),
            )),
            Some(leaf) if now < leaf.not_before => Some((
                reasons::CERTIFICATES_NOT_YET_VALID,
                format!(
                    "{}'s certificate is valid only from {}",
                    m.name,
                    time(leaf.not_before).0
                ),
            )),
            Some(leaf) if leaf.not_after <= now => Some((
                reasons::CERTIFICATES_EXPIRED,
                format!(
                    "{}'s certificate expired at {}",
                    m.name,
                    time(leaf.not_after).0
                ),
            )),
            Some(leaf) if !trusted.contains(leaf.issuer_fingerprint.as_str()) => Some((
                reasons::UNTRUSTED_ISSUER,
                format!(
                    "{}'s certificate is signed by a CA that is not valid in the trust bundle",
                    m.name
                ),
            )),
            Some(leaf) => {
                let missing: Vec<String> = group
                    .member_dns_names(&m.name, cluster_domain)
                    .into_iter()
                    .filter(|n| !leaf.dns_names.contains(n))
                    .collect();
                (!missing.is_empty()).then(|| {
                    (
                        reasons::NAMES_OUTDATED,
                        format!(
                            "{}'s certificate lacks the names {}",
                            m.name,
                            name_list(&missing)
                        ),
                    )
                })
            }
        };
        if let Some((reason, message)) = problem {
            first_reason.get_or_insert(reason);
            problems.push(message);
        }
    }
    match first_reason {
        None => cond(
            true,
            reasons::CERTIFICATES_VALID,
            format!("{} member certificates valid and trusted", members.len()),
        ),
        Some(reason) => cond(
            false,
            reason,
            format!(
                "{}; the operator reissues certificates on its next reconcile, check its log if this persists",
                name_list(&problems)
            ),
        ),
    }
}

/// `Ready` and `Degraded` from the mistakes, the members and the certificate condition.
pub fn group_conditions(
    mistakes: &[Mistake],
    members: &[MemberStatus],
    certs: &ConditionSpec,
) -> [ConditionSpec; 2] {
    let ready_count = members.iter().filter(|m| m.ready).count();
    let ready = if let Some(m) = mistakes.iter().find(|m| m.blocking) {
        (false, m.reason, m.message.clone())
    } else if ready_count < members.len() {
        let waiting: Vec<String> = members
            .iter()
            .filter(|m| !m.ready)
            .map(|m| m.name.clone())
            .collect();
        (
            false,
            reasons::MEMBERS_NOT_READY,
            format!(
                "{ready_count}/{} members ready; waiting for {}",
                members.len(),
                name_list(&waiting)
            ),
        )
    } else if !certs.status {
        (
            false,
            reasons::CERTIFICATES_NOT_READY,
            certs.message.clone(),
        )
    } else {
        (
            true,
            reasons::ALL_MEMBERS_READY,
            format!("{ready_count}/{} members ready", members.len()),
        )
    };
    let degraded = match mistakes {
        [] => (false, reasons::AS_EXPECTED, "no problems found".to_string()),
        [first, ..] => (
            true,
            first.reason,
            mistakes
                .iter()
                .map(|m| m.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    [
        ConditionSpec {
            type_: conditions::READY,
            status: ready.0,
            reason: ready.1,
            message: ready.2,
        },
        ConditionSpec {
            type_: conditions::DEGRADED,
            status: degraded.0,
            reason: degraded.1,
            message: degraded.2,
        },
    ]
}

/// Conditions in the order given; `lastTransitionTime` is kept from `previous` when the
/// condition of that type had the same status.
pub fn merge_conditions(
    previous: &[Condition],
    specs: impl IntoIterator<Item = ConditionSpec>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    specs
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let last_transition_time = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
            Condition {
                type_: c.type_.to_string(),
                status: status.to_string(),
                reason: c.reason.to_string(),
                message: c.message,
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// The earliest leaf expiry, and the signing CA's expiry.
pub fn expiries(certs: &CertInventory) -> (Option<Time>, Option<Time>) {
    let leaf = certs.earliest_leaf_expiry().map(time);
    let ca = certs
        .signing_ca
        .as_deref()
        .and_then(|fp| certs.cas.iter().find(|c| c.fingerprint == fp))
        .map(|c| time(c.not_after));
    (leaf, ca)
}
