//! Certificates refused by the TLS layer itself, with the reason on the side that refused.

use std::sync::Arc;

use haproxy_peers_sidecar::tls::{HandshakeError, TlsConfigs};
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore};

use crate::net::{client_refusal, configs, handshake, unchecked};
use crate::pki::{dial_name, secret, Ca, Leaf, EXPIRED, NOT_YET_VALID};
use crate::volume::SecretVolume;

/// edge-1 of the group trusting `ca`, serving with a valid leaf.
fn group_server(ca: &Ca) -> (SecretVolume, TlsConfigs) {
    let volume = SecretVolume::new(&secret(&[ca], &[("edge-1", &ca.leaf("edge-1"))]));
    let server = configs(volume.path(), "edge-1");
    (volume, server)
}

/// A client calling itself edge-0 with `leaf`, trusting `bundle` (so it accepts the server).
fn client_with(bundle: &[&Ca], leaf: &Leaf) -> (SecretVolume, TlsConfigs) {
    let volume = SecretVolume::new(&secret(bundle, &[("edge-0", leaf)]));
    let client = unchecked(volume.path(), "edge-0");
    (volume, client)
}

/// Runs the handshake and returns (what the server says, what the refused client learns).
async fn refused(server: &TlsConfigs, client: &TlsConfigs) -> (HandshakeError, HandshakeError) {
    let (accepted, dialed) = handshake(server, client, &dial_name("edge-1")).await;
    let at_server = accepted.expect_err("the server must refuse this client");
    (at_server, client_refusal(dialed).await)
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let ca = Ca::new("edge CA 1");
    let (_server_volume, server) = group_server(&ca);
    let (_client_volume, client) = client_with(&[&ca], &ca.leaf_valid("edge-0", EXPIRED));

    let (at_server, at_client) = refused(&server, &client).await;
    assert!(
        matches!(
            at_server,
            HandshakeError::PeerCertificate(CertificateError::ExpiredContext { .. })
        ),
        "{at_server:?}"
    );
    assert_eq!(at_server.metric_label(), "peer_certificate_expired");
    let text = at_server.to_string();
    assert!(
        text.starts_with("peer certificate refused: certificate expired on Jan  1 00:00:00 2021"),
        "{text}"
    );
    assert!(
        matches!(
            at_client,
            HandshakeError::RefusedByPeer(AlertDescription::CertificateExpired)
        ),
        "{at_client:?}"
    );
    assert!(
        at_client.to_string().contains("expired or not yet valid"),
        "{at_client}"
    );
}

#[tokio::test]
async fn a_not_yet_valid_client_certificate_is_refused() {
    let ca = Ca::new("edge CA 1");
    let (_server_volume, server) = group_server(&ca);
    let (_client_volume, client) = client_with(&[&ca], &ca.leaf_valid("edge-0", NOT_YET_VALID));

    let (at_server, _) = refused(&server, &client).await;
    assert_eq!(at_server.metric_label(), "peer_certificate_not_yet_valid");
    let text = at_server.to_string();
    assert!(
        text.contains("certificate not valid yet: valid from Jan  1 00:00:00 2090"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let ca = Ca::new("edge CA 1");
    let foreign = Ca::new("other group CA");
    let (_server_volume, server) = group_server(&ca);
    // The stranger trusts our CA, so only the server's check can stop it.
    let (client_volume, client) = client_with(&[&ca, &foreign], &foreign.leaf("edge-0"));
    let its_own_view = configs(client_volume.path(), "edge-0");
    assert_eq!(its_own_view.own.issuer, "CN=other group CA");

    let (at_server, at_client) = refused(&server, &client).await;
    assert!(
        matches!(
            at_server,
            HandshakeError::PeerCertificate(CertificateError::UnknownIssuer)
        ),
        "{at_server:?}"
    );
    assert_eq!(at_server.metric_label(), "peer_certificate_unknown_issuer");
    assert!(
        at_server.to_string().starts_with(
            "peer certificate refused: unknown issuer: not signed by a CA in our ca.crt"
        ),
        "{at_server}"
    );
    assert!(
        matches!(
            at_client,
            HandshakeError::RefusedByPeer(AlertDescription::UnknownCA)
        ),
        "{at_client:?}"
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = Ca::new("edge CA 1");
    let (server_volume, server) = group_server(&ca);
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).expect("CA is a trust anchor");
    let anonymous =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
    let client = TlsConfigs {
        client: Arc::new(anonymous),
        ..configs(server_volume.path(), "edge-1")
    };

    let (at_server, at_client) = refused(&server, &client).await;
    assert!(
        matches!(at_server, HandshakeError::NoPeerCertificate),
        "{at_server:?}"
    );
    assert!(
        at_server
            .to_string()
            .starts_with("peer presented no certificate"),
        "{at_server}"
    );
    assert!(
        matches!(
            at_client,
            HandshakeError::RefusedByPeer(AlertDescription::CertificateRequired)
        ),
        "{at_client:?}"
    );
}

#[tokio::test]
async fn a_client_refuses_an_expired_server_certificate() {
    let ca = Ca::new("edge CA 1");
    let volume = SecretVolume::new(&secret(
        &[&ca],
        &[
            ("edge-0", &ca.leaf("edge-0")),
            ("edge-1", &ca.leaf_valid("edge-1", EXPIRED)),
        ],
    ));
    let server = unchecked(volume.path(), "edge-1");
    let client = configs(volume.path(), "edge-0");

    let (accepted, dialed) = handshake(&server, &client, &dial_name("edge-1")).await;
    let at_client = dialed.expect_err("the client must refuse an expired server");
    assert_eq!(at_client.metric_label(), "peer_certificate_expired");
    assert!(
        at_client
            .to_string()
            .contains("certificate expired on Jan  1 00:00:00 2021"),
        "{at_client}"
    );
    let at_server = accepted.expect_err("the server learns that it was refused");
    assert!(
        matches!(
            at_server,
            HandshakeError::RefusedByPeer(AlertDescription::CertificateExpired)
        ),
        "{at_server:?}"
    );
}
