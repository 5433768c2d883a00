//! One peer session as a state machine: messages in, [`Output`]s out, deadlines instead of
//! timers. No sockets, no clock: the shell (the mesh) decodes frames with its own
//! [`crate::codec::RxState`], passes each [`Message`] to [`Session::on_message`], calls
//! [`Session::poll`] after every read batch and whenever [`Session::next_deadline`] passes or
//! the replica changed, and writes the [`Output::Send`] bytes in order.
//!
//! Two roles:
//! * [`Role::LocalHaproxy`]: the loopback link to our own HAProxy. We ask it for a lesson
//!   (`00 00`, §7.4: the only way to learn the definitions of idle tables), then teach it the
//!   whole replica whether or not it asked (a restarted HAProxy asks only in its first 5 s,
//!   §7.5): definitions with HAProxy's own names and keys, timed updates `0a 85` only (explicit
//!   ids: 3.3+ mis-acks incremental ones, §4.4), `00 01`/`00 02`. Normal pushes (`0a 80` only)
//!   start after its `00 03`. Its acks are advisory. A new HAProxy process (reload, restart) is
//!   not trusted with entries the replica holds until it confirmed that lesson (`fresh.rs`).
//! * [`Role::Mesh`]: another sidecar. Pushes start at once from the last acknowledged point;
//!   a lesson is requested when the mesh supervisor says so ([`Session::request_lesson`]).
//!
//! Both: every `00 00` is answered with a lesson (no pushes until its `00 03`, acks ignored
//! meanwhile), every `00 01`/`00 02` with `00 03`, received updates are acked per table after
//! each batch, `00 04` after 3 s without sending, and a peer silent for 10 s is dropped (§7.6).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod events;
mod fresh;
mod receive;
mod send;
mod teach;

#[cfg(test)]
mod fresh_tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::codec::{Control, TxState, DEFAULT_MAX_BODY};
use crate::store::{Link, Replica, TableIdx};

pub use events::{CloseKind, CloseReason, Output, SessionEvent, SessionStats};
pub use fresh::Fresh;

use fresh::FreshState;
use teach::Teach;

/// Which kind of peer the session talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    LocalHaproxy,
    Mesh,
}

/// Who opened the connection (for logs and `/peers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We dialed.
    Outgoing,
    /// They dialed.
    Incoming,
}

/// Timeouts (§7.6); the defaults are the ones to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Send `00 04` after this long without sending anything (HAProxy: 3 s).
    pub heartbeat_ms: u64,
    /// Drop a peer silent this long (HAProxy drops after 5–10 s).
    pub liveness_ms: u64,
    /// Local link: how long to wait for HAProxy's lesson before teaching it with the
    /// definitions the replica already has. Counted from the session's start and again from
    /// each definition or update that comes in while the lesson runs: our lesson must be built
    /// on HAProxy's values, or a restarted sidecar would teach HAProxy older values it learned
    /// from members.
    pub local_lesson_wait_ms: u64,
    /// Local link: the longest wait for HAProxy's lesson, however it flows.
    pub local_lesson_max_ms: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            heartbeat_ms: 3_000,
            liveness_ms: 10_000,
            local_lesson_wait_ms: 1_000,
            local_lesson_max_ms: 30_000,
        }
    }
}

/// Largest message body we send: well under HAProxy's 16 KiB buffer, with room for headers.
pub const MAX_SEND_BODY: usize = DEFAULT_MAX_BODY - 1_024;

/// How to start a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub role: Role,
    pub direction: Direction,
    /// The peer's name: HAProxy's local peer name (pod name) on the local link, the member
    /// name on the mesh. Pointers in the replica are kept under it.
    pub remote_name: String,
    /// The pid from the peer's hello line 3, when known (a new pid = a new HAProxy process).
    pub remote_pid: Option<u32>,
    pub timers: Timers,
}

/// Progress of a lesson we asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnProgress {
    /// Updates received since we asked.
    pub entries: u64,
    /// `None` while it runs; then whether it ended with `00 01`. The protocol does not say
    /// how many entries to expect.
    pub complete: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Learn {
    Idle,
    /// Send `00 00` at the next poll.
    Want,
    Waiting {
        entries: u64,
    },
    Done {
        complete: bool,
        entries: u64,
    },
}

/// What we know of one of the peer's tables (by the peer's table id).
#[derive(Debug, Clone, Default)]
struct RxTable {
    /// Our table, if its updates can be stored.
    table: Option<TableIdx>,
    name: String,
    last_id: u32,
    ack_pending: bool,
    refused_reported: bool,
}

/// One peer session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    role: Role,
    direction: Direction,
    remote: String,
    pid: Option<u32>,
    link: Link,
    timers: Timers,
    tx: TxState,
    started: u64,
    last_sent: u64,
    last_received: u64,
    rx_tables: BTreeMap<u64, RxTable>,
    /// Our tables the peer defined (compatibly) in this session.
    defined_here: BTreeSet<TableIdx>,
    controls: Vec<Control>,
    learn: Learn,
    teach: Teach,
    /// A `00 00` came while a lesson was running: teach again after its confirm.
    reteach: bool,
    /// Local link: HAProxy's own lesson (the answer to our `00 00`) is in.
    local_lesson_in: bool,
    /// Local link: when HAProxy's lesson last brought a definition or an update.
    local_lesson_seen: u64,
    /// Local link: HAProxy is a new process (see `fresh.rs`).
    fresh: FreshState,
    /// A lesson of ours was confirmed in this session.
    taught: bool,
    push_from: usize,
    busy: bool,
    closed: bool,
    stats: SessionStats,
}

