//! The state every mesh task shares: the replica and the peer records under one lock (a std
//! mutex, never held across an await), plus what does not change after start-up.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use haproxy_peers_members::Members;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin::readiness::{HaproxyLink, Lesson, Probe};
use crate::admin::views::{Direction, LastStatus, PeerRole, ReplicaSync, SessionState};
use crate::metrics::Metrics;
use crate::session::{self, Role, Session, SessionConfig, Timers};
use crate::store::Link;
use crate::store::{Replica, ReplicaConfig};
use crate::tls::TlsWatch;

use super::backoff::Jitter;
use super::clock::Clock;
use super::learning::{Action, Candidate, Learner};
use super::peers::{Live, Peer, PeerKey, SessionId};

/// Settings fixed for the life of the process.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub pod: String,
    pub local_listen: SocketAddr,
    pub haproxy_addr: SocketAddr,
    pub mesh_port: u16,
    pub tls: bool,
    pub members_path: PathBuf,
    pub max_entries: u64,
    pub timers: Timers,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Core {
    pub replica: Replica,
    /// The local HAProxy (its peer name is the pod name).
    pub local: Peer,
    /// Every other member of `members.yaml`, by name.
    pub members: BTreeMap<String, Peer>,
    /// The `members.yaml` in force.
    pub roster: Members,
    /// Why the file on disk is not in force (reported once).
    pub roster_error: Option<String>,
    /// This pod is listed in it.
    pub self_member: bool,
    pub learner: Learner,
    /// What dialing HAProxy's own listener showed, while HAProxy has not called.
    pub probe: Option<Probe>,
    /// HAProxy connections accepted whose hello is still being read.
    pub local_handshakes: u32,
    /// When HAProxy last opened a connection to us.
    pub last_local_call: Option<u64>,
    /// The local session a new HAProxy call replaced, while its task reads what the old
    /// process sent before it closed (a reload's old worker: its last pushes must not be lost).
    pub local_draining: Option<Live>,
    pub rng: Jitter,
    next_id: SessionId,
}

/// The replica, one peer record and the random source, borrowed together.
pub(crate) struct Parts<'a> {
    pub replica: &'a mut Replica,
    pub peer: &'a mut Peer,
    pub rng: &'a mut Jitter,
}

/// A handshake that succeeded and wants a session.
#[derive(Debug, Clone)]
pub(crate) struct NewSession {
    pub key: PeerKey,
    pub direction: Direction,
    pub pid: Option<u32>,
    pub remote_addr: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterError {
    /// The peer left `members.yaml` meanwhile.
    Gone,
    /// We dialed, but the peer called us meanwhile: that session stays (HAProxy: an outgoing
    /// attempt that sees it was replaced abandons itself).
    Superseded,
    /// The replica cannot name one more peer.
    TooManyPeers,
}

impl Core {
    pub(crate) fn new(settings: &Settings, roster: Members, now: u64) -> Core {
        let replica = Replica::new(ReplicaConfig {
            max_entries_per_table: usize::try_from(settings.max_entries).unwrap_or(usize::MAX),
            ..ReplicaConfig::default()
        });
        let timeout = u64::from(roster.resync_timeout_seconds).saturating_mul(1_000);
        let mut core = Core {
            replica,
            local: Peer::new(
                &settings.pod,
                PeerRole::Haproxy,
                settings.haproxy_addr.to_string(),
            ),
            members: BTreeMap::new(),
            self_member: false,
            learner: Learner::new(timeout),
            probe: None,
            local_handshakes: 0,
            last_local_call: None,
            local_draining: None,
            rng: Jitter::new(),
            next_id: 1,
            roster,
            roster_error: None,
        };
        core.self_member = core.roster.member(&settings.pod).is_some();
        if core.self_member {
            core.learner.start(now);
        }
        core
    }

    pub(crate) fn peer_mut(&mut self, key: &PeerKey) -> Option<&mut Peer> {
        match key {
            PeerKey::Local => Some(&mut self.local),
            PeerKey::Member(name) => self.members.get_mut(name),
        }
    }

    pub(crate) fn parts(&mut self, key: &PeerKey) -> Option<Parts<'_>> {
        let peer = match key {
            PeerKey::Local => &mut self.local,
            PeerKey::Member(name) => self.members.get_mut(name)?,
        };
        Some(Parts {
            replica: &mut self.replica,
            peer,
            rng: &mut self.rng,
        })
    }

