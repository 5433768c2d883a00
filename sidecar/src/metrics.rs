//! The sidecar's Prometheus metrics: every family registered once, in one [`Metrics`] value the
//! runtime shares (`Arc<Metrics>`) and the admin server encodes on `/metrics`.
//!
//! Label values are bounded: `kind`, `role`, `state`, `outcome` come from enums and
//! `metric_label()` strings in the code; `peer` and `table` come from `members.yaml` and table
//! definitions, and each is capped at [`MAX_NAMES`] distinct values per process (beyond, they
//! are counted under [`OVERFLOW`]) so that a misbehaving peer cannot grow the scrape without
//! bound.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::admin::views::{Direction, PeerRole, SessionState, SyncKind, SyncOutcome};

/// The prefix of every family name.
pub const PREFIX: &str = "haproxy_peers_sidecar";
/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Distinct peer names, and distinct table names, that get their own label value.
pub const MAX_NAMES: usize = 512;
/// The label value that stands for every name past [`MAX_NAMES`].
pub const OVERFLOW: &str = "_overflow";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    peer: String,
    role: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerTable {
    peer: String,
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabel {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResyncLabels {
    peer: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeartbeatLabels {
    peer: String,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// Every metric of the sidecar.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions: Family<SessionLabels, Gauge>,
    updates_received: Family<PeerTable, Counter>,
    updates_sent: Family<PeerTable, Counter>,
    replication_lag: Family<PeerTable, Gauge>,
    table_entries: Family<TableLabel, Gauge>,
    evictions: Family<TableLabel, Counter>,
    stale_rejected: Family<TableLabel, Counter>,
    untaught_ignored: Family<TableLabel, Counter>,
    definition_drift: Family<TableLabel, Gauge>,
    resyncs: Family<ResyncLabels, Counter>,
    heartbeats: Family<HeartbeatLabels, Counter>,
    reconnects: Family<PeerLabel, Counter>,
    collisions: Family<PeerLabel, Counter>,
    errors: Family<KindLabel, Counter>,
    tls_reloads: Family<OutcomeLabel, Counter>,
    ready: Gauge,
    peers: Names,
    tables: Names,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Self {
            sessions: Family::default(),
            updates_received: Family::default(),
            updates_sent: Family::default(),
            replication_lag: Family::default(),
            table_entries: Family::default(),
            evictions: Family::default(),
            stale_rejected: Family::default(),
            untaught_ignored: Family::default(),
            definition_drift: Family::default(),
            resyncs: Family::default(),
            heartbeats: Family::default(),
            reconnects: Family::default(),
            collisions: Family::default(),
            errors: Family::default(),
            tls_reloads: Family::default(),
            ready: Gauge::default(),
            peers: Names::default(),
            tables: Names::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sessions",
            "Peer sessions by state: 1 for the state each peer is in, 0 for the others",
            m.sessions.clone(),
        );
        registry.register(
            "updates_received",
            "Entry updates received, by peer and table",
            m.updates_received.clone(),
        );
        registry.register(
            "updates_sent",
            "Entry updates sent, by peer and table",
            m.updates_sent.clone(),
        );
        registry.register(
            "replication_lag_updates",
            "Changes to a table a peer has not acknowledged yet",
            m.replication_lag.clone(),
        );
        registry.register(
            "table_entries",
            "Entries in the replica, by table",
            m.table_entries.clone(),
        );
        registry.register(
            "evictions",
            "Entries evicted because a table reached --max-entries-per-table",
            m.evictions.clone(),
        );
        registry.register(
            "stale_rejected",
            "Updates from members refused because the entry here was written later (the newer \
             entry was sent back to them)",
            m.stale_rejected.clone(),
        );
        registry.register(
            "untaught_ignored",
            "Updates of a new HAProxy process (reload, restart) not applied because it had not \
             confirmed the sidecar's lesson yet (values it may have counted from zero)",
            m.untaught_ignored.clone(),
        );
        registry.register(
            "table_definition_drift_peers",
            "Peers whose definition of a table differs from the local one (0 = no drift)",
            m.definition_drift.clone(),
        );
        registry.register(
            "resyncs",
            "Full resyncs (lessons) taught to or learned from a peer, by outcome",
            m.resyncs.clone(),
        );
        registry.register(
            "heartbeats",
            "Heartbeats sent (tx) and received (rx), by peer",
            m.heartbeats.clone(),
        );
        registry.register(
            "reconnects",
            "Connection attempts to a peer after the first",
            m.reconnects.clone(),
        );
        registry.register(
            "collisions",
            "Sessions replaced by a newer session with the same peer",
            m.collisions.clone(),
        );
        registry.register(
            "errors",
            "Errors by kind (protocol, TLS, identity, I/O...)",
            m.errors.clone(),
        );
        registry.register(
            "tls_reloads",
            "TLS material reloads: ok (published) or rejected (invalid, previous kept)",
            m.tls_reloads.clone(),
        );
        registry.register(
            "ready",
            "1 when /readyz answers 200, else 0",
            m.ready.clone(),
        );
        registry.register(
            "build",
            "The sidecar's version",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Self { registry, ..m }
    }

    /// Records that `peer` (in `role`) is now in `state`.
    pub fn session_state(&self, peer: &str, role: PeerRole, state: SessionState) {
        let peer = self.peers.label(peer);
        for s in SessionState::ALL {
            let labels = SessionLabels {
                peer: peer.clone(),
                role: role.as_str(),
                state: s.as_str(),
            };
            self.sessions
                .get_or_create(&labels)
                .set(i64::from(s == state));
        }
    }

    /// Drops a peer's session gauges (it left the group).
    pub fn forget_peer(&self, peer: &str, role: PeerRole) {
        let peer = self.peers.label(peer);
        for s in SessionState::ALL {
            self.sessions.remove(&SessionLabels {
                peer: peer.clone(),
                role: role.as_str(),
                state: s.as_str(),
            });
        }
    }

    pub fn update_in(&self, peer: &str, table: &str) {
        self.updates_in(peer, table, 1);
    }

    pub fn update_out(&self, peer: &str, table: &str) {
        self.updates_out(peer, table, 1);
    }

    /// `count` updates of one read batch at once (one label lookup per batch, not per update).
    pub fn updates_in(&self, peer: &str, table: &str, count: u64) {
        self.updates_received
            .get_or_create(&self.peer_table(peer, table))
            .inc_by(count);
    }

    /// `count` updates of one write batch at once.
    pub fn updates_out(&self, peer: &str, table: &str, count: u64) {
        self.updates_sent
            .get_or_create(&self.peer_table(peer, table))
            .inc_by(count);
    }

    /// Drops a peer's lag gauge for `table` (the peer left the group: its pointers no longer
    /// matter).
    pub fn forget_lag(&self, peer: &str, table: &str) {
        self.replication_lag.remove(&self.peer_table(peer, table));
    }

    /// Changes to `table` that `peer` has not acknowledged.
    pub fn replication_lag(&self, peer: &str, table: &str, behind: u64) {
        self.replication_lag
            .get_or_create(&self.peer_table(peer, table))
            .set(saturating_i64(behind));
    }

    pub fn table_entries(&self, table: &str, entries: u64) {
        self.table_entries
            .get_or_create(&self.table(table))
            .set(saturating_i64(entries));
    }

    pub fn evictions(&self, table: &str, count: u64) {
        self.evictions
            .get_or_create(&self.table(table))
            .inc_by(count);
    }

    pub fn stale_rejected(&self, table: &str, count: u64) {
        self.stale_rejected
            .get_or_create(&self.table(table))
            .inc_by(count);
    }

    pub fn untaught_ignored(&self, table: &str, count: u64) {
        self.untaught_ignored
            .get_or_create(&self.table(table))
            .inc_by(count);
    }

    /// How many peers define `table` differently from the local definition.
    pub fn definition_drift(&self, table: &str, peers: u64) {
        self.definition_drift
            .get_or_create(&self.table(table))
            .set(saturating_i64(peers));
    }

    pub fn resync(&self, peer: &str, kind: SyncKind, outcome: SyncOutcome) {
        let labels = ResyncLabels {
            peer: self.peers.label(peer),
            kind: kind.as_str(),
            outcome: outcome.as_str(),
        };
        self.resyncs.get_or_create(&labels).inc();
    }

    /// A heartbeat sent to (`Outbound`) or received from (`Inbound`) `peer`.
    pub fn heartbeat(&self, peer: &str, direction: Direction) {
        let labels = HeartbeatLabels {
            peer: self.peers.label(peer),
            direction: match direction {
                Direction::Outbound => "tx",
                Direction::Inbound => "rx",
            },
        };
        self.heartbeats.get_or_create(&labels).inc();
    }

    pub fn reconnect(&self, peer: &str) {
        let labels = PeerLabel {
            peer: self.peers.label(peer),
        };
        self.reconnects.get_or_create(&labels).inc();
    }

    pub fn collision(&self, peer: &str) {
        let labels = PeerLabel {
            peer: self.peers.label(peer),
        };
        self.collisions.get_or_create(&labels).inc();
    }

    /// One error; `kind` is the error's `metric_label()`.
    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// A TLS material reload: published (`true`) or rejected (`false`).
    pub fn tls_reload(&self, published: bool) {
        let outcome = if published { "ok" } else { "rejected" };
        self.tls_reloads
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The OpenMetrics text exposition of every family ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; a label encoder error would leave a partial scrape,
        // which Prometheus rejects loudly rather than misreading.
        if let Err(e) = text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    fn peer_table(&self, peer: &str, table: &str) -> PeerTable {
        PeerTable {
            peer: self.peers.label(peer),
            table: self.tables.label(table),
        }
    }

    fn table(&self, table: &str) -> TableLabel {
        TableLabel {
            table: self.tables.label(table),
        }
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The set of names that have their own label value, up to [`MAX_NAMES`].
#[derive(Debug, Default)]
struct Names(Mutex<HashSet<String>>);

impl Names {
    fn label(&self, name: &str) -> String {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(name) {
            return name.to_string();
        }
        if seen.len() < MAX_NAMES {
            seen.insert(name.to_string());
            return name.to_string();
        }
        OVERFLOW.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_state_is_one_hot() {
        let m = Metrics::new();
        m.session_state("edge-1", PeerRole::Member, SessionState::Connecting);
        m.session_state("edge-1", PeerRole::Member, SessionState::Established);
        let text = m.encode();
        assert!(text.contains(
            "haproxy_peers_sidecar_sessions{peer=\"edge-1\",role=\"member\",state=\"established\"} 1\n"
        ));
        assert!(text.contains(
            "haproxy_peers_sidecar_sessions{peer=\"edge-1\",role=\"member\",state=\"connecting\"} 0\n"
        ));
        m.forget_peer("edge-1", PeerRole::Member);
        assert!(!m.encode().contains("peer=\"edge-1\""));
    }

    #[test]
    fn names_past_the_cap_share_one_label() {
        let m = Metrics::new();
        for i in 0..MAX_NAMES + 10 {
            m.update_in(&format!("p{i}"), "be");
        }
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("haproxy_peers_sidecar_updates_received_total{"))
            .count();
        assert_eq!(series, MAX_NAMES + 1);
        assert!(text.contains(
            "haproxy_peers_sidecar_updates_received_total{peer=\"_overflow\",table=\"be\"} 10\n"
        ));
        // A name seen before the cap keeps its own series.
        m.update_in("p0", "be");
        assert!(text.contains("{peer=\"p0\",table=\"be\"} 1\n"));
        assert!(m.encode().contains("{peer=\"p0\",table=\"be\"} 2\n"));
    }

    #[test]
    fn counters_and_gauges_land_in_their_families() {
        let m = Metrics::new();
        m.update_out("edge-2", "/t1");
        m.update_out("edge-2", "/t1");
        m.updates_in("edge-2", "/t1", 5);
        m.replication_lag("edge-2", "/t1", 7);
        m.replication_lag("edge-3", "/t1", 9);
        m.forget_lag("edge-3", "/t1");
        m.table_entries("/t1", 40_000);
        m.evictions("/t1", 3);
        m.stale_rejected("/t1", 2);
        m.untaught_ignored("/t1", 4);
        m.definition_drift("/t1", 1);
        m.resync("edge-2", SyncKind::Learned, SyncOutcome::Partial);
        m.heartbeat("edge-2", Direction::Outbound);
        m.reconnect("edge-2");
        m.collision("edge-2");
        m.error("protocol");
        m.tls_reload(false);
        m.ready(true);
        let text = m.encode();
        for line in [
            "haproxy_peers_sidecar_updates_sent_total{peer=\"edge-2\",table=\"/t1\"} 2",
            "haproxy_peers_sidecar_updates_received_total{peer=\"edge-2\",table=\"/t1\"} 5",
            "haproxy_peers_sidecar_replication_lag_updates{peer=\"edge-2\",table=\"/t1\"} 7",
            "haproxy_peers_sidecar_table_entries{table=\"/t1\"} 40000",
            "haproxy_peers_sidecar_evictions_total{table=\"/t1\"} 3",
            "haproxy_peers_sidecar_stale_rejected_total{table=\"/t1\"} 2",
            "haproxy_peers_sidecar_untaught_ignored_total{table=\"/t1\"} 4",
            "haproxy_peers_sidecar_table_definition_drift_peers{table=\"/t1\"} 1",
            "haproxy_peers_sidecar_resyncs_total{peer=\"edge-2\",kind=\"learned\",outcome=\"partial\"} 1",
            "haproxy_peers_sidecar_heartbeats_total{peer=\"edge-2\",direction=\"tx\"} 1",
            "haproxy_peers_sidecar_reconnects_total{peer=\"edge-2\"} 1",
            "haproxy_peers_sidecar_collisions_total{peer=\"edge-2\"} 1",
            "haproxy_peers_sidecar_errors_total{kind=\"protocol\"} 1",
            "haproxy_peers_sidecar_tls_reloads_total{outcome=\"rejected\"} 1",
            "haproxy_peers_sidecar_ready 1",
        ] {
            assert!(text.contains(&format!("{line}\n")), "{line} missing in\n{text}");
        }
        assert!(!text.contains("peer=\"edge-3\""), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
