//! This pod's TLS material from the group's mounted Secret, checked before anyone uses it.
//!
//! The Secret `<group>-peer-tls` is mounted as a directory holding `ca.crt` (the trust bundle,
//! two CAs during a CA rotation) and `<pod>.crt` / `<pod>.key` for every member. A sidecar uses
//! only its own pair. Reading ([`MaterialFiles::read`]) is the only I/O here; parsing and
//! validation are functions of the bytes and of `now`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use haproxy_peers_members::is_peer_name;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, RootCertStore};

use super::identity::{utc, PeerIdentity};

/// File name of the trust bundle inside the mounted Secret.
pub const BUNDLE_FILE: &str = "ca.crt";

/// Where this pod's three files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialPaths {
    pub dir: PathBuf,
    pub pod: String,
    pub bundle: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl MaterialPaths {
    /// The pod name becomes part of file names, so it must be a plain peer name.
    pub fn new(dir: impl Into<PathBuf>, pod: &str) -> Result<Self, MaterialError> {
        if !is_peer_name(pod) || pod.starts_with('.') {
            return Err(MaterialError::BadPodName {
                pod: pod.to_owned(),
            });
        }
        let dir = dir.into();
        Ok(Self {
            bundle: dir.join(BUNDLE_FILE),
            cert: dir.join(format!("{pod}.crt")),
            key: dir.join(format!("{pod}.key")),
            pod: pod.to_owned(),
            dir,
        })
    }
}

/// The raw bytes of the three files: what the reloader compares between polls.
#[derive(Clone, PartialEq, Eq)]
pub struct MaterialFiles {
    pub bundle: Vec<u8>,
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl fmt::Debug for MaterialFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaterialFiles")
            .field("bundle_bytes", &self.bundle.len())
            .field("cert_bytes", &self.cert.len())
            .field("key_bytes", &self.key.len())
            .finish()
    }
}

impl MaterialFiles {
    /// Reads the three files (blocking; they are small files on a tmpfs volume).
    pub fn read(paths: &MaterialPaths) -> Result<Self, MaterialError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| {
                if source.kind() != io::ErrorKind::NotFound {
                    MaterialError::Read {
                        path: path.to_owned(),
                        source: Arc::new(source),
                    }
                } else if path == paths.bundle {
                    MaterialError::BundleMissing {
                        path: path.to_owned(),
                        dir: paths.dir.clone(),
                    }
                } else {
                    MaterialError::LeafMissing {
                        path: path.to_owned(),
                        pod: paths.pod.clone(),
                    }
                }
            })
        };
        Ok(Self {
            bundle: read(&paths.bundle)?,
            cert: read(&paths.cert)?,
            key: read(&paths.key)?,
        })
    }
}

/// This pod's parsed trust bundle, certificate chain (leaf first) and private key.
pub struct TlsMaterial {
    pub paths: MaterialPaths,
    pub bundle: Vec<CertificateDer<'static>>,
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("paths", &self.paths)
            .field("bundle", &self.bundle.len())
            .field("cert_chain", &self.cert_chain.len())
            .finish_non_exhaustive()
    }
}

