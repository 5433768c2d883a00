//! Every operation the failure-table scenarios build on does what it says on a live fleet:
//! reload, kill -9 and restart of HAProxy, restart of a sidecar, replacement of a pod with a new
//! IP, scaling up and down, and a certificate rotation from a later operator clock. Each check
//! is the operation's own outcome (new worker, new IP, new member, new certificate) and that
//! the fleet is whole again afterwards; the failure table's scenarios assert more.

use std::time::{Duration, SystemTime};

use haproxy_peers_e2e::haproxy_cfg::RATE_TABLE;
use haproxy_peers_e2e::projection::current;
use haproxy_peers_e2e::{poll, Binaries, Fleet, FleetOptions};
use haproxy_peers_members::Members;
use haproxy_peers_operator::certs::{CertAction, LeafReason};

const READY: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(30);
const DAY: Duration = Duration::from_secs(86_400);

fn start(pods: usize, now: SystemTime) -> Fleet {
    let binaries =
        Binaries::with_probe(env!("CARGO_BIN_EXE_hp-e2e-probe")).unwrap_or_else(|e| panic!("{e}"));
    let mut options = FleetOptions::new(binaries, pods);
    options.now = now;
    let fleet = Fleet::start(options).unwrap_or_else(|e| panic!("{e}"));
    fleet
        .wait_ready(READY)
        .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
    fleet
}

/// Writes `gpc0 = value` for `key` on `writer` and waits until every pod's HAProxy shows it.
fn write_everywhere(fleet: &Fleet, writer: &str, key: &str, value: u64) {
    fleet
        .pod(writer)
        .unwrap()
        .runtime()
        .set_table(RATE_TABLE, key, &[("gpc0", value)])
        .unwrap();
    expect_everywhere(fleet, key, value);
}

