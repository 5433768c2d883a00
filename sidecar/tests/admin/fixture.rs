//! A fleet member's admin state as plain views, standing where the runtime will be, and the
//! admin server started on 127.0.0.1:0 over it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haproxy_peers_sidecar::admin::readiness::{self, Facts, HaproxyLink, Lesson, TlsState};
use haproxy_peers_sidecar::admin::views::*;
use haproxy_peers_sidecar::admin::{self, AdminSource, Limits};
use haproxy_peers_sidecar::metrics::Metrics;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Snapshot {
    pub peers: PeersView,
    pub tables: TablesView,
    pub entries: BTreeMap<(String, String), EntryView>,
    pub facts: Facts,
}

/// The admin source of these tests: snapshots held in a mutex, changed by the test.
pub struct Source(pub Mutex<Snapshot>);

impl Source {
    pub fn set_facts(&self, change: impl FnOnce(&mut Facts)) {
        change(&mut self.0.lock().unwrap().facts);
    }
}

impl AdminSource for Source {
    fn peers(&self) -> PeersView {
        self.0.lock().unwrap().peers.clone()
    }

    fn tables(&self) -> TablesView {
        self.0.lock().unwrap().tables.clone()
    }

    fn table(&self, name: &str, key: Option<&str>) -> Result<TableView, LookupError> {
        let s = self.0.lock().unwrap();
        let table = s
            .tables
            .tables
            .iter()
            .find(|t| t.definition.name == name)
            .cloned()
            .ok_or_else(|| LookupError::NoSuchTable {
                name: name.to_string(),
                known: s
                    .tables
                    .tables
                    .iter()
                    .map(|t| t.definition.name.clone())
                    .collect(),
            })?;
        let Some(key) = key else {
            return Ok(TableView { table, entry: None });
        };
        if table.definition.key_type == "ip" {
            key.parse::<Ipv4Addr>().map_err(|e| LookupError::BadKey {
                table: name.to_string(),
                key: key.to_string(),
                key_type: "ip".into(),
                reason: e.to_string(),
            })?;
        }
        let entry = s
            .entries
            .get(&(name.to_string(), key.to_string()))
            .cloned()
            .ok_or_else(|| LookupError::NoSuchKey {
                table: name.to_string(),
                key: key.to_string(),
                entries: table.entries,
            })?;
        Ok(TableView {
            table,
            entry: Some(entry),
        })
    }

    fn readiness(&self) -> Readiness {
        readiness::evaluate(&self.0.lock().unwrap().facts)
    }

    fn refresh_metrics(&self, metrics: &Metrics) {
        let s = self.0.lock().unwrap();
        for t in &s.tables.tables {
            metrics.table_entries(&t.definition.name, t.entries);
        }
        for p in &s.peers.peers {
            for t in &p.tables {
                metrics.replication_lag(&p.name, &t.table, t.behind);
            }
        }
    }
}

pub fn not_ready_facts() -> Facts {
    Facts {
        pod: "edge-0".into(),
        local_listen: "127.0.0.1:10002".parse().unwrap(),
        haproxy_addr: "127.0.0.1:10001".parse().unwrap(),
        haproxy: HaproxyLink::NeverConnected { probe: None },
        replica: ReplicaSync::Learning {
            from: "edge-1".into(),
            received: 12000,
            expected: Some(40000),
        },
        tls: TlsState::NotLoaded {
            reason: "/etc/haproxy-peers/tls/edge-0.crt: No such file or directory".into(),
        },
        membership: None,
    }
}

pub fn ready(f: &mut Facts) {
    f.haproxy = HaproxyLink::Connected {
        pid: 4242,
        lesson: Lesson::Confirmed,
    };
    f.replica = ReplicaSync::Learned {
        from: "edge-1".into(),
    };
    f.tls = TlsState::Loaded;
}

fn peer(name: &str, role: PeerRole) -> PeerView {
    PeerView {
        name: name.into(),
        role,
        state: SessionState::Idle,
        direction: None,
        address: String::new(),
        remote_addr: None,
        pid: None,
        last_status: LastStatus::None,
        last_handshake_ms_ago: None,
        last_message_ms_ago: None,
        last_sync: None,
        heartbeats_tx: 0,
        heartbeats_rx: 0,
        silent_closes: 0,
        reconnects: 0,
        protocol_errors: 0,
        collisions: 0,
        last_error: None,
        tables: vec![],
    }
}

