//! The demo's live view: a pure function from what was observed to the text of one frame.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::probe::{AdminSnapshot, HttpTally};

/// One pod as observed at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// Where the pod is reached (its IP, or its loopback mesh address).
    pub address: String,
    /// The HAProxy worker serving the stats socket; `None` when HAProxy does not answer.
    pub haproxy_worker: Option<u32>,
    /// Entries per table in HAProxy (`None`: could not read).
    pub haproxy_entries: BTreeMap<String, Option<u64>>,
    pub admin: Option<AdminSnapshot>,
}

/// Everything one frame shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    pub title: String,
    /// Lines under the title: what runs, what the traffic is.
    pub subtitle: String,
    pub keys: String,
    pub clock: String,
    pub tables: Vec<String>,
    pub nodes: Vec<NodeView>,
    pub traffic: HttpTally,
    /// Newest last.
    pub events: Vec<String>,
}

/// The text of one frame (no terminal control codes).
pub fn render(frame: &Frame) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}    {}", frame.title, frame.clock);
    if !frame.subtitle.is_empty() {
        let _ = writeln!(out, "{}", frame.subtitle);
    }
    if !frame.keys.is_empty() {
        let _ = writeln!(out, "{}", frame.keys);
    }
    out.push('\n');
    let mut header = format!(
        "{:<8} {:<22} {:<6} {:<13}",
        "POD", "ADDRESS", "READY", "HAPROXY"
    );
    for table in &frame.tables {
        let _ = write!(header, " {:<15}", format!("{table} hap/rep"));
    }
    header.push_str(" SESSIONS");
    let _ = writeln!(out, "{header}");
    for node in &frame.nodes {
        let _ = writeln!(out, "{}", node_line(node, &frame.tables));
        for blocker in node.admin.iter().flat_map(AdminSnapshot::blockers) {
            let _ = writeln!(out, "{:<8}   not ready: {blocker}", "");
        }
    }
    out.push('\n');
    let t = &frame.traffic;
    let statuses: Vec<String> = t
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    let pods: Vec<String> = t.pods.iter().map(|(p, n)| format!("{p} {n}")).collect();
    let _ = writeln!(
        out,
        "traffic: {} sent, {}, {} without answer; served by {}",
        t.sent,
        if statuses.is_empty() {
            "no answer yet".to_string()
        } else {
            statuses.join(", ")
        },
        t.failed,
        if pods.is_empty() {
            "-".to_string()
        } else {
            pods.join(", ")
        },
    );
    if !frame.events.is_empty() {
        out.push_str("\nevents:\n");
        for event in &frame.events {
            let _ = writeln!(out, "  {event}");
        }
    }
    out
}

fn node_line(node: &NodeView, tables: &[String]) -> String {
    let ready = match node.admin.as_ref().map(AdminSnapshot::is_ready) {
        Some(true) => "yes",
        Some(false) if node.admin.as_ref().is_some_and(AdminSnapshot::is_serving) => "no",
        _ => "down",
    };
    let haproxy = node
        .haproxy_worker
        .map_or("down".to_string(), |pid| format!("pid {pid}"));
    let mut line = format!(
        "{:<8} {:<22} {:<6} {:<13}",
        node.name, node.address, ready, haproxy
    );
    for table in tables {
        let hap = node.haproxy_entries.get(table).copied().flatten();
        let rep = node.admin.as_ref().and_then(|a| a.replica_entries(table));
        let _ = write!(line, " {:<15}", format!("{}/{}", count(hap), count(rep)));
    }
    line.push(' ');
    line.push_str(&sessions(node));
    line
}

fn count(n: Option<u64>) -> String {
    n.map_or("-".to_string(), |n| n.to_string())
}

