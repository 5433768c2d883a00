//! The sidecars' admin API as the tests read it: `/peers` and `/tables` parsed into the
//! sidecar's own view types, `/metrics` samples by name and labels.

use haproxy_peers_sidecar::admin::views::{PeerView, PeersView, TablesView};
use haproxy_peers_testkit::cluster::Node;

pub fn peers(node: &Node) -> PeersView {
    json(node, "/peers")
}

pub fn tables(node: &Node) -> TablesView {
    json(node, "/tables")
}

/// `node`'s view of peer `name` (a member, or HAProxy's local peer name).
pub fn peer(node: &Node, name: &str) -> PeerView {
    let view = peers(node);
    view.peers
        .iter()
        .find(|p| p.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("{} has no peer {name} in /peers: {view:#?}", node.name()))
}

fn json<T: serde::de::DeserializeOwned>(node: &Node, path: &str) -> T {
    let body = node
        .sidecar
        .get_ok(path)
        .unwrap_or_else(|e| panic!("{} {path}: {e}", node.name()));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{} {path}: {e} in {body}", node.name()))
}

/// One sample of the OpenMetrics text.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

pub fn metrics(node: &Node) -> Vec<Sample> {
    let text = node
        .sidecar
        .get_ok("/metrics")
        .unwrap_or_else(|e| panic!("{} /metrics: {e}", node.name()));
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| parse_sample(line).unwrap_or_else(|| panic!("metric line {line:?}")))
        .collect()
}

/// The sum of the samples of `name` (the full sample name, e.g.
/// `haproxy_peers_sidecar_errors_total`) whose labels include every one of `labels`.
pub fn metric_sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}

/// `name{a="x",b="y"} 3` or `name 3`. Label values in our metrics never hold `"` or `,`.
fn parse_sample(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}')?;
            let labels = inner
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k.to_owned(), v.trim_matches('"').to_owned()))
                })
                .collect::<Option<Vec<_>>>()?;
            (name, labels)
        }
        None => (head, Vec::new()),
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[test]
fn parses_openmetrics_samples() {
    let s = parse_sample("haproxy_peers_sidecar_errors_total{kind=\"name_mismatch\"} 2").unwrap();
    assert_eq!(s.name, "haproxy_peers_sidecar_errors_total");
    assert_eq!(s.labels, [("kind".into(), "name_mismatch".into())]);
    assert_eq!(s.value, 2.0);
    let bare = parse_sample("haproxy_peers_sidecar_ready 1").unwrap();
    assert!(bare.labels.is_empty());
    assert!(parse_sample("no_value").is_none());
    let samples = vec![
        s,
        parse_sample("haproxy_peers_sidecar_errors_total{kind=\"io\"} 1").unwrap(),
    ];
    assert_eq!(
        metric_sum(&samples, "haproxy_peers_sidecar_errors_total", &[]),
        3.0
    );
    assert_eq!(
        metric_sum(
            &samples,
            "haproxy_peers_sidecar_errors_total",
            &[("kind", "io")]
        ),
        1.0
    );
}

/// One line per session of every node: state, and pushed/acked per table.
pub fn sessions_summary(cluster: &haproxy_peers_testkit::cluster::Cluster) -> String {
    let mut out = String::new();
    for node in cluster.nodes() {
        let Ok(body) = node.sidecar.get_ok("/peers") else {
            out.push_str(&format!("{}: /peers unavailable\n", node.name()));
            continue;
        };
        let Ok(view) = serde_json::from_str::<PeersView>(&body) else {
            out.push_str(&format!("{}: /peers unreadable: {body}\n", node.name()));
            continue;
        };
        for p in &view.peers {
            let tables: Vec<String> = p
                .tables
                .iter()
                .map(|t| format!("{} {}/{}", t.table, t.acked, t.pushed))
                .collect();
            out.push_str(&format!(
                "{} -> {} ({:?} {:?} {:?}, reconnects {}, last error {:?}): acked/pushed {}\n",
                node.name(),
                p.name,
                p.role,
                p.state,
                p.direction,
                p.reconnects,
                p.last_error,
                tables.join(", ")
            ));
        }
    }
    out
}
