//! 1. Three HAProxy + three sidecars: an entry written on any node, by HTTP traffic or by
//!    `set table`, appears on the other two with identical values, for every key type and a
//!    broad set of data types; with and without mutual TLS.

use std::time::Duration;

use haproxy_peers_sidecar::admin::views::SessionState;
use haproxy_peers_testkit::wait_until;

use crate::admin;
use crate::lab::{self, TABLES};
use crate::writes::write_round;

/// How long replication of one round may take; only reached when something is broken.
pub const CONVERGE: Duration = Duration::from_secs(20);

fn every_write_reaches_every_node(tls: bool) {
    let cluster = lab::start(lab::three(tls));
    let expected = write_round(&cluster, &[0, 1, 2], 1);
    assert_eq!(expected.len(), 3 * (TABLES.len() + 5));
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);

    // Each sidecar's replica holds every entry too.
    for node in cluster.nodes() {
        expected.assert_replica(node);
    }
    // Every session up, and every update acknowledged: nothing waits to be pushed again.
    for node in cluster.nodes() {
        let settled = wait_until(
            "every session established and acknowledged",
            CONVERGE,
            || {
                let peers = admin::peers(node);
                Ok(peers
                    .peers
                    .iter()
                    .all(|p| {
                        p.state == SessionState::Established
                            && p.tables.iter().all(|t| t.behind == 0)
                    })
                    .then_some(peers))
            },
        );
        if let Err(e) = settled {
            panic!(
                "{}: {e}\n{}",
                node.name(),
                admin::sessions_summary(&cluster)
            );
        }
    }
}

#[test]
fn replicates_every_key_and_data_type_over_mutual_tls() {
    every_write_reaches_every_node(true);
}

#[test]
fn replicates_every_key_and_data_type_in_plain_text() {
    every_write_reaches_every_node(false);
}
