//! The HAProxy of every pod: stick tables of the five key types with the interop lab's STD data
//! types, an array table, a sticky-session backend, and a frontend whose tracking keys come from
//! request headers so that tests choose the keys.

use std::time::Duration;

use haproxy_peers_testkit::cluster::{Cluster, ClusterOptions, NodeAddrs, PEERS_SECTION};
use haproxy_peers_testkit::config::{StickTable, STD_STORE, TEST_DEFAULTS};

/// Every table's `expire`: far beyond any test, so nothing expires while one runs.
pub const EXPIRE_MS: u64 = 600_000;
/// The rate period of every frequency counter (`…_rate(10s)`).
pub const PERIOD_MS: u64 = 10_000;

/// The interop lab's "STD" store set.
pub const STD: &[&str] = STD_STORE;

pub const ARRAYS: &[&str] = &["gpt(2)", "gpc(2)", "gpc_rate(2,10s)", "http_req_cnt"];

/// One replicated table: its name (runtime and wire: they are backends), key type, stored types,
/// and the request header whose value is the tracked key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub key: &'static str,
    pub store: &'static [&'static str],
    pub header: &'static str,
    /// `set table` works on it (2.6 refuses binary keys).
    pub settable: bool,
}

pub const T_IP: Table = Table {
    name: "t_ip",
    key: "ip",
    store: STD,
    header: "x-ip",
    settable: true,
};
pub const T_IPV6: Table = Table {
    name: "t_ipv6",
    key: "ipv6",
    store: STD,
    header: "x-ip6",
    settable: true,
};
pub const T_INT: Table = Table {
    name: "t_int",
    key: "integer",
    store: STD,
    header: "x-int",
    settable: true,
};
pub const T_STR: Table = Table {
    name: "t_str",
    key: "string len 32",
    store: STD,
    header: "x-client",
    settable: true,
};
pub const T_BIN: Table = Table {
    name: "t_bin",
    key: "binary len 16",
    store: STD,
    header: "x-bin",
    settable: false,
};
pub const T_ARR: Table = Table {
    name: "t_arr",
    key: "string len 32",
    store: ARRAYS,
    header: "x-arr",
    settable: true,
};
/// `stick on req.hdr(x-sticky)`: HAProxy stores the chosen server's id and name.
pub const T_STICK: Table = Table {
    name: "t_stick",
    key: "string len 32",
    store: &["server_id", "server_key"],
    header: "x-sticky",
    settable: false,
};

pub const TABLES: [Table; 7] = [T_IP, T_IPV6, T_INT, T_STR, T_BIN, T_ARR, T_STICK];

impl Table {
    fn backend(&self, node: &NodeAddrs) -> String {
        let mut table = StickTable::new(self.name, self.key)
            .size("10k")
            .expire(format!("{EXPIRE_MS}ms"))
            .peers(PEERS_SECTION)
            .store(self.store.iter().copied());
        if *self == T_STICK {
            table = table
                .line("stick on req.hdr(x-sticky)")
                .line(format!("server s1 {}", node.origin))
                .line(format!("server s2 {}", node.origin));
        }
        table.render()
    }

    /// The tracking rule: IP tables read the header as an address, the integer table as a
    /// number, string and binary tables as text (padded with zeros for binary).
    fn track(&self) -> Option<String> {
        let fetch = match self.key {
            "ip" | "ipv6" => format!("req.hdr_ip({})", self.header),
            "integer" => format!("req.hdr_val({})", self.header),
            _ => format!("req.hdr({})", self.header),
        };
        let counter = match *self {
            T_STICK => return None,
            T_ARR => 1,
            _ => 0,
        };
        Some(format!(
            "    http-request track-sc{counter} {fetch} table {} if {{ req.hdr({}) -m found }}\n",
            self.name, self.header
        ))
    }
}

