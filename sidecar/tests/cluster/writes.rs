//! Writing entries the two ways HAProxy creates them: real HTTP requests through the tracking
//! frontend, and `set table` on the runtime API. Keys are derived from a tag so that every test
//! writes distinct, predictable keys, and so that the test knows how `show table` prints them.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use haproxy_peers_testkit::cluster::{Cluster, Node};
use haproxy_peers_testkit::http_get;

use crate::expect::Expected;
use crate::lab::{Table, TABLES, T_ARR, T_STICK};

/// One key of one table: as sent (header or CLI) and as `show table` prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Written {
    pub table: &'static str,
    pub sent: String,
    pub shown: String,
}

/// The key of `table` for `tag`.
pub fn key(table: Table, tag: u32) -> Written {
    let (sent, shown) = match table.key {
        "ip" => {
            let [_, a, b, c] = tag.to_be_bytes();
            let ip = Ipv4Addr::new(10, a, b, c).to_string();
            (ip.clone(), ip)
        }
        "ipv6" => {
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0x100, tag as u16).to_string();
            (ip.clone(), ip)
        }
        "integer" => {
            let n = 3_000_000_000u64 + u64::from(tag);
            (n.to_string(), n.to_string())
        }
        "binary len 16" => {
            let text = format!("b-{tag}");
            let mut bytes = text.clone().into_bytes();
            bytes.resize(16, 0);
            let hex = bytes.iter().map(|b| format!("{b:02X}")).collect();
            (text, hex)
        }
        _ => {
            let text = format!("{}-{tag}", &table.name[2..]);
            (text.clone(), text)
        }
    };
    Written {
        table: table.name,
        sent,
        shown,
    }
}

/// `requests` GET requests on `node` carrying the key of `table` for `tag` in its header.
pub fn http_write(node: &Node, table: Table, tag: u32, requests: u32) -> Written {
    let written = key(table, tag);
    for _ in 0..requests {
        let response = http_get(node.addrs.http, "/", &[(table.header, &written.sent)])
            .unwrap_or_else(|e| panic!("request to {}: {e}", node.name()));
        assert_eq!(response.status, 200, "{}: {response:?}", node.name());
    }
    written
}

/// Distinct values for every STD type `set table` accepts (`conn_cur` is left out: it is a
/// live count, sent but never learned, peers-protocol §7.11).
pub fn std_values(seed: u64) -> Vec<(&'static str, u64)> {
    vec![
        ("server_id", 1 + seed % 7),
        ("gpt0", 10 + seed),
        ("gpc0", 3_000_000_000 + seed),
        ("gpc0_rate", 20 + seed),
        ("conn_cnt", 30 + seed),
        ("conn_rate", 40 + seed),
        ("sess_cnt", 50 + seed),
        ("http_req_cnt", 60 + seed),
        ("http_req_rate", 70 + seed),
        ("http_err_cnt", 80 + seed),
        ("bytes_in_cnt", (1 << 40) + seed),
        ("bytes_out_rate", 90 + seed),
        ("gpc1", 100 + seed),
    ]
}

/// What `set table` may write in the array table (2.6 writes element 0 of an array).
pub fn array_values(seed: u64) -> Vec<(&'static str, u64)> {
    vec![
        ("gpt", 11 + seed),
        ("gpc", 12 + seed),
        ("gpc_rate", 13 + seed),
        ("http_req_cnt", 14 + seed),
    ]
}

/// `set table <table> key <key for tag> data.… …` on `node`, with the values of
/// [`std_values`] (or [`array_values`] for the array table).
pub fn set_write(node: &Node, table: Table, tag: u32, seed: u64) -> Written {
    assert!(table.settable, "2.6 cannot set entries of {}", table.name);
    let written = key(table, tag);
    let values = if table == T_ARR {
        array_values(seed)
    } else {
        std_values(seed)
    };
    node.api()
        .set_table(table.name, &written.sent, &values)
        .unwrap_or_else(|e| panic!("set table on {}: {e}", node.name()));
    written
}