/// `haproxy ✓ edge-1 ✓ edge-2 backoff`: every peer of the sidecar and its session state.
fn sessions(node: &NodeView) -> String {
    let Some(peers) = node.admin.as_ref().and_then(|a| a.peers.as_ref()) else {
        return "-".to_string();
    };
    peers
        .peers
        .iter()
        .map(|p| {
            let who = match p.role {
                haproxy_peers_sidecar::admin::views::PeerRole::Haproxy => "haproxy",
                haproxy_peers_sidecar::admin::views::PeerRole::Member => p.name.as_str(),
            };
            let state = match p.state {
                haproxy_peers_sidecar::admin::views::SessionState::Established => "up",
                other => other.as_str(),
            };
            format!("{who} {state}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use haproxy_peers_sidecar::admin::views::{
        LastStatus, PeerRole, PeerView, PeersView, ReplicaSync, SessionState, TableDefinition,
        TablePolicy, TableSummary, TablesView,
    };

    fn peer(name: &str, role: PeerRole, state: SessionState) -> PeerView {
        PeerView {
            name: name.into(),
            role,
            state,
            direction: None,
            address: String::new(),
            remote_addr: None,
            pid: None,
            last_status: LastStatus::Esta,
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
            tables: Vec::new(),
        }
    }

    #[test]
    fn a_frame_shows_readiness_entries_sessions_traffic_and_events() {
        let admin = AdminSnapshot {
            readyz_status: Some(200),
            readiness: None,
            peers: Some(PeersView {
                pod: "edge-0".into(),
                group: "web/edge".into(),
                peers_section: "edge".into(),
                replica: ReplicaSync::NoRemote,
                peers: vec![
                    peer("edge-0", PeerRole::Haproxy, SessionState::Established),
                    peer("edge-1", PeerRole::Member, SessionState::Backoff),
                ],
            }),
            tables: Some(TablesView {
                tables: vec![TableSummary {
                    definition: TableDefinition {
                        name: "be_rate".into(),
                        key_type: "string".into(),
                        key_len: 65,
                        expire_ms: 600_000,
                        data_types: Vec::new(),
                    },
                    defined_by: "haproxy".into(),
                    policy: TablePolicy::Replicate,
                    entries: 7,
                    max_entries: 1_000_000,
                    evictions: 0,
                    stale_rejected: 0,
                    untaught_ignored: 0,
                    drift: Vec::new(),
                }],
            }),
            errors: Vec::new(),
        };
        let traffic = HttpTally {
            sent: 10,
            statuses: BTreeMap::from([(200, 9)]),
            failed: 1,
            pods: BTreeMap::from([("edge-0".to_string(), 9)]),
            ..HttpTally::default()
        };
        let frame = Frame {
            title: "demo".into(),
            subtitle: String::new(),
            keys: "q quit".into(),
            clock: "12:00:00".into(),
            tables: vec!["be_rate".into(), "be_app".into()],
            nodes: vec![
                NodeView {
                    name: "edge-0".into(),
                    address: "10.213.0.11".into(),
                    haproxy_worker: Some(42),
                    haproxy_entries: BTreeMap::from([("be_rate".into(), Some(7))]),
                    admin: Some(admin),
                },
                NodeView {
                    name: "edge-1".into(),
                    address: "10.213.0.12".into(),
                    ..NodeView::default()
                },
            ],
            traffic,
            events: vec!["12:00:00 killed HAProxy of edge-1".into()],
        };
        let text = render(&frame);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "demo    12:00:00");
        assert!(lines[3].starts_with("POD      ADDRESS"), "{text}");
        assert!(lines[4].starts_with("edge-0   10.213.0.11"), "{text}");
        assert!(lines[4].contains(" yes "), "{text}");
        assert!(lines[4].contains("pid 42"), "{text}");
        assert!(lines[4].contains("7/7 "), "{text}");
        assert!(lines[4].contains("-/- "), "{text}");
        assert!(lines[4].ends_with("haproxy up, edge-1 backoff"), "{text}");
        assert!(
            lines[5].contains(" down ") && lines[5].ends_with(" -"),
            "{text}"
        );
        assert!(
            text.contains("traffic: 10 sent, 200: 9, 1 without answer; served by edge-0 9"),
            "{text}"
        );
        assert!(
            text.ends_with("events:\n  12:00:00 killed HAProxy of edge-1\n"),
            "{text}"
        );
    }
}
