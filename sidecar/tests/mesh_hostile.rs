//! Hostile and broken input on the mesh port (mutual TLS) and on the HAProxy port, while two
//! pods replicate: every bad connection is closed on its own, with a reason counted and shown;
//! the process, the established sessions and the table live on.

#[path = "mesh_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use haproxy_peers_sidecar::admin::views::SessionState;
use haproxy_peers_sidecar::tls::{self, TlsConfigs, TlsMaterial};
use rustls::pki_types::UnixTime;
use support::{ready_pair, wait_gpc0, Group, Pair, Sidecar};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

fn errors(s: &Sidecar, kind: &str) -> f64 {
    s.metric(&format!(
        "haproxy_peers_sidecar_errors_total{{kind=\"{kind}\"}}"
    ))
    .unwrap_or(0.0)
}

/// Plain bytes at a port; returns what came back before the close.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = tcp.write_all(bytes);
    let mut answer = Vec::new();
    match tcp.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no close after {answer:?}: {e}"),
    }
    answer
}

/// A member-to-be ("edge-2", holding the group's certificate for edge-2) calling `mesh`:
/// mutual TLS, then `bytes` (a hello and whatever follows); returns what came back before the
/// close.
fn as_edge2(tls_dir: &std::path::Path, mesh: SocketAddr, callee: &str, bytes: &[u8]) -> Vec<u8> {
    let material = TlsMaterial::load(tls_dir, "edge-2").unwrap();
    let configs = TlsConfigs::validated(&material, UnixTime::now()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(mesh).await.unwrap();
        let (mut stream, peer) = tls::connect(&configs, tcp, callee).await.unwrap();
        assert_eq!(peer.pod_name(), Some(callee));
        stream.write_all(bytes).await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
        match read.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Ok(Err(e)) => panic!("after {answer:?}: {e}"),
            Err(_) => panic!("no close after {answer:?}"),
        }
        answer
    })
}

#[test]
fn bad_connections_close_alone_and_replication_goes_on() {
    // edge-2 is a member (it holds a leaf and is listed) but runs no sidecar: this test speaks
    // for it.
    let group = Group::new(&["edge-0", "edge-1", "edge-2"], &[], true, 2);
    let Pair { a, b, hap_a, hap_b } = ready_pair(&group, WAIT);
    a.wait_for("the session with edge-1", WAIT, |s| {
        s.peer("edge-1").state == SessionState::Established
    });
    let before = (a.peer("edge-1"), a.peer("edge-0"));

    // Not TLS at all.
    let answer = raw(a.addrs.mesh, b"HAProxyS 2.1\nedge-0\nedge-1 1 1\n");
    assert!(!answer.starts_with(b"200"), "{answer:?}");
    let answer = raw(a.addrs.mesh, &[0x16; 70_000]);
    assert!(!answer.starts_with(b"200"), "{answer:?}");

    // A valid certificate claiming another member's name: refused before any session, so the
    // real edge-1 session is not replaced.
    let answer = as_edge2(
        group.tls.path(),
        a.addrs.mesh,
        "edge-0",
        b"HAProxyS 2.1\nedge-0\nedge-1 1 1\n",
    );
    assert!(answer.is_empty(), "{answer:?}");
    assert_eq!(errors(&a, "name_mismatch"), 1.0);
    let error = a.peer("edge-1").last_error.unwrap_or_default();
    assert!(
        error.contains("expected edge-2") && error.contains("found 'edge-1'"),
        "{error}"
    );

    // The callee is not who the caller meant: 503, as HAProxy answers.
    let answer = as_edge2(
        group.tls.path(),
        a.addrs.mesh,
        "edge-0",
        b"HAProxyS 2.1\nedge-7\nedge-2 1 1\n",
    );
    assert_eq!(answer, b"503\n");

    // edge-2 for real, then a message whose length is six bytes long: `200`, then `01 00`.
    let mut bytes = b"HAProxyS 2.1\nedge-0\nedge-2 77 1\n".to_vec();
    bytes.extend_from_slice(&[0x0a, 0x80, 0xf0, 0x80, 0x80, 0x80, 0x80, 0x80]);
    let answer = as_edge2(group.tls.path(), a.addrs.mesh, "edge-0", &bytes);
    assert!(answer.starts_with(b"200\n"), "{answer:?}");
    assert!(answer.ends_with(&[0x01, 0x00]), "{answer:?}");
    a.wait_for("the protocol error on edge-2", WAIT, |s| {
        s.peer("edge-2").protocol_errors == 1
    });

    // A body over the size limit: `01 01`.
    let mut bytes = b"HAProxyS 2.1\nedge-0\nedge-2 78 1\n".to_vec();
    bytes.extend_from_slice(&[0x0a, 0x80, 0xff, 0xf0, 0xfe, 0xfe, 0x7e]);
    let answer = as_edge2(group.tls.path(), a.addrs.mesh, "edge-0", &bytes);
    assert!(answer.ends_with(&[0x01, 0x01]), "{answer:?}");

    // Garbage on the HAProxy port next to HAProxy's live session.
    assert!(raw(a.addrs.local, &[0x00; 5_000]).is_empty());

    // Everything else is as it was: same sessions, no collision, no reconnect.
    let after = (a.peer("edge-1"), a.peer("edge-0"));
    for (was, now) in [(&before.0, &after.0), (&before.1, &after.1)] {
        assert_eq!(now.state, SessionState::Established, "{now:#?}");
        assert_eq!(
            (now.collisions, now.reconnects),
            (was.collisions, was.reconnects)
        );
        assert_eq!(now.remote_addr, was.remote_addr, "{now:#?}");
        assert!(now.last_handshake_ms_ago >= was.last_handshake_ms_ago);
    }
    assert_eq!(b.peer("edge-0").state, SessionState::Established);

    hap_a
        .runtime()
        .set_table("be", "10.9.9.9", &[("gpc0", 5)])
        .unwrap();
    wait_gpc0(&hap_b, "B", "10.9.9.9", 5, WAIT);
    assert_eq!(a.get("/healthz").0, 200);
}

