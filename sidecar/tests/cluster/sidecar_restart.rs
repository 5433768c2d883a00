//! 3. A sidecar killed with SIGKILL and restarted relearns everything, and no HAProxy loses an
//!    entry: neither those written while it was down on its own HAProxy (which queues them) nor
//!    those written elsewhere meanwhile.

use std::time::Duration;

use haproxy_peers_sidecar::admin::views::ReplicaSync;

use crate::admin;
use crate::expect::log_tails;
use crate::lab;
use crate::replicate::CONVERGE;
use crate::writes::write_round;

/// HAProxy calls a peer it lost again only every 5 s (peers-protocol §7.6), and the restarted
/// sidecar may wait out one resync timeout.
const BACK: Duration = Duration::from_secs(30);

#[test]
fn a_killed_sidecar_relearns_everything_and_no_entry_is_lost() {
    let mut cluster = lab::start(lab::three(true));
    let mut expected = write_round(&cluster, &[0, 1, 2], 1);
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);

    let victim = 2;
    cluster.node_mut(victim).sidecar.kill().unwrap();
    // While it is gone: writes on its own HAProxy and on another pod.
    expected.merge(write_round(&cluster, &[0, victim], 2));
    cluster.node_mut(victim).sidecar.restart().unwrap();
    if let Err(e) = cluster.node(victim).sidecar.wait_ready(BACK) {
        panic!("{e}\n{}", log_tails(&cluster));
    }
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);

    // The restarted replica learned the whole table from a member, and holds every entry.
    let node = cluster.node(victim);
    let peers = admin::peers(node);
    assert!(
        matches!(&peers.replica, ReplicaSync::Learned { from } if from != node.name()),
        "{:#?}",
        peers.replica
    );
    expected.assert_replica(node);
}
