//! 6. A short network cut between two members, with writes on both sides during the cut: both
//!    sides keep serving, and after the heal each resumes pushing from the other's last ack —
//!    exactly the missed updates travel, no lesson is asked or taught — and nothing is lost.

use std::time::{Duration, Instant};

use haproxy_peers_sidecar::admin::views::{PeerView, SessionState, SyncKind, SyncOutcome};
use haproxy_peers_testkit::cluster::{pod_name, Cluster};
use haproxy_peers_testkit::{wait_until, CutMode};

use crate::admin::{self, metric_sum, Sample};
use crate::expect::{log_tails, Expected};
use crate::lab::{self, Table, TABLES, T_INT, T_STR};
use crate::replicate::CONVERGE;
use crate::writes::{set_write, tag, write_round};

/// Keys each side writes during the cut.
const DURING_CUT: u32 = 12;

const UPDATES: &str = "haproxy_peers_sidecar_updates_received_total";
const RESYNCS: &str = "haproxy_peers_sidecar_resyncs_total";

/// Waits until `node`'s session with `peer` satisfies `ok`, and returns that view.
fn wait_peer(
    cluster: &Cluster,
    node: usize,
    peer: usize,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&PeerView) -> bool,
) -> PeerView {
    let node_ref = cluster.node(node);
    wait_until(
        &format!(
            "{}'s session with {}: {what}",
            node_ref.name(),
            pod_name(peer)
        ),
        timeout,
        || {
            let view = admin::peer(node_ref, &pod_name(peer));
            Ok(ok(&view).then_some(view))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}: {:#?}\n{}\n{}",
            admin::peer(node_ref, &pod_name(peer)),
            admin::sessions_summary(cluster),
            log_tails(cluster)
        )
    })
}

fn settled(view: &PeerView) -> bool {
    view.state == SessionState::Established && view.tables.iter().all(|t| t.behind == 0)
}

/// `samples`' count of updates received from `peer` in `table`.
fn received(samples: &[Sample], peer: usize, table: Table) -> f64 {
    metric_sum(
        samples,
        UPDATES,
        &[("peer", &pod_name(peer)), ("table", table.name)],
    )
}

/// One side of the cut link before the cut: its view of the other side and its metrics.
struct Side {
    me: usize,
    other: usize,
    /// The table it writes during the cut.
    writes: Table,
    view: PeerView,
    metrics: Vec<Sample>,
}

/// The last lesson with a peer, without its age.
fn last_lesson(view: &PeerView) -> Option<(SyncKind, SyncOutcome, u64)> {
    view.last_sync
        .as_ref()
        .map(|s| (s.kind, s.outcome, s.entries))
}

#[test]
fn a_short_cut_resumes_from_acks_and_loses_nothing() {
    let cluster = lab::start(lab::three(true).relayed(true));
    let mut expected = write_round(&cluster, &[0, 1, 2], 1);
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);
    // Quiet: every update acknowledged both ways, so that what travels after the heal is
    // exactly what the cut made the other side miss.
    let (a, b) = (0, 1);
    let sides: Vec<Side> = [(a, b, T_STR), (b, a, T_INT)]
        .into_iter()
        .map(|(me, other, writes)| Side {
            me,
            other,
            writes,
            view: wait_peer(
                &cluster,
                me,
                other,
                "established, all acked",
                CONVERGE,
                settled,
            ),
            metrics: admin::metrics(cluster.node(me)),
        })
        .collect();

    cluster.cut(a, b, CutMode::Refuse).unwrap();
    for side in &sides {
        let down = |v: &PeerView| v.state != SessionState::Established;
        wait_peer(
            &cluster,
            side.me,
            side.other,
            "down after the cut",
            CONVERGE,
            down,
        );
    }

    // Both sides keep serving, each writing its own table.
    let mut during = Expected::new();
    for side in &sides {
        let node = cluster.node(side.me);
        let since = Instant::now();
        let keys: Vec<_> = (0..DURING_CUT)
            .map(|k| set_write(node, side.writes, tag(2, side.me, k), u64::from(k)))
            .collect();
        during.capture(node, &keys, since);
    }
    expected.merge(during);
    // The third member, still linked to both, gets both sides' writes during the cut.
    expected.wait_on(&cluster, &[2], CONVERGE);
    assert!(
        cluster.relay(a, b).unwrap().is_cut() && cluster.relay(b, a).unwrap().is_cut(),
        "the link healed by itself"
    );
    let still_down = admin::peer(cluster.node(a), &pod_name(b));
    assert_ne!(
        still_down.state,
        SessionState::Established,
        "{still_down:#?}"
    );

    cluster.heal(a, b).unwrap();
    let after: Vec<PeerView> = sides
        .iter()
        .map(|s| {
            wait_peer(
                &cluster,
                s.me,
                s.other,
                "back and settled",
                CONVERGE,
                settled,
            )
        })
        .collect();
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);
    assert!(
        sides
            .iter()
            .zip(&after)
            .any(|(s, now)| now.reconnects > s.view.reconnects),
        "neither side counted a reconnect: {after:#?}"
    );

    for (side, now_view) in sides.iter().zip(&after) {
        let (me, other) = (pod_name(side.me), pod_name(side.other));
        let now = admin::metrics(cluster.node(side.me));
        // No lesson either way: the same last sync, the same resync counters.
        assert_eq!(
            last_lesson(now_view),
            last_lesson(&side.view),
            "{me}: a lesson with {other} after the cut"
        );
        let resyncs = |samples: &[Sample]| metric_sum(samples, RESYNCS, &[("peer", &other)]);
        assert_eq!(
            resyncs(&now),
            resyncs(&side.metrics),
            "{me}: resyncs with {other}"
        );
        // Exactly the missed updates travelled: the other side's cut-time writes, once each,
        // and nothing else.
        let other_writes = sides.iter().find(|s| s.me == side.other).map(|s| s.writes);
        for table in TABLES {
            let want = if Some(table) == other_writes {
                DURING_CUT
            } else {
                0
            };
            assert_eq!(
                received(&now, side.other, table) - received(&side.metrics, side.other, table),
                f64::from(want),
                "{me}: updates received from {other} in {} since the cut",
                table.name
            );
        }
    }
}