/// Everything that can be wrong with the mounted files. Every message names the file and says
/// what to check.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MaterialError {
    #[error(
        "'{pod}' cannot be used as this pod's name: a peer name is made of letters, digits, \
         '-', '_', '.', ':' and does not start with '.'; check the pod name the sidecar is given"
    )]
    BadPodName { pod: String },
    #[error(
        "{} is missing: is the group's peer-tls Secret mounted at {}? The operator writes \
         ca.crt into it",
        path.display(),
        dir.display()
    )]
    BundleMissing { path: PathBuf, dir: PathBuf },
    #[error(
        "{} is missing: is the pod name '{pod}' a member of the PeerGroup? The operator issues \
         one certificate per selected pod (a new pod's files appear once the kubelet refreshes \
         the Secret volume)",
        path.display()
    )]
    LeafMissing { path: PathBuf, pod: String },
    #[error("cannot read {}: {source}: check the volume mount and its permissions", path.display())]
    Read {
        path: PathBuf,
        source: Arc<io::Error>,
    },
    #[error(
        "{} holds no usable PEM certificate ({detail}): expected the '-----BEGIN CERTIFICATE-----' \
         blocks the operator writes",
        path.display()
    )]
    BadCertificatePem { path: PathBuf, detail: String },
    #[error(
        "{} holds no usable private key for '{pod}' ({detail}): expected the PKCS#8 ECDSA P-256 \
         PEM key the operator writes",
        path.display()
    )]
    BadKey {
        path: PathBuf,
        pod: String,
        detail: String,
    },
    #[error(
        "{} does not belong to the certificate in {}: the pair is mid-update or was edited by \
         hand; the operator always writes both together, so check the Secret's last writer",
        key.display(),
        cert.display()
    )]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error(
        "{}: CA certificate #{index} cannot be a trust anchor ({detail}): ca.crt must hold only \
         the group's CA certificates",
        path.display()
    )]
    BadBundle {
        path: PathBuf,
        index: usize,
        detail: String,
    },
    #[error(
        "{} is not issued by a CA in {} (unknown issuer): in a CA rotation the new CA must reach \
         ca.crt before the leaves it signs; check the operator's rotation phase",
        cert.display(),
        bundle.display()
    )]
    Untrusted { cert: PathBuf, bundle: PathBuf },
    #[error(
        "{} expired on {} (now {}): the operator renews leaves before they expire; is it \
         running, and what does the PeerGroup's CertificatesReady condition say?",
        cert.display(),
        utc(*not_after),
        utc(*now)
    )]
    Expired {
        cert: PathBuf,
        not_after: i64,
        now: i64,
    },
    #[error(
        "{} is not valid before {} (now {}): check this node's clock against the operator's",
        cert.display(),
        utc(*not_before),
        utc(*now)
    )]
    NotYetValid {
        cert: PathBuf,
        not_before: i64,
        now: i64,
    },
    #[error(
        "{} is not issued for the name '{pod}' (its DNS names: {}): the file belongs to another \
         pod, or the operator has not reissued it yet",
        cert.display(),
        names.join(", ")
    )]
    WrongName {
        cert: PathBuf,
        pod: String,
        names: Vec<String>,
    },
    #[error(
        "{} cannot be used for mutual TLS ({detail}): the operator issues leaves with serverAuth \
         and clientAuth for the group's CA",
        cert.display()
    )]
    Unusable { cert: PathBuf, detail: String },
}

impl MaterialError {
    /// A stable, low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::BadPodName { .. } => "bad_pod_name",
            Self::BundleMissing { .. } | Self::LeafMissing { .. } => "missing_file",
            Self::Read { .. } => "read_error",
            Self::BadCertificatePem { .. } => "bad_certificate",
            Self::BadKey { .. } => "bad_key",
            Self::KeyMismatch { .. } => "key_mismatch",
            Self::BadBundle { .. } => "bad_bundle",
            Self::Untrusted { .. } => "unknown_issuer",
            Self::Expired { .. } => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::WrongName { .. } => "wrong_name",
            Self::Unusable { .. } => "unusable",
        }
    }
}

