//! Values in and out of entry records (layout in [`super::schema`]).

use crate::codec::{DataType, DictValue, FreqCounter, Shape, Value};

use super::dict::Interner;
use super::freq;
use super::link::Link;
use super::schema::{Field, Schema, META_WORDS};

fn word(rec: &[u32], i: usize) -> u32 {
    rec.get(i).copied().unwrap_or(0)
}

/// Sets one word; true if it changed.
fn set(rec: &mut [u32], i: usize, w: u32) -> bool {
    match rec.get_mut(i) {
        Some(slot) if *slot != w => {
            *slot = w;
            true
        }
        _ => false,
    }
}

fn freq_words(rec: &[u32], at: usize) -> [u32; 3] {
    [
        word(rec, at),
        word(rec, at.saturating_add(1)),
        word(rec, at.saturating_add(2)),
    ]
}

/// Stores a counter unless it is the same one up to the tolerance; true if it changed.
fn set_freq(rec: &mut [u32], at: usize, fc: &FreqCounter, now: u64, tolerance_ms: u32) -> bool {
    let new = freq::rebase(fc, now);
    if freq::same(freq_words(rec, at), new, tolerance_ms) {
        return false;
    }
    for (i, w) in new.into_iter().enumerate() {
        set(rec, at.saturating_add(i), w);
    }
    true
}

/// How received values are written.
pub(crate) struct WriteRules<'a> {
    pub(crate) origin: Link,
    pub(crate) now: u64,
    pub(crate) freq_tolerance_ms: u32,
    pub(crate) dict: &'a mut Interner,
}

/// Writes the values of an update into a record: types the schema does not store are dropped,
/// types it stores but the update lacks are left untouched, `conn_cur` is taken from the local
/// HAProxy only (§7.11) and never counts as a change (receivers do not learn it, so relaying it
/// would be noise). Returns whether anything that matters changed.
pub(crate) fn write(
    schema: &Schema,
    rec: &mut [u32],
    values: &[(DataType, Value)],
    rules: &mut WriteRules<'_>,
) -> bool {
    let mut changed = false;
    for (t, v) in values {
        let Some(field) = schema.field(*t) else {
            continue;
        };
        if t.is_local_only() {
            if rules.origin == Link::Local {
                if let Value::Uint(u) = v {
                    set(rec, field.offset, *u);
                }
            }
            continue;
        }
        changed |= write_one(field, rec, v, rules);
    }
    changed
}

fn write_one(field: &Field, rec: &mut [u32], v: &Value, rules: &mut WriteRules<'_>) -> bool {
    let at = field.offset;
    let tol = rules.freq_tolerance_ms;
    match (field.data_type.shape(), v) {
        (Shape::Sint, Value::Sint(i)) => set(rec, at, *i as u32),
        (Shape::Uint, Value::Uint(u)) => set(rec, at, *u),
        (Shape::Ull, Value::Ull(u)) => {
            let lo = set(rec, at, (*u & u64::from(u32::MAX)) as u32);
            set(rec, at.saturating_add(1), (*u >> 32) as u32) | lo
        }
        (Shape::Freq, Value::Freq(fc)) => set_freq(rec, at, fc, rules.now, tol),
        // An absent value or a reference to an empty slot stores nothing (§6.5).
        (Shape::Dict, Value::Dict(d)) => match d.value().and_then(|s| rules.dict.id(s)) {
            Some(id) => set(rec, at, id),
            None => false,
        },
        // The sender's element count: extra elements are dropped, missing ones left (§6.2).
        (Shape::UintArray, Value::UintArray(items)) => items
            .iter()
            .take(field.count)
            .enumerate()
            .fold(false, |c, (i, u)| set(rec, at.saturating_add(i), *u) | c),
        (Shape::FreqArray, Value::FreqArray(items)) => items
            .iter()
            .take(field.count)
            .enumerate()
            .fold(false, |c, (i, fc)| {
                set_freq(
                    rec,
                    at.saturating_add(i.saturating_mul(3)),
                    fc,
                    rules.now,
                    tol,
                ) | c
            }),
        _ => false,
    }
}

/// Every value of a record in schema order, counters as their wire form at `now`.
pub(crate) fn read(
    schema: &Schema,
    rec: &[u32],
    now: u64,
    dict: &Interner,
) -> Vec<(DataType, Value)> {
    schema
        .fields
        .iter()
        .map(|f| (f.data_type, read_one(f, rec, now, dict)))
        .collect()
}

fn read_one(field: &Field, rec: &[u32], now: u64, dict: &Interner) -> Value {
    let at = field.offset;
    match field.data_type.shape() {
        Shape::Sint => Value::Sint(word(rec, at) as i32),
        Shape::Uint => Value::Uint(word(rec, at)),
        Shape::Ull => Value::Ull(
            u64::from(word(rec, at)) | (u64::from(word(rec, at.saturating_add(1))) << 32),
        ),
        Shape::Freq => Value::Freq(freq::to_wire(freq_words(rec, at), now)),
        Shape::Dict => Value::Dict(match dict.get(word(rec, at)) {
            // The encoder picks the wire form (reference or definition) per session.
            Some(s) => DictValue::Ref {
                id: 0,
                value: Some(s.clone()),
            },
            None => DictValue::Absent,
        }),
        Shape::UintArray => Value::UintArray(
            (0..field.count)
                .map(|i| word(rec, at.saturating_add(i)))
                .collect(),
        ),
        Shape::FreqArray => Value::FreqArray(
            (0..field.count)
                .map(|i| freq::to_wire(freq_words(rec, at.saturating_add(i * 3)), now))
                .collect(),
        ),
    }
}

/// Copies a record to another schema of the same key: metadata and key as they are, values of
/// the data types both store (arrays up to the shorter count); the rest stays zero (default).
pub(crate) fn convert(from: &Schema, to: &Schema, old: &[u32], new: &mut [u32]) {
    let head = META_WORDS.saturating_add(from.key_range().len());
    if let (Some(dst), Some(src)) = (new.get_mut(..head), old.get(..head)) {
        if dst.len() == src.len() {
            dst.copy_from_slice(src);
        }
    }
    for f in &from.fields {
        let Some(t) = to.field(f.data_type) else {
            continue;
        };
        let n = f.count.min(t.count).saturating_mul(f.element_words());
        let src = old.get(f.offset..f.offset.saturating_add(n));
        let dst = new.get_mut(t.offset..t.offset.saturating_add(n));
        if let (Some(src), Some(dst)) = (src, dst) {
            dst.copy_from_slice(src);
        }
    }
}
