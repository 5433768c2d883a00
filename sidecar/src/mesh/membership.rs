//! `members.yaml` as it changes on disk. The kubelet updates a ConfigMap volume by swapping
//! its `..data` symlink, so the file is read again on a timer rather than watched by inode;
//! an accepted change is applied at once: new members are dialed, removed members' sessions
//! closed and their series dropped from the metrics, and this pod's own listing decides
//! whether it takes part in the mesh at all.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use haproxy_peers_members::{Members, Policy};

use crate::admin::views::{PeerRole, SessionState};
use crate::config::{load_members, membership_problem};
use crate::store::MeshPolicy;

use super::dial;
use super::peers::Peer;
use super::state::{Core, Shared};

/// How often the file is read.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// Re-reads `members.yaml` every [`POLL`] until shutdown.
pub(crate) async fn watch(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep(POLL) => {}
        }
        reload_if_changed(&shared);
    }
}

/// Reads the file now and applies it if it differs from the one in force. Returns whether it
/// changed. A file that does not parse is reported once and the previous one stays in force.
pub(crate) fn reload_if_changed(shared: &Arc<Shared>) -> bool {
    let dir = shared
        .settings
        .members_path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let loaded = load_members(&dir);
    let mut core = shared.lock();
    match loaded {
        Err(problem) => {
            if core.roster_error.as_deref() != Some(problem.as_str()) {
                tracing::error!(
                    "{problem}; keeping the previous members.yaml (generation {})",
                    core.roster.generation
                );
                shared.metrics.error("members_yaml");
                core.roster_error = Some(problem);
            }
            false
        }
        Ok(members) if members == core.roster => {
            core.roster_error = None;
            false
        }
        Ok(members) => {
            core.roster_error = None;
            apply(shared, &mut core, members);
            true
        }
    }
}

/// Makes the peer records follow `new` (also used at start-up, with `core.roster` already
/// `new` and no records yet).
pub(crate) fn apply(shared: &Arc<Shared>, core: &mut Core, new: Members) {
    let pod = &shared.settings.pod;
    let now = shared.clock.now();
    let metrics = &shared.metrics;
    let old = std::mem::replace(&mut core.roster, new);
    core.replica.set_mesh_policy(mesh_policy(&core.roster));
    let roster = &core.roster;
    if old.generation != roster.generation {
        tracing::info!(
            generation = roster.generation,
            members = roster.members.len(),
            "members.yaml changed (generation {} -> {})",
            old.generation,
            roster.generation
        );
    }
    if old.ports != roster.ports || old.tls != roster.tls {
        tracing::warn!(
            "members.yaml changed ports or tls; the sidecar keeps the ones it started with \
             (mesh port {}, tls {}): restart the pod to apply them",
            shared.settings.mesh_port,
            shared.settings.tls
        );
    }
    core.learner
        .set_timeout(u64::from(roster.resync_timeout_seconds).saturating_mul(1_000));
    let listed = roster.member(pod).is_some();
    if listed != core.self_member {
        match membership_problem(roster, pod) {
            None => {
                tracing::info!("this pod ({pod}) is now listed in members.yaml: joining the mesh")
            }
            Some(problem) => {
                tracing::warn!("{problem}: leaving the mesh until members.yaml lists it again")
            }
        }
    }
    core.self_member = listed;
    if listed {
        core.learner.start(now);
    }
    let gone: Vec<String> = core
        .members
        .keys()
        .filter(|name| core.roster.member(name).is_none() || *name == pod)
        .cloned()
        .collect();
    let tables: Vec<String> = core
        .replica
        .tables()
        .filter_map(|t| core.replica.definition(t))
        .map(|d| String::from_utf8_lossy(&d.name).into_owned())
        .collect();
    for name in gone {
        if let Some(mut peer) = core.members.remove(&name) {
            if peer.retire(now, metrics).is_some() {
                tracing::info!(peer = %name, "{name} left the group: its session is closed");
            } else {
                tracing::info!(peer = %name, "{name} left the group");
            }
            if let Some(token) = peer.dialer.take() {
                token.cancel();
            }
            metrics.forget_peer(&name, PeerRole::Member);
            for table in &tables {
                metrics.forget_lag(&name, table);
            }
        }
    }
    for m in core.roster.members.clone() {
        if m.name == *pod {
            continue;
        }
        let peer = core.members.entry(m.name.clone()).or_insert_with(|| {
            tracing::info!(peer = %m.name, "{} joined the group ({})", m.name, m.address);
            let mut peer = Peer::new(&m.name, PeerRole::Member, m.address.clone());
            metrics.session_state(&m.name, PeerRole::Member, SessionState::Idle);
            // Spread the first dials of members that start together.
            peer.next_dial_at = now;
            peer
        });
        peer.address = m.address.clone();
        if peer.dialer.is_none() {
            peer.next_dial_at = now.saturating_add(core.rng.below(250));
            peer.dialer = Some(dial::start(shared, &m.name));
        }
    }
    core.coordinate(now);
}

/// members.yaml's table policies in the replica's terms.
fn mesh_policy(roster: &Members) -> MeshPolicy {
    MeshPolicy {
        ignore_by_default: roster.default_policy == Policy::Ignore,
        tables: roster
            .tables
            .iter()
            .map(|t| (Bytes::from(t.name.clone()), t.policy == Policy::Ignore))
            .collect(),
    }
}
