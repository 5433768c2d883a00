//! A throw-away PKI shaped like the operator's: P-256 CAs and leaves named like a PeerGroup's
//! pods (the four DNS SANs of [`sans`], EKU server + client), and the Secret's file layout.
//!
//! Minting panics on failure: rcgen only fails here on a programming error, and every caller is
//! a test.

use std::path::Path;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::CertificateDer;

/// Group and namespace of `sidecar/members/example-members.yaml`.
pub const GROUP: &str = "edge";
pub const NAMESPACE: &str = "web";

/// The four DNS SANs the operator gives a member's leaf.
pub fn sans(pod: &str) -> Vec<String> {
    vec![
        pod.to_owned(),
        format!("{pod}.{GROUP}-peers"),
        format!("{pod}.{GROUP}-peers.{NAMESPACE}.svc"),
        format!("{pod}.{GROUP}-peers.{NAMESPACE}.svc.cluster.local"),
    ]
}

/// The name a sidecar dials to reach `pod`.
pub fn dial_name(pod: &str) -> String {
    format!("{pod}.{GROUP}-peers.{NAMESPACE}.svc")
}

#[derive(Debug)]
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub pem: String,
    pub der: CertificateDer<'static>,
}

#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

/// Validity windows by year, far enough from today to never flip during a test run.
pub const VALID: (i32, i32) = (2020, 2090);
pub const EXPIRED: (i32, i32) = (2020, 2021);
pub const NOT_YET_VALID: (i32, i32) = (2090, 2091);

impl Ca {
    pub fn new(common_name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = date_time_ymd(2019, 1, 1);
        params.not_after = date_time_ymd(2095, 1, 1);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Self {
            pem: cert.pem(),
            der: cert.der().clone(),
            params,
            key,
        }
    }

    /// A currently valid leaf for `pod`.
    pub fn leaf(&self, pod: &str) -> Leaf {
        self.leaf_valid(pod, VALID)
    }

    pub fn leaf_valid(&self, pod: &str, (from, until): (i32, i32)) -> Leaf {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, pod);
        params.subject_alt_names = sans(pod)
            .into_iter()
            .map(|name| SanType::DnsName(name.try_into().expect("DNS SAN")))
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(from, 1, 1);
        params.not_after = date_time_ymd(until, 1, 1);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("leaf signed by CA");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// The Secret's files: `ca.crt` = the CAs concatenated, `<pod>.crt` / `<pod>.key` per leaf.
pub fn secret(bundle: &[&Ca], leaves: &[(&str, &Leaf)]) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "ca.crt".to_owned(),
        bundle
            .iter()
            .map(|ca| ca.pem.as_str())
            .collect::<String>()
            .into_bytes(),
    )];
    for (pod, leaf) in leaves {
        files.push((format!("{pod}.crt"), leaf.cert_pem.clone().into_bytes()));
        files.push((format!("{pod}.key"), leaf.key_pem.clone().into_bytes()));
    }
    files
}

/// Writes `files` (from [`secret`]) flat into `dir`, as a mounted Secret without the kubelet's
/// `..data` indirection.
pub fn write_secret(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}
