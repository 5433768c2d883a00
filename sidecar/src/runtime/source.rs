//! The admin server's view of the running sidecar: snapshots taken under the state lock, and
//! the readiness facts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use haproxy_peers_members::Policy;

use crate::admin::readiness::{evaluate, Facts, TlsState};
use crate::admin::views::{
    LookupError, PeerRole, PeerView, PeersView, Readiness, SyncEvent, SyncOutcome, TablePolicy,
    TableView, TablesView,
};
use crate::admin::AdminSource;
use crate::config::membership_problem;
use crate::mesh::peers::Peer;
use crate::mesh::{Core, Shared};
use crate::metrics::Metrics;
use crate::store::{self, LOCAL_LABEL};
use crate::tls::TlsReloader;

use super::convert;

pub(crate) struct Source {
    shared: Arc<Shared>,
    tls: Option<Arc<TlsReloader>>,
    /// Counter values already passed to the metrics (table counters, TLS reloads).
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    evictions: HashMap<String, u64>,
    stale_rejected: HashMap<String, u64>,
    untaught_ignored: HashMap<String, u64>,
    tls_published: u64,
    tls_rejected: u64,
}

impl Source {
    pub(crate) fn new(shared: Arc<Shared>, tls: Option<Arc<TlsReloader>>) -> Source {
        Source {
            shared,
            tls,
            seen: Mutex::new(Seen::default()),
        }
    }

    /// Everything readiness depends on, now.
    pub(crate) fn facts(&self) -> Facts {
        let settings = &self.shared.settings;
        let now = self.shared.clock.now();
        let core = self.shared.lock();
        Facts {
            pod: settings.pod.clone(),
            local_listen: settings.local_listen,
            haproxy_addr: settings.haproxy_addr,
            haproxy: core.haproxy_link(now),
            replica: core.learner.view(now, &core.candidates()),
            tls: self.tls_state(),
            membership: membership_problem(&core.roster, &settings.pod),
        }
    }

    fn tls_state(&self) -> TlsState {
        match (&self.shared.tls, &self.tls) {
            (None, _) => TlsState::Disabled,
            (Some(watch), _) if watch.current().is_some() => TlsState::Loaded,
            (Some(_), reloader) => TlsState::NotLoaded {
                reason: reloader
                    .as_ref()
                    .and_then(|r| r.last_error())
                    .map_or_else(|| "not read yet".to_owned(), |e| e.to_string()),
            },
        }
    }

    fn policy(core: &Core, table: &str) -> TablePolicy {
        match core.roster.policy_for(table) {
            Policy::Replicate => TablePolicy::Replicate,
            Policy::Ignore => TablePolicy::Ignore,
        }
    }

    fn peer_view(
        &self,
        p: &Peer,
        now: u64,
        pointers: &[store::PointerView],
        tables: &[store::TableView],
    ) -> PeerView {
        let live = p.live.as_ref();
        let ago = |at: u64| now.saturating_sub(at);
        let (label, address) = match p.role {
            PeerRole::Haproxy => (LOCAL_LABEL.to_owned(), p.address.clone()),
            PeerRole::Member => (
                p.name.clone(),
                format!("{}:{}", p.address, self.shared.settings.mesh_port),
            ),
        };
        let last_sync = p.last_sync.map(|m| {
            let entries = match (m.outcome, live.and_then(|l| l.session.learn_progress())) {
                (SyncOutcome::InProgress, Some(progress)) => progress.entries,
                _ => m.entries,
            };
            SyncEvent {
                kind: m.kind,
                outcome: m.outcome,
                entries,
                ms_ago: ago(m.at),
            }
        });
        PeerView {
            name: p.name.clone(),
            role: p.role,
            state: p.state,
            direction: live.map(|l| l.direction),
            address,
            remote_addr: live.and_then(|l| l.remote_addr).map(|a| a.to_string()),
            pid: live.map_or(p.pid, |l| l.session.remote_pid()),
            last_status: p.last_status,
            last_handshake_ms_ago: p.last_handshake_at.map(ago),
            last_message_ms_ago: live
                .map(|l| l.session.last_received())
                .or(p.last_message_at)
                .map(ago),
            last_sync,
            heartbeats_tx: p.heartbeats_tx,
            heartbeats_rx: p.heartbeats_rx,
            silent_closes: p.silent_closes,
            reconnects: p.reconnects,
            protocol_errors: p.protocol_errors,
            collisions: p.collisions,
            last_error: p.last_error.clone(),
            tables: convert::peer_tables(&label, pointers, tables),
        }
    }
}