impl Session {
    /// A session that just completed its handshake at `now`. `None` if the replica cannot name
    /// one more peer (65535 distinct names).
    pub fn new(config: SessionConfig, store: &mut Replica, now: u64) -> Option<Session> {
        let link = match config.role {
            Role::LocalHaproxy => Link::Local,
            Role::Mesh => store.peer(&config.remote_name)?,
        };
        store.begin_session(link);
        let local = config.role == Role::LocalHaproxy;
        let fresh = if local {
            store.local_process(config.remote_pid).map(Fresh::from)
        } else {
            None
        };
        Some(Session {
            role: config.role,
            direction: config.direction,
            remote: config.remote_name,
            pid: config.remote_pid,
            link,
            timers: config.timers,
            tx: TxState::with_max_body(MAX_SEND_BODY),
            started: now,
            last_sent: now,
            last_received: now,
            rx_tables: BTreeMap::new(),
            defined_here: BTreeSet::new(),
            controls: Vec::new(),
            learn: if local { Learn::Want } else { Learn::Idle },
            teach: if local {
                Teach::Pending { asked: false }
            } else {
                Teach::Idle
            },
            reteach: false,
            local_lesson_in: false,
            local_lesson_seen: now,
            fresh: FreshState::new(fresh),
            taught: false,
            push_from: 0,
            busy: false,
            closed: false,
            stats: SessionStats::default(),
        })
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    pub fn remote_name(&self) -> &str {
        &self.remote
    }

    pub fn remote_pid(&self) -> Option<u32> {
        self.pid
    }

    /// The replica link this session feeds and is fed from.
    pub fn link(&self) -> Link {
        self.link
    }

    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Last time a message arrived (for `/peers`).
    pub fn last_received(&self) -> u64 {
        self.last_received
    }

    /// Ask the peer for a lesson (`00 00` at the next poll). The mesh supervisor calls this on
    /// the one session it chose to learn from; the answer comes as
    /// [`SessionEvent::LessonLearned`]. Ignored while a request is outstanding.
    pub fn request_lesson(&mut self) {
        if matches!(self.learn, Learn::Idle | Learn::Done { .. }) {
            self.learn = Learn::Want;
        }
    }

    /// The lesson we asked for on this session, if any.
    pub fn learn_progress(&self) -> Option<LearnProgress> {
        match self.learn {
            Learn::Idle => None,
            Learn::Want => Some(LearnProgress {
                entries: 0,
                complete: None,
            }),
            Learn::Waiting { entries } => Some(LearnProgress {
                entries,
                complete: None,
            }),
            Learn::Done { complete, entries } => Some(LearnProgress {
                entries,
                complete: Some(complete),
            }),
        }
    }

    /// Readiness fact: a lesson of ours was confirmed by this peer in this session (on the local
    /// link: the HAProxy process with [`Session::remote_pid`] holds the replica).
    pub fn taught(&self) -> bool {
        self.taught
    }

    /// Local link: why HAProxy counts as a new process whose updates of entries it was not
    /// taught yet are held back (`None`: it does not, or it confirmed our lesson).
    pub fn fresh(&self) -> Option<Fresh> {
        self.fresh.why
    }

    /// Whether we are teaching or waiting for the confirm of our lesson.
    pub fn teaching(&self) -> bool {
        matches!(
            self.teach,
            Teach::Sending(_) | Teach::AwaitingConfirm { .. }
        )
    }

    /// When to call [`Session::poll`] next at the latest. A value `<= now` means "now" (work is
    /// queued). Changes of the replica by other sessions are not covered: poll on those too.
    pub fn next_deadline(&self) -> u64 {
        if self.closed {
            return u64::MAX;
        }
        let queued = self.busy
            || !self.controls.is_empty()
            || self.learn == Learn::Want
            || self.rx_tables.values().any(|t| t.ack_pending)
            || (matches!(self.teach, Teach::Pending { .. }) && self.may_start_teaching(0));
        if queued {
            return 0;
        }
        let mut at = self
            .last_sent
            .saturating_add(self.timers.heartbeat_ms)
            .min(self.last_received.saturating_add(self.timers.liveness_ms));
        if matches!(self.teach, Teach::Pending { .. }) {
            at = at.min(self.teach_bound());
        }
        at
    }

    fn teach_bound(&self) -> u64 {
        self.started
            .max(self.local_lesson_seen)
            .saturating_add(self.timers.local_lesson_wait_ms)
            .min(self.started.saturating_add(self.timers.local_lesson_max_ms))
    }

    /// Local link: teach once HAProxy's lesson is in (we then know its definitions) or after
    /// the short bound. Mesh: at once.
    fn may_start_teaching(&self, now: u64) -> bool {
        match self.role {
            Role::Mesh => true,
            Role::LocalHaproxy => self.local_lesson_in || now >= self.teach_bound(),
        }
    }

    /// Tables to teach and push to this peer.
    fn relay_tables(&self, store: &Replica) -> Vec<TableIdx> {
        match self.role {
            Role::Mesh => store.relay_tables(self.link),
            // The tables HAProxy defined in this session's lesson; before it came in, those
            // any earlier HAProxy defined, or else every table (a table it does not share is
            // ignored by HAProxy, §7.7).
            Role::LocalHaproxy if self.local_lesson_in => {
                self.defined_here.iter().copied().collect()
            }
            Role::LocalHaproxy => {
                let known = store.relay_tables(Link::Local);
                if known.is_empty() {
                    store.tables().collect()
                } else {
                    known
                }
            }
        }
    }
}
