//! What the admin endpoints return: plain snapshots, serialised as JSON by the server and parsed
//! back by the CLI. The runtime fills them from the same state the data path uses; nothing
//! here refers back into that state.
//!
//! Times are ages ("ms ago", "ms left") computed by the runtime from its own `now`, like
//! HAProxy's `last_hdshk=8s`: a snapshot never carries a clock reading the reader would have to
//! compare with its own.

use serde::{Deserialize, Serialize};

/// `/peers`: what HAProxy's `show peers` shows, for the local HAProxy link and every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersView {
    /// This sidecar's peer name (the pod name).
    pub pod: String,
    /// `<namespace>/<PeerGroup name>`.
    pub group: String,
    /// The HAProxy `peers` section name.
    pub peers_section: String,
    /// How far this sidecar's replica is from holding the whole table.
    pub replica: ReplicaSync,
    /// The local HAProxy link first, then the members by name.
    pub peers: Vec<PeerView>,
}

/// The section-level synchronisation state of the replica (HAProxy's section `flags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReplicaSync {
    /// No remote member has a session yet; the resync timeout has `ms_left` to run.
    WaitingForTeacher { ms_left: u64 },
    /// A lesson from `from` is in progress. `expected` is an estimate (HAProxy's own count,
    /// when it taught us first): the protocol does not announce a lesson's size.
    Learning {
        from: String,
        received: u64,
        expected: Option<u64>,
    },
    /// A complete lesson was received from `from`.
    Learned { from: String },
    /// No other member exists: nothing to learn.
    NoRemote,
    /// No complete lesson within the group's resync timeout: the replica holds what it got.
    TimedOut,
}

impl ReplicaSync {
    /// Whether the replica counts as complete for readiness.
    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Learned { .. } | Self::NoRemote | Self::TimedOut)
    }
}

/// One peer of this sidecar: the local HAProxy or a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerView {
    /// Peer name: the member's pod name, or HAProxy's local peer name for the local link.
    pub name: String,
    pub role: PeerRole,
    pub state: SessionState,
    /// Who opened the current session; `None` without one.
    pub direction: Option<Direction>,
    /// Where this peer is reached: the member's DNS name and port, or HAProxy's listener.
    pub address: String,
    /// The remote socket address of the current session.
    pub remote_addr: Option<String>,
    /// The pid in the peer's hello (a new HAProxy pid is a new worker: reload or restart).
    pub pid: Option<u32>,
    pub last_status: LastStatus,
    pub last_handshake_ms_ago: Option<u64>,
    pub last_message_ms_ago: Option<u64>,
    pub last_sync: Option<SyncEvent>,
    pub heartbeats_tx: u64,
    pub heartbeats_rx: u64,
    /// Sessions closed because the peer went silent (`no_hbt`).
    pub silent_closes: u64,
    /// Connection attempts after the first (`new_conn` - 1 for dialed peers).
    pub reconnects: u64,
    pub protocol_errors: u64,
    /// Sessions replaced by a newer one with the same peer (§2.5, `coll`).
    pub collisions: u64,
    /// The last thing that went wrong with this peer, as logged.
    pub last_error: Option<String>,
    pub tables: Vec<PeerTableView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerRole {
    /// The pod's own HAProxy, on loopback.
    Haproxy,
    /// Another sidecar of the group.
    Member,
}

impl PeerRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Haproxy => "haproxy",
            Self::Member => "member",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// No session and none being opened (waiting for the peer to call).
    Idle,
    /// Waiting before the next dial (backoff, or after a collision).
    Backoff,
    /// TCP (and TLS) being set up.
    Connecting,
    /// Hello sent or received, status not yet settled.
    Handshake,
    /// Exchanging messages.
    Established,
}

impl SessionState {
    pub const ALL: [SessionState; 5] = [
        Self::Idle,
        Self::Backoff,
        Self::Connecting,
        Self::Handshake,
        Self::Established,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Backoff => "backoff",
            Self::Connecting => "connecting",
            Self::Handshake => "handshake",
            Self::Established => "established",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The peer called us.
    Inbound,
    /// We called the peer.
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "in",
            Self::Outbound => "out",
        }
    }
}

/// HAProxy's `last_status` vocabulary (§2.3), so both `show peers` read the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LastStatus {
    /// Never tried.
    None,
    /// Connecting.
    Conn,
    /// TCP up, hello sent, no status yet.
    Hshk,
    /// `200`: established.
    Esta,
    /// `300`: try again later.
    Retr,
    /// `501`: protocol error.
    Prot,
    /// `502`: bad version.
    Vers,
    /// `503`: the callee is not the peer named in the hello.
    Name,
    /// `504`: the caller is not a known peer.
    Unkn,
}

