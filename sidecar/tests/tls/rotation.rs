//! A full CA rotation and two broken updates under a live session, with the files swapped the
//! way the kubelet swaps a Secret volume, and both sidecars' reloaders watching the same volume.

use std::net::SocketAddr;
use std::time::Duration;

use haproxy_peers_sidecar::tls::{
    self, HandshakeError, PeerIdentity, ReloadCounters, TlsConfigs, TlsReloader, TlsWatch,
};
use rustls::CertificateError;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsStream;

use crate::net::{echo, ping, unchecked, within};
use crate::pki::{dial_name, secret, Ca, Leaf};
use crate::volume::SecretVolume;

const POLL: Duration = Duration::from_millis(20);

type Seen = Result<PeerIdentity, HandshakeError>;

/// edge-1's listener: every accepted connection handshakes with the configs current at that
/// moment, reports whom it saw, then echoes.
async fn serve(listener: TcpListener, watch: TlsWatch, seen: mpsc::UnboundedSender<Seen>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let configs = watch.current().expect("edge-1 has configs");
        let seen = seen.clone();
        tokio::spawn(async move {
            match tls::accept(&configs, tcp).await {
                Ok((stream, caller)) => {
                    let _ = seen.send(Ok(caller));
                    echo(stream).await;
                }
                Err(error) => {
                    let _ = seen.send(Err(error));
                }
            }
        });
    }
}

struct Dialed {
    stream: TlsStream<TcpStream>,
    /// Whom the client saw (edge-1's presented leaf).
    callee: PeerIdentity,
    /// Whom edge-1 saw, or why it refused.
    at_server: Seen,
}

async fn dial(
    addr: SocketAddr,
    configs: &TlsConfigs,
    seen: &mut mpsc::UnboundedReceiver<Seen>,
) -> Dialed {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (stream, callee) = within("dial", tls::connect(configs, tcp, &dial_name("edge-1")))
        .await
        .expect("edge-1's certificate is accepted");
    let at_server = within("server verdict", seen.recv())
        .await
        .expect("server reports");
    Dialed {
        stream,
        callee,
        at_server,
    }
}

fn leaves((edge0, edge1): &(Leaf, Leaf)) -> Vec<(&'static str, &Leaf)> {
    vec![("edge-0", edge0), ("edge-1", edge1)]
}

fn id(leaf: &Leaf) -> PeerIdentity {
    PeerIdentity::from_der(&leaf.der).expect("test leaf parses")
}

/// Waits for the `count`th rejection, then for three more polls of the same files, which must
/// not count it again.
async fn wait_rejected(counters: &ReloadCounters, count: u64) {
    within("rejection counted", async {
        while counters.rejected() < count {
            tokio::time::sleep(POLL / 2).await;
        }
        let polls = counters.polls();
        while counters.polls() < polls + 3 {
            tokio::time::sleep(POLL / 2).await;
        }
    })
    .await;
    assert_eq!(counters.rejected(), count, "one rejection per broken set");
}

/// Waits for both reloaders to publish the swapped files.
async fn both_published(
    edge1: &mut TlsWatch,
    edge0: &mut TlsWatch,
) -> (std::sync::Arc<TlsConfigs>, std::sync::Arc<TlsConfigs>) {
    let server = within("edge-1 reload", edge1.changed())
        .await
        .expect("edge-1 reloader runs");
    let client = within("edge-0 reload", edge0.changed())
        .await
        .expect("edge-0 reloader runs");
    (server, client)
}

