//! "Nothing was lost": what every HAProxy of the group must show, and the check.
//!
//! After a test writes on a node, [`Expected::capture`] reads that node's `show table` at once:
//! its counters are the values every node must show exactly; each rate is recorded with the
//! window in which its period started. A rate read elsewhere must lie within the bounds
//! peers-protocol §6.3 gives for that window: the writes set `curr` (`prev` = 0, as a fresh
//! entry written within one period has), and every hop re-bases the period start on the
//! receiver's clock from the elapsed time it was sent, so a replica's period start lies
//! between the origin's and [`SKEW`] later (or [`ROUNDING`] earlier: HAProxy clears bit 0 of
//! its tick). While a test runs within one period of its writes, the bounds are exact.
//!
//! Not compared: `conn_cur` (a live count: sent but never learned, §7.11) and `use=`. `exp`
//! must be left and within the table's `expire`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use haproxy_peers_testkit::cluster::{Cluster, Node};
use haproxy_peers_testkit::show_table::TableDump;
use haproxy_peers_testkit::{rate_bounds, wait_until};

use crate::lab::{EXPIRE_MS, PERIOD_MS, TABLES};
use crate::writes::Written;

/// How much later than on the origin a replica's rate period may start: the sum of the
/// transit times of the hops (HAProxy → sidecar → sidecar → HAProxy), bounded generously.
pub const SKEW: Duration = Duration::from_millis(1000);
/// How much earlier it may start: 1 ms per hop of tick rounding, bounded generously.
pub const ROUNDING: Duration = Duration::from_millis(50);
/// Fields never compared (see the module doc).
const NOT_REPLICATED: &[&str] = &["conn_cur"];

#[derive(Debug, Clone)]
enum Want {
    Exact(String),
    /// A frequency counter: `curr` as shown at capture, `prev` = 0.
    Rate {
        curr: u64,
        period_ms: u64,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    origin: String,
    fields: Vec<(String, Want)>,
    /// The writes began at `since`; the capture ended at `seen`.
    since: Instant,
    seen: Instant,
}

/// Every entry the test wrote, by (table, key as shown).
#[derive(Debug, Clone, Default)]
pub struct Expected {
    entries: BTreeMap<(&'static str, String), Entry>,
}

/// One table as read from one node, with when the read began and ended.
struct Read {
    dump: TableDump,
    start: Instant,
    end: Instant,
}

impl Expected {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Entries expected in `table`.
    pub fn count(&self, table: &str) -> usize {
        self.entries.keys().filter(|(t, _)| *t == table).count()
    }

    /// Records `keys`, written on `origin` from `since` on, with the values `origin` shows now.
    pub fn capture(&mut self, origin: &Node, keys: &[Written], since: Instant) {
        let tables: BTreeSet<&'static str> = keys.iter().map(|k| k.table).collect();
        for table in tables {
            let read = read(origin, table);
            let age = read.end - since;
            assert!(
                age < Duration::from_millis(PERIOD_MS / 2),
                "{}: {table} was read {age:?} after the writes began; the rate checks assume \
                 writes and capture within half a rate period ({PERIOD_MS} ms): the machine is \
                 too slow for this test",
                origin.name()
            );
            for key in keys.iter().filter(|k| k.table == table) {
                let entry = read.dump.entry(&key.shown).unwrap_or_else(|| {
                    panic!(
                        "{}: {table} has no entry {} right after writing it: {:#?}",
                        origin.name(),
                        key.shown,
                        read.dump
                    )
                });
                let fields = entry
                    .fields
                    .iter()
                    .filter(|f| !NOT_REPLICATED.contains(&f.name.as_str()))
                    .map(|f| {
                        let want = match f.period {
                            Some(period_ms) => Want::Rate {
                                curr: f
                                    .value
                                    .parse()
                                    .unwrap_or_else(|_| panic!("rate {} = {}", f.name, f.value)),
                                period_ms,
                            },
                            None => Want::Exact(f.value.clone()),
                        };
                        (f.name.clone(), want)
                    })
                    .collect();
                self.entries.insert(
                    (table, key.shown.clone()),
                    Entry {
                        origin: origin.name().to_owned(),
                        fields,
                        since,
                        seen: read.end,
                    },
                );
            }
        }
    }

    /// A captured value (as shown on the origin): tests assert what they wrote with it.
    pub fn shown(&self, key: &Written, field: &str) -> String {
        let entry = self
            .entries
            .get(&(key.table, key.shown.clone()))
            .unwrap_or_else(|| panic!("{key:?} was not captured"));
        match entry.fields.iter().find(|(name, _)| name == field) {
            Some((_, Want::Exact(value))) => value.clone(),
            Some((_, Want::Rate { curr, .. })) => curr.to_string(),
            None => panic!("{key:?} has no {field}: {entry:?}"),
        }
    }

    /// Everything `node` shows wrongly: missing entries, values that differ, keys nobody wrote.
    pub fn problems(&self, node: &Node) -> Vec<String> {
        self.problems_in(node, &TABLES.map(|t| t.name))
    }

