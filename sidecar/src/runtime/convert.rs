//! The replica's snapshots ([`crate::store`]) as the admin views (`/tables`, `/peers`), and keys
//! between HAProxy's notation and [`Key`].

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

use crate::admin::views::{
    DataTypeView, DataValue, DriftView, EntryView, PeerTableView, TableDefinition, TablePolicy,
    TableSummary, Value,
};
use crate::codec::{self, DataType, Key, KeyType};
use crate::store::{self, DriftReport, PointerView, LOCAL_LABEL};

/// How views name the local HAProxy.
pub(crate) const HAPROXY: &str = "haproxy";

/// A replica label as the views spell it (`haproxy` for the local HAProxy).
pub(crate) fn peer_label(label: &str) -> String {
    if label == LOCAL_LABEL {
        HAPROXY.to_owned()
    } else {
        label.to_owned()
    }
}

pub(crate) fn definition(def: &codec::TableDefinition) -> TableDefinition {
    TableDefinition {
        name: String::from_utf8_lossy(&def.name).into_owned(),
        key_type: def.key_type.name().to_owned(),
        key_len: def.key_len,
        expire_ms: def.expire_ms.unwrap_or(0),
        data_types: def
            .data_types
            .known()
            .map(|t: DataType| DataTypeView {
                name: t.name().to_owned(),
                period_ms: t.is_freq().then(|| def.period_ms(t)).flatten(),
                array_size: t.is_array().then(|| def.array_len(t)).flatten(),
            })
            .collect(),
    }
}

/// The differences of a drift report on one line.
pub(crate) fn drift_detail(report: &DriftReport) -> String {
    report
        .differences
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

pub(crate) fn summary(t: &store::TableView, policy: TablePolicy, max_entries: u64) -> TableSummary {
    TableSummary {
        definition: definition(&t.definition),
        defined_by: peer_label(&t.authority),
        policy,
        entries: t.entries as u64,
        max_entries,
        evictions: t.stats.evictions,
        stale_rejected: t.stats.stale_rejected,
        untaught_ignored: t.stats.untaught_ignored,
        drift: t
            .drift
            .iter()
            .map(|d| DriftView {
                peer: peer_label(&d.source),
                detail: drift_detail(d),
            })
            .collect(),
    }
}

/// One peer's relay position in each table, with its definition drift.
pub(crate) fn peer_tables(
    label: &str,
    pointers: &[PointerView],
    tables: &[store::TableView],
) -> Vec<PeerTableView> {
    pointers
        .iter()
        .filter(|p| p.peer == label)
        .map(|p| PeerTableView {
            table: p.table.clone(),
            pushed: p.pushed,
            acked: p.acked,
            behind: p.lag,
            drift: tables
                .iter()
                .find(|t| t.name == p.table)
                .and_then(|t| t.drift.iter().find(|d| d.source == label))
                .map(drift_detail),
        })
        .collect()
}

/// A key as HAProxy prints it: unsigned integers, dotted IPs, strings, binary in hex.
pub(crate) fn key_text(key: &Key) -> String {
    match key {
        Key::Integer(n) => n.to_string(),
        Key::Ipv4(ip) => ip.to_string(),
        Key::Ipv6(ip) => ip.to_string(),
        Key::String(s) => String::from_utf8_lossy(s).into_owned(),
        Key::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// A key typed in HAProxy's notation for a table of this definition.
pub(crate) fn parse_key(def: &codec::TableDefinition, text: &str) -> Result<Key, String> {
    match def.key_type {
        KeyType::Integer => text
            .parse::<u32>()
            .map(Key::Integer)
            .map_err(|e| format!("expected an unsigned 32-bit integer: {e}")),
        KeyType::Ipv4 => text
            .parse::<Ipv4Addr>()
            .map(Key::Ipv4)
            .map_err(|e| format!("expected a dotted IPv4 address: {e}")),
        KeyType::Ipv6 => text
            .parse::<Ipv6Addr>()
            .map(Key::Ipv6)
            .map_err(|e| format!("expected an IPv6 address: {e}")),
        KeyType::String => {
            let max = def.key_len.saturating_sub(1);
            if text.len() as u64 > max {
                return Err(format!("longer than the table's {max} bytes"));
            }
            Ok(Key::String(Bytes::copy_from_slice(text.as_bytes())))
        }
        KeyType::Binary => {
            let mut bytes = hex(text)?;
            let len = usize::try_from(def.key_len).unwrap_or(usize::MAX);
            if bytes.len() > len {
                return Err(format!(
                    "{} bytes, the table's keys have {len}",
                    bytes.len()
                ));
            }
            // HAProxy zero-pads binary keys to the table's length.
            bytes.resize(len, 0);
            Ok(Key::Binary(Bytes::from(bytes)))
        }
    }
}

fn hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err("expected hex digits in pairs".to_owned());
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| format!("{:?} is not a hex byte", String::from_utf8_lossy(pair)))
        })
        .collect()
}