impl LastStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Conn => "CONN",
            Self::Hshk => "HSHK",
            Self::Esta => "ESTA",
            Self::Retr => "RETR",
            Self::Prot => "PROT",
            Self::Vers => "VERS",
            Self::Name => "NAME",
            Self::Unkn => "UNKN",
        }
    }
}

/// The last full resync with a peer, either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEvent {
    pub kind: SyncKind,
    pub outcome: SyncOutcome,
    /// Entries sent (taught) or received (learned).
    pub entries: u64,
    /// Since the lesson ended, or since it started while in progress.
    pub ms_ago: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    /// We taught the peer.
    Taught,
    /// We learned from the peer.
    Learned,
}

impl SyncKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Taught => "taught",
            Self::Learned => "learned",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    InProgress,
    /// Ended with `00 01` (finished).
    Complete,
    /// Ended with `00 02` (partial).
    Partial,
    /// The session died mid-lesson.
    Aborted,
    /// The resync timeout passed first.
    TimedOut,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Aborted => "aborted",
            Self::TimedOut => "timed_out",
        }
    }
}

/// Replication pointers for one table with one peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerTableView {
    /// The table's wire name.
    pub table: String,
    /// Last sequence number sent to the peer.
    pub pushed: u64,
    /// Last sequence number the peer acknowledged.
    pub acked: u64,
    /// Changes to this table the peer has not acknowledged yet.
    pub behind: u64,
    /// How the peer's definition of this table differs from ours; `None` when it matches.
    pub drift: Option<String>,
}

/// `/tables`: every table of the replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablesView {
    pub tables: Vec<TableSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSummary {
    pub definition: TableDefinition,
    /// Whose definition this is: `haproxy` (the authority) or the member it was learned from.
    pub defined_by: String,
    pub policy: TablePolicy,
    pub entries: u64,
    /// The memory bound (`--max-entries-per-table`).
    pub max_entries: u64,
    pub evictions: u64,
    /// Updates from members refused because the entry here was written later (the newer
    /// entry was sent back).
    #[serde(default)]
    pub stale_rejected: u64,
    /// Updates of a new HAProxy process (reload, restart) not applied because it had not
    /// confirmed the sidecar's lesson yet (values it may have counted from zero).
    #[serde(default)]
    pub untaught_ignored: u64,
    /// Peers whose definition of this table differs from this one.
    pub drift: Vec<DriftView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TablePolicy {
    Replicate,
    Ignore,
}

impl TablePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Replicate => "replicate",
            Self::Ignore => "ignore",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftView {
    pub peer: String,
    /// What differs, e.g. "expire 30000 ms here, 10000 ms there".
    pub detail: String,
}

/// A table definition as HAProxy declares it (§4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDefinition {
    /// Wire name: `be` for a backend's table, `/t1` for `table t1` in a peers section.
    pub name: String,
    /// `integer`, `ip`, `ipv6`, `string` or `binary`.
    pub key_type: String,
    /// Key length on the wire (string tables: the configured `len` + 1).
    pub key_len: u64,
    pub expire_ms: u64,
    /// In data-type id order, as HAProxy shows them.
    pub data_types: Vec<DataTypeView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataTypeView {
    /// HAProxy's name: `gpc0`, `http_req_rate`, `gpt`, `server_key`…
    pub name: String,
    /// Rate period, for frequency counters.
    pub period_ms: Option<u64>,
    /// Element count, for arrays.
    pub array_size: Option<u64>,
}

/// `/tables/<name>[?key=<k>]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableView {
    pub table: TableSummary,
    /// The entry asked for with `?key=`.
    pub entry: Option<EntryView>,
}

/// One entry, with rates computed at snapshot time as HAProxy does at display time (§6.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryView {
    /// As HAProxy shows it: dotted IPs, unsigned integers, binary in hex.
    pub key: String,
    pub expires_in_ms: u64,
    /// Who wrote the current values: `haproxy` or a member's name.
    pub origin: String,
    /// The table's change counter at the last change of this entry.
    pub seq: u64,
    /// In data-type id order.
    pub values: Vec<DataValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataValue {
    pub name: String,
    #[serde(flatten)]
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Value {
    Signed {
        value: i64,
    },
    Unsigned {
        value: u64,
    },
    /// A frequency counter, as events per period.
    Rate {
        period_ms: u64,
        rate: u64,
    },
    /// A dictionary value (`server_key`).
    Text {
        value: String,
    },
    UnsignedArray {
        values: Vec<u64>,
    },
    RateArray {
        period_ms: u64,
        rates: Vec<u64>,
    },
}

/// `/readyz`: ready, or the named reasons it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub ready: bool,
    pub blockers: Vec<Blocker>,
}

