//! Tables of the HAProxy under test: the fixtures' lab tables, as configuration and as the
//! definitions HAProxy must send for them.

use super::*;

/// The fixtures' lab "STD" store set (one definition, in the testkit).
pub(crate) use haproxy_peers_testkit::config::STD_STORE as STD;

/// Every non-array type 2.6 knows (2.6 refuses `gpt`/`gpc` next to `gpt0`/`gpc0`/`gpc1`).
pub(crate) const ALL_SCALARS: &[&str] = &[
    "server_id",
    "gpt0",
    "gpc0",
    "gpc0_rate(10s)",
    "conn_cnt",
    "conn_rate(10s)",
    "conn_cur",
    "sess_cnt",
    "sess_rate(10s)",
    "http_req_cnt",
    "http_req_rate(10s)",
    "http_err_cnt",
    "http_err_rate(10s)",
    "bytes_in_cnt",
    "bytes_in_rate(10s)",
    "bytes_out_cnt",
    "bytes_out_rate(10s)",
    "gpc1",
    "gpc1_rate(10s)",
    "server_key",
    "http_fail_cnt",
    "http_fail_rate(10s)",
];

pub(crate) const ARRAYS: &[&str] = &["gpt(2)", "gpc(2)", "gpc_rate(2,10s)", "http_req_cnt"];

#[derive(Debug, Clone, Copy)]
pub(crate) struct TableSpec {
    /// Runtime API name.
    pub(crate) runtime: &'static str,
    /// Wire name.
    pub(crate) wire: &'static str,
    /// Text after `type` in the configuration.
    pub(crate) key: &'static str,
    pub(crate) key_type: KeyType,
    pub(crate) key_len: u64,
    pub(crate) store: &'static [&'static str],
    pub(crate) expire_ms: u64,
    /// Declared as `table` inside the peers section rather than in a backend.
    pub(crate) in_peers_section: bool,
}

pub(crate) const fn backend(
    name: &'static str,
    key: &'static str,
    key_type: KeyType,
    key_len: u64,
    store: &'static [&'static str],
    expire_ms: u64,
) -> TableSpec {
    TableSpec {
        runtime: name,
        wire: name,
        key,
        key_type,
        key_len,
        store,
        expire_ms,
        in_peers_section: false,
    }
}

pub(crate) const T_IP: TableSpec = backend("t_ip", "ip", KeyType::Ipv4, 4, STD, 60_000);
pub(crate) const T_IPV6: TableSpec = backend("t_ipv6", "ipv6", KeyType::Ipv6, 16, STD, 60_000);
pub(crate) const T_INT: TableSpec = backend("t_int", "integer", KeyType::Integer, 4, STD, 60_000);
pub(crate) const T_STR: TableSpec =
    backend("t_str", "string len 32", KeyType::String, 33, STD, 60_000);
pub(crate) const T_BIN: TableSpec =
    backend("t_bin", "binary len 16", KeyType::Binary, 16, STD, 60_000);
pub(crate) const T_ARR: TableSpec = backend(
    "t_arr",
    "string len 32",
    KeyType::String,
    33,
    ARRAYS,
    60_000,
);
pub(crate) const T_ALL: TableSpec = backend(
    "t_all",
    "string len 32",
    KeyType::String,
    33,
    ALL_SCALARS,
    60_000,
);
pub(crate) const T_NOEXP: TableSpec = backend(
    "t_noexp",
    "string len 32",
    KeyType::String,
    33,
    &["gpc0"],
    0,
);
pub(crate) const T_PDECL: TableSpec = TableSpec {
    runtime: "pg/t_pdecl",
    wire: "/t_pdecl",
    key: "integer",
    key_type: KeyType::Integer,
    key_len: 4,
    store: &["gpc0", "http_req_rate(5s)"],
    expire_ms: 30_000,
    in_peers_section: true,
};

pub(crate) const TABLES: [TableSpec; 9] = [
    T_PDECL, T_IP, T_IPV6, T_INT, T_STR, T_BIN, T_ARR, T_ALL, T_NOEXP,
];

/// `10s` → 10000.
pub(crate) fn duration_ms(text: &str) -> u64 {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("bad duration {text}"));
    match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        _ => panic!("bad duration unit in {text}"),
    }
}

impl TableSpec {
    /// `(type, element count, period)` per `store` item, ascending type id.
    pub(crate) fn data_types(&self) -> Vec<(DataType, Option<u64>, Option<u64>)> {
        let mut types: Vec<_> = self
            .store
            .iter()
            .map(|item| {
                let (name, args) = match item.split_once('(') {
                    Some((name, args)) => (name, args.trim_end_matches(')').split(',').collect()),
                    None => (*item, Vec::new()),
                };
                let t = DataType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"));
                let (count, period) = match (t.is_array(), t.is_freq(), args.as_slice()) {
                    (true, true, [n, p]) => (Some(n.parse().unwrap()), Some(duration_ms(p))),
                    (true, false, [n]) => (Some(n.parse().unwrap()), None),
                    (false, true, [p]) => (None, Some(duration_ms(p))),
                    (false, false, []) => (None, None),
                    _ => panic!("unexpected arguments in {item}"),
                };
                (t, count, period)
            })
            .collect();
        types.sort_by_key(|(t, _, _)| *t);
        types
    }

    /// The definition HAProxy should send for this table (with its id), or we send (ours).
    pub(crate) fn definition(&self, table_id: u64) -> TableDefinition {
        let types = self.data_types();
        TableDefinition {
            table_id,
            name: Bytes::from(self.wire),
            key_type: self.key_type,
            key_len: self.key_len,
            data_types: DataTypeSet::of(&types.iter().map(|(t, _, _)| *t).collect::<Vec<_>>()),
            expire_ms: Some(self.expire_ms),
            params: types
                .iter()
                .filter(|(t, _, _)| t.has_param_block())
                .map(|&(data_type, count, period_ms)| ParamBlock {
                    data_type,
                    count,
                    period_ms,
                })
                .collect(),
            trailing: Bytes::new(),
        }
    }

    pub(crate) fn stick_table(&self) -> StickTable {
        let table = StickTable::new(self.runtime, self.key)
            .peers(SECTION)
            .store(self.store.iter().copied());
        if self.expire_ms > 0 {
            table.expire(format!("{}ms", self.expire_ms))
        } else {
            table
        }
    }

    pub(crate) fn peers_line(&self) -> String {
        let name = self.runtime.rsplit('/').next().unwrap_or(self.runtime);
        format!(
            "{name} type {} size 1k expire {}ms store {}",
            self.key,
            self.expire_ms,
            self.store.join(",")
        )
    }
}
