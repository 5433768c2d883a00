//! Values we send and what `show table` must show for them.

use super::*;

/// The `show table` names of one value (`gpt` → `gpt0`, `gpt1`; `gpc_rate` → `gpc0_rate`, …).
pub(crate) fn display_names(t: DataType, elements: usize) -> Vec<String> {
    if !t.is_array() {
        return vec![t.name().to_owned()];
    }
    (0..elements)
        .map(|i| match t {
            DataType::GpcRate => format!("gpc{i}_rate"),
            _ => format!("{}{i}", t.name()),
        })
        .collect()
}

/// A distinct value for type `t` of table `def`; `seed` tells entries apart.
pub(crate) fn sample_value(def: &TableDefinition, t: DataType, seed: u32) -> Value {
    let id = u32::from(t.id());
    let count = def.array_len(t).unwrap_or(0) as u32;
    let freq = |i: u32| FreqCounter {
        elapsed: 2000,
        curr: 5 + id + i + seed,
        prev: 10 + id + i,
    };
    match t.shape() {
        // −1 is sent sign-extended as a 10-byte varint.
        Shape::Sint if seed % 2 == 1 => Value::Sint(-1),
        Shape::Sint => Value::Sint(2),
        // Alternate small and large values to cross varint length boundaries.
        Shape::Uint if id % 2 == 0 => Value::Uint(3_000_000_000 + id + seed),
        Shape::Uint => Value::Uint(200 + id + seed),
        Shape::Ull => Value::Ull((1 << 40) + u64::from(id + seed)),
        Shape::Freq => Value::Freq(freq(0)),
        Shape::Dict => Value::Dict(DictValue::Define {
            id: 1,
            value: Bytes::from_static(b"s2"),
        }),
        Shape::UintArray => {
            Value::UintArray((0..count).map(|i| 1000 * id + 10 * i + seed).collect())
        }
        Shape::FreqArray => Value::FreqArray((0..count).map(freq).collect()),
    }
}

/// What HAProxy displays for a rate received as `fc`, `since_receipt_ms` after receipt
/// (peers-protocol.md §6.3), by the replica's own formula: so this suite also checks
/// `store::read_rate` against a real HAProxy. The age is 32-bit wrapping arithmetic as in
/// HAProxy, which makes a small negative offset a slightly younger counter.
pub(crate) fn displayed_rate(fc: FreqCounter, period: u64, since_receipt_ms: i64) -> u64 {
    let offset = since_receipt_ms as i32 as u32;
    let aged = FreqCounter {
        elapsed: fc.elapsed.wrapping_add(offset),
        ..fc
    };
    u64::from(haproxy_peers_sidecar::store::read_rate(aged, period))
}

/// Checks that `entry` shows exactly what `update` carried. `elapsed_ms` bounds the time between
/// HAProxy receiving the update and printing the entry (rates decay with it).
pub(crate) fn assert_shows(
    entry: &TableEntry,
    def: &TableDefinition,
    update: &Update,
    elapsed_ms: u64,
) {
    let ctx = format!("entry {} after {update:?}", entry.key);
    for (t, value) in &update.values {
        let names = display_names(*t, value.array_len().unwrap_or(1));
        match value {
            Value::Uint(_) if *t == DataType::ConnCur => {
                // Local-only: HAProxy parses it and keeps its own (zero for a new entry).
                assert_eq!(
                    entry.u64("conn_cur"),
                    Some(0),
                    "conn_cur must not be learned; {ctx}"
                );
            }
            Value::Uint(v) => assert_eq!(
                entry.u64(&names[0]),
                Some(u64::from(*v)),
                "{}; {ctx}",
                t.name()
            ),
            Value::Ull(v) => assert_eq!(entry.u64(&names[0]), Some(*v), "{}; {ctx}", t.name()),
            Value::Sint(v) => assert_eq!(
                entry.i64(&names[0]),
                Some(i64::from(*v)),
                "{}; {ctx}",
                t.name()
            ),
            Value::Dict(d) => {
                let expected = d.value().map(|v| String::from_utf8_lossy(v).into_owned());
                assert_eq!(
                    entry.str(&names[0]).map(str::to_owned),
                    expected,
                    "server_key; {ctx}"
                );
            }
            Value::UintArray(items) => {
                for (name, v) in names.iter().zip(items) {
                    assert_eq!(entry.u64(name), Some(u64::from(*v)), "{name}; {ctx}");
                }
            }
            Value::Freq(fc) => {
                assert_rate(entry, &names[0], *fc, def.period_ms(*t), elapsed_ms, &ctx)
            }
            Value::FreqArray(items) => {
                for (name, fc) in names.iter().zip(items) {
                    assert_rate(entry, name, *fc, def.period_ms(*t), elapsed_ms, &ctx);
                }
            }
        }
    }
}

pub(crate) fn assert_rate(
    entry: &TableEntry,
    name: &str,
    fc: FreqCounter,
    period: Option<u64>,
    elapsed_ms: u64,
    ctx: &str,
) {
    let field = entry
        .field(name)
        .unwrap_or_else(|| panic!("no {name}; {ctx}"));
    let period = period.expect("rates have a period");
    assert_eq!(field.period, Some(period), "{name} period; {ctx}");
    // HAProxy rounds the rebuilt period start down to an even tick: 2 ms of slack either way.
    let highest = displayed_rate(fc, period, -2);
    let lowest = displayed_rate(fc, period, elapsed_ms as i64 + 2);
    let shown: u64 = field.value.parse().unwrap();
    assert!(
        (lowest..=highest).contains(&shown),
        "{name}={shown}, expected {lowest}..={highest} for {fc:?} over {period} ms; {ctx}"
    );
}
