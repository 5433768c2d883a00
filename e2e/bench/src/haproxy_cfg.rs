//! The HAProxy configurations of the benchmarks: one table `st` (as [`crate::peer::table`]
//! defines it on the wire) shared through one `peers` section, one thread per process.

use std::net::SocketAddr;

use haproxy_peers_testkit::cluster::{render_peers_cfg, PEERS_SECTION};
use haproxy_peers_testkit::config::{PeersSection, StickTable, TEST_DEFAULTS};

/// The table's runtime (and wire) name.
pub const TABLE: &str = "st";

/// `global`: one thread (each HAProxy of a benchmark then competes for the same share of the
/// shared cores), and an interactive runtime connection may stay idle between phases.
const GLOBAL: &str = "global\n    nbthread 1\n    stats timeout 1h\n";

/// `backend st` with the benchmark table, shared with `section`.
pub fn table(section: &str, size: u64) -> String {
    StickTable::new(TABLE, "ip")
        .size(size.to_string())
        .expire("1h")
        .peers(section)
        .store(["gpc0", "http_req_rate(10s)"])
        .render()
}

/// A HAProxy peered natively: section `mesh`, local peer `local` (start it with `-L <local>`)
/// listening on `bind`, and every remote peer.
pub fn native(local: &str, bind: SocketAddr, remotes: &[(&str, SocketAddr)], size: u64) -> String {
    let section = remotes.iter().fold(
        PeersSection::new("mesh", local, bind),
        |section, (name, addr)| section.remote(*name, *addr),
    );
    format!(
        "{GLOBAL}\n{TEST_DEFAULTS}\n{}\n{}",
        section.render(),
        table("mesh", size)
    )
}

/// A pod's HAProxy without its `peers.cfg` (the testkit's cluster appends it).
pub fn pod(size: u64) -> String {
    format!("{GLOBAL}\n{TEST_DEFAULTS}\n{}", table(PEERS_SECTION, size))
}

/// A pod's HAProxy with `peers.cfg` as the operator renders it: its only remote peer is its
/// sidecar. Start it with `POD_NAME` set and no `-L`.
pub fn pod_with_peers(size: u64, haproxy: SocketAddr, sidecar: SocketAddr) -> String {
    format!(
        "{}\n{}",
        pod(size),
        render_peers_cfg(PEERS_SECTION, haproxy.port(), sidecar.port())
    )
}
