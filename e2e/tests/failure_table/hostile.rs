//! Malformed or hostile bytes on every port of a pod, under traffic: garbage, a hello (or TLS
//! ClientHello, or HTTP request head) trickled one byte at a time, and 1 MiB of junk, on the mesh
//! port from outside (garbage before or instead of a TLS ClientHello), on the mesh port inside a
//! mutual-TLS session opened with another member's certificate from that member's namespace, on
//! the admin port, and on the local HAProxy-link port from inside the pod. Each connection is
//! closed by the sidecar with a log line naming the caller's address and the problem; the
//! sidecar process, its sessions, its readiness, the traffic and the table all live on.
//!
//! `sidecar/tests/cluster/garbage.rs` does the same on loopback; here the bytes cross the pods'
//! network, sent by the probe from inside the namespaces.

use haproxy_peers_e2e::hostile::{Payload, Sent};
use haproxy_peers_e2e::netns::Host;
use haproxy_peers_e2e::probe::run_probe;
use haproxy_peers_e2e::workload::WorkloadOptions;
use haproxy_peers_e2e::Fleet;

use crate::support::{
    check, flowing, nothing_lost, options, ready, serial, start_with, traffic, until,
};

/// The pod under attack.
const TARGET: &str = "edge-1";
/// The member whose namespace and certificate the attacks inside TLS come from.
const INSIDER: &str = "edge-0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// The mesh port from the client namespace: no TLS, so the bytes come instead of a
    /// ClientHello.
    MeshRaw,
    /// The mesh port from another member's namespace, after a valid mutual-TLS handshake with
    /// its certificate: the bytes come instead of a peers-protocol hello.
    MeshTls,
    /// The admin port from the client namespace.
    Admin,
    /// The sidecar's HAProxy-link port, from inside the pod (loopback).
    Local,
}

impl Port {
    /// What the sidecar's log line for a connection it ended on this port says (one of these),
    /// besides the caller's address.
    fn problems(self) -> &'static [&'static str] {
        match self {
            Port::MeshRaw => &["TLS handshake with"],
            // A wrong first line is answered with an error status first, as HAProxy does.
            Port::MeshTls => &[
                "on the mesh port is not a peers-protocol hello",
                "on the mesh port sent no complete hello",
                "sent a bad hello: answered",
            ],
            Port::Admin => &[
                "on the admin port is not a valid HTTP/1 request",
                "on the admin port has a request head over the size limit",
                "on the admin port sent no complete request head",
            ],
            Port::Local => &[
                "on the HAProxy port is not a peers-protocol hello",
                "on the HAProxy port sent no complete hello",
                "malformed hello from HAProxy at",
            ],
        }
    }
}

struct Attack {
    port: Port,
    payload: Payload,
    from: Host,
    args: Vec<String>,
}

impl Attack {
    fn what(&self) -> String {
        format!(
            "{:?} on {:?} from {}",
            self.payload, self.port, self.from.name
        )
    }
}

fn attacks(fleet: &Fleet) -> Vec<Attack> {
    let ports = &fleet.control().peer_group().spec.ports;
    let target = check(fleet, fleet.pod(TARGET));
    let insider = check(fleet, fleet.pod(INSIDER));
    let mut list = Vec::new();
    for (port, slow) in [
        (Port::MeshRaw, Payload::SlowClientHello),
        (Port::MeshTls, Payload::SlowHello),
        (Port::Admin, Payload::SlowRequest),
        (Port::Local, Payload::SlowHello),
    ] {
        let (from, addr) = match port {
            Port::MeshRaw => (
                fleet.client().clone(),
                format!("{}:{}", target.ip(), ports.mesh),
            ),
            Port::MeshTls => (
                insider.host().clone(),
                format!("{}:{}", target.ip(), ports.mesh),
            ),
            Port::Admin => (
                fleet.client().clone(),
                format!("{}:{}", target.ip(), ports.admin),
            ),
            Port::Local => (
                target.host().clone(),
                format!("127.0.0.1:{}", ports.sidecar),
            ),
        };
        for payload in [Payload::Garbage, slow, Payload::Junk] {
            let mut args = vec![
                "send".to_string(),
                addr.clone(),
                "--payload".to_string(),
                clap_name(payload),
                "--callee".to_string(),
                TARGET.to_string(),
            ];
            if port == Port::MeshTls {
                let server_name = fleet.control().dns_names(TARGET)[1].clone();
                args.extend([
                    "--tls-dir".to_string(),
                    insider.tls_dir().display().to_string(),
                    "--member".to_string(),
                    INSIDER.to_string(),
                    "--server-name".to_string(),
                    server_name,
                ]);
            }
            list.push(Attack {
                port,
                payload,
                from: from.clone(),
                args,
            });
        }
    }
    list
}

