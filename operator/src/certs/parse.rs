//! Reads the two Secrets back into a [`CertInventory`]. Anything unreadable is left out and
//! reported: the planner then replaces it, so garbage in a Secret heals on the next reconcile.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use rcgen::KeyPair;
use rustls_pemfile::Item;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::encoding::{fingerprint, from_unix, pem_encode};
use super::inventory::{
    CaCert, CertInventory, LeafCert, CA_BUNDLE_KEY, CA_KEY_KEY, CA_NEXT_KEY_KEY,
};

/// One Secret's name and `data`.
#[derive(Debug)]
pub struct SecretData<'a, V> {
    pub name: &'a str,
    pub data: &'a BTreeMap<String, V>,
}

// Only references inside: copyable whatever `V` is (a derive would demand `V: Copy`).
impl<V> Clone for SecretData<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for SecretData<'_, V> {}

impl<'a, V> SecretData<'a, V> {
    pub fn new(name: &'a str, data: &'a BTreeMap<String, V>) -> Self {
        Self { name, data }
    }
}

/// The inventory, and what could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedInventory {
    pub inventory: CertInventory,
    pub problems: Vec<InventoryProblem>,
}

/// Something in a Secret the operator cannot use, and what it does about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Secret {secret} key {key}: {problem}; the operator will {remedy}")]
pub struct InventoryProblem {
    pub secret: String,
    pub key: String,
    pub problem: String,
    pub remedy: Remedy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remedy {
    /// Issue a new certificate and key for this member.
    ReissueLeaf { member: String },
    /// Leave this entry out of the trust bundle it writes.
    DropFromBundle,
    /// Issue a new signing CA (an emergency if members depend on the old one).
    IssueNewCa,
    /// Forget the CA that was about to sign and start its rotation again.
    RestartRotation,
    /// Write the key again.
    Rewrite,
    /// Leave it alone; nothing reads it.
    Ignore,
}

impl fmt::Display for Remedy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remedy::ReissueLeaf { member } => write!(f, "reissue the certificate of {member}"),
            Remedy::DropFromBundle => write!(f, "leave it out of the trust bundle"),
            Remedy::IssueNewCa => write!(f, "issue a new CA and reissue every leaf"),
            Remedy::RestartRotation => write!(f, "start the CA rotation again"),
            Remedy::Rewrite => write!(f, "write it again"),
            Remedy::Ignore => write!(f, "ignore it"),
        }
    }
}

/// A certificate with what the inventory keeps of it, and its DER for linking.
struct Parsed {
    der: Vec<u8>,
    pem: String,
    not_before: SystemTime,
    not_after: SystemTime,
    fingerprint: String,
}

struct Problems<'a> {
    secret: &'a str,
    out: &'a mut Vec<InventoryProblem>,
}

impl Problems<'_> {
    fn add(&mut self, key: &str, problem: impl Into<String>, remedy: Remedy) {
        self.out.push(InventoryProblem {
            secret: self.secret.to_string(),
            key: key.to_string(),
            problem: problem.into(),
            remedy,
        });
    }
}

fn x509(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".to_string()),
        Err(e) => Err(format!("not an X.509 certificate ({e})")),
    }
}

/// PEM blocks of one Secret value.
fn pem_items(bytes: &[u8]) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = bytes;
    loop {
        match rustls_pemfile::read_one_from_slice(rest) {
            Ok(Some((item, tail))) => {
                items.push(item);
                rest = tail;
            }
            Ok(None) => return Ok(items),
            Err(e) => return Err(format!("not valid PEM ({e:?})")),
        }
    }
}

fn certificate(der: &[u8]) -> Result<Parsed, String> {
    let cert = x509(der)?;
    let validity = cert.validity();
    let (Some(not_before), Some(not_after)) = (
        from_unix(validity.not_before.timestamp()),
        from_unix(validity.not_after.timestamp()),
    ) else {
        return Err("validity out of range".to_string());
    };
    Ok(Parsed {
        der: der.to_vec(),
        pem: pem_encode("CERTIFICATE", der),
        not_before,
        not_after,
        fingerprint: fingerprint(der),
    })
}

