//! rustls server and client configurations for the mesh, built from one pod's material.
//!
//! Both ends are our own sidecars, so the configs are strict: TLS 1.3 only, ring provider,
//! client certificates required, and no session resumption, so every connection runs a full
//! handshake that verifies the peer's current certificate and presents our current one (a
//! resumed session would carry an identity verified under an older trust bundle).

use std::fmt;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{ClientConfig, ServerConfig};

use super::identity::PeerIdentity;
use super::material::{provider, MaterialError, TlsMaterial};

/// One generation of this pod's TLS configuration. Published as a whole by the reloader; a
/// handshake picks the latest generation, a live session keeps the one it started with.
#[derive(Clone)]
pub struct TlsConfigs {
    /// For connections other sidecars open to us: requires and verifies their certificate.
    pub server: Arc<ServerConfig>,
    /// For connections we open: verifies the server against the bundle and the dialed DNS
    /// name, presents our leaf as client certificate.
    pub client: Arc<ClientConfig>,
    /// Our own leaf's identity (names, serial, issuer, validity).
    pub own: PeerIdentity,
    /// Our leaf's end of validity, seconds since the Unix epoch (also `own.not_after`).
    pub not_after: i64,
}

impl fmt::Debug for TlsConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfigs")
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

impl TlsConfigs {
    /// Builds both configs. Does not check validity in time or the chain: call
    /// [`TlsMaterial::validate`] first (the reloader does), or use [`Self::validated`].
    pub fn build(material: &TlsMaterial) -> Result<Self, MaterialError> {
        let provider = provider();
        let key = material.certified_key(&provider)?;
        let roots = material.root_store()?;
        let own = material.identity()?;
        let unusable = |e: &dyn fmt::Display| MaterialError::Unusable {
            cert: material.paths.cert.clone(),
            detail: e.to_string(),
        };

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| unusable(&e))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| unusable(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(key.cert.clone(), material.key.clone_key())
            .map_err(|e| unusable(&e))?;
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;

        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| unusable(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(key.cert, material.key.clone_key())
            .map_err(|e| unusable(&e))?;
        client.resumption = Resumption::disabled();

        Ok(Self {
            server: Arc::new(server),
            client: Arc::new(client),
            not_after: own.not_after,
            own,
        })
    }

    /// [`TlsMaterial::validate`] at `now`, then [`Self::build`].
    pub fn validated(
        material: &TlsMaterial,
        now: rustls::pki_types::UnixTime,
    ) -> Result<Self, MaterialError> {
        material.validate(now)?;
        Self::build(material)
    }
}
