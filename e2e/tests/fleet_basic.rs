//! Three pods with mutual TLS, configured from the operator's render: real HTTP traffic through
//! each HAProxy fills the rate-limit and sticky-session tables, and every node converges on the
//! same entries; sessions stay on their server whichever pod serves them; every pod is Ready
//! with both mesh sessions and its HAProxy link established; nothing is left behind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use haproxy_peers_e2e::haproxy_cfg::{
    CLIENT_HEADER, RATE_TABLE, SERVERS, SESSION_HEADER, STICKY_TABLE,
};
use haproxy_peers_e2e::netns::namespaces_with_prefix;
use haproxy_peers_e2e::{poll, Binaries, Fleet, FleetOptions};
use haproxy_peers_testkit::rate_bounds;

const PODS: usize = 3;
const REQUESTS: u64 = 12;
const READY: Duration = Duration::from_secs(60);
const CONVERGE: Duration = Duration::from_secs(30);
/// The rate's period, as configured (`http_req_rate(10s)`).
const RATE_PERIOD_MS: u64 = 10_000;

fn start() -> Fleet {
    let binaries =
        Binaries::with_probe(env!("CARGO_BIN_EXE_hp-e2e-probe")).unwrap_or_else(|e| panic!("{e}"));
    let fleet = Fleet::start(FleetOptions::new(binaries, PODS)).unwrap_or_else(|e| panic!("{e}"));
    fleet
        .wait_ready(READY)
        .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
    fleet
}

/// Whether a process with this pid still runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

#[test]
fn three_pods_share_rate_and_sticky_tables_and_leave_nothing_behind() {
    let fleet = start();
    let names = fleet.pod_names();
    let fail = |what: String| -> ! { panic!("{what}\n{}", fleet.logs()) };

    // Every pod: Ready, its HAProxy link and a session with each other member established.
    for name in &names {
        let want: Vec<String> = names.iter().filter(|n| *n != name).cloned().collect();
        poll(&format!("{name}'s sessions"), CONVERGE, || {
            let snap = fleet.admin(name)?;
            let mut members = snap.established_members();
            members.sort();
            Ok((snap.is_ready() && snap.haproxy_established() && members == want).then_some(()))
        })
        .unwrap_or_else(|e| fail(format!("{e}: last /peers: {:#?}", fleet.admin(name))));
    }

    // Traffic: client-<i> and session-<i> through pod i only.
    let first_request = Instant::now();
    let mut server_of: BTreeMap<String, String> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let tally = fleet
            .http(
                name,
                REQUESTS,
                &[
                    (CLIENT_HEADER, &format!("client-{i}")),
                    (SESSION_HEADER, &format!("session-{i}")),
                ],
            )
            .unwrap_or_else(|e| fail(e.to_string()));
        assert_eq!(tally.status(200), REQUESTS, "{name}: {tally:?}");
        assert_eq!(tally.pods.get(name), Some(&REQUESTS), "{name}: {tally:?}");
        // A session sticks to the first server it got.
        assert_eq!(tally.servers.len(), 1, "{name}: {tally:?}");
        let server = tally.servers.keys().next().cloned().unwrap_or_default();
        server_of.insert(format!("session-{i}"), server);
    }
    let server_id = |server: &str| {
        SERVERS
            .iter()
            .find(|(name, _, _)| *name == server)
            .map(|(_, _, id)| i64::from(*id))
            .unwrap_or_else(|| panic!("unknown server {server}"))
    };

    // Every HAProxy converges: exact request counts, rates within what the period allows, the
    // same server for every session.
    for name in &names {
        let api = fleet.pod(name).unwrap().runtime();
        poll(&format!("{name}'s tables to converge"), CONVERGE, || {
            let rate = api.show_table(RATE_TABLE)?;
            let sticky = api.show_table(STICKY_TABLE)?;
            let counted = (0..PODS).all(|i| {
                rate.entry(&format!("client-{i}"))
                    .and_then(|e| e.u64("http_req_cnt"))
                    == Some(REQUESTS)
            });
            let stuck = server_of.iter().all(|(session, server)| {
                sticky.entry(session).and_then(|e| e.i64("server_id")) == Some(server_id(server))
            });
            Ok((counted && stuck).then_some(rate))
        })
        .map(|rate| {
            let age = u64::try_from(first_request.elapsed().as_millis()).unwrap_or(u64::MAX);
            // The period started at a client's first request at the earliest; a replica's
            // clock re-base may shift it by the propagation delay (1 s margin).
            let (low, high) = rate_bounds(REQUESTS, 0, RATE_PERIOD_MS, 0, age + 1_000);
            for i in 0..PODS {
                let key = format!("client-{i}");
                let shown = rate.entry(&key).and_then(|e| e.u64("http_req_rate"));
                assert!(
                    shown.is_some_and(|r| (low..=high).contains(&r)),
                    "{name} {key}: http_req_rate {shown:?}, expected {low}..={high} ({age} ms after the first request)"
                );
            }
        })
        .unwrap_or_else(|e| fail(format!("{e}: {name} shows {:?}", api.show_table(RATE_TABLE))));
    }

    // A session bound on one pod keeps its server on every other pod.
    for (i, name) in names.iter().enumerate() {
        let session = format!("session-{}", (i + 1) % PODS);
        let tally = fleet
            .http(name, 3, &[(SESSION_HEADER, &session)])
            .unwrap_or_else(|e| fail(e.to_string()));
        let want = &server_of[&session];
        assert_eq!(
            tally.servers,
            BTreeMap::from([(want.clone(), 3)]),
            "{session} through {name}"
        );
    }

    // A counter written on one node reads exactly the same on every node.
    let writer = fleet.pod(&names[0]).unwrap().runtime();
    writer
        .set_table(RATE_TABLE, "written-by-cli", &[("gpc0", 42)])
        .unwrap_or_else(|e| fail(e.to_string()));
    for name in &names {
        let api = fleet.pod(name).unwrap().runtime();
        poll(&format!("gpc0 on {name}"), CONVERGE, || {
            Ok(api
                .table_entry(RATE_TABLE, "written-by-cli")?
                .and_then(|e| e.u64("gpc0"))
                .filter(|v| *v == 42))
        })
        .unwrap_or_else(|e| fail(e.to_string()));
    }

    // Every sidecar's replica holds every entry; every pod is still Ready.
    for name in &names {
        poll(&format!("{name}'s replica"), CONVERGE, || {
            let snap = fleet.admin(name)?;
            Ok((snap.is_ready()
                && snap.replica_entries(RATE_TABLE) == Some(PODS as u64 + 1)
                && snap.replica_entries(STICKY_TABLE) == Some(PODS as u64))
            .then_some(()))
        })
        .unwrap_or_else(|e| fail(format!("{e}: last /tables: {:#?}", fleet.admin(name))));
    }

    // Cleanup: no process, namespace or hosts directory of the run survives the fleet.
    let prefix = fleet.network().prefix();
    let pids = fleet.pids().unwrap_or_else(|e| fail(e.to_string()));
    assert!(
        pids.len() >= 2 * PODS,
        "expected a HAProxy and a sidecar per pod, found pids {pids:?}"
    );
    assert!(!namespaces_with_prefix(&prefix).is_empty());
    drop(fleet);
    assert_eq!(namespaces_with_prefix(&prefix), Vec::<String>::new());
    let survivors: Vec<u32> = pids.into_iter().filter(|p| alive(*p)).collect();
    assert!(
        survivors.is_empty(),
        "processes left running: {survivors:?}"
    );
}

