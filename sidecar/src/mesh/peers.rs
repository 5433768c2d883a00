//! What the mesh knows about each peer (the local HAProxy and every other member): the live
//! session, if any, and the history `/peers` shows. Plain data plus the bookkeeping done when a
//! session ends; the state lock is held by the caller.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::admin::readiness::Lesson;
use crate::admin::views::{Direction, LastStatus, PeerRole, SessionState, SyncKind, SyncOutcome};
use crate::metrics::Metrics;
use crate::session::{Session, SessionStats};

/// Numbers sessions in order of creation, so a task can tell whether the session it drives is
/// still the peer's current one.
pub(crate) type SessionId = u64;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PeerKey {
    /// The pod's own HAProxy.
    Local,
    /// Another member, by name.
    Member(String),
}

/// The current session with a peer.
#[derive(Debug)]
pub(crate) struct Live {
    pub id: SessionId,
    pub session: Session,
    pub direction: Direction,
    pub remote_addr: Option<SocketAddr>,
    /// Wakes the task that drives this session (replica changed, lesson wanted, replaced).
    pub kick: Arc<Notify>,
    /// Counters already folded into the peer record and the metrics.
    pub seen: SessionStats,
    /// Our lesson to this peer (what readiness reports for the local HAProxy).
    pub lesson: Lesson,
    /// `updates_sent` when the current lesson started.
    pub teach_base: u64,
    /// Entries in the replica when the current lesson started.
    pub teach_total: u64,
}

/// The last full resync with a peer, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncMark {
    pub kind: SyncKind,
    pub outcome: SyncOutcome,
    pub entries: u64,
    pub at: u64,
}

#[derive(Debug)]
pub(crate) struct Peer {
    pub name: String,
    pub role: PeerRole,
    /// Where the peer is reached (`<dns name>:<port>`, or HAProxy's listener).
    pub address: String,
    pub state: SessionState,
    pub live: Option<Live>,
    pub last_status: LastStatus,
    pub last_handshake_at: Option<u64>,
    pub last_message_at: Option<u64>,
    pub pid: Option<u32>,
    pub heartbeats_tx: u64,
    pub heartbeats_rx: u64,
    pub silent_closes: u64,
    pub reconnects: u64,
    pub protocol_errors: u64,
    pub collisions: u64,
    pub last_error: Option<String>,
    pub last_sync: Option<SyncMark>,
    pub closed_at: Option<u64>,
    /// The dialer waits until then (collision or lost session: HAProxy's random delay).
    pub next_dial_at: u64,
    /// Stops this member's dialer when it leaves the group.
    pub dialer: Option<CancellationToken>,
}

impl Peer {
    pub(crate) fn new(name: &str, role: PeerRole, address: String) -> Peer {
        Peer {
            name: name.to_owned(),
            role,
            address,
            state: SessionState::Idle,
            live: None,
            last_status: LastStatus::None,
            last_handshake_at: None,
            last_message_at: None,
            pid: None,
            heartbeats_tx: 0,
            heartbeats_rx: 0,
            silent_closes: 0,
            reconnects: 0,
            protocol_errors: 0,
            collisions: 0,
            last_error: None,
            last_sync: None,
            closed_at: None,
            next_dial_at: 0,
            dialer: None,
        }
    }

    pub(crate) fn set_state(&mut self, state: SessionState, metrics: &Metrics) {
        if self.state != state {
            self.state = state;
            metrics.session_state(&self.name, self.role, state);
        }
    }

    /// The live session `id`, if it is still the current one.
    pub(crate) fn live_mut(&mut self, id: SessionId) -> Option<&mut Live> {
        self.live.as_mut().filter(|l| l.id == id)
    }

    /// Folds counters the session gathered since the last call into the record and metrics.
    pub(crate) fn fold_stats(&mut self, metrics: &Metrics) {
        let Some(live) = self.live.as_mut() else {
            return;
        };
        let now = live.session.stats();
        let beats = now
            .heartbeats_sent
            .saturating_sub(live.seen.heartbeats_sent);
        for _ in 0..beats {
            metrics.heartbeat(&self.name, Direction::Outbound);
        }
        self.heartbeats_tx = self.heartbeats_tx.saturating_add(beats);
        live.seen = now;
    }

    /// Ends the current session (whatever the reason; the caller logs it): the driving task is
    /// woken and finds its session gone. Lessons running on it are recorded as aborted.
    pub(crate) fn retire(&mut self, now: u64, metrics: &Metrics) -> Option<Live> {
        self.fold_stats(metrics);
        let live = self.live.take()?;
        live.kick.notify_one();
        self.closed_at = Some(now);
        self.last_message_at = Some(live.session.last_received());
        let learning = live
            .session
            .learn_progress()
            .is_some_and(|p| p.complete.is_none());
        if learning {
            self.mark_sync(SyncKind::Learned, SyncOutcome::Aborted, 0, now, metrics);
        }
        if live.session.teaching() {
            self.mark_sync(SyncKind::Taught, SyncOutcome::Aborted, 0, now, metrics);
        }
        self.set_state(SessionState::Idle, metrics);
        Some(live)
    }

    /// Records a resync start or end (ends are counted in metrics).
    pub(crate) fn mark_sync(
        &mut self,
        kind: SyncKind,
        outcome: SyncOutcome,
        entries: u64,
        now: u64,
        metrics: &Metrics,
    ) {
        if outcome != SyncOutcome::InProgress {
            metrics.resync(&self.name, kind, outcome);
        }
        self.last_sync = Some(SyncMark {
            kind,
            outcome,
            entries,
            at: now,
        });
    }
}