    /// Every peer record, the local HAProxy first.
    pub(crate) fn all_peers(&self) -> impl Iterator<Item = &Peer> {
        std::iter::once(&self.local).chain(self.members.values())
    }

    /// Changes when the replica's content does (tables or sequence numbers).
    pub(crate) fn replica_mark(&self) -> (usize, u64) {
        let heads = self
            .replica
            .tables()
            .map(|t| self.replica.head(t))
            .fold(0u64, u64::wrapping_add);
        (self.replica.tables().count(), heads)
    }

    /// Wakes every session task but `except`: the replica changed under them.
    pub(crate) fn kick_others(&self, except: SessionId) {
        for live in self.all_peers().filter_map(|p| p.live.as_ref()) {
            if live.id != except {
                live.kick.notify_one();
            }
        }
    }

    /// Creates the session for a completed handshake, resolving collisions as HAProxy does
    /// (§2.5): a newer incoming session replaces the existing one, whose dialer then waits
    /// 50–2050 ms; a dialed one arriving second gives way.
    pub(crate) fn register(
        &mut self,
        new: &NewSession,
        timers: Timers,
        now: u64,
        metrics: &Metrics,
    ) -> Result<(SessionId, Arc<Notify>), RegisterError> {
        let id = self.next_id;
        let mut replaced = None;
        let Parts { replica, peer, rng } = self.parts(&new.key).ok_or(RegisterError::Gone)?;
        if let Some(old) = &peer.live {
            if new.direction == Direction::Outbound {
                return Err(RegisterError::Superseded);
            }
            let what = match new.key {
                PeerKey::Local => format!(
                    "HAProxy (pid {}) called again while its session (pid {}) was open",
                    show_pid(new.pid),
                    show_pid(old.session.remote_pid())
                ),
                PeerKey::Member(_) => format!(
                    "{} called again while a session with it was established",
                    peer.name
                ),
            };
            tracing::info!(
                peer = %peer.name,
                "{what}: the new session replaces the old one (collision, as HAProxy resolves it)"
            );
            peer.collisions = peer.collisions.saturating_add(1);
            metrics.collision(&peer.name);
            replaced = peer.retire(now, metrics);
            peer.next_dial_at = now.saturating_add(rng.collision_delay());
        }
        let role = match new.key {
            PeerKey::Local => Role::LocalHaproxy,
            PeerKey::Member(_) => Role::Mesh,
        };
        let direction = match new.direction {
            Direction::Inbound => session::Direction::Incoming,
            Direction::Outbound => session::Direction::Outgoing,
        };
        let session = Session::new(
            SessionConfig {
                role,
                direction,
                remote_name: peer.name.clone(),
                remote_pid: new.pid,
                timers,
            },
            replica,
            now,
        )
        .ok_or(RegisterError::TooManyPeers)?;
        let kick = Arc::new(Notify::new());
        peer.live = Some(Live {
            id,
            seen: session.stats(),
            session,
            direction: new.direction,
            remote_addr: new.remote_addr,
            kick: Arc::clone(&kick),
            lesson: Lesson::NotStarted,
            teach_base: 0,
            teach_total: 0,
        });
        peer.last_status = LastStatus::Esta;
        peer.last_handshake_at = Some(now);
        if new.pid.is_some() || new.direction == Direction::Outbound {
            peer.pid = new.pid;
        }
        peer.closed_at = None;
        peer.set_state(SessionState::Established, metrics);
        self.next_id = id.saturating_add(1);
        if new.key == PeerKey::Local {
            self.probe = None;
            if replaced.is_some() {
                self.local_draining = replaced;
            }
        }
        self.coordinate(now);
        Ok((id, kick))
    }

    /// Established sessions with other members, by name.
    pub(crate) fn candidates(&self) -> Vec<Candidate> {
        self.members
            .values()
            .filter_map(|p| {
                p.live.as_ref().map(|l| Candidate {
                    peer: p.name.clone(),
                    session: l.id,
                    progress: l.session.learn_progress(),
                })
            })
            .collect()
    }