impl Readiness {
    /// Ready exactly when nothing blocks.
    pub fn from_blockers(blockers: Vec<Blocker>) -> Self {
        Self {
            ready: blockers.is_empty(),
            blockers,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocker {
    pub kind: BlockerKind,
    /// What is pending and, where a person can act, what to check.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockerKind {
    /// This pod is not listed in `members.yaml` (yet).
    NotMember,
    /// HAProxy never called the sidecar's loopback listener.
    HaproxyNotConnected,
    /// HAProxy's peers listener refused us or answered 503: its local peer name is wrong.
    HaproxyPeerName,
    /// HAProxy's session ended; the sidecar waits for it to call again.
    HaproxyDisconnected,
    /// The current HAProxy process has not confirmed the sidecar's lesson yet.
    TeachingHaproxy,
    /// Waiting for a remote member to learn from.
    WaitingForTeacher,
    /// A lesson from a remote member is in progress.
    Learning,
    /// This pod's TLS certificate cannot be used yet.
    TlsMaterial,
}

impl BlockerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotMember => "not_member",
            Self::HaproxyNotConnected => "haproxy_not_connected",
            Self::HaproxyPeerName => "haproxy_peer_name",
            Self::HaproxyDisconnected => "haproxy_disconnected",
            Self::TeachingHaproxy => "teaching_haproxy",
            Self::WaitingForTeacher => "waiting_for_teacher",
            Self::Learning => "learning",
            Self::TlsMaterial => "tls_material",
        }
    }
}

/// Why `/tables/<name>` could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no table named {name:?} (tables: {}): use the wire name, e.g. `be` for a backend's table or `/t1` for `table t1` in the peers section", list(.known))]
    NoSuchTable { name: String, known: Vec<String> },
    #[error("{key:?} is not a key of table {table} (key type {key_type}): {reason}")]
    BadKey {
        table: String,
        key: String,
        key_type: String,
        reason: String,
    },
    #[error("table {table} has no entry for key {key:?} ({entries} entries)")]
    NoSuchKey {
        table: String,
        key: String,
        entries: u64,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none yet".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name<T: Serialize>(v: T) -> String {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Text output and metric labels use `as_str`; JSON uses serde: they must agree.
    #[test]
    fn display_names_match_json_names() {
        for k in [
            BlockerKind::NotMember,
            BlockerKind::HaproxyNotConnected,
            BlockerKind::HaproxyPeerName,
            BlockerKind::HaproxyDisconnected,
            BlockerKind::TeachingHaproxy,
            BlockerKind::WaitingForTeacher,
            BlockerKind::Learning,
            BlockerKind::TlsMaterial,
        ] {
            assert_eq!(serde_name(k), k.as_str());
        }
        for s in SessionState::ALL {
            assert_eq!(serde_name(s), s.as_str());
        }
        for r in [PeerRole::Haproxy, PeerRole::Member] {
            assert_eq!(serde_name(r), r.as_str());
        }
        for k in [SyncKind::Taught, SyncKind::Learned] {
            assert_eq!(serde_name(k), k.as_str());
        }
        for o in [
            SyncOutcome::InProgress,
            SyncOutcome::Complete,
            SyncOutcome::Partial,
            SyncOutcome::Aborted,
            SyncOutcome::TimedOut,
        ] {
            assert_eq!(serde_name(o), o.as_str());
        }
        for s in [
            LastStatus::None,
            LastStatus::Conn,
            LastStatus::Hshk,
            LastStatus::Esta,
            LastStatus::Retr,
            LastStatus::Prot,
            LastStatus::Vers,
            LastStatus::Name,
            LastStatus::Unkn,
        ] {
            assert_eq!(serde_name(s), s.as_str());
        }
        for p in [TablePolicy::Replicate, TablePolicy::Ignore] {
            assert_eq!(serde_name(p), p.as_str());
        }
    }

    #[test]
    fn values_round_trip_through_json() {
        let v = DataValue {
            name: "gpc_rate".into(),
            value: Value::RateArray {
                period_ms: 5000,
                rates: vec![1, 2],
            },
        };
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(
            text,
            r#"{"name":"gpc_rate","kind":"rate_array","period_ms":5000,"rates":[1,2]}"#
        );
        assert_eq!(serde_json::from_str::<DataValue>(&text).unwrap(), v);
        let r = ReplicaSync::Learning {
            from: "edge-1".into(),
            received: 3,
            expected: None,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert_eq!(
            text,
            r#"{"state":"learning","from":"edge-1","received":3,"expected":null}"#
        );
        assert_eq!(serde_json::from_str::<ReplicaSync>(&text).unwrap(), r);
    }
}