/// The configuration of pod `node`'s HAProxy, without `peers.cfg` (the cluster appends it).
///
/// Per request on a tracked key: `http_req_cnt`/`_rate`, `conn_cnt`/`_rate`, `bytes_*`, and
/// `gpc0 += 1`, `gpc1 += 1`, `gpt0 = 7` (sc0); `gpc[1] += 1`, `gpt[0] = 5` (sc1, t_arr).
/// Requests with `x-sticky` go through the sticky backend to the origin frontend.
pub fn haproxy_config(node: &NodeAddrs) -> String {
    let mut config = format!("{TEST_DEFAULTS}\n");
    for table in TABLES {
        config.push_str(&table.backend(node));
    }
    config.push_str(&format!(
        "frontend origin\n    bind {}\n    http-request return status 200\n\n\
         frontend fe\n    bind {}\n",
        node.origin, node.http
    ));
    for table in TABLES {
        if let Some(rule) = table.track() {
            config.push_str(&rule);
        }
    }
    config.push_str(
        "    http-request sc-inc-gpc0(0)\n    http-request sc-inc-gpc1(0)\n    \
         http-request sc-set-gpt0(0) 7\n    http-request sc-inc-gpc(1,1)\n    \
         http-request sc-set-gpt(0,1) 5\n    \
         http-request return status 200 if !{ req.hdr(x-sticky) -m found }\n    \
         use_backend t_stick\n",
    );
    config
}

/// The sidecar binary Cargo built for this test target.
pub fn sidecar_binary() -> &'static str {
    env!("CARGO_BIN_EXE_haproxy-peers-sidecar")
}

/// How long a fresh group may take to be Ready: the resync timeout plus process start-up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A group of `size` pods with this lab's HAProxy, every sidecar Ready.
pub fn start(options: ClusterOptions) -> Cluster {
    let cluster = Cluster::start(options, haproxy_config).unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = cluster.wait_ready(READY_TIMEOUT) {
        panic!("{e}\n{}", cluster.logs());
    }
    cluster
}

/// Options for a group of three: resync timeout 3 s, as every test starts its group empty.
pub fn three(tls: bool) -> ClusterOptions {
    ClusterOptions::new(sidecar_binary(), 3)
        .tls(tls)
        .resync_timeout_seconds(3)
}

/// The lab on its own (no sidecar): HAProxy accepts the configuration with `peers.cfg` as the
/// operator renders it, and every table shows the keys as the tests expect them printed.
#[test]
fn the_lab_haproxy_tracks_every_table_by_header() {
    use haproxy_peers_testkit::cluster::{pod_name, render_peers_cfg};
    use haproxy_peers_testkit::{free_addr, free_port, http_get, Haproxy, HaproxyOptions};

    let node = NodeAddrs {
        index: 0,
        name: pod_name(0),
        mesh: free_addr().unwrap(),
        haproxy_peers: free_addr().unwrap(),
        sidecar_local: free_addr().unwrap(),
        admin: free_addr().unwrap(),
        http: free_addr().unwrap(),
        origin: free_addr().unwrap(),
    };
    let config = format!(
        "{}\n{}",
        haproxy_config(&node),
        render_peers_cfg(
            PEERS_SECTION,
            node.haproxy_peers.port(),
            free_port().unwrap()
        )
    );
    let haproxy = Haproxy::start(HaproxyOptions::new(config).env("POD_NAME", &node.name)).unwrap();
    for table in TABLES {
        let key = crate::writes::key(table, 4242);
        let response = http_get(node.http, "/", &[(table.header, &key.sent)]).unwrap();
        assert_eq!(response.status, 200, "{response:?}");
        let dump = haproxy.runtime().show_table(table.name).unwrap();
        let entry = dump
            .entry(&key.shown)
            .unwrap_or_else(|| panic!("{key:?} not shown as expected: {dump:#?}"));
        assert!(entry.exp > EXPIRE_MS - 10_000, "{entry:?}");
        assert_eq!(dump.entries.len(), 1, "{dump:#?}");
    }
    // `set table` takes every value the tests write.
    for table in TABLES.iter().filter(|t| t.settable) {
        let key = crate::writes::key(*table, 4343);
        let values = if *table == T_ARR {
            crate::writes::array_values(5)
        } else {
            crate::writes::std_values(5)
        };
        haproxy
            .runtime()
            .set_table(table.name, &key.sent, &values)
            .unwrap();
        let entry = haproxy
            .runtime()
            .table_entry(table.name, &key.sent)
            .unwrap();
        let entry = entry.unwrap_or_else(|| panic!("{key:?}"));
        assert_eq!(entry.key, key.shown);
        for (name, value) in values {
            let name = crate::writes::shown_element(name);
            assert_eq!(entry.u64(name), Some(value), "{name} in {entry:?}");
        }
    }
    // The local peer is the pod name from the environment: the peers section is live.
    let sections = haproxy.runtime().show_peers().unwrap();
    let edge = sections.iter().find(|s| s.name == PEERS_SECTION).unwrap();
    assert!(edge.peer("edge-0").unwrap().local, "{edge:?}");
    assert!(edge
        .peer(haproxy_peers_members::SIDECAR_PEER_NAME)
        .is_some());
}
