//! Kubernetes Events that explain a certificate plan to a person.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::encoding::{rfc3339, short};
use super::plan::{CaReason, DropCaReason, LeafReason};
use crate::text::name_list;

/// Event `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// One Kubernetes Event for the PeerGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertEvent {
    pub event_type: EventType,
    /// CamelCase, as Kubernetes Event reasons are.
    pub reason: &'static str,
    pub message: String,
}

/// How many names a message spells out; Event messages are limited to 1 kB.

#[derive(Debug, Default)]
pub(crate) struct EventLog(Vec<CertEvent>);

impl EventLog {
    fn push(&mut self, event_type: EventType, reason: &'static str, message: String) {
        self.0.push(CertEvent {
            event_type,
            reason,
            message,
        });
    }

    pub(crate) fn into_events(self) -> Vec<CertEvent> {
        self.0
    }

    fn why_unusable(reason: CaReason, old: Option<(&str, SystemTime)>) -> String {
        match (reason, old) {
            (CaReason::SigningCaExpired, Some((fp, at))) => {
                format!(
                    "signing CA {fp} expired at {} before it was rotated",
                    rfc3339(at)
                )
            }
            _ => "the signing CA's key is missing from Secret G-ca, unreadable, or of no CA in \
                  the trust bundle"
                .to_string(),
        }
    }

    pub(crate) fn ca_emergency_issue(&mut self, reason: CaReason, old: Option<(&str, SystemTime)>) {
        if reason == CaReason::Initial {
            self.push(
                EventType::Normal,
                "CaIssued",
                "issued the group's CA; it signs every member's certificate".to_string(),
            );
            return;
        }
        let why = Self::why_unusable(reason, old);
        self.push(
            EventType::Warning,
            "CaReplacedInEmergency",
            format!(
                "{why}: issued a new CA and reissued every leaf certificate at once. Peer \
                 connections will fail until every pod has picked up the new Secret G-peer-tls \
                 (kubelet sync, usually a minute or two). Check why the operator could not \
                 rotate the CA in time (was it stopped?)."
            ),
        );
    }

    pub(crate) fn ca_emergency_switch(
        &mut self,
        reason: CaReason,
        old: Option<(&str, SystemTime)>,
        new_fp: &str,
        published: SystemTime,
    ) {
        let why = Self::why_unusable(reason, old);
        self.push(
            EventType::Warning,
            "CaSwitchedEarly",
            format!(
                "{why}: the next CA {} (in the trust bundle since {}) signs from now on and every \
                 leaf certificate is reissued. Pods that have not loaded that bundle yet fail \
                 peer connections until they do.",
                short(new_fp),
                rfc3339(published)
            ),
        );
    }

    pub(crate) fn rotation_started(
        &mut self,
        old: &str,
        expires: SystemTime,
        signs_from: SystemTime,
    ) {
        self.push(
            EventType::Normal,
            "CaRotationStarted",
            format!(
                "{old} expires at {}: added a new CA to the trust bundle; it signs from {} \
                 once every pod trusts it",
                rfc3339(expires),
                rfc3339(signs_from)
            ),
        );
    }

    pub(crate) fn ca_switched(&mut self, new: &str, old: Option<&str>) {
        let old = old
            .map(|o| {
                format!(
                    " instead of {o}, which stays trusted until the new leaves reached every pod"
                )
            })
            .unwrap_or_default();
        self.push(
            EventType::Normal,
            "CaSwitched",
            format!("{new} signs{old}; every leaf certificate is reissued"),
        );
    }

    pub(crate) fn ca_dropped(&mut self, fingerprint: &str, reason: DropCaReason) {
        let (event, why) = match reason {
            DropCaReason::Retired => (
                "CaRetired",
                "every leaf certificate is signed by its successor and has reached every pod",
            ),
            DropCaReason::Expired => ("CaExpiredRemoved", "it has expired"),
        };
        self.push(
            EventType::Normal,
            event,
            format!(
                "removed CA {} from the trust bundle: {why}",
                short(fingerprint)
            ),
        );
    }

    pub(crate) fn reserved_member(&mut self, member: &str) {
        self.push(
            EventType::Warning,
            "MemberNameReserved",
            format!(
                "member {member:?} gets no certificate: its key {member}.crt in Secret \
                 G-peer-tls would overwrite the trust bundle. Rename the pod (e.g. the \
                 StatefulSet) so that it is not called {member:?}."
            ),
        );
    }

    pub(crate) fn leaves_issued(
        &mut self,
        issued: &BTreeMap<LeafReason, Vec<String>>,
        not_after: SystemTime,
    ) {
        if issued.is_empty() {
            return;
        }
        let parts: Vec<String> = issued
            .iter()
            .map(|(reason, members)| {
                let why = match reason {
                    LeafReason::New => "new member",
                    LeafReason::Renew => "renewal",
                    LeafReason::SanChange => "DNS names changed",
                    LeafReason::CaChange => "new signing CA",
                };
                format!("{why}: {}", name_list(members))
            })
            .collect();
        self.push(
            EventType::Normal,
            "CertificatesIssued",
            format!(
                "issued leaf certificates valid until {} ({})",
                rfc3339(not_after),
                parts.join("; ")
            ),
        );
    }

    pub(crate) fn leaves_dropped(&mut self, members: &[String]) {
        if members.is_empty() {
            return;
        }
        self.push(
            EventType::Normal,
            "CertificatesRemoved",
            format!(
                "removed the certificates of members that left the group: {}",
                name_list(members)
            ),
        );
    }
}
