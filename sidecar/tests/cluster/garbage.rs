//! 5. Garbage, byte-at-a-time and oversized input on the mesh port (before TLS and inside it),
//!    the local HAProxy port and the admin port: that connection ends, with a log line naming
//!    it; the process, the other sessions and the table survive, and a fresh write still
//!    replicates everywhere.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use haproxy_peers_sidecar::admin::views::SessionState;
use haproxy_peers_testkit::cluster::Cluster;
use haproxy_peers_testkit::wait_until;

use crate::admin;
use crate::expect::{log_tails, Expected};
use crate::intruder::{block_on, call, load, Outcome, Pace};
use crate::lab::{self, T_INT};
use crate::replicate::CONVERGE;
use crate::writes::{set_write, tag, write_round};

/// The pod under attack.
const TARGET: usize = 1;
const TRICKLE: Pace = Pace::ByteAtATime(Duration::from_millis(5));

/// Bytes that are no protocol at all: a fixed pseudo-random sequence with line ends mixed in.
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 37 == 36 {
                b'\n'
            } else {
                (state >> 24) as u8
            }
        })
        .collect()
}

/// One line without an end, far beyond any limit.
fn oversized() -> Vec<u8> {
    let mut bytes = b"HAProxyS 2.1\n".to_vec();
    bytes.resize(1 << 20, b'A');
    bytes
}

struct Attack {
    what: String,
    port: Port,
    payload: Vec<u8>,
    pace: Pace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// The mesh port, raw TCP: garbage instead of a TLS ClientHello.
    MeshRaw,
    /// The mesh port after a valid TLS handshake (a member's certificate): garbage instead of a
    /// hello.
    MeshTls,
    Local,
    Admin,
}

fn attacks() -> Vec<Attack> {
    let mut list = Vec::new();
    for port in [Port::MeshRaw, Port::MeshTls, Port::Local, Port::Admin] {
        for (kind, payload, pace) in [
            ("garbage", noise(4096), Pace::AtOnce),
            ("byte-at-a-time garbage", noise(600), TRICKLE),
            ("oversized input", oversized(), Pace::AtOnce),
        ] {
            list.push(Attack {
                what: format!("{kind} on {port:?}"),
                port,
                payload,
                pace,
            });
        }
    }
    list
}

fn run(cluster: &Cluster, attack: &Attack) -> Outcome {
    let node = cluster.node(TARGET);
    let (to, tls): (SocketAddr, _) = match attack.port {
        Port::MeshRaw => (node.addrs.mesh, None),
        Port::MeshTls => (node.addrs.mesh, Some(load(cluster.tls_dir(), "edge-0"))),
        Port::Local => (node.addrs.sidecar_local, None),
        Port::Admin => (node.addrs.admin, None),
    };
    let tls = tls.as_ref().map(|c| (c, node.name()));
    block_on(call(to, tls, &attack.payload, attack.pace))
}

/// What the log line of a refused connection on `port` holds besides the caller's address
/// (one of these).
fn log_needles(port: Port) -> &'static [&'static str] {
    match port {
        Port::MeshRaw => &["TLS handshake with"],
        // A wrong first line is answered with a status first, as HAProxy does (§2.2).
        Port::MeshTls => &[
            "on the mesh port is not a peers-protocol hello",
            "sent a bad hello: answered",
        ],
        Port::Local => &[
            "on the HAProxy port is not a peers-protocol hello",
            "malformed hello from HAProxy at",
        ],
        Port::Admin => &[
            "on the admin port is not a valid HTTP/1 request",
            "on the admin port has a request head over the size limit",
            "on the admin port sent no complete request head",
        ],
    }
}

#[test]
fn hostile_bytes_end_their_connection_and_nothing_else() {
    let cluster = lab::start(lab::three(true));
    let mut expected = write_round(&cluster, &[0, 1, 2], 1);
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);
    let node = cluster.node(TARGET);
    let pid = node.sidecar.pid();
    let sessions_before = admin::peers(node);

    for attack in attacks() {
        let outcome = run(&cluster, &attack);
        let context = format!("{}: {outcome:?}", attack.what);
        // Never a session: no `200`; at most a TLS alert record (content type 21) before TLS,
        // an HTTP error from the admin server.
        let text = outcome.received_text();
        if attack.port == Port::MeshTls {
            assert_eq!(
                outcome.tls,
                Ok(()),
                "the garbage must travel inside TLS: {context}"
            );
        }
        match attack.port {
            Port::Admin => assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 4"),
                "{context}"
            ),
            Port::MeshRaw => assert!(
                outcome.received.is_empty() || outcome.received[0] == 21,
                "{context}"
            ),
            // An error status line at most (never on the HAProxy link: §2.3).
            Port::MeshTls => assert!(
                text.is_empty() || (text.len() == 4 && text.starts_with('5')),
                "{context}"
            ),
            Port::Local => assert!(text.is_empty(), "{context}"),
        }
        let caller = outcome.local.to_string();
        let logged = wait_until(
            "a log line naming the connection",
            Duration::from_secs(5),
            || {
                Ok(log_needles(attack.port).iter().find_map(|needle| {
                    node.sidecar
                        .log_lines_with(&[&caller, needle])
                        .into_iter()
                        .next()
                }))
            },
        );
        if let Err(e) = logged {
            panic!("{context}: {e}\n{}", log_tails(&cluster));
        }
    }

    // The process survived, its other sessions were never disturbed, nothing was lost.
    let node = cluster.node(TARGET);
    assert_eq!(node.sidecar.pid(), pid);
    assert_eq!(
        node.sidecar.get("/healthz").map(|r| r.status).ok(),
        Some(200)
    );
    for before in &sessions_before.peers {
        let now = admin::peer(node, &before.name);
        assert_eq!(
            now.state,
            SessionState::Established,
            "{now:#?}\n{}",
            log_tails(&cluster)
        );
        assert_eq!(
            (now.pid, now.remote_addr.clone(), now.collisions),
            (before.pid, before.remote_addr.clone(), before.collisions),
            "{} was disturbed: {now:#?}",
            before.name
        );
    }
    let since = Instant::now();
    let fresh = set_write(node, T_INT, tag(9, TARGET, 1), 9);
    let mut more = Expected::new();
    more.capture(node, &[fresh], since);
    expected.merge(more);
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);
}
