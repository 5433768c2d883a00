//! What the pod-lifecycle scenarios (replace, rollout, scale) read from a fleet: HAProxy worker
//! pids, the address a session comes from, the projected ConfigMap and Secret volumes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use haproxy_peers_e2e::probe::AdminSnapshot;
use haproxy_peers_e2e::projection::current;
use haproxy_peers_e2e::Fleet;
use haproxy_peers_members::Members;
use haproxy_peers_sidecar::admin::views::PeerRole;

use crate::support::{check, until};

/// The fleet's pods but `except`.
pub fn others(fleet: &Fleet, except: &[&str]) -> Vec<String> {
    fleet
        .pod_names()
        .into_iter()
        .filter(|n| !except.contains(&n.as_str()))
        .collect()
}

/// The current HAProxy worker pid of each of `pods`: a reload or a restart changes it.
pub fn workers(fleet: &Fleet, pods: &[String]) -> Vec<u32> {
    pods.iter()
        .map(|n| check(fleet, fleet.pod(n).and_then(|p| Ok(p.runtime().pid()?))))
        .collect()
}

/// Waits until `pod`'s sidecar has an established session with `member` coming from (or going
/// to) `ip`.
pub fn session_from(fleet: &Fleet, pod: &str, member: &str, ip: Ipv4Addr) {
    let prefix = format!("{ip}:");
    until(
        fleet,
        &format!("{pod}'s session with {member} at {ip}"),
        || {
            let snap = fleet.admin(pod)?;
            let at_ip = snap.peers.iter().flat_map(|p| &p.peers).any(|p| {
                p.name == member
                    && p.remote_addr
                        .as_deref()
                        .is_some_and(|a| a.starts_with(&prefix))
            });
            let established = snap.established_members().iter().any(|m| m == member);
            Ok((at_ip && established).then_some(()))
        },
    );
}

/// The members listed in `pod`'s projected members.yaml.
pub fn members_yaml(fleet: &Fleet, pod: &str) -> Vec<String> {
    let dir = check(fleet, fleet.pod(pod)).config_dir();
    let files = check(fleet, current(&dir)).unwrap_or_default();
    let text = files
        .get("members.yaml")
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let members = check(fleet, Members::from_yaml(&text));
    members.members.into_iter().map(|m| m.name).collect()
}

/// The files of `pod`'s projected Secret volume (the group's TLS Secret).
pub fn tls_files(fleet: &Fleet, pod: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = check(fleet, fleet.pod(pod)).tls_dir();
    check(fleet, current(&dir)).unwrap_or_default()
}

/// The members `snap`'s sidecar lists in `/peers`, in any state.
pub fn listed_members(snap: &AdminSnapshot) -> Vec<String> {
    snap.peers
        .iter()
        .flat_map(|p| &p.peers)
        .filter(|p| p.role == PeerRole::Member)
        .map(|p| p.name.clone())
        .collect()
}
