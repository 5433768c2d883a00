//! Read-only views of the replica for the admin server (`/tables`, `/peers`) and metrics.

use crate::codec::{DataType, Key, TableDefinition, Value};

use super::drift::DriftReport;
use super::expiry::NEVER;
use super::freq::read_rate;
use super::replica::Replica;
use super::table::{deadline_of, origin_of, seq_of, TableStats};

/// One table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableView {
    pub wire_id: u64,
    pub name: String,
    /// The schema as this replica sends it.
    pub definition: TableDefinition,
    /// Whose definition the schema is.
    pub authority: String,
    /// Every source's last definition.
    pub sources: Vec<(String, TableDefinition)>,
    pub drift: Vec<DriftReport>,
    pub entries: usize,
    /// Last sequence number given out.
    pub head: u64,
    pub stats: TableStats,
    /// Heap bytes held by the table (records, hash index, relay and expiry indexes).
    pub heap_bytes: usize,
}

/// One data type of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldView {
    pub data_type: DataType,
    /// Counters in wire form at the time of the view (`elapsed` on the local clock).
    pub value: Value,
    /// For frequency counters: the table's period and the rate HAProxy would show (one per
    /// element for `gpc_rate`).
    pub period_ms: Option<u64>,
    pub rates: Vec<u32>,
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryView {
    pub key: Key,
    /// Where its last write came from.
    pub origin: String,
    pub seq: u64,
    /// `None`: never expires.
    pub expires_in_ms: Option<u64>,
    pub values: Vec<FieldView>,
}

/// Relay position of one peer in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerView {
    pub peer: String,
    pub table: String,
    pub pushed: u64,
    pub acked: u64,
    pub head: u64,
    /// `head - acked`: sequence numbers not acknowledged (an upper bound on the entries the
    /// peer may lack; many are not for it under the relay rules).
    pub lag: u64,
}

/// Totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSummary {
    pub complete: bool,
    pub tables: usize,
    pub entries: usize,
    pub heap_bytes: usize,
    pub dict_strings: usize,
}

impl Replica {
    pub fn tables_view(&self) -> Vec<TableView> {
        self.tables()
            .filter_map(|t| {
                let table = self.get(t)?;
                let name = String::from_utf8_lossy(&table.name).into_owned();
                Some(TableView {
                    wire_id: t.wire_id(),
                    definition: table.schema.def.clone(),
                    authority: self.label(table.authority).to_owned(),
                    sources: table
                        .sources
                        .iter()
                        .map(|(l, d)| (self.label(*l).to_owned(), d.clone()))
                        .collect(),
                    drift: table
                        .drift
                        .iter()
                        .map(|(l, d)| DriftReport {
                            table: name.clone(),
                            source: self.label(*l).to_owned(),
                            authority: self.label(table.authority).to_owned(),
                            differences: d.clone(),
                        })
                        .collect(),
                    entries: table.len(),
                    head: table.head(),
                    stats: table.stats,
                    heap_bytes: table.heap_bytes(),
                    name,
                })
            })
            .collect()
    }

    /// Every current definition difference, for logs and metrics.
    pub fn drift_reports(&self) -> Vec<DriftReport> {
        self.tables_view()
            .into_iter()
            .flat_map(|t| t.drift)
            .collect()
    }

    /// One key of table `name` as of `now` (`None` if absent or expired).
    pub fn lookup(&self, name: &[u8], key: &Key, now: u64) -> Option<EntryView> {
        let table = self.get(self.table(name)?)?;
        let rec = table.lookup(key)?;
        let deadline = deadline_of(rec);
        if deadline <= now {
            return None;
        }
        let update = table.build_view_update(rec, now, &self.dict);
        let values = update
            .values
            .into_iter()
            .map(|(t, value)| {
                let period_ms = table
                    .schema
                    .field(t)
                    .map(|f| f.period_ms)
                    .filter(|_| t.is_freq());
                let p = period_ms.unwrap_or(0);
                let rates = match &value {
                    Value::Freq(fc) => vec![read_rate(*fc, p)],
                    Value::FreqArray(items) => items.iter().map(|fc| read_rate(*fc, p)).collect(),
                    _ => Vec::new(),
                };
                FieldView {
                    data_type: t,
                    value,
                    period_ms,
                    rates,
                }
            })
            .collect();
        Some(EntryView {
            key: update.key,
            origin: self.label(origin_of(rec)).to_owned(),
            seq: seq_of(rec),
            expires_in_ms: (deadline != NEVER).then(|| deadline.saturating_sub(now)),
            values,
        })
    }

    /// Every peer's position in every table.
    pub fn pointers_view(&self) -> Vec<PointerView> {
        let mut out = Vec::new();
        for t in self.tables() {
            let Some(table) = self.get(t) else { continue };
            for (link, p) in table.pointers() {
                out.push(PointerView {
                    peer: self.label(link).to_owned(),
                    table: String::from_utf8_lossy(&table.name).into_owned(),
                    pushed: p.pushed,
                    acked: p.acked,
                    head: table.head(),
                    lag: table.head().saturating_sub(p.acked),
                });
            }
        }
        out
    }

    pub fn summary(&self) -> ReplicaSummary {
        ReplicaSummary {
            complete: self.is_complete(),
            tables: self.tables.len(),
            entries: self.tables.iter().map(|t| t.len()).sum(),
            heap_bytes: self.tables.iter().map(|t| t.heap_bytes()).sum(),
            dict_strings: self.dict.len(),
        }
    }
}