/// The CA certificates under `ca.crt`.
fn bundle(bytes: &[u8], problems: &mut Problems<'_>) -> Vec<Parsed> {
    let items = match pem_items(bytes) {
        Ok(items) => items,
        Err(e) => {
            problems.add(CA_BUNDLE_KEY, e, Remedy::DropFromBundle);
            return Vec::new();
        }
    };
    let mut cas = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let n = i + 1;
        let Item::X509Certificate(der) = item else {
            problems.add(
                CA_BUNDLE_KEY,
                format!("PEM block {n} is not a certificate"),
                Remedy::DropFromBundle,
            );
            continue;
        };
        let parsed = certificate(&der).and_then(|p| {
            let cert = x509(&p.der)?;
            if !cert.is_ca() {
                return Err("not a CA certificate".to_string());
            }
            // The operator's CAs are self-signed: a failing signature means a damaged copy.
            if cert.verify_signature(None).is_err() {
                return Err("its self-signature does not verify (damaged?)".to_string());
            }
            Ok(p)
        });
        match parsed {
            Ok(p) => cas.push(p),
            Err(e) => problems.add(
                CA_BUNDLE_KEY,
                format!("certificate {n}: {e}"),
                Remedy::DropFromBundle,
            ),
        }
    }
    cas
}

/// A private key, in the operator's canonical PEM, with its raw public key.
fn private_key(bytes: &[u8]) -> Result<(KeyPair, String), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let key = KeyPair::from_pem(text).map_err(|e| format!("not a usable private key ({e})"))?;
    let pem = pem_encode("PRIVATE KEY", key.serialized_der());
    Ok((key, pem))
}

