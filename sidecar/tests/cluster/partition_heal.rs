//! 7. A partition that cuts one member off from the two others, with writes on both sides of
//!    it, the same key included: both sides keep serving (each side's writes reach its own
//!    members, not the other side), and after the heal every HAProxy and every sidecar holds
//!    every key, and the key written on both sides holds the later write.
//!
//!    The links heal one after the other, so that the order of events is certain: first to
//!    the member that only relayed the later write. It refuses the cut-off member's older
//!    value (`stale_rejected`) and sends the later one back, which the cut-off member takes:
//!    a stale sender is corrected by whoever holds the newer value, not only by its writer.
//!    Then to the writer, whose push changes nothing there any more. (With the arrival rule
//!    the relaying member would have taken the older value and kept it.) Crossing pushes of
//!    the two writers are shown by `tests/session_heal.rs`.

use std::time::{Duration, Instant};

use haproxy_peers_sidecar::admin::views::{DataValue, SessionState, TableView, Value};
use haproxy_peers_testkit::cluster::{pod_name, Cluster, Node};
use haproxy_peers_testkit::{wait_until, CutMode};

use crate::admin::{self, metric_sum, Sample};
use crate::expect::{log_tails, Expected};
use crate::lab::{self, T_IP};
use crate::replicate::CONVERGE;
use crate::writes::{set_write, std_values, tag, Written};

/// Distinct keys each member writes during the partition.
const EACH: u32 = 4;
/// Between the two writes of the shared key: far beyond transit times and the replica's
/// expiry tolerance (1 s), so that which write is later is not in doubt.
const LATER_BY: Duration = Duration::from_millis(1_500);

const UPDATES: &str = "haproxy_peers_sidecar_updates_received_total";
const STALE: &str = "haproxy_peers_sidecar_stale_rejected_total";

/// The shared key's seeds: the cut-off member writes first, a member of the majority later.
const SEED_FIRST: u64 = 100;
const SEED_LATER: u64 = 200;

/// `node`'s session with `peer` is (or is not) established, within `CONVERGE`.
fn wait_session(cluster: &Cluster, node: usize, peer: usize, up: bool) {
    let n = cluster.node(node);
    wait_until(
        &format!(
            "{}'s session with {} {}",
            n.name(),
            pod_name(peer),
            if up { "up" } else { "down" }
        ),
        CONVERGE,
        || {
            let view = admin::peer(n, &pod_name(peer));
            Ok(((view.state == SessionState::Established) == up).then_some(()))
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\n{}",
            admin::sessions_summary(cluster),
            log_tails(cluster)
        )
    });
}

/// `count` keys of `t_ip` written with `set table` on `node` from tag `first`, captured.
fn write_keys(node: &Node, round: u32, index: usize, count: u32) -> Expected {
    let since = Instant::now();
    let keys: Vec<Written> = (0..count)
        .map(|k| set_write(node, T_IP, tag(round, index, k), u64::from(k)))
        .collect();
    let mut captured = Expected::new();
    captured.capture(node, &keys, since);
    captured
}

/// The shared key written on `node` with every value of `seed`, captured.
fn write_shared(node: &Node, seed: u64) -> (Written, Expected) {
    let since = Instant::now();
    let key = set_write(node, T_IP, tag(9, 0, 0), seed);
    let mut captured = Expected::new();
    captured.capture(node, std::slice::from_ref(&key), since);
    assert_eq!(captured.shown(&key, "gpc0"), gpc0_of(seed).to_string());
    (key, captured)
}

fn gpc0_of(seed: u64) -> u64 {
    std_values(seed)
        .into_iter()
        .find_map(|(name, v)| (name == "gpc0").then_some(v))
        .unwrap_or_default()
}

/// `node`'s sidecar's replica entry for `key` of `t_ip`.
fn replica_entry(node: &Node, key: &Written) -> TableView {
    let path = format!("/tables/{}?key={}&format=json", key.table, key.sent);
    let body = node
        .sidecar
        .get_ok(&path)
        .unwrap_or_else(|e| panic!("{} {path}: {e}", node.name()));
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{} {path}: {e} in {body}", node.name()))
}

fn gpc0_in(view: &TableView) -> Option<u64> {
    let entry = view.entry.as_ref()?;
    entry
        .values
        .iter()
        .find(|v: &&DataValue| v.name == "gpc0")
        .and_then(|v| match v.value {
            Value::Unsigned { value } => Some(value),
            _ => None,
        })
}

fn updates_from(samples: &[Sample], peer: usize) -> f64 {
    metric_sum(
        samples,
        UPDATES,
        &[("peer", &pod_name(peer)), ("table", T_IP.name)],
    )
}

