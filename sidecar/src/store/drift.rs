//! Definitions of one table that differ between sources (the local HAProxy, remote members).
//!
//! A different key type or length makes the table not relayable between the two at all (HAProxy
//! ignores such a definition, §7.7). Other differences (data types, rate periods, array sizes,
//! expire) are accepted: each side stores the types it has and leaves the others alone, so what
//! is relayed is the common subset. Both are reported for logs, metrics and `/tables`.

use std::fmt;

use crate::codec::{DataType, DataTypeSet, KeyType, TableDefinition};

/// One way a definition differs from the table's schema ("ours" = the schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Key {
        ours: (KeyType, u64),
        theirs: (KeyType, u64),
    },
    /// Data types only the schema stores (theirs leave them untouched here).
    OnlyOurs(Vec<DataType>),
    /// Data types only they store (dropped on receipt here).
    OnlyTheirs(Vec<DataType>),
    Period {
        data_type: DataType,
        ours: u64,
        theirs: u64,
    },
    ArrayLen {
        data_type: DataType,
        ours: u64,
        theirs: u64,
    },
    Expire {
        ours: u64,
        theirs: u64,
    },
}

/// How a source's definition relates to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    Same,
    /// Relayable: the common data types are.
    Differs,
    /// Not relayable in either direction.
    KeyMismatch,
}

/// A table whose definition from `source` differs from the schema (which comes from
/// `authority`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftReport {
    pub table: String,
    pub source: String,
    pub authority: String,
    pub differences: Vec<Difference>,
}

impl DriftReport {
    pub fn compat(&self) -> Compat {
        compat_of(&self.differences)
    }
}

pub(crate) fn compat_of(differences: &[Difference]) -> Compat {
    if differences.is_empty() {
        Compat::Same
    } else if differences
        .iter()
        .any(|d| matches!(d, Difference::Key { .. }))
    {
        Compat::KeyMismatch
    } else {
        Compat::Differs
    }
}

fn names(types: &[DataType]) -> String {
    types.iter().map(|t| t.name()).collect::<Vec<_>>().join(",")
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Key { ours, theirs } => write!(
                f,
                "key {} len {} here vs {} len {} there: the table is not replicated between them",
                ours.0.name(),
                ours.1,
                theirs.0.name(),
                theirs.1
            ),
            Difference::OnlyOurs(t) => write!(f, "only stored here: {}", names(t)),
            Difference::OnlyTheirs(t) => {
                write!(f, "only stored there (dropped here): {}", names(t))
            }
            Difference::Period {
                data_type,
                ours,
                theirs,
            } => write!(
                f,
                "{} period {ours} ms here vs {theirs} ms there (raw counters are copied)",
                data_type.name()
            ),
            Difference::ArrayLen {
                data_type,
                ours,
                theirs,
            } => write!(f, "{}({ours}) here vs ({theirs}) there", data_type.name()),
            Difference::Expire { ours, theirs } => {
                write!(f, "expire {ours} ms here vs {theirs} ms there")
            }
        }
    }
}

impl fmt::Display for DriftReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table {:?}: the definition from {} differs from {}'s: ",
            self.table, self.source, self.authority
        )?;
        for (i, d) in self.differences.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{d}")?;
        }
        if self.compat() == Compat::KeyMismatch {
            f.write_str(". Make the stick-table declarations identical on every member")?;
        }
        Ok(())
    }
}

/// The differences of `theirs` from the schema definition `ours`.
pub(crate) fn compare(ours: &TableDefinition, theirs: &TableDefinition) -> Vec<Difference> {
    let mut out = Vec::new();
    if ours.key_type != theirs.key_type || ours.key_len != theirs.key_len {
        out.push(Difference::Key {
            ours: (ours.key_type, ours.key_len),
            theirs: (theirs.key_type, theirs.key_len),
        });
    }
    let known = DataTypeSet::KNOWN_MASK;
    let (a, b) = (ours.data_types.0 & known, theirs.data_types.0 & known);
    let only_ours: Vec<DataType> = DataTypeSet(a & !b).known().collect();
    let only_theirs: Vec<DataType> = DataTypeSet(b & !a).known().collect();
    if !only_ours.is_empty() {
        out.push(Difference::OnlyOurs(only_ours));
    }
    if !only_theirs.is_empty() {
        out.push(Difference::OnlyTheirs(only_theirs));
    }
    for t in DataTypeSet(a & b).known() {
        if t.is_freq() {
            let (o, th) = (ours.period_ms(t), theirs.period_ms(t));
            if let (Some(o), Some(th)) = (o, th) {
                if o != th {
                    out.push(Difference::Period {
                        data_type: t,
                        ours: o,
                        theirs: th,
                    });
                }
            }
        }
        if t.is_array() {
            let (o, th) = (
                ours.array_len(t).unwrap_or(0),
                theirs.array_len(t).unwrap_or(0),
            );
            if o != th {
                out.push(Difference::ArrayLen {
                    data_type: t,
                    ours: o,
                    theirs: th,
                });
            }
        }
    }
    let (eo, et) = (ours.expire_ms.unwrap_or(0), theirs.expire_ms.unwrap_or(0));
    if eo != et {
        out.push(Difference::Expire {
            ours: eo,
            theirs: et,
        });
    }
    out
}