/// Many entries at once: `count` keys of `table` from tag `first`, each `data.gpc0 <tag>`,
/// several `set table` commands per runtime API line.
pub fn bulk_write(node: &Node, table: Table, first: u32, count: u32) -> Vec<Written> {
    const PER_LINE: usize = 100;
    let tags: Vec<u32> = (first..first + count).collect();
    for chunk in tags.chunks(PER_LINE) {
        let line = chunk
            .iter()
            .map(|tag| {
                format!(
                    "set table {} key {} data.gpc0 {tag}",
                    table.name,
                    key(table, *tag).sent
                )
            })
            .collect::<Vec<_>>()
            .join(";");
        let answer = node
            .api()
            .command(&line)
            .unwrap_or_else(|e| panic!("bulk set table on {}: {e}", node.name()));
        assert!(
            answer.trim().is_empty(),
            "bulk set table on {} refused: {answer}",
            node.name()
        );
    }
    tags.into_iter().map(|tag| key(table, tag)).collect()
}

/// The tag of the `k`-th key node `node` writes in round `round`: distinct across nodes, rounds
/// and keys, so no two writes of a test touch the same entry.
pub fn tag(round: u32, node: usize, k: u32) -> u32 {
    round * 10_000 + node as u32 * 1_000 + k
}

/// On each of `nodes`: every table written by HTTP traffic (3 requests on one key), and every
/// table `set table` accepts written on another key. Checks that each origin shows what was
/// written, and returns every key with its captured values.
pub fn write_round(cluster: &Cluster, nodes: &[usize], round: u32) -> Expected {
    const REQUESTS: u32 = 3;
    let mut expected = Expected::new();
    for &n in nodes {
        let node = cluster.node(n);
        let since = Instant::now();
        let by_http: Vec<Written> = TABLES
            .iter()
            .map(|t| http_write(node, *t, tag(round, n, 1), REQUESTS))
            .collect();
        let seed = u64::from(tag(round, n, 0));
        let by_cli: Vec<(Table, Written)> = TABLES
            .iter()
            .filter(|t| t.settable)
            .map(|t| (*t, set_write(node, *t, tag(round, n, 2), seed)))
            .collect();
        let all: Vec<Written> = by_http
            .iter()
            .cloned()
            .chain(by_cli.iter().map(|(_, w)| w.clone()))
            .collect();
        let mut captured = Expected::new();
        captured.capture(node, &all, since);

        // The origin holds what was written: the reference every other node is held to.
        let requests = REQUESTS.to_string();
        for key in by_http.iter().filter(|k| k.table != T_STICK.name) {
            assert_eq!(captured.shown(key, "http_req_cnt"), requests, "{key:?}");
            if key.table == T_ARR.name {
                assert_eq!(captured.shown(key, "gpc1"), requests, "{key:?}");
                assert_eq!(captured.shown(key, "gpt0"), "5", "{key:?}");
            } else {
                assert_eq!(captured.shown(key, "gpc0"), requests, "{key:?}");
                assert_eq!(captured.shown(key, "http_req_rate"), requests, "{key:?}");
                assert_eq!(captured.shown(key, "gpt0"), "7", "{key:?}");
            }
        }
        let sticky = &by_http[TABLES.iter().position(|t| *t == T_STICK).unwrap_or(0)];
        // The first request of a sticky key picks a server round-robin; later ones stick.
        let server_id = captured.shown(sticky, "server_id");
        assert!(["1", "2"].contains(&server_id.as_str()), "{server_id}");
        assert_eq!(
            captured.shown(sticky, "server_key"),
            format!("s{server_id}")
        );
        for (table, key) in &by_cli {
            let values = if *table == T_ARR {
                array_values(seed)
                    .into_iter()
                    .map(|(name, v)| (shown_element(name), v))
                    .collect()
            } else {
                std_values(seed)
            };
            for (name, value) in values {
                assert_eq!(
                    captured.shown(key, name),
                    value.to_string(),
                    "{key:?} {name}"
                );
            }
        }
        expected.merge(captured);
    }
    expected
}

/// How `show table` names element 0 of an array type.
pub fn shown_element(name: &str) -> &str {
    match name {
        "gpt" => "gpt0",
        "gpc" => "gpc0",
        "gpc_rate" => "gpc0_rate",
        other => other,
    }
}