/// The crypto provider of every config and check in this crate: ring, never aws-lc.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsMaterial {
    /// Reads and parses this pod's files from `dir`. Does not validate: see [`Self::validate`].
    pub fn load(dir: impl Into<PathBuf>, pod: &str) -> Result<Self, MaterialError> {
        let paths = MaterialPaths::new(dir, pod)?;
        let files = MaterialFiles::read(&paths)?;
        Self::parse(paths, &files)
    }

    /// Parses PEM bytes read from `paths`.
    pub fn parse(paths: MaterialPaths, files: &MaterialFiles) -> Result<Self, MaterialError> {
        let bundle = parse_certs(&paths.bundle, &files.bundle)?;
        let cert_chain = parse_certs(&paths.cert, &files.cert)?;
        let bad_key = |detail: String| MaterialError::BadKey {
            path: paths.key.clone(),
            pod: paths.pod.clone(),
            detail,
        };
        let key = rustls_pemfile::private_key(&mut files.key.as_slice())
            .map_err(|e| bad_key(e.to_string()))?
            .ok_or_else(|| bad_key("no PRIVATE KEY block".to_owned()))?;
        Ok(Self {
            paths,
            bundle,
            cert_chain,
            key,
        })
    }

    /// The identity in this pod's own leaf.
    pub fn identity(&self) -> Result<PeerIdentity, MaterialError> {
        let leaf = self.leaf()?;
        PeerIdentity::from_der(leaf).map_err(|e| MaterialError::BadCertificatePem {
            path: self.paths.cert.clone(),
            detail: e.to_string(),
        })
    }

    /// Checks, in this order, that the key belongs to the leaf, that the bundle holds usable
    /// CAs, that the leaf is valid at `now`, and that it verifies as a server certificate for
    /// the pod's own name and as a client certificate, with the same verifiers peers use.
    pub fn validate(&self, now: UnixTime) -> Result<(), MaterialError> {
        let provider = provider();
        self.certified_key(&provider)?;
        let roots = self.root_store()?;
        let identity = self.identity()?;
        let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        if now_secs > identity.not_after {
            return Err(MaterialError::Expired {
                cert: self.paths.cert.clone(),
                not_after: identity.not_after,
                now: now_secs,
            });
        }
        if now_secs < identity.not_before {
            return Err(MaterialError::NotYetValid {
                cert: self.paths.cert.clone(),
                not_before: identity.not_before,
                now: now_secs,
            });
        }
        let (leaf, intermediates) = self.split_chain()?;
        let name = ServerName::try_from(self.paths.pod.clone()).map_err(|_| {
            MaterialError::BadPodName {
                pod: self.paths.pod.clone(),
            }
        })?;
        let server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| self.unusable(e.to_string()))?;
        server
            .verify_server_cert(leaf, intermediates, &name, &[], now)
            .map_err(|e| self.chain_error(e, &identity))?;
        let client = WebPkiClientVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| self.unusable(e.to_string()))?;
        client
            .verify_client_cert(leaf, intermediates, now)
            .map_err(|e| self.chain_error(e, &identity))?;
        Ok(())
    }

    /// The leaf and key as rustls holds them; fails when the key does not match the leaf.
    pub(crate) fn certified_key(
        &self,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, MaterialError> {
        CertifiedKey::from_der(self.cert_chain.clone(), self.key.clone_key(), provider).map_err(
            |e| match e {
                rustls::Error::InconsistentKeys(_) => MaterialError::KeyMismatch {
                    key: self.paths.key.clone(),
                    cert: self.paths.cert.clone(),
                },
                other => MaterialError::BadKey {
                    path: self.paths.key.clone(),
                    pod: self.paths.pod.clone(),
                    detail: other.to_string(),
                },
            },
        )
    }

    /// The bundle as trust anchors.
    pub(crate) fn root_store(&self) -> Result<Arc<RootCertStore>, MaterialError> {
        let mut roots = RootCertStore::empty();
        for (index, ca) in self.bundle.iter().enumerate() {
            roots
                .add(ca.clone())
                .map_err(|e| MaterialError::BadBundle {
                    path: self.paths.bundle.clone(),
                    index,
                    detail: e.to_string(),
                })?;
        }
        Ok(Arc::new(roots))
    }

    fn leaf(&self) -> Result<&CertificateDer<'static>, MaterialError> {
        self.split_chain().map(|(leaf, _)| leaf)
    }

    fn split_chain(
        &self,
    ) -> Result<(&CertificateDer<'static>, &[CertificateDer<'static>]), MaterialError> {
        self.cert_chain
            .split_first()
            .ok_or_else(|| MaterialError::BadCertificatePem {
                path: self.paths.cert.clone(),
                detail: "no certificate".to_owned(),
            })
    }

    fn unusable(&self, detail: String) -> MaterialError {
        MaterialError::Unusable {
            cert: self.paths.cert.clone(),
            detail,
        }
    }

    /// Leaf time checks ran before, so expiry reported here is a CA's.
    fn chain_error(&self, error: rustls::Error, identity: &PeerIdentity) -> MaterialError {
        use CertificateError as E;
        match error {
            rustls::Error::InvalidCertificate(E::UnknownIssuer) => MaterialError::Untrusted {
                cert: self.paths.cert.clone(),
                bundle: self.paths.bundle.clone(),
            },
            rustls::Error::InvalidCertificate(
                E::NotValidForName | E::NotValidForNameContext { .. },
            ) => MaterialError::WrongName {
                cert: self.paths.cert.clone(),
                pod: self.paths.pod.clone(),
                names: identity.dns_names.clone(),
            },
            rustls::Error::InvalidCertificate(
                E::Expired
                | E::ExpiredContext { .. }
                | E::NotValidYet
                | E::NotValidYetContext { .. },
            ) => self.unusable(format!(
                "a CA certificate in {} is outside its validity period: {error}",
                self.paths.bundle.display()
            )),
            other => self.unusable(other.to_string()),
        }
    }
}

fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let bad = |detail: String| MaterialError::BadCertificatePem {
        path: path.to_owned(),
        detail,
    };
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block".to_owned()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_cannot_escape_the_directory() {
        for pod in ["../etc/passwd", "a/b", "..data", "", "edge 1"] {
            let err = MaterialPaths::new("/secret", pod).unwrap_err();
            assert_eq!(err.metric_label(), "bad_pod_name", "{pod:?}");
        }
        let paths = MaterialPaths::new("/secret", "edge-1").unwrap();
        assert_eq!(paths.cert, Path::new("/secret/edge-1.crt"));
        assert_eq!(paths.key, Path::new("/secret/edge-1.key"));
        assert_eq!(paths.bundle, Path::new("/secret/ca.crt"));
    }

    #[test]
    fn garbage_pem_names_the_file() {
        let paths = MaterialPaths::new("/secret", "edge-1").unwrap();
        let files = MaterialFiles {
            bundle: b"not a certificate".to_vec(),
            cert: Vec::new(),
            key: Vec::new(),
        };
        let err = TlsMaterial::parse(paths, &files).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/secret/ca.crt holds no usable PEM certificate"),
            "{err}"
        );
    }
}
