//! Two members authenticate each other; claimed names and membership are checked afterwards.

use haproxy_peers_members::Members;
use haproxy_peers_sidecar::tls::{check_claimed_name, check_member, HandshakeError, TlsConfigs};
use rustls::HandshakeKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::{configs, handshake, within};
use crate::pki::{dial_name, sans, secret, Ca};
use crate::volume::SecretVolume;

pub fn example_members() -> Members {
    Members::from_yaml(include_str!("../../members/example-members.yaml")).expect("example")
}

/// edge-1 (server) and edge-0 (client) of one group, leaves from "edge CA 1".
fn edge1_and_edge0() -> (SecretVolume, TlsConfigs, TlsConfigs) {
    let ca = Ca::new("edge CA 1");
    let (edge0, edge1) = (ca.leaf("edge-0"), ca.leaf("edge-1"));
    let volume = SecretVolume::new(&secret(&[&ca], &[("edge-0", &edge0), ("edge-1", &edge1)]));
    let server = configs(volume.path(), "edge-1");
    let client = configs(volume.path(), "edge-0");
    (volume, server, client)
}

#[tokio::test]
async fn members_authenticate_each_other_and_claims_are_checked() {
    let (_volume, server, client) = edge1_and_edge0();

    let (accepted, dialed) = handshake(&server, &client, &dial_name("edge-1")).await;
    let (mut at_server, caller) = accepted.expect("edge-1 accepts edge-0");
    let (mut at_client, callee) = dialed.expect("edge-0 reaches edge-1");

    assert_eq!(caller.dns_names, sans("edge-0"));
    assert_eq!(caller.pod_name(), Some("edge-0"));
    assert_eq!(caller.common_name.as_deref(), Some("edge-0"));
    assert_eq!(caller.issuer, "CN=edge CA 1");
    assert_eq!(callee.dns_names, sans("edge-1"));
    assert_eq!(callee, server.own, "the server presented its own leaf");
    assert_eq!(caller, client.own, "the client presented its own leaf");

    // A peers-protocol hello and status line cross the session.
    let hello = b"HAProxyS 2.1\nedge-1\nedge-0 1 1\n";
    within("hello", at_client.write_all(hello))
        .await
        .expect("send hello");
    let mut got = [0u8; 31];
    within("hello", at_server.read_exact(&mut got))
        .await
        .expect("read hello");
    assert_eq!(&got, hello);
    within("status", at_server.write_all(b"200\n"))
        .await
        .expect("send status");
    let mut status = [0u8; 4];
    within("status", at_client.read_exact(&mut status))
        .await
        .expect("read status");
    assert_eq!(&status, b"200\n");

    // Line 3 of the hello (caller) and line 2 (callee) against the certificates.
    caller
        .check_claimed_name("edge-0")
        .expect("edge-0 is who it says");
    callee
        .check_claimed_name("edge-1")
        .expect("edge-1 is who we dialed");
    check_member("edge-0", &example_members()).expect("edge-0 is a member");

    let err = caller.check_claimed_name("edge-2").unwrap_err();
    assert_eq!(
        err.to_string(),
        "peer claimed name 'edge-2' but its certificate is for edge-0, edge-0.edge-peers, \
         edge-0.edge-peers.web.svc, edge-0.edge-peers.web.svc.cluster.local: a pod presenting \
         another member's certificate, refused"
    );
    assert!(check_claimed_name("edge-0.edge-peers.web", &caller.dns_names).is_err());

    // No resumption: a second connection with the same configs verifies both leaves again.
    let (again, again_dialed) = handshake(&server, &client, &dial_name("edge-1")).await;
    let (again, _) = again.expect("second accept");
    let (again_dialed, _) = again_dialed.expect("second dial");
    assert_eq!(
        again.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
    assert_eq!(
        again_dialed.get_ref().1.handshake_kind(),
        Some(HandshakeKind::Full)
    );
}

#[tokio::test]
async fn a_server_answering_for_another_members_address_is_refused() {
    let (_volume, server, client) = edge1_and_edge0();

    let (_, dialed) = handshake(&server, &client, &dial_name("edge-2")).await;
    let err = dialed.expect_err("edge-1's leaf is not valid for edge-2's address");
    assert!(matches!(err, HandshakeError::PeerCertificate(_)), "{err:?}");
    assert_eq!(err.metric_label(), "peer_certificate_wrong_name");
    let text = err.to_string();
    assert!(
        text.contains("edge-2.edge-peers.web.svc")
            && text.contains("not the member that was dialed"),
        "{text}"
    );
}

#[tokio::test]
async fn a_stranger_with_a_group_certificate_passes_tls_but_not_membership() {
    let ca = Ca::new("edge CA 1");
    let (stranger, edge1) = (ca.leaf("stranger-0"), ca.leaf("edge-1"));
    let volume = SecretVolume::new(&secret(
        &[&ca],
        &[("stranger-0", &stranger), ("edge-1", &edge1)],
    ));
    let server = configs(volume.path(), "edge-1");
    let client = configs(volume.path(), "stranger-0");

    let (accepted, dialed) = handshake(&server, &client, &dial_name("edge-1")).await;
    let (_, caller) = accepted.expect("TLS admits any leaf of the group's CA");
    dialed.expect("the stranger completes its side");
    caller
        .check_claimed_name("stranger-0")
        .expect("its claim matches its certificate");

    let err = check_member("stranger-0", &example_members()).unwrap_err();
    assert_eq!(err.metric_label(), "not_member");
    assert!(err
        .to_string()
        .starts_with("peer 'stranger-0' is not a member of PeerGroup web/edge"));
}