impl AdminSource for Source {
    fn peers(&self) -> PeersView {
        let now = self.shared.clock.now();
        let core = self.shared.lock();
        let pointers = core.replica.pointers_view();
        let tables = core.replica.tables_view();
        PeersView {
            pod: self.shared.settings.pod.clone(),
            group: format!("{}/{}", core.roster.namespace, core.roster.group),
            peers_section: core.roster.peers_section.clone(),
            replica: core.learner.view(now, &core.candidates()),
            peers: core
                .all_peers()
                .map(|p| self.peer_view(p, now, &pointers, &tables))
                .collect(),
        }
    }

    fn tables(&self) -> TablesView {
        let core = self.shared.lock();
        let max = self.shared.settings.max_entries;
        TablesView {
            tables: core
                .replica
                .tables_view()
                .iter()
                .map(|t| convert::summary(t, Self::policy(&core, &t.name), max))
                .collect(),
        }
    }

    fn table(&self, name: &str, key: Option<&str>) -> Result<TableView, LookupError> {
        let now = self.shared.clock.now();
        let core = self.shared.lock();
        let views = core.replica.tables_view();
        let Some(view) = views.iter().find(|t| t.name == name) else {
            return Err(LookupError::NoSuchTable {
                name: name.to_owned(),
                known: views.iter().map(|t| t.name.clone()).collect(),
            });
        };
        let table = convert::summary(
            view,
            Self::policy(&core, name),
            self.shared.settings.max_entries,
        );
        let Some(text) = key else {
            return Ok(TableView { table, entry: None });
        };
        let parsed =
            convert::parse_key(&view.definition, text).map_err(|reason| LookupError::BadKey {
                table: name.to_owned(),
                key: text.to_owned(),
                key_type: view.definition.key_type.name().to_owned(),
                reason,
            })?;
        let entry = core
            .replica
            .lookup(name.as_bytes(), &parsed, now)
            .ok_or_else(|| LookupError::NoSuchKey {
                table: name.to_owned(),
                key: text.to_owned(),
                entries: view.entries as u64,
            })?;
        Ok(TableView {
            table,
            entry: Some(convert::entry(entry)),
        })
    }

    fn readiness(&self) -> Readiness {
        evaluate(&self.facts())
    }

    fn refresh_metrics(&self, metrics: &Metrics) {
        let ready = self.readiness().ready;
        metrics.ready(ready);
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(reloader) = &self.tls {
            let counters = reloader.counters();
            for _ in seen.tls_published..counters.published() {
                metrics.tls_reload(true);
            }
            for _ in seen.tls_rejected..counters.rejected() {
                metrics.tls_reload(false);
            }
            seen.tls_published = counters.published();
            seen.tls_rejected = counters.rejected();
        }
        let core = self.shared.lock();
        for t in core.replica.tables_view() {
            metrics.table_entries(&t.name, t.entries as u64);
            metrics.definition_drift(&t.name, t.drift.len() as u64);
            let new = news(&mut seen.evictions, &t.name, t.stats.evictions);
            if new > 0 {
                metrics.evictions(&t.name, new);
            }
            let new = news(&mut seen.stale_rejected, &t.name, t.stats.stale_rejected);
            if new > 0 {
                metrics.stale_rejected(&t.name, new);
            }
            let new = news(
                &mut seen.untaught_ignored,
                &t.name,
                t.stats.untaught_ignored,
            );
            if new > 0 {
                metrics.untaught_ignored(&t.name, new);
            }
        }
        // Pointers of members that left stay in the replica (a returning member resumes from
        // them) but not in the metrics.
        for p in core.replica.pointers_view() {
            let peer = if p.peer == LOCAL_LABEL {
                self.shared.settings.pod.as_str()
            } else if core.members.contains_key(&p.peer) {
                p.peer.as_str()
            } else {
                continue;
            };
            metrics.replication_lag(peer, &p.table, p.lag);
        }
    }
}

/// How much a table's counter grew since the last call.
fn news(seen: &mut HashMap<String, u64>, table: &str, value: u64) -> u64 {
    let before = seen.insert(table.to_owned(), value);
    value.saturating_sub(before.unwrap_or(0))
}
