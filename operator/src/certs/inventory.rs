//! What certificate material a group has: parsed from (and written back to) the two Secrets the
//! operator owns, `G-peer-tls` (trust bundle + one leaf per member) and `G-ca` (CA key).
//! Plain data: the planner reads it, minting produces a new one, render writes it out.

use std::collections::BTreeMap;
use std::time::SystemTime;

/// Key of the trust bundle in `G-peer-tls` (and of the CA certificates in `G-ca`).
pub const CA_BUNDLE_KEY: &str = "ca.crt";
/// Key of the signing CA's private key in `G-ca`.
pub const CA_KEY_KEY: &str = "ca.key";
/// Key, in `G-ca`, of the private key of a CA that is in the bundle but does not sign yet (the
/// first phase of a CA rotation): it must survive restarts until the switch.
pub const CA_NEXT_KEY_KEY: &str = "ca-next.key";

/// One CA certificate of the trust bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCert {
    pub cert_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// SHA-256 of the DER, lowercase hex: identifies the CA across reconciles.
    pub fingerprint: String,
}

/// One member's leaf certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// DNS SANs, as issued (sorted).
    pub dns_names: Vec<String>,
    /// Fingerprint of the CA that signed it.
    pub issuer_fingerprint: String,
}

/// The group's certificate state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInventory {
    /// Trusted CAs, oldest first. During a CA rotation there are two.
    pub cas: Vec<CaCert>,
    /// Fingerprint of the CA that signs new leaves (one of `cas`).
    pub signing_ca: Option<String>,
    /// PEM private key of the signing CA (only ever in `G-ca`).
    pub signing_ca_key_pem: Option<String>,
    /// Leaves by member (pod) name.
    pub leaves: BTreeMap<String, LeafCert>,
    /// Fingerprint of a CA published in the bundle that will sign once every pod trusts it
    /// (one of `cas`; set only during a CA rotation).
    pub pending_ca: Option<String>,
    /// PEM private key of `pending_ca` (only ever in `G-ca`).
    pub pending_ca_key_pem: Option<String>,
}

impl CertInventory {
    /// The trust bundle: every CA, oldest first, concatenated.
    pub fn ca_bundle_pem(&self) -> String {
        self.cas.iter().map(|c| c.cert_pem.as_str()).collect()
    }

    /// Contents of Secret `G-peer-tls`: `ca.crt`, and `<pod>.crt` / `<pod>.key` per member.
    pub fn tls_secret_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        data.insert(CA_BUNDLE_KEY.to_string(), self.ca_bundle_pem());
        for (name, leaf) in &self.leaves {
            data.insert(format!("{name}.crt"), leaf.cert_pem.clone());
            data.insert(format!("{name}.key"), leaf.key_pem.clone());
        }
        data
    }

    /// Contents of Secret `G-ca`: the bundle, the signing CA's key and, during a CA rotation,
    /// the pending CA's key.
    pub fn ca_secret_data(&self) -> BTreeMap<String, String> {
        let mut data = BTreeMap::new();
        data.insert(CA_BUNDLE_KEY.to_string(), self.ca_bundle_pem());
        if let Some(key) = &self.signing_ca_key_pem {
            data.insert(CA_KEY_KEY.to_string(), key.clone());
        }
        if let Some(key) = &self.pending_ca_key_pem {
            data.insert(CA_NEXT_KEY_KEY.to_string(), key.clone());
        }
        data
    }

    /// The CA with this fingerprint, if it is in the bundle.
    pub fn ca(&self, fingerprint: &str) -> Option<&CaCert> {
        self.cas.iter().find(|c| c.fingerprint == fingerprint)
    }

    /// The CA that signs new leaves, if any.
    pub fn signing(&self) -> Option<&CaCert> {
        self.signing_ca.as_deref().and_then(|fp| self.ca(fp))
    }

    /// The earliest `not_after` among the leaves, for status.
    pub fn earliest_leaf_expiry(&self) -> Option<SystemTime> {
        self.leaves.values().map(|l| l.not_after).min()
    }
}
