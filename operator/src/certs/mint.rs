//! Carries out a [`CertPlan`] with rcgen: the only step that draws randomness (keys, serials).
//! Every date comes from the plan, so minting needs no clock.

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use ring::rand::{SecureRandom, SystemRandom};

use super::encoding::{fingerprint, pem_encode, rfc3339};
use super::inventory::{CaCert, CertInventory, LeafCert};
use super::plan::{CertAction, CertPlan, Validity, NOT_BEFORE_BACKDATE};

/// X.520 upper bound of a common name.
const MAX_CN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("could not create {what}: {source}")]
    Rcgen {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("the system random number generator failed; the operator will retry")]
    Random,
    #[error("the plan does not fit the inventory ({0}); plan again from the current Secrets")]
    PlanMismatch(String),
}

fn rcgen_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> MintError {
    let what = what.into();
    move |source| MintError::Rcgen { what, source }
}

/// Applies `plan` (made by [`super::plan::plan`] from `inventory`) and returns the new
/// inventory. `group` names the CA (its CN).
pub fn mint(
    inventory: &CertInventory,
    plan: &CertPlan,
    group: &str,
) -> Result<CertInventory, MintError> {
    let rng = SystemRandom::new();
    let mut inv = inventory.clone();
    // Built once per signing CA: parsing the CA and its key for every leaf is wasted work.
    let mut issuer: Option<(String, Issuer<'static, KeyPair>)> = None;
    for action in &plan.actions {
        match action {
            CertAction::IssueCa {
                validity, signing, ..
            } => {
                let (ca, key_pem) = mint_ca(group, validity, &rng)?;
                let fp = ca.fingerprint.clone();
                inv.cas.push(ca);
                inv.cas.sort_by(|a, b| {
                    (a.not_before, &a.fingerprint).cmp(&(b.not_before, &b.fingerprint))
                });
                if *signing {
                    inv.signing_ca = Some(fp);
                    inv.signing_ca_key_pem = Some(key_pem);
                } else {
                    inv.pending_ca = Some(fp);
                    inv.pending_ca_key_pem = Some(key_pem);
                }
            }
            CertAction::SwitchSigningCa { fingerprint } => {
                if inv.pending_ca.as_ref() != Some(fingerprint) || inv.pending_ca_key_pem.is_none()
                {
                    return Err(MintError::PlanMismatch(format!(
                        "CA {fingerprint} is not the pending CA"
                    )));
                }
                inv.signing_ca = inv.pending_ca.take();
                inv.signing_ca_key_pem = inv.pending_ca_key_pem.take();
            }
            CertAction::IssueLeaf {
                member,
                dns_names,
                validity,
                ..
            } => {
                let (fp, signer) = signing_issuer(&inv, &mut issuer)?;
                let leaf = mint_leaf(member, dns_names, validity, fp, signer, &rng)?;
                inv.leaves.insert(member.clone(), leaf);
            }
            CertAction::DropLeaf { member } => {
                inv.leaves.remove(member);
            }
            CertAction::DropCa { fingerprint, .. } => {
                if inv.signing_ca.as_ref() == Some(fingerprint) {
                    return Err(MintError::PlanMismatch(format!(
                        "the plan drops CA {fingerprint}, which still signs"
                    )));
                }
                if inv.pending_ca.as_ref() == Some(fingerprint) {
                    inv.pending_ca = None;
                    inv.pending_ca_key_pem = None;
                }
                inv.cas.retain(|c| &c.fingerprint != fingerprint);
            }
        }
    }
    Ok(inv)
}

/// The issuer for the current signing CA, (re)built when the signing CA changed.
fn signing_issuer<'c>(
    inv: &CertInventory,
    cache: &'c mut Option<(String, Issuer<'static, KeyPair>)>,
) -> Result<(&'c str, &'c Issuer<'static, KeyPair>), MintError> {
    let (Some(ca), Some(key_pem)) = (inv.signing(), inv.signing_ca_key_pem.as_deref()) else {
        return Err(MintError::PlanMismatch(
            "a leaf is due but there is no signing CA with its key".to_string(),
        ));
    };
    let entry = match cache.take() {
        Some(entry) if entry.0 == ca.fingerprint => entry,
        _ => {
            let key = KeyPair::from_pem(key_pem).map_err(rcgen_err("the signing CA's key"))?;
            let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, key)
                .map_err(rcgen_err("an issuer from the signing CA"))?;
            (ca.fingerprint.clone(), issuer)
        }
    };
    let (fp, issuer) = cache.insert(entry);
    Ok((fp.as_str(), issuer))
}

/// Random positive 127-bit serial (RFC 5280 asks for at most 20 octets, positive).
fn serial(rng: &SystemRandom) -> Result<SerialNumber, MintError> {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes).map_err(|_| MintError::Random)?;
    // High bit clear keeps it positive; a set bit below it keeps the DER minimal.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

fn base_params(validity: &Validity, rng: &SystemRandom) -> Result<CertificateParams, MintError> {
    let mut params = CertificateParams::default();
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
    params.serial_number = Some(serial(rng)?);
    Ok(params)
}

fn common_name(cn: String) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    // Pod and group names are ASCII (DNS labels), so byte truncation keeps a valid string.
    let cut = cn.char_indices().nth(MAX_CN).map_or(cn.len(), |(i, _)| i);
    dn.push(DnType::CommonName, &cn[..cut]);
    dn
}

fn mint_ca(
    group: &str,
    validity: &Validity,
    rng: &SystemRandom,
) -> Result<(CaCert, String), MintError> {
    let mut params = base_params(validity, rng)?;
    let minted = validity
        .not_before
        .checked_add(NOT_BEFORE_BACKDATE)
        .unwrap_or(validity.not_before);
    params.distinguished_name =
        common_name(format!("haproxy-peers {group} CA {}", rfc3339(minted)));
    // Path length 0: it signs member certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(rcgen_err("a CA key"))?;
    let cert = params
        .self_signed(&key)
        .map_err(rcgen_err("the CA certificate"))?;
    let ca = CaCert {
        cert_pem: pem_encode("CERTIFICATE", cert.der()),
        not_before: validity.not_before,
        not_after: validity.not_after,
        fingerprint: fingerprint(cert.der()),
    };
    Ok((ca, pem_encode("PRIVATE KEY", key.serialized_der())))
}

fn mint_leaf(
    member: &str,
    dns_names: &[String],
    validity: &Validity,
    issuer_fp: &str,
    issuer: &Issuer<'static, KeyPair>,
    rng: &SystemRandom,
) -> Result<LeafCert, MintError> {
    let mut params = base_params(validity, rng)?;
    params.distinguished_name = common_name(member.to_string());
    params.subject_alt_names = dns_names
        .iter()
        .map(|n| {
            Ia5String::try_from(n.as_str())
                .map(SanType::DnsName)
                .map_err(rcgen_err(format!("a DNS name {n:?} for member {member}")))
        })
        .collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // Every sidecar both dials and accepts peer connections with the same certificate.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(rcgen_err(format!("a key for member {member}")))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(rcgen_err(format!("the certificate of member {member}")))?;
    let mut dns_names = dns_names.to_vec();
    dns_names.sort();
    dns_names.dedup();
    Ok(LeafCert {
        cert_pem: pem_encode("CERTIFICATE", cert.der()),
        key_pem: pem_encode("PRIVATE KEY", key.serialized_der()),
        not_before: validity.not_before,
        not_after: validity.not_after,
        dns_names,
        issuer_fingerprint: issuer_fp.to_string(),
    })
}