#[tokio::test]
async fn rotation_keeps_live_sessions_and_switches_new_handshakes() {
    let (ca1, ca2) = (Ca::new("edge CA 1"), Ca::new("edge CA 2"));
    let gen1 = (ca1.leaf("edge-0"), ca1.leaf("edge-1"));
    let mut volume = SecretVolume::new(&secret(&[&ca1], &leaves(&gen1)));

    let (server_reloader, mut edge1_watch) = TlsReloader::spawn(volume.path(), "edge-1", POLL)
        .await
        .expect("edge-1 reloader");
    let (client_reloader, mut edge0_watch) = TlsReloader::spawn(volume.path(), "edge-0", POLL)
        .await
        .expect("edge-0 reloader");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let server = tokio::spawn(serve(listener, edge1_watch.clone(), seen_tx));

    // A newcomer already holding a CA2 leaf, trusting both CAs.
    let newcomer_volume =
        SecretVolume::new(&secret(&[&ca1, &ca2], &[("edge-2", &ca2.leaf("edge-2"))]));
    let newcomer = unchecked(newcomer_volume.path(), "edge-2");
    // A laggard still holding its CA1 leaf at the end of the rotation.
    let laggard_volume = SecretVolume::new(&secret(&[&ca1, &ca2], &[("edge-0", &gen1.0)]));
    let laggard = unchecked(laggard_volume.path(), "edge-0");

    // Phase 0: everything from CA1; a live session starts.
    let current = edge0_watch.current().expect("edge-0 configs");
    let mut live = dial(addr, &current, &mut seen).await;
    assert_eq!(live.callee, id(&gen1.1));
    assert_eq!(
        live.at_server.as_ref().expect("edge-0 admitted"),
        &id(&gen1.0)
    );
    ping(&mut live.stream, "phase 0").await;
    let refused = dial(addr, &newcomer, &mut seen)
        .await
        .at_server
        .expect_err("CA2 unknown yet");
    assert!(matches!(
        refused,
        HandshakeError::PeerCertificate(CertificateError::UnknownIssuer)
    ));

    // Phase 1: ca.crt = [CA1, CA2]; leaves unchanged.
    volume.update(&secret(&[&ca1, &ca2], &leaves(&gen1)));
    let (edge1_configs, edge0_configs) = both_published(&mut edge1_watch, &mut edge0_watch).await;
    assert_eq!(edge1_configs.own, id(&gen1.1));
    ping(&mut live.stream, "phase 1").await;
    let fresh = dial(addr, &edge0_configs, &mut seen).await;
    assert_eq!(fresh.callee.issuer, "CN=edge CA 1");
    let admitted = dial(addr, &newcomer, &mut seen)
        .await
        .at_server
        .expect("CA2 trusted now");
    assert_eq!(admitted.issuer, "CN=edge CA 2");

    // Phase 2: leaves reissued by CA2.
    let gen2 = (ca2.leaf("edge-0"), ca2.leaf("edge-1"));
    volume.update(&secret(&[&ca1, &ca2], &leaves(&gen2)));
    let (edge1_configs, edge0_configs) = both_published(&mut edge1_watch, &mut edge0_watch).await;
    assert_eq!(edge1_configs.own, id(&gen2.1));
    ping(&mut live.stream, "phase 2").await;
    let fresh = dial(addr, &edge0_configs, &mut seen).await;
    assert_eq!(fresh.callee, id(&gen2.1), "edge-1 presents its CA2 leaf");
    assert_eq!(fresh.callee.issuer, "CN=edge CA 2");
    assert_ne!(fresh.callee.serial, id(&gen1.1).serial);
    assert_eq!(
        fresh.at_server.expect("edge-0 admitted"),
        id(&gen2.0),
        "edge-0 presents its CA2 leaf"
    );

    // Phase 3: ca.crt = [CA2]; CA1 leaves are refused from now on.
    volume.update(&secret(&[&ca2], &leaves(&gen2)));
    let (_, edge0_configs) = both_published(&mut edge1_watch, &mut edge0_watch).await;
    ping(&mut live.stream, "phase 3").await;
    let fresh = dial(addr, &edge0_configs, &mut seen).await;
    assert_eq!(fresh.callee, id(&gen2.1));
    assert!(fresh.at_server.is_ok());
    let refused = dial(addr, &laggard, &mut seen)
        .await
        .at_server
        .expect_err("CA1 dropped");
    assert!(matches!(
        refused,
        HandshakeError::PeerCertificate(CertificateError::UnknownIssuer)
    ));

    // Broken set 1: edge-1.key holds edge-0's key. Only edge-1's reloader uses that file.
    let mut broken = secret(&[&ca2], &leaves(&gen2));
    broken
        .iter_mut()
        .find(|(name, _)| name == "edge-1.key")
        .expect("edge-1.key")
        .1 = gen2.0.key_pem.clone().into_bytes();
    volume.update(&broken);
    wait_rejected(&server_reloader.counters(), 1).await;
    let why = server_reloader
        .last_error()
        .expect("rejection kept")
        .to_string();
    assert!(
        why.contains("edge-1.key does not belong to the certificate in"),
        "{why}"
    );
    assert!(!edge1_watch.has_changed(), "nothing published");
    let fresh = dial(addr, &edge0_configs, &mut seen).await;
    assert_eq!(
        fresh.callee,
        id(&gen2.1),
        "edge-1 still presents the previous leaf"
    );
    ping(&mut live.stream, "broken key").await;

    // Broken set 2: garbage ca.crt. Both reloaders refuse it.
    let mut garbage = secret(&[&ca2], &leaves(&gen2));
    garbage[0].1 = b"-----BEGIN CERTIFICATE-----\nnot base64\n".to_vec();
    volume.update(&garbage);
    wait_rejected(&server_reloader.counters(), 2).await;
    wait_rejected(&client_reloader.counters(), 1).await;
    let why = client_reloader
        .last_error()
        .expect("rejection kept")
        .to_string();
    assert!(
        why.starts_with(&format!("{}/ca.crt", volume.path().display())),
        "{why}"
    );
    assert!(!edge0_watch.has_changed() && !edge1_watch.has_changed());
    let fresh = dial(
        addr,
        &edge0_watch.current().expect("configs kept"),
        &mut seen,
    )
    .await;
    assert_eq!(fresh.callee, id(&gen2.1));
    assert_eq!(fresh.at_server.expect("edge-0 admitted"), id(&gen2.0));
    ping(&mut live.stream, "garbage bundle").await;

    // Repaired with fresh leaves: published again.
    let gen3 = (ca2.leaf("edge-0"), ca2.leaf("edge-1"));
    volume.update(&secret(&[&ca2], &leaves(&gen3)));
    let (_, edge0_configs) = both_published(&mut edge1_watch, &mut edge0_watch).await;
    let fresh = dial(addr, &edge0_configs, &mut seen).await;
    assert_eq!(fresh.callee, id(&gen3.1));
    assert!(server_reloader.last_error().is_none());
    ping(&mut live.stream, "repaired").await;

    // Initial + three rotation phases + repair; two rejections that were counted once each.
    assert_eq!(server_reloader.counters().published(), 5);
    assert_eq!(server_reloader.counters().rejected(), 2);
    assert_eq!(client_reloader.counters().published(), 5);
    assert_eq!(client_reloader.counters().rejected(), 1);
    server.abort();
}