/// The payload's name on the probe's command line.
fn clap_name(payload: Payload) -> String {
    serde_json::to_value(payload)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// What identifies a session of the target's sidecar: disturbed, it changes.
fn sessions(fleet: &Fleet) -> Vec<(String, Option<u32>, Option<String>, u64)> {
    let snap = check(fleet, fleet.admin(TARGET));
    snap.peers
        .iter()
        .flat_map(|p| &p.peers)
        .map(|p| (p.name.clone(), p.pid, p.remote_addr.clone(), p.collisions))
        .collect()
}

#[test]
fn hostile_bytes_on_any_port_end_only_their_connection() {
    let _serial = serial();
    let fleet = start_with(options(3));
    let workload = traffic(&fleet, WorkloadOptions::default());
    let pid = check(&fleet, fleet.pod(TARGET)).sidecar.pid();
    let before = sessions(&fleet);
    assert_eq!(
        before.len(),
        3,
        "{TARGET} has its HAProxy and two members: {before:?}"
    );

    let probe = fleet.options().binaries.probe.clone();
    let attacks = attacks(&fleet);
    let outcomes: Vec<(String, Sent)> = std::thread::scope(|s| {
        let running: Vec<_> = attacks
            .iter()
            .map(|a| {
                let probe = &probe;
                s.spawn(move || run_probe::<Sent>(probe, &a.from, &a.args))
            })
            .collect();
        // The traffic flows, through the target too, while its ports are under attack.
        flowing(&fleet, &workload);
        assert!(
            check(&fleet, fleet.admin(TARGET)).is_ready(),
            "{TARGET} stopped being Ready under attack\n{}",
            fleet.logs()
        );
        running
            .into_iter()
            .zip(&attacks)
            .map(|(t, a)| {
                let sent = t.join().unwrap_or_else(|_| panic!("{} panicked", a.what()));
                (a.what(), check(&fleet, sent))
            })
            .collect()
    });

    for ((what, sent), attack) in outcomes.iter().zip(&attacks) {
        assert!(
            sent.end.by_far_end(),
            "{what}: the sidecar did not end the connection: {sent:?}"
        );
        assert!(sent.written > 0, "{what}: nothing was sent: {sent:?}");
        let Some(local) = sent.local.clone() else {
            panic!("{what}: no local address: {sent:?}");
        };
        // Never a session: no `200`; at most an error status, an HTTP error or a TLS alert.
        match attack.port {
            Port::MeshTls => {
                let text = sent.head_text();
                assert!(sent.tls, "{what}: the bytes must travel inside TLS");
                assert!(
                    text.is_empty() || (text.len() == 4 && text.starts_with('5')),
                    "{what}: answered {text:?}"
                );
            }
            Port::Local => assert!(sent.head.is_empty(), "{what}: {}", sent.head_text()),
            Port::Admin => assert!(
                sent.head.is_empty() || sent.head_text().starts_with("HTTP/1.1 4"),
                "{what}: {}",
                sent.head_text()
            ),
            // A TLS alert record has content type 21.
            Port::MeshRaw => assert!(
                sent.head.first().is_none_or(|b| *b == 21),
                "{what}: {:?}",
                sent.head
            ),
        }
        until(
            &fleet,
            &format!("{what}: a log line naming {local}"),
            || {
                let log = fleet.pod(TARGET)?.sidecar.log();
                Ok(log
                    .lines()
                    .any(|l| {
                        l.contains(&local) && attack.port.problems().iter().any(|p| l.contains(p))
                    })
                    .then_some(()))
            },
        );
    }

    // The process survived, its sessions were never disturbed, it is Ready, the traffic flows
    // and nothing was lost.
    let target = check(&fleet, fleet.pod(TARGET));
    assert_eq!(target.sidecar.pid(), pid);
    let alive = check(&fleet, fleet.network().pids(TARGET));
    assert!(
        pid.is_some_and(|p| alive.contains(&p)),
        "{TARGET}'s sidecar {pid:?} is gone (alive: {alive:?})\n{}",
        fleet.logs()
    );
    assert_eq!(
        sessions(&fleet),
        before,
        "{TARGET}'s sessions were disturbed"
    );
    ready(&fleet);
    flowing(&fleet, &workload);
    nothing_lost(&fleet, workload);
}