    /// As [`Expected::problems`], for some tables only.
    pub fn problems_in(&self, node: &Node, tables: &[&'static str]) -> Vec<String> {
        let mut problems = Vec::new();
        for &table in tables {
            let read = read(node, table);
            let expected: BTreeSet<&str> = self
                .entries
                .keys()
                .filter(|(t, _)| *t == table)
                .map(|(_, k)| k.as_str())
                .collect();
            for entry in &read.dump.entries {
                if !expected.contains(entry.key.as_str()) {
                    problems.push(format!("{table} {}: nobody wrote this key", entry.key));
                }
            }
            for key in expected {
                let want = &self.entries[&(table, key.to_owned())];
                match read.dump.entry(key) {
                    None => problems.push(format!(
                        "{table} {key} (written on {}): missing",
                        want.origin
                    )),
                    Some(found) => {
                        if found.exp == 0 || found.exp > EXPIRE_MS {
                            problems.push(format!(
                                "{table} {key}: exp={} ms, expected within (0, {EXPIRE_MS}]",
                                found.exp
                            ));
                        }
                        for (name, wanted) in &want.fields {
                            let value = found.field(name).map(|f| f.value.as_str());
                            if let Some(problem) = check(wanted, value, want, &read) {
                                problems.push(format!(
                                    "{table} {key} (written on {}): {name} {problem}",
                                    want.origin
                                ));
                            }
                        }
                    }
                }
            }
        }
        problems
    }

    /// Waits until every node of `nodes` shows every entry as it must, or panics with what is
    /// still wrong on each node and the sidecars' recent logs.
    pub fn wait_on(&self, cluster: &Cluster, nodes: &[usize], timeout: Duration) {
        let mut last: Vec<(String, Vec<String>)> = Vec::new();
        let waited = wait_until("every entry on every node", timeout, || {
            last = nodes
                .iter()
                .map(|&i| {
                    (
                        cluster.node(i).name().to_owned(),
                        self.problems(cluster.node(i)),
                    )
                })
                .collect();
            Ok(last.iter().all(|(_, p)| p.is_empty()).then_some(()))
        });
        if let Err(e) = waited {
            panic!(
                "{e}: {} entries expected\n{}\n{}",
                self.len(),
                report(&last),
                log_tails(cluster)
            );
        }
    }

    /// `node`'s sidecar holds as many entries per table as were written, under the local
    /// HAProxy's definitions (`/tables`).
    pub fn assert_replica(&self, node: &Node) {
        let view = crate::admin::tables(node);
        for table in TABLES {
            let summary = view
                .tables
                .iter()
                .find(|t| t.definition.name == table.name)
                .unwrap_or_else(|| {
                    panic!("{} /tables lacks {}: {view:#?}", node.name(), table.name)
                });
            assert_eq!(
                (summary.entries, summary.defined_by.as_str()),
                (self.count(table.name) as u64, "haproxy"),
                "{}: replica of {}",
                node.name(),
                table.name
            );
        }
    }

    /// Every entry of `other` too (later captures of the same key win).
    pub fn merge(&mut self, other: Expected) {
        self.entries.extend(other.entries);
    }
}

fn check(wanted: &Want, value: Option<&str>, entry: &Entry, read: &Read) -> Option<String> {
    let Some(value) = value else {
        return Some("missing".into());
    };
    match wanted {
        Want::Exact(expected) => {
            (value != expected).then(|| format!("= {value}, expected {expected} (exact)"))
        }
        Want::Rate { curr, period_ms } => {
            let min_age = read
                .start
                .saturating_duration_since(entry.seen + SKEW)
                .as_millis();
            let max_age = (read.end - entry.since + ROUNDING).as_millis();
            let (low, high) = rate_bounds(
                *curr,
                0,
                *period_ms,
                u64::try_from(min_age).unwrap_or(u64::MAX),
                u64::try_from(max_age).unwrap_or(u64::MAX),
            );
            match value.parse::<u64>() {
                Ok(rate) if (low..=high).contains(&rate) => None,
                _ => Some(format!(
                    "= {value}, expected {low}..={high} (curr {curr} over {period_ms} ms, read \
                     {min_age}..{max_age} ms after the period began, §6.3)"
                )),
            }
        }
    }
}

fn read(node: &Node, table: &'static str) -> Read {
    let start = Instant::now();
    let dump = node
        .api()
        .show_table(table)
        .unwrap_or_else(|e| panic!("show table {table} on {}: {e}", node.name()));
    Read {
        dump,
        start,
        end: Instant::now(),
    }
}

pub fn report(problems: &[(String, Vec<String>)]) -> String {
    let mut out = String::new();
    for (node, list) in problems {
        let _ = writeln!(out, "{node}: {} problem(s)", list.len());
        for p in list.iter().take(40) {
            let _ = writeln!(out, "  {p}");
        }
    }
    out
}

/// The last lines of every sidecar's log.
pub fn log_tails(cluster: &Cluster) -> String {
    const LINES: usize = 40;
    let mut out = String::new();
    for node in cluster.nodes() {
        let log = node.sidecar.log();
        let lines: Vec<&str> = log.lines().collect();
        let _ = writeln!(
            out,
            "----- sidecar {} (last {LINES} lines) -----",
            node.name()
        );
        for line in &lines[lines.len().saturating_sub(LINES)..] {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}