pub(crate) fn entry(e: store::EntryView) -> EntryView {
    EntryView {
        key: key_text(&e.key),
        expires_in_ms: e.expires_in_ms.unwrap_or(0),
        origin: peer_label(&e.origin),
        seq: e.seq,
        values: e.values.into_iter().map(value).collect(),
    }
}

fn value(f: store::FieldView) -> DataValue {
    let period_ms = f.period_ms.unwrap_or(0);
    let rates = || f.rates.iter().map(|&r| u64::from(r)).collect::<Vec<u64>>();
    let value = match &f.value {
        codec::Value::Sint(v) => Value::Signed {
            value: i64::from(*v),
        },
        codec::Value::Uint(v) => Value::Unsigned {
            value: u64::from(*v),
        },
        codec::Value::Ull(v) => Value::Unsigned { value: *v },
        codec::Value::Freq(_) => Value::Rate {
            period_ms,
            rate: rates().first().copied().unwrap_or(0),
        },
        codec::Value::Dict(d) => Value::Text {
            value: d
                .value()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .unwrap_or_default(),
        },
        codec::Value::UintArray(items) => Value::UnsignedArray {
            values: items.iter().map(|&x| u64::from(x)).collect(),
        },
        codec::Value::FreqArray(_) => Value::RateArray {
            period_ms,
            rates: rates(),
        },
    };
    DataValue {
        name: f.data_type.name().to_owned(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::DataTypeSet;

    fn def(key_type: KeyType, key_len: u64) -> codec::TableDefinition {
        codec::TableDefinition {
            table_id: 1,
            name: Bytes::from_static(b"be"),
            key_type,
            key_len,
            data_types: DataTypeSet::of(&[DataType::Gpc0]),
            expire_ms: Some(30_000),
            params: Vec::new(),
            trailing: Bytes::new(),
        }
    }

    #[test]
    fn keys_round_trip_in_haproxy_notation() {
        for (kt, len, text) in [
            (KeyType::Integer, 4, "4294967295"),
            (KeyType::Ipv4, 4, "10.0.0.7"),
            (KeyType::Ipv6, 16, "2001:db8::1"),
            (KeyType::String, 33, "alice"),
            (KeyType::Binary, 4, "0a0b0c0d"),
        ] {
            let key = parse_key(&def(kt, len), text).unwrap();
            assert_eq!(key.key_type(), kt);
            assert_eq!(key_text(&key), text);
        }
        assert_eq!(
            parse_key(&def(KeyType::Binary, 4), "0A").unwrap(),
            Key::Binary(Bytes::from_static(&[0x0a, 0, 0, 0]))
        );
    }

    #[test]
    fn bad_keys_say_why() {
        assert!(parse_key(&def(KeyType::Ipv4, 4), "10.0.0")
            .unwrap_err()
            .contains("IPv4"));
        assert!(parse_key(&def(KeyType::Integer, 4), "-1").is_err());
        assert!(parse_key(&def(KeyType::String, 4), "abcd")
            .unwrap_err()
            .contains("3 bytes"));
        assert!(parse_key(&def(KeyType::Binary, 2), "010203")
            .unwrap_err()
            .contains("3 bytes"));
        assert!(parse_key(&def(KeyType::Binary, 2), "0g").is_err());
        assert!(parse_key(&def(KeyType::Binary, 2), "abc").is_err());
    }

    #[test]
    fn definitions_list_types_with_parameters() {
        let d = definition(&def(KeyType::Ipv4, 4));
        assert_eq!(d.name, "be");
        assert_eq!(d.key_type, "ip");
        assert_eq!(d.expire_ms, 30_000);
        assert_eq!(d.data_types.len(), 1);
        assert_eq!(d.data_types[0].name, "gpc0");
        assert_eq!(d.data_types[0].period_ms, None);
        assert_eq!(peer_label(LOCAL_LABEL), HAPROXY);
        assert_eq!(peer_label("edge-1"), "edge-1");
    }
}
