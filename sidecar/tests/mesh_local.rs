//! The HAProxy link's refusals: a HAProxy with another local peer name, a caller that names
//! the sidecar wrongly, garbage and a malformed message on the loopback port. None gets a
//! status line (a 5xx would make HAProxy stop calling for good, §2.3): the connection is
//! closed, the reason logged, counted and shown, and the process keeps serving.

#[path = "mesh_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use haproxy_peers_sidecar::admin::views::BlockerKind;
use haproxy_peers_testkit::wait_until;
use support::{haproxy, Group, Sidecar};

const WAIT: Duration = Duration::from_secs(20);

/// Sends `bytes`, then reads until the sidecar closes; returns what it sent back.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The sidecar may close before reading everything (a reset then): that is a close too.
    let _ = tcp.write_all(bytes);
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tcp.read(&mut chunk) {
            Ok(0) => return answer,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return answer,
            Err(e) => panic!("no close from the sidecar after {answer:?}: {e}"),
        }
    }
}

fn errors(s: &Sidecar, kind: &str) -> f64 {
    s.metric(&format!(
        "haproxy_peers_sidecar_errors_total{{kind=\"{kind}\"}}"
    ))
    .unwrap_or(0.0)
}

#[test]
fn haproxy_with_another_local_peer_name_is_refused_without_status_and_keeps_calling() {
    let group = Group::new(&["edge-0"], &[], false, 1);
    let side = group.sidecar("edge-0", 0);
    // HAProxy runs as "edge-9": its peers section is complete (the server line uses the same
    // variable), so it calls the sidecar, claiming the wrong pod.
    let hap = haproxy("edge-9", &side.addrs);

    // Two refusals: HAProxy called again after the first close, so it got no status.
    side.wait_for("two refused calls", WAIT, |s| {
        errors(s, "local_peer_name") >= 2.0
    });
    let local = side.peer("edge-0");
    let error = local.last_error.unwrap_or_default();
    assert!(
        error.starts_with(
            "HAProxy's local peer name is 'edge-9' but this pod is 'edge-0': HAProxy must run \
             with POD_NAME set and no -L flag; peers.cfg uses localpeer \"${POD_NAME}\""
        ),
        "{error}"
    );
    let sections = hap.runtime().show_peers().unwrap();
    let state = sections[0].peer("haproxy_peers_sidecar").unwrap();
    assert_eq!(state.last_status, "HSHK", "{state:?}");

    // Meanwhile the sidecar dialed HAProxy's listener for "edge-0" and got 503.
    side.wait_for("the 503 probe", WAIT, |s| {
        s.readiness()
            .blockers
            .iter()
            .any(|b| b.kind == BlockerKind::HaproxyPeerName && b.message.contains("answered 503"))
    });
    assert!(!side.readiness().ready);
}

#[test]
fn no_haproxy_listener_is_a_named_blocker() {
    let group = Group::new(&["edge-0"], &[], false, 1);
    let side = group.sidecar("edge-0", 0);
    side.wait_for("the refused probe", WAIT, |s| {
        s.readiness().blockers.iter().any(|b| {
            b.kind == BlockerKind::HaproxyPeerName && b.message.contains("refuses connections")
        })
    });
}

#[test]
fn wrong_callee_garbage_and_malformed_messages_close_only_that_connection() {
    let group = Group::new(&["edge-0"], &[], false, 1);
    let side = group.sidecar("edge-0", 0);
    let local = side.addrs.local;

    let answer = exchange(local, b"HAProxyS 2.1\nsomeone_else\nedge-0 4242 1\n");
    assert!(answer.is_empty(), "{answer:?}");
    assert_eq!(errors(&side, "local_wrong_sidecar_name"), 1.0);
    let error = side.peer("edge-0").last_error.unwrap_or_default();
    assert!(
        error.starts_with("HAProxy at 127.0.0.1:")
            && error.contains(
                "calls this sidecar 'someone_else' but its peer name is 'haproxy_peers_sidecar'"
            ),
        "{error}"
    );

    for garbage in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xff; 4096],
        b"HAProxyS 9.9\nhaproxy_peers_sidecar\nedge-0 1 1\n".to_vec(),
    ] {
        let answer = exchange(local, &garbage);
        assert!(answer.is_empty(), "{garbage:?} got {answer:?}");
    }
    assert_eq!(errors(&side, "local_bad_hello"), 3.0);

    // A valid hello, then a definition whose table id never ends: `200`, the sidecar's own
    // opening (a resync request), then `01 00` and a close.
    let mut bytes = b"HAProxyS 2.1\nhaproxy_peers_sidecar\nedge-0 4242 1\n".to_vec();
    bytes.extend_from_slice(&[0x0a, 0x82, 0x03, 0xff, 0xff, 0xff]);
    let answer = exchange(local, &bytes);
    assert!(answer.starts_with(b"200\n"), "{answer:?}");
    assert!(answer.ends_with(&[0x01, 0x00]), "{answer:?}");
    let peer = side.peer("edge-0");
    assert_eq!(peer.protocol_errors, 1, "{peer:#?}");
    assert!(errors(&side, "protocol_error") >= 1.0);

    // The process serves on: a well-behaved caller is welcome.
    let mut tcp = TcpStream::connect(local).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(b"HAProxyS 2.1\nhaproxy_peers_sidecar\nedge-0 4343 1\n")
        .unwrap();
    let mut status = [0u8; 4];
    tcp.read_exact(&mut status).unwrap();
    assert_eq!(&status, b"200\n");
    wait_until("the new session", WAIT, || {
        Ok((side.peer("edge-0").pid == Some(4343)).then_some(()))
    })
    .unwrap();
    assert_eq!(side.get("/healthz").0, 200);
}