fn stale(samples: &[Sample]) -> f64 {
    metric_sum(samples, STALE, &[("table", T_IP.name)])
}

#[test]
fn a_healed_partition_converges_on_the_later_write() {
    let cluster = lab::start(lab::three(true).relayed(true));
    // The cut-off member; the majority's writer of the shared key, and its relay.
    let (cut_off, writer, relay) = (0, 1, 2);
    // Before: a few keys everywhere.
    let mut expected = write_keys(cluster.node(relay), 1, relay, EACH);
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);

    for m in [writer, relay] {
        cluster.cut(cut_off, m, CutMode::Refuse).unwrap();
    }
    for m in [writer, relay] {
        wait_session(&cluster, cut_off, m, false);
        wait_session(&cluster, m, cut_off, false);
    }
    let before: Vec<Vec<Sample>> = cluster.nodes().iter().map(admin::metrics).collect();

    // Both sides keep serving. The cut-off member writes the shared key first, the writer
    // later; every member writes keys of its own.
    let (shared, first) = write_shared(cluster.node(cut_off), SEED_FIRST);
    let mut side_cut = write_keys(cluster.node(cut_off), 2, cut_off, EACH);
    side_cut.merge(first);
    std::thread::sleep(LATER_BY);
    let (_, later) = write_shared(cluster.node(writer), SEED_LATER);
    let own = |m: usize| write_keys(cluster.node(m), 2, m, EACH);
    let (of_writer, of_relay) = (own(writer), own(relay));
    // Each side's writes are visible within it and nowhere else: the cut-off member shows its
    // own value of the shared key, the majority the later one; neither shows the other
    // side's keys (`nobody wrote this key`).
    let union = |parts: &[&Expected]| {
        let mut all = expected.clone();
        for p in parts {
            all.merge((*p).clone());
        }
        all
    };
    union(&[&side_cut]).wait_on(&cluster, &[cut_off], CONVERGE);
    union(&[&later, &of_writer, &of_relay]).wait_on(&cluster, &[writer, relay], CONVERGE);
    for m in [writer, relay] {
        assert!(
            cluster.relay(cut_off, m).unwrap().is_cut()
                && cluster.relay(m, cut_off).unwrap().is_cut(),
            "the link {cut_off}-{m} healed by itself"
        );
    }

    // Heal towards the relay: the cut-off member gets the later write from it (and the
    // relay's own keys; the writer's keys are the writer's to send).
    cluster.heal(cut_off, relay).unwrap();
    wait_session(&cluster, cut_off, relay, true);
    wait_session(&cluster, relay, cut_off, true);
    union(&[&side_cut, &later, &of_relay]).wait_on(&cluster, &[cut_off], CONVERGE);
    // Then towards the writer: every key everywhere, the shared key as the writer wrote it.
    cluster.heal(cut_off, writer).unwrap();
    wait_session(&cluster, cut_off, writer, true);
    wait_session(&cluster, writer, cut_off, true);
    expected = union(&[&side_cut, &later, &of_writer, &of_relay]);
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);
    // The sidecars' replicas agree with their HAProxies.
    for node in cluster.nodes() {
        expected.assert_replica(node);
        let view = replica_entry(node, &shared);
        assert_eq!(
            gpc0_in(&view),
            Some(gpc0_of(SEED_LATER)),
            "{}: replica's shared key {view:#?}",
            node.name()
        );
    }

    // What travelled from the cut-off member: its own keys to both, its value of the shared
    // key to the relay only (once the relay corrected it, it was no longer its own to send).
    // Only the relay refused anything: that value, once.
    let after: Vec<Vec<Sample>> = cluster.nodes().iter().map(admin::metrics).collect();
    let delta = |node: usize, f: &dyn Fn(&[Sample]) -> f64| f(&after[node]) - f(&before[node]);
    let own_keys = f64::from(EACH);
    // (What the cut-off member received is not counted: acks in flight at the cut may have
    // made the others push a few keys of before again.)
    for (m, sent, refused) in [
        (writer, Some(own_keys), 0.0),
        (relay, Some(own_keys + 1.0), 1.0),
        (cut_off, None, 0.0),
    ] {
        let name = pod_name(m);
        if let Some(sent) = sent {
            assert_eq!(
                delta(m, &|s| updates_from(s, cut_off)),
                sent,
                "{name}: updates from {} after the heal",
                pod_name(cut_off)
            );
        }
        assert_eq!(delta(m, &stale), refused, "{name}: stale updates refused");
        let summary = admin::tables(cluster.node(m))
            .tables
            .into_iter()
            .find(|t| t.definition.name == T_IP.name)
            .unwrap();
        assert_eq!(
            summary.stale_rejected as f64,
            stale(&after[m]),
            "{name}: /tables and /metrics"
        );
    }
}