fn same_public_key(key: &KeyPair, cert_der: &[u8]) -> bool {
    x509(cert_der)
        .is_ok_and(|c| c.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

/// The CA in `cas` that signed `leaf`: same subject as the leaf's issuer and a valid signature.
fn issuer_of<'c>(leaf: &X509Certificate<'_>, cas: &'c [Parsed]) -> Option<&'c Parsed> {
    cas.iter().find(|ca| {
        x509(&ca.der).is_ok_and(|ca_cert| {
            ca_cert.subject().as_raw() == leaf.issuer().as_raw()
                && leaf.verify_signature(Some(ca_cert.public_key())).is_ok()
        })
    })
}

fn dns_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, String> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("unreadable subjectAltName ({e})"))?;
    let mut names: Vec<String> = san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some(name.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    Ok(names)
}

fn leaf<V: AsRef<[u8]>>(
    member: &str,
    data: &BTreeMap<String, V>,
    cas: &[Parsed],
) -> Result<LeafCert, (String, String)> {
    let crt_key = format!("{member}.crt");
    let key_key = format!("{member}.key");
    let bad_crt = |e: String| (crt_key.clone(), e);
    let bytes = data.get(&crt_key).map(AsRef::as_ref).unwrap_or_default();
    let der = match pem_items(bytes).map_err(bad_crt)?.as_slice() {
        [Item::X509Certificate(der)] => der.to_vec(),
        _ => return Err(bad_crt("expected exactly one certificate".to_string())),
    };
    let parsed = certificate(&der).map_err(bad_crt)?;
    let cert = x509(&der).map_err(bad_crt)?;
    if cert.is_ca() {
        return Err(bad_crt(
            "a CA certificate, not a member certificate".to_string(),
        ));
    }
    let dns_names = dns_names(&cert).map_err(bad_crt)?;
    let issuer = issuer_of(&cert, cas)
        .ok_or_else(|| bad_crt("not signed by any CA in the trust bundle".to_string()))?;
    let Some(key_bytes) = data.get(&key_key) else {
        return Err((key_key, "missing".to_string()));
    };
    let (key, key_pem) = private_key(key_bytes.as_ref()).map_err(|e| (key_key.clone(), e))?;
    if !same_public_key(&key, &der) {
        return Err((
            key_key,
            format!("does not belong to the certificate {crt_key}"),
        ));
    }
    Ok(LeafCert {
        cert_pem: parsed.pem,
        key_pem,
        not_before: parsed.not_before,
        not_after: parsed.not_after,
        dns_names,
        issuer_fingerprint: issuer.fingerprint.clone(),
    })
}

/// Which CA of `cas` the key under `key` of `G-ca` belongs to, with the key's canonical PEM.
fn ca_key<V: AsRef<[u8]>>(
    key: &str,
    data: &BTreeMap<String, V>,
    cas: &[Parsed],
    remedy: Remedy,
    problems: &mut Problems<'_>,
) -> Option<(String, String)> {
    let bytes = data.get(key)?;
    match private_key(bytes.as_ref()) {
        Err(e) => {
            problems.add(key, e, remedy);
            None
        }
        Ok((pair, pem)) => match cas.iter().find(|ca| same_public_key(&pair, &ca.der)) {
            Some(ca) => Some((ca.fingerprint.clone(), pem)),
            None => {
                problems.add(key, format!("belongs to no CA in {CA_BUNDLE_KEY}"), remedy);
                None
            }
        },
    }
}

impl CertInventory {
    /// Reads `G-peer-tls` and `G-ca` (either may not exist yet). The trust bundle is the
    /// union of both Secrets' `ca.crt`, so that a CA whose key was stored but not yet
    /// published is not forgotten.
    pub fn from_secrets<V: AsRef<[u8]>>(
        peer_tls: Option<SecretData<'_, V>>,
        ca: Option<SecretData<'_, V>>,
    ) -> ParsedInventory {
        let mut problems = Vec::new();
        let mut cas: Vec<Parsed> = Vec::new();
        for secret in [ca, peer_tls].into_iter().flatten() {
            let mut p = Problems {
                secret: secret.name,
                out: &mut problems,
            };
            let Some(bytes) = secret.data.get(CA_BUNDLE_KEY) else {
                p.add(CA_BUNDLE_KEY, "missing", Remedy::Rewrite);
                continue;
            };
            for parsed in bundle(bytes.as_ref(), &mut p) {
                if !cas.iter().any(|c| c.fingerprint == parsed.fingerprint) {
                    cas.push(parsed);
                }
            }
        }
        cas.sort_by(|a, b| (a.not_before, &a.fingerprint).cmp(&(b.not_before, &b.fingerprint)));

        let mut inventory = CertInventory::default();
        if let Some(secret) = ca {
            let mut p = Problems {
                secret: secret.name,
                out: &mut problems,
            };
            if let Some((fp, pem)) =
                ca_key(CA_KEY_KEY, secret.data, &cas, Remedy::IssueNewCa, &mut p)
            {
                inventory.signing_ca = Some(fp);
                inventory.signing_ca_key_pem = Some(pem);
            }
            let next = ca_key(
                CA_NEXT_KEY_KEY,
                secret.data,
                &cas,
                Remedy::RestartRotation,
                &mut p,
            );
            if let Some((fp, pem)) =
                next.filter(|(fp, _)| inventory.signing_ca.as_ref() != Some(fp))
            {
                inventory.pending_ca = Some(fp);
                inventory.pending_ca_key_pem = Some(pem);
            }
        }

        if let Some(secret) = peer_tls {
            let mut p = Problems {
                secret: secret.name,
                out: &mut problems,
            };
            for key in secret.data.keys() {
                if key == CA_BUNDLE_KEY {
                    continue;
                }
                if let Some(member) = key.strip_suffix(".crt").filter(|m| !m.is_empty()) {
                    match leaf(member, secret.data, &cas) {
                        Ok(l) => {
                            inventory.leaves.insert(member.to_string(), l);
                        }
                        Err((bad, why)) => p.add(
                            &bad,
                            why,
                            Remedy::ReissueLeaf {
                                member: member.to_string(),
                            },
                        ),
                    }
                } else if let Some(member) = key.strip_suffix(".key") {
                    if !secret.data.contains_key(&format!("{member}.crt")) {
                        p.add(key, "a key without a certificate", Remedy::Ignore);
                    }
                }
            }
        }

        inventory.cas = cas
            .into_iter()
            .map(|c| CaCert {
                cert_pem: c.pem,
                not_before: c.not_before,
                not_after: c.not_after,
                fingerprint: c.fingerprint,
            })
            .collect();
        ParsedInventory {
            inventory,
            problems,
        }
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
