//! Human-readable renderings of the views, shaped like HAProxy's `show peers` and `show table`.
//! Served for `?format=text` (or `Accept: text/plain`) and printed by the CLI, so both read
//! the same.

use std::fmt::Write as _;

use super::views::{
    DataTypeView, DataValue, PeerView, PeersView, Readiness, ReplicaSync, SyncEvent, TableSummary,
    TableView, TablesView, Value,
};

/// `8s`, `1m05s`, `2h03m`, `3d04h`; below a second, `350ms`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// `never` or a duration.
fn ago(ms: Option<u64>) -> String {
    ms.map_or_else(|| "never".to_string(), duration)
}

/// `ready`, or one `<kind>: <message>` line per blocker.
pub fn readiness(r: &Readiness) -> String {
    if r.ready {
        return "ready\n".to_string();
    }
    let mut out = String::new();
    for b in &r.blockers {
        let _ = writeln!(out, "{}: {}", b.kind.as_str(), b.message);
    }
    out
}

pub fn replica(sync: &ReplicaSync) -> String {
    match sync {
        ReplicaSync::WaitingForTeacher { ms_left } => format!(
            "waiting for a member to learn from ({} left)",
            duration(*ms_left)
        ),
        ReplicaSync::Learning {
            from,
            received,
            expected,
        } => match expected {
            Some(e) => format!("learning from {from}: {received} of ~{e} entries"),
            None => format!("learning from {from}: {received} entries so far"),
        },
        ReplicaSync::Learned { from } => format!("complete, learned from {from}"),
        ReplicaSync::NoRemote => "complete, no other member to learn from".to_string(),
        ReplicaSync::TimedOut => "complete by timeout, no full lesson received".to_string(),
    }
}

fn sync_event(e: &Option<SyncEvent>) -> String {
    match e {
        None => "never".to_string(),
        Some(e) => format!(
            "{} {} {} ({} ago)",
            e.kind.as_str(),
            e.outcome.as_str(),
            e.entries,
            duration(e.ms_ago)
        ),
    }
}

