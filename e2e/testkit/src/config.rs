//! Builders for the parts of a HAProxy configuration the peers tests need. They return plain
//! text; tests concatenate it with whatever frontends they want.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// A `defaults` section for tests: HTTP mode and short timeouts, so a stuck exchange fails fast.
pub const TEST_DEFAULTS: &str = "\
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
";

/// The fixtures' lab "STD" store set (shared/fixtures/haproxy-2.6): a broad mix of counters,
/// rates, a signed id and a 64-bit counter that every key type can store in HAProxy 2.6.
pub const STD_STORE: &[&str] = &[
    "server_id",
    "gpt0",
    "gpc0",
    "gpc0_rate(10s)",
    "conn_cnt",
    "conn_cur",
    "conn_rate(10s)",
    "sess_cnt",
    "http_req_cnt",
    "http_req_rate(10s)",
    "http_err_cnt",
    "bytes_in_cnt",
    "bytes_out_rate(10s)",
    "gpc1",
];

/// A `peers` section in the `bind` + `server` form (`server <local>` without an address names
/// the local peer; HAProxy must be started with `-L <local>` or `localpeer <local>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersSection {
    name: String,
    local_name: String,
    bind: SocketAddr,
    remotes: Vec<(String, SocketAddr)>,
    tables: Vec<String>,
}

impl PeersSection {
    pub fn new(name: impl Into<String>, local_name: impl Into<String>, bind: SocketAddr) -> Self {
        PeersSection {
            name: name.into(),
            local_name: local_name.into(),
            bind,
            remotes: Vec::new(),
            tables: Vec::new(),
        }
    }

    /// `server <name> <addr>`: a remote peer HAProxy dials and accepts.
    pub fn remote(mut self, name: impl Into<String>, addr: SocketAddr) -> Self {
        self.remotes.push((name.into(), addr));
        self
    }

    /// `table <declaration>` inside the section, e.g. `t_pdecl type integer size 1k store gpc0`.
    /// Its runtime name is `<section>/<table>`, its wire name `/<table>`.
    pub fn table(mut self, declaration: impl Into<String>) -> Self {
        self.tables.push(declaration.into());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn local_name(&self) -> &str {
        &self.local_name
    }

    pub fn render(&self) -> String {
        let mut text = format!(
            "peers {}\n    bind {}\n    server {}\n",
            self.name, self.bind, self.local_name
        );
        for (name, addr) in &self.remotes {
            let _ = writeln!(text, "    server {name} {addr}");
        }
        for table in &self.tables {
            let _ = writeln!(text, "    table {table}");
        }
        text
    }
}

/// A backend that only holds a stick table (`backend <name>` + `stick-table …`). Its runtime
/// and wire name is the backend name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickTable {
    name: String,
    key: String,
    size: String,
    expire: Option<String>,
    peers: Option<String>,
    store: Vec<String>,
    extra: Vec<String>,
}

impl StickTable {
    /// `key` is the text after `type`: `ip`, `ipv6`, `integer`, `string len 32`, `binary len 16`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        StickTable {
            name: name.into(),
            key: key.into(),
            size: "1k".into(),
            expire: None,
            peers: None,
            store: Vec::new(),
            extra: Vec::new(),
        }
    }

    pub fn size(mut self, size: impl Into<String>) -> Self {
        self.size = size.into();
        self
    }

    /// `expire 60s`; without it entries never expire.
    pub fn expire(mut self, expire: impl Into<String>) -> Self {
        self.expire = Some(expire.into());
        self
    }

    /// `peers <section>`: share the table with that section.
    pub fn peers(mut self, section: impl Into<String>) -> Self {
        self.peers = Some(section.into());
        self
    }

    /// Data types, as in `store` (`gpc0`, `conn_rate(10s)`, `gpt(2)`, …).
    pub fn store<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.store.extend(types.into_iter().map(Into::into));
        self
    }

    /// Another line in the backend (`server s1 127.0.0.1:1 disabled`, `stick on src`, …).
    pub fn line(mut self, line: impl Into<String>) -> Self {
        self.extra.push(line.into());
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn render(&self) -> String {
        let mut table = format!("stick-table type {} size {}", self.key, self.size);
        if let Some(expire) = &self.expire {
            let _ = write!(table, " expire {expire}");
        }
        if let Some(peers) = &self.peers {
            let _ = write!(table, " peers {peers}");
        }
        if !self.store.is_empty() {
            let _ = write!(table, " store {}", self.store.join(","));
        }
        let mut text = format!("backend {}\n    {table}\n", self.name);
        for line in &self.extra {
            let _ = writeln!(text, "    {line}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::loopback;

    #[test]
    fn renders_a_peers_section() {
        let text = PeersSection::new("pg", "hap", loopback(21001))
            .remote("tester", loopback(21002))
            .table("t_pdecl type integer size 1k expire 30s store gpc0")
            .render();
        assert_eq!(
            text,
            "peers pg\n    bind 127.0.0.1:21001\n    server hap\n    server tester 127.0.0.1:21002\n    \
             table t_pdecl type integer size 1k expire 30s store gpc0\n"
        );
    }

    #[test]
    fn renders_a_stick_table_backend() {
        let text = StickTable::new("t_str", "string len 32")
            .expire("60s")
            .peers("pg")
            .store(["gpc0", "conn_rate(10s)"])
            .line("server s1 127.0.0.1:9 disabled")
            .render();
        assert_eq!(
            text,
            "backend t_str\n    stick-table type string len 32 size 1k expire 60s peers pg store gpc0,conn_rate(10s)\n    \
             server s1 127.0.0.1:9 disabled\n"
        );
        let bare = StickTable::new("t", "ip").render();
        assert_eq!(bare, "backend t\n    stick-table type ip size 1k\n");
    }
}