    /// Runs the learning decision and carries it out (docs/sidecar.md "The mesh").
    pub(crate) fn coordinate(&mut self, now: u64) {
        if !self.self_member {
            return;
        }
        let was_done = self.learner.is_done();
        let candidates = self.candidates();
        let actions = self.learner.decide(
            now,
            self.replica.is_complete(),
            self.members.len(),
            &candidates,
        );
        for action in actions {
            match action {
                Action::Ask { peer, session } => {
                    if let Some(live) = self
                        .members
                        .get_mut(&peer)
                        .and_then(|p| p.live_mut(session))
                    {
                        live.session.request_lesson();
                        live.kick.notify_one();
                        tracing::info!(%peer, "asking {peer} for the whole table (lesson)");
                    }
                }
                Action::Complete => self.replica.set_complete(true),
                Action::Aborted { peer } => tracing::warn!(
                    %peer,
                    "the lesson from {peer} ended with its session: asking another member"
                ),
            }
        }
        if !was_done && self.learner.is_done() {
            match self.learner.view(now, &candidates) {
                ReplicaSync::Learned { from } => {
                    tracing::info!(%from, "learned the whole table from {from}: replica complete")
                }
                ReplicaSync::NoRemote => tracing::info!(
                    "no other member in members.yaml: the replica is complete as it is"
                ),
                ReplicaSync::TimedOut => tracing::warn!(
                    timeout_s = self.roster.resync_timeout_seconds,
                    "no complete lesson from any member within the group's resync timeout \
                     ({} s): the replica counts as complete with what it holds",
                    self.roster.resync_timeout_seconds
                ),
                _ => {}
            }
        }
    }

    /// The HAProxy link as readiness sees it.
    pub(crate) fn haproxy_link(&self, now: u64) -> HaproxyLink {
        let local = &self.local;
        match (&local.live, local.closed_at) {
            (Some(live), _) => {
                let lesson = match live.lesson {
                    Lesson::Sending { total, .. } => Lesson::Sending {
                        sent: live
                            .session
                            .stats()
                            .updates_sent
                            .saturating_sub(live.teach_base),
                        total,
                    },
                    Lesson::Confirmed
                        if self.replica.is_complete() && !self.replica.caught_up(Link::Local) =>
                    {
                        Lesson::CatchingUp
                    }
                    other => other,
                };
                HaproxyLink::Connected {
                    // A session we dialed has no pid (HAProxy's status line carries none).
                    pid: live.session.remote_pid().unwrap_or(0),
                    lesson,
                }
            }
            (None, Some(at)) => HaproxyLink::Disconnected {
                pid: local.pid.unwrap_or(0),
                ms_ago: now.saturating_sub(at),
            },
            (None, None) => HaproxyLink::NeverConnected { probe: self.probe },
        }
    }
}

fn show_pid(pid: Option<u32>) -> String {
    pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
}

/// Counts running tasks so that shutdown can wait for them.
#[derive(Debug, Default)]
pub(crate) struct Tasks {
    running: AtomicUsize,
    idle: Notify,
}

struct TaskGuard(Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.tasks.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tasks.idle.notify_waiters();
        }
    }
}

/// Shared by every task of the runtime.
#[derive(Debug)]
pub(crate) struct Shared {
    core: Mutex<Core>,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// The mesh TLS configs (`None`: `tls: false`).
    pub tls: Option<TlsWatch>,
    pub shutdown: CancellationToken,
    tasks: Tasks,
}

impl Shared {
    pub(crate) fn new(
        settings: Settings,
        roster: Members,
        metrics: Arc<Metrics>,
        tls: Option<TlsWatch>,
    ) -> Arc<Shared> {
        let clock = Clock::new();
        let core = Core::new(&settings, roster, clock.now());
        metrics.session_state(&settings.pod, PeerRole::Haproxy, SessionState::Idle);
        Arc::new(Shared {
            core: Mutex::new(core),
            clock,
            metrics,
            settings,
            tls,
            shutdown: CancellationToken::new(),
            tasks: Tasks::default(),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spawns a task that shutdown waits for.
    pub(crate) fn spawn<F>(self: &Arc<Self>, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.running.fetch_add(1, Ordering::AcqRel);
        let guard = TaskGuard(Arc::clone(self));
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
    }

    /// Waits until every spawned task has ended, at most `within`; false on timeout.
    pub(crate) async fn wait_tasks(&self, within: Duration) -> bool {
        let all_done = async {
            loop {
                let idle = self.tasks.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.tasks.running.load(Ordering::Acquire) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(within, all_done).await.is_ok()
    }

    /// Ends `key`'s session `id` if it is still current (the caller says why in the log).
    pub(crate) fn retire(&self, key: &PeerKey, id: SessionId) {
        let now = self.clock.now();
        let mut core = self.lock();
        if let Some(peer) = core.peer_mut(key) {
            if peer.live.as_ref().is_some_and(|l| l.id == id) {
                peer.retire(now, &self.metrics);
            }
        }
        core.coordinate(now);
    }
}