/// The `show peers` equivalent: one line per peer, then each peer's tables.
pub fn peers(v: &PeersView) -> String {
    let mut out = format!(
        "pod {}, group {}, peers section {}: replica {}\n\n",
        v.pod,
        v.group,
        v.peers_section,
        replica(&v.replica)
    );
    let header = [
        "NAME",
        "ROLE",
        "STATE",
        "DIR",
        "ADDRESS",
        "PID",
        "STATUS",
        "HANDSHAKE",
        "LAST MSG",
        "HB TX/RX",
        "SILENT",
        "RECONN",
        "PROTO ERR",
        "COLL",
        "LAST SYNC",
    ];
    let rows = v.peers.iter().map(peer_row).collect();
    out.push_str(&grid(&header, rows));
    for p in &v.peers {
        if p.tables.is_empty() && p.last_error.is_none() {
            continue;
        }
        let _ = writeln!(out, "\n{} ({}):", p.name, p.role.as_str());
        if let Some(e) = &p.last_error {
            let _ = writeln!(out, "  last error: {e}");
        }
        if !p.tables.is_empty() {
            let rows = p
                .tables
                .iter()
                .map(|t| {
                    vec![
                        t.table.clone(),
                        t.pushed.to_string(),
                        t.acked.to_string(),
                        t.behind.to_string(),
                        t.drift.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            let table = grid(&["TABLE", "PUSHED", "ACKED", "BEHIND", "DRIFT"], rows);
            for line in table.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

fn peer_row(p: &PeerView) -> Vec<String> {
    vec![
        p.name.clone(),
        p.role.as_str().to_string(),
        p.state.as_str().to_string(),
        p.direction.map_or("-", |d| d.as_str()).to_string(),
        p.address.clone(),
        p.pid.map_or_else(|| "-".to_string(), |pid| pid.to_string()),
        p.last_status.as_str().to_string(),
        ago(p.last_handshake_ms_ago),
        ago(p.last_message_ms_ago),
        format!("{}/{}", p.heartbeats_tx, p.heartbeats_rx),
        p.silent_closes.to_string(),
        p.reconnects.to_string(),
        p.protocol_errors.to_string(),
        p.collisions.to_string(),
        sync_event(&p.last_sync),
    ]
}

/// `conn_rate(10000)`, `gpt[3]`, `gpc0`: HAProxy's spelling of a stored type.
fn data_type(d: &DataTypeView) -> String {
    match (d.period_ms, d.array_size) {
        (Some(p), Some(n)) => format!("{}[{n}]({p})", d.name),
        (Some(p), None) => format!("{}({p})", d.name),
        (None, Some(n)) => format!("{}[{n}]", d.name),
        (None, None) => d.name.clone(),
    }
}

fn data_types(t: &TableSummary) -> String {
    let types: Vec<String> = t.definition.data_types.iter().map(data_type).collect();
    if types.is_empty() {
        "-".to_string()
    } else {
        types.join(" ")
    }
}

/// Every table: definition, counts, drift.
pub fn tables(v: &TablesView) -> String {
    if v.tables.is_empty() {
        return "no tables yet: HAProxy has not sent a definition and no member has taught one\n"
            .to_string();
    }
    let header = [
        "TABLE",
        "TYPE",
        "KEY LEN",
        "EXPIRE",
        "ENTRIES",
        "MAX",
        "EVICTED",
        "STALE",
        "UNTAUGHT",
        "POLICY",
        "DEFINED BY",
        "DATA",
    ];
    let rows = v
        .tables
        .iter()
        .map(|t| {
            let d = &t.definition;
            vec![
                d.name.clone(),
                d.key_type.clone(),
                d.key_len.to_string(),
                duration(d.expire_ms),
                t.entries.to_string(),
                t.max_entries.to_string(),
                t.evictions.to_string(),
                t.stale_rejected.to_string(),
                t.untaught_ignored.to_string(),
                t.policy.as_str().to_string(),
                t.defined_by.clone(),
                data_types(t),
            ]
        })
        .collect();
    let mut out = grid(&header, rows);
    for t in &v.tables {
        drift(&mut out, t);
    }
    out
}

fn drift(out: &mut String, t: &TableSummary) {
    for d in &t.drift {
        let _ = writeln!(
            out,
            "drift: {} at {} differs: {}",
            t.definition.name, d.peer, d.detail
        );
    }
}

/// The `show table <name> [key <k>]` equivalent.
pub fn table(v: &TableView) -> String {
    let t = &v.table;
    let d = &t.definition;
    let mut out = format!(
        "# table: {}, type: {}, size:{}, used:{}\n# expire: {}, data: {}, policy: {}, defined by: {}\n",
        d.name,
        d.key_type,
        t.max_entries,
        t.entries,
        duration(d.expire_ms),
        data_types(t),
        t.policy.as_str(),
        t.defined_by
    );
    drift(&mut out, t);
    if let Some(e) = &v.entry {
        let _ = write!(
            out,
            "key={} exp={} origin={} seq={}",
            e.key, e.expires_in_ms, e.origin, e.seq
        );
        for value in &e.values {
            out.push(' ');
            out.push_str(&data_value(value));
        }
        out.push('\n');
    }
    out
}

fn data_value(v: &DataValue) -> String {
    let name = &v.name;
    let join = |prefix: String, items: &[u64]| {
        items
            .iter()
            .enumerate()
            .map(|(i, x)| format!("{name}[{i}]{prefix}={x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match &v.value {
        Value::Signed { value } => format!("{name}={value}"),
        Value::Unsigned { value } => format!("{name}={value}"),
        Value::Rate { period_ms, rate } => format!("{name}({period_ms})={rate}"),
        Value::Text { value } => format!("{name}={value}"),
        Value::UnsignedArray { values } => join(String::new(), values),
        Value::RateArray { period_ms, rates } => join(format!("({period_ms})"), rates),
    }
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn grid(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(header).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_haproxy() {
        assert_eq!(duration(0), "0ms");
        assert_eq!(duration(350), "350ms");
        assert_eq!(duration(8_999), "8s");
        assert_eq!(duration(65_000), "1m05s");
        assert_eq!(duration(7_380_000), "2h03m");
        assert_eq!(duration(273_600_000), "3d04h");
        assert_eq!(ago(None), "never");
    }

    #[test]
    fn grid_aligns_columns() {
        let out = grid(
            &["A", "LONG HEADER", "Z"],
            vec![
                vec!["wide cell".into(), "x".into(), "last".into()],
                vec!["b".into(), "y".into(), "".into()],
            ],
        );
        assert_eq!(
            out,
            "A          LONG HEADER  Z\nwide cell  x            last\nb          y\n"
        );
    }

    #[test]
    fn values_use_haproxy_spelling() {
        let v = |name: &str, value| {
            data_value(&DataValue {
                name: name.into(),
                value,
            })
        };
        assert_eq!(
            v(
                "conn_rate",
                Value::Rate {
                    period_ms: 10_000,
                    rate: 9
                }
            ),
            "conn_rate(10000)=9"
        );
        assert_eq!(v("gpt0", Value::Signed { value: -1 }), "gpt0=-1");
        assert_eq!(
            v("gpc", Value::UnsignedArray { values: vec![4, 5] }),
            "gpc[0]=4 gpc[1]=5"
        );
        assert_eq!(
            v(
                "gpc_rate",
                Value::RateArray {
                    period_ms: 5000,
                    rates: vec![6]
                }
            ),
            "gpc_rate[0](5000)=6"
        );
        let d = |name: &str, period_ms, array_size| {
            data_type(&DataTypeView {
                name: name.into(),
                period_ms,
                array_size,
            })
        };
        assert_eq!(
            d("http_req_rate", Some(10_000), None),
            "http_req_rate(10000)"
        );
        assert_eq!(d("gpt", None, Some(3)), "gpt[3]");
        assert_eq!(d("gpc_rate", Some(5000), Some(2)), "gpc_rate[2](5000)");
        assert_eq!(d("server_key", None, None), "server_key");
    }
}