fn expect_everywhere(fleet: &Fleet, key: &str, value: u64) {
    for name in fleet.pod_names() {
        let api = fleet.pod(&name).unwrap().runtime();
        poll(&format!("{key}={value} on {name}"), CONVERGE, || {
            Ok(api
                .table_entry(RATE_TABLE, key)
                .ok()
                .flatten()
                .and_then(|e| e.u64("gpc0"))
                .filter(|v| *v == value))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
    }
}

fn ready(fleet: &Fleet) {
    fleet
        .wait_ready(READY)
        .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
}

#[test]
fn reload_kill_restart_and_replace_leave_a_whole_fleet() {
    let mut fleet = start(3, SystemTime::now());
    write_everywhere(&fleet, "edge-0", "before", 1);

    // Soft reload: a new worker, the table kept.
    let old = fleet.pod("edge-1").unwrap().runtime().pid().unwrap();
    let new = fleet.reload_haproxy("edge-1").unwrap();
    assert_ne!(new, old);
    ready(&fleet);
    write_everywhere(&fleet, "edge-1", "after-reload", 2);

    // kill -9 and start: a new master, taught the whole table by its sidecar.
    let old_master = fleet.pod("edge-2").unwrap().haproxy.pid().unwrap();
    fleet.restart_haproxy("edge-2").unwrap();
    assert_ne!(
        fleet.pod("edge-2").unwrap().haproxy.pid().unwrap(),
        old_master
    );
    assert_eq!(fleet.pod("edge-2").unwrap().haproxy.starts(), 2);
    ready(&fleet);
    expect_everywhere(&fleet, "before", 1);
    expect_everywhere(&fleet, "after-reload", 2);

    // The sidecar killed and started: the pod is Ready again and relays its HAProxy's writes.
    fleet.restart_sidecar("edge-0").unwrap();
    assert_eq!(fleet.pod("edge-0").unwrap().sidecar.starts(), 2);
    ready(&fleet);
    write_everywhere(&fleet, "edge-0", "after-sidecar", 3);

    // Replaced with a new IP: the others reconnect to the new address without a reload.
    let workers = |fleet: &Fleet| -> Vec<u32> {
        ["edge-0", "edge-2"]
            .iter()
            .map(|n| fleet.pod(n).unwrap().runtime().pid().unwrap())
            .collect()
    };
    let before = workers(&fleet);
    let old_ip = fleet.pod("edge-1").unwrap().ip();
    fleet.replace_pod("edge-1").unwrap();
    let new_ip = fleet.pod("edge-1").unwrap().ip();
    assert_ne!(new_ip, old_ip);
    ready(&fleet);
    for name in ["edge-0", "edge-2"] {
        poll(
            &format!("{name}'s session with the new edge-1"),
            CONVERGE,
            || {
                let snap = fleet.admin(name)?;
                let peer = snap
                    .peers
                    .iter()
                    .flat_map(|p| &p.peers)
                    .find(|p| p.name == "edge-1")
                    .cloned();
                Ok(peer.filter(|p| {
                    p.remote_addr
                        .as_deref()
                        .is_some_and(|a| a.starts_with(&format!("{new_ip}:")))
                }))
            },
        )
        .unwrap_or_else(|e| panic!("{e}: {:#?}\n{}", fleet.admin(name), fleet.logs()));
    }
    assert_eq!(
        workers(&fleet),
        before,
        "a replacement reloaded another HAProxy"
    );
    expect_everywhere(&fleet, "before", 1);
    write_everywhere(&fleet, "edge-1", "after-replace", 4);
}

#[test]
fn scaling_and_a_later_operator_clock_rotate_members_and_certificates() {
    // Certificates issued 25 days ago: 30-day leaves with 10 days renew-before are due now.
    let real_now = SystemTime::now();
    let mut fleet = start(2, real_now - 25 * DAY);
    let tls_before = current(&fleet.pod("edge-0").unwrap().tls_dir())
        .unwrap()
        .unwrap();

    let rendered = fleet.advance(real_now).unwrap();
    let renewed: Vec<&str> = rendered
        .plan
        .iter()
        .flat_map(|p| &p.actions)
        .filter_map(|a| match a {
            CertAction::IssueLeaf {
                member,
                reason: LeafReason::Renew,
                ..
            } => Some(member.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(renewed, ["edge-0", "edge-1"]);
    for name in fleet.pod_names() {
        let tls = current(&fleet.pod(&name).unwrap().tls_dir())
            .unwrap()
            .unwrap();
        assert_eq!(
            tls["ca.crt"], tls_before["ca.crt"],
            "the CA must not change"
        );
        assert_ne!(tls["edge-0.crt"], tls_before["edge-0.crt"]);
        assert_ne!(tls["edge-1.crt"], tls_before["edge-1.crt"]);
    }
    // New handshakes use the new leaves: a restarted sidecar gets both sessions back.
    fleet.restart_sidecar("edge-1").unwrap();
    ready(&fleet);
    poll(
        "edge-1's sessions on the new certificates",
        CONVERGE,
        || {
            let snap = fleet.admin("edge-1")?;
            Ok((snap.established_members() == ["edge-0"]).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
    write_everywhere(&fleet, "edge-1", "rotated", 1);

    // Scale up: the new member has a certificate, every pod lists it, the others connect to it
    // without a restart, and it is taught the table.
    fleet
        .scale_to(3, real_now + Duration::from_secs(60))
        .unwrap();
    let members = |fleet: &Fleet| {
        let config = current(&fleet.pod("edge-0").unwrap().config_dir())
            .unwrap()
            .unwrap();
        let members =
            Members::from_yaml(&String::from_utf8_lossy(&config["members.yaml"])).unwrap();
        members
            .members
            .iter()
            .map(|m| m.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(members(&fleet), ["edge-0", "edge-1", "edge-2"]);
    let tls = current(&fleet.pod("edge-0").unwrap().tls_dir())
        .unwrap()
        .unwrap();
    assert!(tls.contains_key("edge-2.crt") && tls.contains_key("edge-2.key"));
    ready(&fleet);
    for name in ["edge-0", "edge-1"] {
        poll(&format!("{name} connected to edge-2"), CONVERGE, || {
            let snap = fleet.admin(name)?;
            Ok(snap
                .established_members()
                .contains(&"edge-2".to_string())
                .then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
    }
    expect_everywhere(&fleet, "rotated", 1);

    // Scale down: the member and its certificate are gone, the others drop it.
    fleet
        .scale_to(2, real_now + Duration::from_secs(120))
        .unwrap();
    assert_eq!(members(&fleet), ["edge-0", "edge-1"]);
    let tls = current(&fleet.pod("edge-0").unwrap().tls_dir())
        .unwrap()
        .unwrap();
    assert!(!tls.contains_key("edge-2.crt") && !tls.contains_key("edge-2.key"));
    assert!(fleet.pod("edge-2").is_err());
    for name in ["edge-0", "edge-1"] {
        poll(&format!("{name} to drop edge-2"), CONVERGE, || {
            let snap = fleet.admin(name)?;
            let listed = snap
                .peers
                .iter()
                .flat_map(|p| &p.peers)
                .any(|p| p.name == "edge-2");
            Ok((!listed && snap.is_ready()).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
    }
}
