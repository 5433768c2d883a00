//! Who a verified peer is, and whether the name it claims in the peers-protocol hello is its own.
//!
//! TLS proves that the remote holds a leaf issued by the group's CA; it does not prove that the
//! remote is the member it says it is in the hello (every sidecar mounts every leaf of its group,
//! so a misconfigured or compromised pod could present another member's certificate). These
//! checks close that gap: the claimed peer name must be the bare `<pod>` SAN of the certificate
//! it presented, and that name must be a member of the group.

use haproxy_peers_members::Members;
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::time::ASN1Time;

/// The identity carried by a peer's verified end-entity certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// DNS subject alternative names, in certificate order.
    pub dns_names: Vec<String>,
    /// Subject common name, if any (the operator sets it to the pod name).
    pub common_name: Option<String>,
    /// Serial number, lowercase hex without separators.
    pub serial: String,
    /// Issuer distinguished name, e.g. `CN=edge CA 2`.
    pub issuer: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
}

/// Why a peer is refused after its certificate was verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "peer claimed name '{claimed}' but its certificate is for {}: a pod presenting another \
         member's certificate, refused",
        list_or_none(found)
    )]
    NameMismatch { claimed: String, found: Vec<String> },
    #[error(
        "peer '{claimed}' is not a member of PeerGroup {group} (members: {}): refused; a new pod \
         is admitted once members.yaml lists it (the operator adds every selected pod), \
         otherwise check the pod's labels against the PeerGroup's selector",
        list_or_none(members)
    )]
    NotMember {
        claimed: String,
        group: String,
        members: Vec<String>,
    },
    #[error("peer certificate cannot be parsed as X.509: {detail}")]
    Unparsable { detail: String },
}

impl IdentityError {
    /// A stable, low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NameMismatch { .. } => "name_mismatch",
            Self::NotMember { .. } => "not_member",
            Self::Unparsable { .. } => "unparsable_certificate",
        }
    }
}

