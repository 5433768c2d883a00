//! What a session hands back to the shell that drives it.

use std::fmt;

use bytes::Bytes;

use crate::codec::ErrorMessage;
use crate::store::DriftReport;

use super::Fresh;

/// One thing for the shell to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Bytes to write to the peer (one or more encoded messages).
    Send(Bytes),
    /// Close the connection (after writing what came before).
    Close(CloseReason),
    /// Something to log, count, or feed readiness with.
    Event(SessionEvent),
}

/// Why a session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub kind: CloseKind,
    /// For the log: names the peer and the problem.
    pub message: String,
}

/// Close reasons as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseKind {
    /// Nothing received for the liveness timeout.
    Silent,
    /// The peer sent something malformed (we sent `01 00`).
    ProtocolError,
    /// The peer sent a message over our size limit (we sent `01 01`).
    SizeLimit,
}

impl CloseKind {
    pub fn label(self) -> &'static str {
        match self {
            CloseKind::Silent => "silent",
            CloseKind::ProtocolError => "protocol_error",
            CloseKind::SizeLimit => "size_limit",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Facts for logs, metrics and readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// We sent `00 00`.
    LessonRequested,
    /// We started a lesson (`asked`: the peer sent `00 00`; otherwise we teach unasked, as
    /// towards a new HAProxy process).
    TeachingStarted { asked: bool, tables: usize },
    /// Our lesson is out, ended with `00 01` (`complete`) or `00 02`.
    LessonSent { complete: bool, entries: u64 },
    /// The peer confirmed our lesson with `00 03`. On the local link this is the readiness
    /// fact "the current HAProxy process was taught" (`pid` from its hello).
    LessonConfirmed { pid: Option<u32>, complete: bool },
    /// The lesson we asked for ended (`00 01`: complete; `00 02`: the teacher was not complete
    /// itself, ask another member). `entries`: updates received during it.
    LessonLearned { complete: bool, entries: u64 },
    /// A `00 01`/`00 02` we had not asked for (answered with `00 03`, otherwise ignored).
    UnsolicitedLessonEnd,
    /// Local link: HAProxy (`pid` from its hello) is a new process. Until it confirms our
    /// lesson, its updates of entries the replica holds are not applied: it may have counted
    /// them from zero.
    FreshProcess { pid: Option<u32>, why: Fresh },
    /// Local link: the new process confirmed our lesson; its updates are applied again.
    /// `ignored`: its updates held back meanwhile that differed from the replica (if any, its
    /// table is asked for again).
    FreshTaught { ignored: u64 },
    /// The peer's definition of a table differs from ours (new or changed differences).
    Drift(DriftReport),
    /// A definition the replica cannot hold (its updates are dropped).
    DefinitionRefused { table: String, error: String },
    /// A new authoritative definition changed a table's key: its entries were dropped.
    EntriesDropped { table: String, count: usize },
    /// An update the replica refused (first one per table and session).
    UpdateRefused { table: String, error: String },
    /// A message ignored as HAProxy would (unknown type, no table selected, …).
    Ignored { what: String },
    /// The peer reported an error about what we sent (it closes next).
    PeerError(ErrorMessage),
    /// An entry that cannot be encoded (e.g. over the message size limit): not sent.
    EncodeFailed { table: String, error: String },
}

/// Counters of one session (for `/peers` and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub messages_received: u64,
    pub updates_received: u64,
    /// Received updates that changed the replica.
    pub updates_changed: u64,
    /// Received updates dropped (table not shared, key refused).
    pub updates_dropped: u64,
    pub updates_sent: u64,
    pub acks_sent: u64,
    pub acks_received: u64,
    pub heartbeats_sent: u64,
    pub ignored: u64,
    pub bytes_sent: u64,
    pub lessons_sent: u64,
    pub lessons_learned: u64,
    /// Local link: updates of a new HAProxy process held back because it had not been taught
    /// the entry yet, and that differed from it.
    pub untaught_ignored: u64,
}