#[test]
fn a_second_hello_from_a_member_replaces_its_session() {
    let group = Group::new(&["edge-0", "edge-2"], &[], true, 1);
    let a = group.sidecar("edge-0", 0);
    let tls_dir = group.tls.path().to_path_buf();
    let mesh = a.addrs.mesh;
    let first = std::thread::spawn(move || {
        as_edge2(
            &tls_dir,
            mesh,
            "edge-0",
            b"HAProxyS 2.1\nedge-0\nedge-2 1 1\n",
        )
    });
    a.wait_for("edge-2's first session", WAIT, |s| {
        s.peer("edge-2").pid == Some(1)
    });
    // The newest hello wins (§2.5): the first connection is closed by the sidecar.
    let tls_dir = group.tls.path().to_path_buf();
    let second = std::thread::spawn(move || {
        as_edge2(
            &tls_dir,
            mesh,
            "edge-0",
            b"HAProxyS 2.1\nedge-0\nedge-2 2 1\n",
        )
    });
    let closed = first.join().unwrap();
    assert!(closed.starts_with(b"200\n"), "{closed:?}");
    a.wait_for("edge-2's second session", WAIT, |s| {
        s.peer("edge-2").pid == Some(2)
    });
    let peer = a.peer("edge-2");
    assert_eq!(peer.collisions, 1, "{peer:#?}");
    assert_eq!(
        a.metric("haproxy_peers_sidecar_collisions_total{peer=\"edge-2\"}"),
        Some(1.0)
    );
    drop(a);
    // The sidecar's shutdown closes the second one cleanly.
    assert!(second.join().unwrap().starts_with(b"200\n"));
}

#[test]
fn a_member_that_falls_silent_is_dropped() {
    let group = Group::new(&["edge-0", "edge-2"], &[], true, 1);
    let a = group.sidecar("edge-0", 0);
    // edge-2 completes its handshake, then neither reads nor writes: its heartbeats stop.
    let material = TlsMaterial::load(group.tls.path(), "edge-2").unwrap();
    let configs = TlsConfigs::validated(&material, UnixTime::now()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut stream = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(a.addrs.mesh).await.unwrap();
        let (mut stream, _) = tls::connect(&configs, tcp, "edge-0").await.unwrap();
        stream
            .write_all(b"HAProxyS 2.1\nedge-0\nedge-2 5 1\n")
            .await
            .unwrap();
        let mut status = [0u8; 4];
        stream.read_exact(&mut status).await.unwrap();
        assert_eq!(&status, b"200\n");
        stream
    });
    a.wait_for("the session", WAIT, |s| {
        s.peer("edge-2").state == SessionState::Established
    });
    a.wait_for("the silent peer dropped", WAIT, |s| {
        s.peer("edge-2").silent_closes == 1
    });
    assert_eq!(errors(&a, "silent"), 1.0);
    let error = a.peer("edge-2").last_error.unwrap_or_default();
    assert!(
        error.starts_with("no message from edge-2 for 10 s"),
        "{error}"
    );
    // The sidecar closed the connection: what is left to read ends.
    let ended = rt.block_on(async {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await
    });
    assert!(ended.is_ok(), "the connection stayed open");
}