/// `tls.enabled: false`: no Secret is rendered, the sidecars mesh in plain text, and a write
/// still reaches every node.
#[test]
fn without_tls_the_mesh_is_plain_text_and_still_replicates() {
    let binaries =
        Binaries::with_probe(env!("CARGO_BIN_EXE_hp-e2e-probe")).unwrap_or_else(|e| panic!("{e}"));
    let mut options = FleetOptions::new(binaries, 2);
    options.group.tls = false;
    let fleet = Fleet::start(options).unwrap_or_else(|e| panic!("{e}"));
    let fail = |what: String| -> ! { panic!("{what}\n{}", fleet.logs()) };
    let rendered = fleet.rendered().expect("a reconcile ran");
    assert!(rendered.tls.is_none() && rendered.plan.is_none());
    assert!(
        rendered.members_yaml().contains("tls: false"),
        "{}",
        rendered.members_yaml()
    );
    assert!(!fleet.pod("edge-0").unwrap().tls_dir().exists());
    fleet
        .wait_ready(READY)
        .unwrap_or_else(|e| fail(e.to_string()));
    fleet
        .pod("edge-1")
        .unwrap()
        .runtime()
        .set_table(RATE_TABLE, "plain", &[("gpc0", 7)])
        .unwrap_or_else(|e| fail(e.to_string()));
    let api = fleet.pod("edge-0").unwrap().runtime();
    poll("gpc0 on edge-0", CONVERGE, || {
        Ok(api
            .table_entry(RATE_TABLE, "plain")?
            .and_then(|e| e.u64("gpc0"))
            .filter(|v| *v == 7))
    })
    .unwrap_or_else(|e| fail(e.to_string()));
    let summary = fleet
        .admin("edge-0")
        .unwrap_or_else(|e| fail(e.to_string()));
    assert_eq!(summary.established_members(), ["edge-1"]);
}
