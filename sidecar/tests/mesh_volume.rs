//! A table of some size crosses the mesh and is taught whole to a restarted sidecar and a
//! restarted HAProxy (lessons span many polls and fill the socket buffers).

#[path = "mesh_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use haproxy_peers_sidecar::admin::views::TablesView;
use haproxy_peers_testkit::{wait_until, Haproxy};
use support::{ready_pair, Group, Pair};

const WAIT: Duration = Duration::from_secs(60);
const ENTRIES: u32 = 20_000;

/// `set table` for many keys, 200 commands a line on one stats-socket connection.
fn fill(h: &Haproxy) {
    for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(200) {
        let line: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "set table be key 10.2.{}.{} data.gpc0 {i}",
                    i / 256,
                    i % 256
                )
            })
            .collect();
        let mut sock = UnixStream::connect(h.stats_socket()).unwrap();
        sock.write_all(format!("{}\n", line.join("; ")).as_bytes())
            .unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).unwrap();
        assert!(out.trim().is_empty(), "{out}");
    }
}

fn used(h: &Haproxy) -> u64 {
    h.runtime()
        .show_table("be")
        .ok()
        .and_then(|d| d.header.map(|hd| hd.used))
        .unwrap_or(0)
}

#[test]
fn twenty_thousand_entries_replicate_and_are_taught_again() {
    let group = Group::new(&["edge-0", "edge-1"], &[], true, 2);
    let Pair {
        a: _a,
        mut b,
        hap_a,
        mut hap_b,
    } = ready_pair(&group, WAIT);
    fill(&hap_a);
    wait_until("all entries on B", WAIT, || {
        Ok((used(&hap_b) == u64::from(ENTRIES)).then_some(()))
    })
    .unwrap();

    b.restart_and_learn(&group, "edge-0", WAIT);
    let (_, body) = b.get("/tables?format=json");
    let tables: TablesView = serde_json::from_str(&body).unwrap();
    assert_eq!(tables.tables[0].entries, u64::from(ENTRIES), "{body}");

    hap_b.kill().unwrap();
    hap_b.restart().unwrap();
    b.wait_ready(WAIT);
    assert_eq!(used(&hap_b), u64::from(ENTRIES));
}
