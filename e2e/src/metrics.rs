//! The sidecar's `/metrics` (OpenMetrics text), read inside a pod's namespace by the probe and
//! summed by name and labels: how a scenario shows that a refusal was counted, or that nothing
//! went wrong (no error of any kind) while something happened.

use std::collections::BTreeMap;

use crate::fleet::Fleet;
use crate::probe::run_probe;
use crate::Result;

/// Errors by kind (`kind` label).
pub const ERRORS: &str = "haproxy_peers_sidecar_errors_total";
/// TLS material reloads by outcome (`ok`: published, `rejected`: invalid, previous kept).
pub const TLS_RELOADS: &str = "haproxy_peers_sidecar_tls_reloads_total";
/// Dials of a member after the first (`peer` label).
pub const RECONNECTS: &str = "haproxy_peers_sidecar_reconnects_total";
/// Sessions replaced by a newer one with the same peer (`peer` label).
pub const COLLISIONS: &str = "haproxy_peers_sidecar_collisions_total";

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of one exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text exposition; lines that are not samples (comments, `# EOF`, anything
    /// malformed) are skipped.
    pub fn parse(text: &str) -> Metrics {
        Metrics {
            samples: text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(sample)
                .collect(),
        }
    }

    /// The sum of the samples named `name` that carry every label of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// The samples named `name` by the value of `label` (summed over the other labels).
    pub fn by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            let key = s.labels.get(label).cloned().unwrap_or_default();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }
}

/// The pod's sidecar `/metrics`, read on the pod's loopback.
pub fn read(fleet: &Fleet, pod: &str) -> Result<Metrics> {
    let port = fleet.control().peer_group().spec.ports.admin;
    let text: String = run_probe(
        &fleet.options().binaries.probe,
        fleet.pod(pod)?.host(),
        &["metrics".to_string(), format!("127.0.0.1:{port}")],
    )?;
    Ok(Metrics::parse(&text))
}

/// `name{k="v",…} value [timestamp]` or `name value`.
fn sample(line: &str) -> Option<Sample> {
    let line = line.trim();
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => labels(inner)?,
        None => (BTreeMap::new(), rest),
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// `k="v",…}` and what follows the closing brace. Values may hold escaped quotes.
fn labels(mut text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut out = BTreeMap::new();
    loop {
        text = text.trim_start_matches(',');
        if let Some(rest) = text.strip_prefix('}') {
            return Some((out, rest));
        }
        let (key, rest) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        out.insert(key.trim().to_string(), value);
        text = &rest[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP haproxy_peers_sidecar_errors Errors by kind.
# TYPE haproxy_peers_sidecar_errors counter
haproxy_peers_sidecar_errors_total{kind=\"name_mismatch\"} 2
haproxy_peers_sidecar_errors_total{kind=\"io\"} 1
haproxy_peers_sidecar_reconnects_total{peer=\"edge-1\"} 3
haproxy_peers_sidecar_reconnects_total{peer=\"edge-2\"} 4
odd{note=\"a \\\"quoted\\\" } value\",peer=\"x\"} 7 1700000000
haproxy_peers_sidecar_ready 1
# EOF
";

    #[test]
    fn sums_by_name_and_labels() {
        let m = Metrics::parse(TEXT);
        assert_eq!(m.samples.len(), 6);
        assert_eq!(m.sum(ERRORS, &[]), 3.0);
        assert_eq!(m.sum(ERRORS, &[("kind", "name_mismatch")]), 2.0);
        assert_eq!(m.sum(ERRORS, &[("kind", "expired")]), 0.0);
        assert_eq!(m.sum(RECONNECTS, &[]), 7.0);
        assert_eq!(m.sum("haproxy_peers_sidecar_ready", &[]), 1.0);
        let odd = m.samples.iter().find(|s| s.name == "odd").unwrap();
        assert_eq!(odd.labels["note"], "a \"quoted\" } value");
        assert_eq!(odd.value, 7.0);
        let by_kind = m.by(ERRORS, "kind");
        assert_eq!(by_kind["io"], 1.0);
        assert_eq!(by_kind.len(), 2);
    }
}