pub fn peers_view() -> PeersView {
    PeersView {
        pod: "edge-0".into(),
        group: "web/edge".into(),
        peers_section: "edge".into(),
        replica: ReplicaSync::Learning {
            from: "edge-1".into(),
            received: 12000,
            expected: Some(40000),
        },
        peers: vec![
            PeerView {
                state: SessionState::Established,
                direction: Some(Direction::Inbound),
                address: "127.0.0.1:10001".into(),
                remote_addr: Some("127.0.0.1:40312".into()),
                pid: Some(4242),
                last_status: LastStatus::Esta,
                last_handshake_ms_ago: Some(8_200),
                last_message_ms_ago: Some(900),
                last_sync: Some(SyncEvent {
                    kind: SyncKind::Taught,
                    outcome: SyncOutcome::Complete,
                    entries: 40000,
                    ms_ago: 7_000,
                }),
                heartbeats_tx: 2,
                heartbeats_rx: 3,
                tables: vec![PeerTableView {
                    table: "be_rate".into(),
                    pushed: 1200,
                    acked: 1200,
                    behind: 0,
                    drift: None,
                }],
                ..peer("edge-0", PeerRole::Haproxy)
            },
            PeerView {
                state: SessionState::Established,
                direction: Some(Direction::Outbound),
                address: "edge-1.edge-peers.web.svc:10000".into(),
                remote_addr: Some("10.0.3.7:10000".into()),
                pid: Some(1),
                last_status: LastStatus::Esta,
                last_handshake_ms_ago: Some(65_000),
                last_message_ms_ago: Some(1_200),
                last_sync: Some(SyncEvent {
                    kind: SyncKind::Learned,
                    outcome: SyncOutcome::InProgress,
                    entries: 12000,
                    ms_ago: 3_000,
                }),
                heartbeats_tx: 20,
                heartbeats_rx: 21,
                reconnects: 1,
                collisions: 1,
                tables: vec![
                    PeerTableView {
                        table: "be_rate".into(),
                        pushed: 1200,
                        acked: 1190,
                        behind: 10,
                        drift: None,
                    },
                    PeerTableView {
                        table: "/t1".into(),
                        pushed: 5,
                        acked: 5,
                        behind: 0,
                        drift: Some("expire 30000 ms here, 10000 ms there".into()),
                    },
                ],
                ..peer("edge-1", PeerRole::Member)
            },
            PeerView {
                state: SessionState::Backoff,
                address: "edge-2.edge-peers.web.svc:10000".into(),
                last_status: LastStatus::Hshk,
                reconnects: 4,
                protocol_errors: 1,
                last_error: Some(
                    "edge-2 claimed name edge-9 but its certificate is for edge-2".into(),
                ),
                ..peer("edge-2", PeerRole::Member)
            },
        ],
    }
}

pub fn tables_view() -> TablesView {
    TablesView {
        tables: vec![
            TableSummary {
                definition: TableDefinition {
                    name: "be_rate".into(),
                    key_type: "ip".into(),
                    key_len: 4,
                    expire_ms: 1_800_000,
                    data_types: vec![
                        DataTypeView {
                            name: "gpc0".into(),
                            period_ms: None,
                            array_size: None,
                        },
                        DataTypeView {
                            name: "http_req_rate".into(),
                            period_ms: Some(10_000),
                            array_size: None,
                        },
                        DataTypeView {
                            name: "gpt".into(),
                            period_ms: None,
                            array_size: Some(2),
                        },
                    ],
                },
                defined_by: "haproxy".into(),
                policy: TablePolicy::Replicate,
                entries: 40000,
                max_entries: 1_000_000,
                evictions: 0,
                stale_rejected: 0,
                untaught_ignored: 0,
                drift: vec![],
            },
            TableSummary {
                definition: TableDefinition {
                    name: "/t1".into(),
                    key_type: "string".into(),
                    key_len: 33,
                    expire_ms: 30_000,
                    data_types: vec![DataTypeView {
                        name: "server_key".into(),
                        period_ms: None,
                        array_size: None,
                    }],
                },
                defined_by: "haproxy".into(),
                policy: TablePolicy::Replicate,
                entries: 2,
                max_entries: 1_000_000,
                evictions: 3,
                stale_rejected: 5,
                untaught_ignored: 2,
                drift: vec![DriftView {
                    peer: "edge-1".into(),
                    detail: "expire 30000 ms here, 10000 ms there".into(),
                }],
            },
        ],
    }
}

pub fn entries() -> BTreeMap<(String, String), EntryView> {
    let mut m = BTreeMap::new();
    m.insert(
        ("be_rate".into(), "10.0.0.1".into()),
        EntryView {
            key: "10.0.0.1".into(),
            expires_in_ms: 1_799_000,
            origin: "edge-1".into(),
            seq: 1201,
            values: vec![
                DataValue {
                    name: "gpc0".into(),
                    value: Value::Unsigned { value: 42 },
                },
                DataValue {
                    name: "http_req_rate".into(),
                    value: Value::Rate {
                        period_ms: 10_000,
                        rate: 9,
                    },
                },
                DataValue {
                    name: "gpt".into(),
                    value: Value::UnsignedArray { values: vec![1, 2] },
                },
            ],
        },
    );
    m.insert(
        ("/t1".into(), "user 7".into()),
        EntryView {
            key: "user 7".into(),
            expires_in_ms: 12_000,
            origin: "haproxy".into(),
            seq: 5,
            values: vec![DataValue {
                name: "server_key".into(),
                value: Value::Text { value: "s1".into() },
            }],
        },
    );
    m
}

/// Limits short enough for the slow-input tests to run in seconds.
pub fn test_limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(1500),
        max_header_bytes: 16 * 1024,
        max_connections: 16,
        max_connection_age: Duration::from_secs(60),
        shutdown_grace: Duration::from_secs(2),
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub source: Arc<Source>,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
}

impl Server {
    pub async fn start(limits: Limits) -> Server {
        let source = Arc::new(Source(Mutex::new(Snapshot {
            peers: peers_view(),
            tables: tables_view(),
            entries: entries(),
            facts: not_ready_facts(),
        })));
        let metrics = Arc::new(Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(admin::serve(
            listener,
            source.clone(),
            metrics.clone(),
            limits,
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            source,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fires the shutdown future.
    pub fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