impl PeerIdentity {
    /// Reads the identity fields of a DER certificate. Does not verify anything: call it on
    /// certificates rustls has already verified (or on our own, already validated, leaf).
    pub fn from_der(cert: &CertificateDer<'_>) -> Result<Self, IdentityError> {
        let unparsable = |detail: String| IdentityError::Unparsable { detail };
        let (_, x509) =
            X509Certificate::from_der(cert.as_ref()).map_err(|e| unparsable(e.to_string()))?;
        let mut dns_names = Vec::new();
        if let Some(san) = x509
            .subject_alternative_name()
            .map_err(|e| unparsable(format!("subjectAltName: {e}")))?
        {
            for name in &san.value.general_names {
                if let GeneralName::DNSName(dns) = name {
                    dns_names.push((*dns).to_owned());
                }
            }
        }
        let common_name = x509
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let serial = x509
            .raw_serial()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let validity = x509.validity();
        Ok(Self {
            dns_names,
            common_name,
            serial,
            issuer: x509.issuer().to_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// The pod name this certificate was issued for: its bare (dot-free) DNS SAN.
    pub fn pod_name(&self) -> Option<&str> {
        self.dns_names
            .iter()
            .map(String::as_str)
            .find(|name| !name.contains('.') && !name.contains('*'))
    }

    /// [`check_claimed_name`] against this identity's DNS names.
    pub fn check_claimed_name(&self, claimed: &str) -> Result<(), IdentityError> {
        check_claimed_name(claimed, &self.dns_names)
    }
}

/// The name a remote claims in its hello (line 3 when it called us; the name we expect on line 2
/// when we called it) must be exactly one of the DNS SANs of the certificate it presented.
/// Wildcard SANs never match: the operator issues none, and a claimed name is a single peer.
pub fn check_claimed_name(claimed: &str, cert_dns_names: &[String]) -> Result<(), IdentityError> {
    let matches = !claimed.is_empty()
        && cert_dns_names
            .iter()
            .any(|name| !name.contains('*') && name == claimed);
    if matches {
        Ok(())
    } else {
        Err(IdentityError::NameMismatch {
            claimed: claimed.to_owned(),
            found: cert_dns_names.to_vec(),
        })
    }
}

/// A peer whose name is not in `members.yaml` is refused, even with a valid certificate.
pub fn check_member(claimed: &str, members: &Members) -> Result<(), IdentityError> {
    if members.member(claimed).is_some() {
        Ok(())
    } else {
        Err(IdentityError::NotMember {
            claimed: claimed.to_owned(),
            group: format!("{}/{}", members.namespace, members.group),
            members: members.members.iter().map(|m| m.name.clone()).collect(),
        })
    }
}

/// Seconds since the Unix epoch as a UTC date for messages (`Jan  1 00:00:00 2021 +00:00`).
pub(crate) fn utc(secs: i64) -> String {
    ASN1Time::from_timestamp(secs).map_or_else(|_| format!("{secs} (unix)"), |t| t.to_string())
}

/// At most a dozen names, so a message about a big group stays one readable line.
fn list_or_none(names: &[String]) -> String {
    const SHOWN: usize = 12;
    if names.is_empty() {
        return "no DNS names".to_owned();
    }
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sans(pod: &str) -> Vec<String> {
        vec![
            pod.to_owned(),
            format!("{pod}.edge-peers"),
            format!("{pod}.edge-peers.default.svc"),
            format!("{pod}.edge-peers.default.svc.cluster.local"),
        ]
    }

    fn members(names: &[&str]) -> Members {
        let mut yaml = String::from(
            "version: 1\ngroup: edge\nnamespace: default\ngeneration: 1\npeersSection: edge\n\
             tls: true\nports: {mesh: 10000, haproxy: 10001, sidecar: 10002, admin: 10003}\n\
             resyncTimeoutSeconds: 5\nmembers:\n",
        );
        for name in names {
            yaml.push_str(&format!(
                "- name: {name}\n  address: {name}.edge-peers.default.svc.cluster.local\n"
            ));
        }
        Members::from_yaml(&yaml).expect("test members.yaml is valid")
    }

    #[test]
    fn claimed_name_must_be_one_of_the_sans() {
        assert_eq!(check_claimed_name("edge-1", &sans("edge-1")), Ok(()));
        let err = check_claimed_name("edge-2", &sans("edge-1")).unwrap_err();
        assert_eq!(err.metric_label(), "name_mismatch");
        assert_eq!(
            err.to_string(),
            "peer claimed name 'edge-2' but its certificate is for edge-1, edge-1.edge-peers, \
             edge-1.edge-peers.default.svc, edge-1.edge-peers.default.svc.cluster.local: a pod \
             presenting another member's certificate, refused"
        );
    }

    #[test]
    fn prefixes_case_and_wildcards_do_not_match() {
        for claimed in ["edge", "edge-10", "EDGE-1", "", "edge-1 ", "*.edge-peers"] {
            assert!(
                check_claimed_name(claimed, &sans("edge-1")).is_err(),
                "{claimed:?} must not match edge-1's SANs"
            );
        }
        let wildcard = vec!["*.edge-peers".to_owned()];
        assert!(check_claimed_name("*.edge-peers", &wildcard).is_err());
        let err = check_claimed_name("edge-1", &[]).unwrap_err();
        assert!(err.to_string().contains("is for no DNS names"), "{err}");
    }

    #[test]
    fn members_are_admitted_and_strangers_refused_by_name() {
        let group = members(&["edge-0", "edge-1", "edge-2"]);
        assert_eq!(check_member("edge-2", &group), Ok(()));
        let err = check_member("stranger-0", &group).unwrap_err();
        assert_eq!(err.metric_label(), "not_member");
        assert_eq!(
            err.to_string(),
            "peer 'stranger-0' is not a member of PeerGroup default/edge (members: edge-0, \
             edge-1, edge-2): refused; a new pod is admitted once members.yaml lists it (the \
             operator adds every selected pod), otherwise check the pod's labels against the \
             PeerGroup's selector"
        );
    }

    #[test]
    fn long_member_lists_are_cut() {
        let names: Vec<String> = (0..20).map(|i| format!("edge-{i}")).collect();
        let text = list_or_none(&names);
        assert!(text.ends_with("edge-11 and 8 more"), "{text}");
    }

    #[test]
    fn bare_san_is_the_pod_name() {
        let mut names = sans("edge-1");
        names.rotate_left(2);
        let identity = PeerIdentity {
            dns_names: names,
            common_name: None,
            serial: String::new(),
            issuer: String::new(),
            not_before: 0,
            not_after: 0,
        };
        assert_eq!(identity.pod_name(), Some("edge-1"));
    }

    #[test]
    fn garbage_is_not_an_identity() {
        let err =
            PeerIdentity::from_der(&CertificateDer::from(vec![0x30, 0x03, 1, 2])).unwrap_err();
        assert_eq!(err.metric_label(), "unparsable_certificate");
    }

    #[test]
    fn dates_read_as_utc() {
        assert_eq!(utc(1_609_459_200), "Jan  1 00:00:00 2021 +00:00");
    }
}
