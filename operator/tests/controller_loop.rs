//! The real kube-runtime Controller (watches, owned objects, pod mapper, leader election)
//! against the in-memory API: objects appear and follow changes made by others; a follower
//! waits and takes over; a leader that loses its Lease stops. The request log of the run is
//! checked against the operator's RBAC list in both directions.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use haproxy_peers_operator::admin::AdminState;
use haproxy_peers_operator::controller::{self, context, rbac, Config, LeaseConfig};
use haproxy_peers_operator::metrics::Metrics;
use haproxy_peers_operator::Error;
use http::Method;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use serde_json::json;
use support::fake_api::{parse_path, FakeApi, LoggedRequest};
use support::fixtures::*;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/ops/leases";
const LEASE: &str = "haproxy-peers-operator";

fn config(identity: &str) -> Config {
    Config {
        namespace: None,
        lease: LeaseConfig {
            retry: Duration::from_millis(100),
            ..LeaseConfig::new("ops", identity)
        },
        resync: context::DEFAULT_RESYNC,
        clock: context::system_clock(),
    }
}

struct Running {
    admin: Arc<AdminState>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<haproxy_peers_operator::Result<()>>,
}

impl Running {
    /// Requests a graceful shutdown and returns how `run` ended.
    async fn stop(self) -> haproxy_peers_operator::Result<()> {
        self.shutdown.send(()).expect("operator running");
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("graceful shutdown in time")
            .expect("task")
    }
}

fn start_operator(api: &FakeApi, identity: &str) -> Running {
    let admin = Arc::new(AdminState::new(Arc::new(Metrics::new())));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(
        api.client(),
        config(identity),
        admin.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    Running {
        admin,
        shutdown,
        task,
    }
}

/// Polls `check` until it returns `Some`, for at most 20 s.
async fn eventually<T>(what: &str, check: impl Fn() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `leader` gauge as scraped.
fn leading(admin: &AdminState) -> bool {
    let text = admin.metrics.encode().expect("metrics");
    assert!(
        text.lines()
            .any(|l| l.starts_with("haproxy_peers_operator_leader ")),
        "{text}"
    );
    text.lines().any(|l| l == "haproxy_peers_operator_leader 1")
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get(&format!("{LEASES}/{LEASE}"))
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

fn seed_lease(api: &FakeApi, holder: &str, seconds: i32) {
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(LEASE.into()),
            namespace: Some("ops".into()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            renew_time: Some(MicroTime(
                k8s_openapi::jiff::Timestamp::try_from(SystemTime::now()).expect("now"),
            )),
            ..Default::default()
        }),
    };
    let value = serde_json::to_value(lease).expect("lease");
    match api.get(&format!("{LEASES}/{LEASE}")) {
        Some(_) => api.put(&format!("{LEASES}/{LEASE}"), value),
        None => {
            api.seed(LEASES, value);
        }
    }
}

/// The RBAC verbs a logged request needs: (API group, resource[/subresource], verb).
fn permissions(r: &LoggedRequest) -> Vec<(String, String, &'static str)> {
    let (key, sub) = parse_path(&r.path).expect("an API path");
    let segs: Vec<&str> = key.resource.trim_matches('/').split('/').collect();
    let (api_group, plural) = match segs.as_slice() {
        ["api", _, plural] => ("", *plural),
        ["apis", group, _, plural] => (*group, *plural),
        other => panic!("unexpected resource path {other:?}"),
    };
    let resource = match sub {
        Some(s) => format!("{plural}/{s}"),
        None => plural.to_string(),
    };
    let watch = r
        .query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let mut verbs = vec![match (&r.method, key.name.is_empty()) {
        (&Method::GET, true) if watch => "watch",
        (&Method::GET, true) => "list",
        (&Method::GET, false) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        (m, _) => panic!("unexpected method {m}"),
    }];
    // Server-side apply that creates the object is authorised as create too.
    let apply = r
        .content_type
        .as_deref()
        .is_some_and(|c| c.contains("apply-patch"));
    if r.method == Method::PATCH && apply && r.status == 201 {
        verbs.push("create");
    }
    verbs
        .into_iter()
        .map(|v| (api_group.to_string(), resource.clone(), v))
        .collect()
}

#[tokio::test]
async fn the_controller_loop_follows_the_cluster_and_uses_exactly_its_rbac() {
    let api = FakeApi::new();
    seed_group(&api, GROUP, json!({}));
    seed_pods(&api, 0..3);
    seed_bystanders(&api);
    let op = start_operator(&api, "operator-0");

    eventually("three members", || {
        config_map(&api, "edge-peers")
            .is_some()
            .then(|| member_names(&api))
            .filter(|m| m.len() == 3)
    })
    .await;
    eventually("status", || {
        group(&api, GROUP)
            .status
            .filter(|s| s.ready_members.as_deref() == Some("3/3"))
    })
    .await;
    eventually("ready", || op.admin.readiness().ok()).await;
    assert_eq!(holder(&api).as_deref(), Some("operator-0"));

    // A new pod: the pod watch maps it to its group.
    seed_pods(&api, 3..4);
    eventually("four members", || {
        (member_names(&api).len() == 4).then_some(())
    })
    .await;
    eventually("four leaves", || {
        (secret_keys(&api, "edge-peer-tls").len() == 9).then_some(())
    })
    .await;

    // Someone edits the ConfigMap: the owned-object watch triggers a repair.
    let path = format!("{CONFIGMAPS}/edge-peers");
    let mut cm = api.get(&path).expect("cm");
    cm["data"]["peers.cfg"] = json!("# edited by hand\n");
    api.put(&path, cm);
    eventually("the ConfigMap repaired", || {
        config_map(&api, "edge-peers")
            .and_then(|c| c.data)
            .filter(|d| d["peers.cfg"].contains("peers edge"))
    })
    .await;

    // TLS and the NetworkPolicy switched off: the operator deletes its Secrets and policy.
    edit_spec(
        &api,
        GROUP,
        json!({"tls": {"enabled": false}, "networkPolicy": {"enabled": false}}),
    );
    eventually("Secrets and NetworkPolicy deleted", || {
        (secret(&api, "edge-ca").is_none()
            && secret(&api, "edge-peer-tls").is_none()
            && api.get(&format!("{NETPOLS}/edge-peers")).is_none())
        .then_some(())
    })
    .await;
    eventually("a lease renewal", || {
        api.requests()
            .iter()
            .any(|r| r.method == Method::PUT && r.path.starts_with(LEASES))
            .then_some(())
    })
    .await;
    // Converged: the watch events of its own writes make the operator reconcile again, and
    // those reconciles write nothing, so it falls quiet (only the Lease keeps being renewed).
    let group_writes = || {
        api.requests()
            .iter()
            .filter(|r| r.method != Method::GET && !r.path.starts_with(LEASES))
            .count()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut settled = group_writes();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = group_writes();
        if now == settled {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still writing: {now} writes"
        );
        settled = now;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(group_writes(), settled, "no writes without a change");
    let metrics = op.admin.metrics.encode().expect("metrics");
    for line in [
        "haproxy_peers_operator_managed_groups 1",
        "haproxy_peers_operator_members 4",
        "haproxy_peers_operator_leader 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("haproxy_peers_operator_reconciles_total{outcome=\"ok\"} ")));

    let ended = op.stop().await;
    assert!(ended.is_ok(), "{ended:?}");

    // RBAC: every request is allowed by the list, and every permission in it was needed.
    let log = api.requests();
    let mut used = BTreeSet::new();
    for r in &log {
        for (g, res, verb) in permissions(r) {
            assert!(
                rbac::allows(&g, &res, verb),
                "{} {}?{} needs {verb} on {g:?} {res}, which rbac::RULES lacks",
                r.method,
                r.path,
                r.query
            );
            used.insert((g, res, verb));
        }
    }
    for rule in rbac::RULES {
        for verb in rule.verbs {
            assert!(
                used.contains(&(rule.api_group.to_string(), rule.resource.to_string(), *verb)),
                "rbac::RULES grants {verb} on {:?} {}, which the operator never used",
                rule.api_group,
                rule.resource
            );
        }
    }
}

#[tokio::test]
async fn a_follower_waits_ready_and_takes_over_when_the_lease_runs_out() {
    let api = FakeApi::new();
    seed_group(&api, GROUP, json!({}));
    seed_pods(&api, 0..2);
    seed_lease(&api, "operator-old", 5);
    let op = start_operator(&api, "operator-1");

    eventually("ready as a follower", || op.admin.readiness().ok()).await;
    assert_eq!(holder(&api).as_deref(), Some("operator-old"));
    assert!(
        config_map(&api, "edge-peers").is_none(),
        "a follower does not reconcile"
    );
    assert!(!leading(&op.admin), "the leader gauge is 0");

    eventually("takeover", || {
        (holder(&api).as_deref() == Some("operator-1")).then_some(())
    })
    .await;
    eventually("reconciled by the new leader", || {
        config_map(&api, "edge-peers")
    })
    .await;
    let lease = api.get(&format!("{LEASES}/{LEASE}")).expect("lease");
    assert_eq!(lease["spec"]["leaseTransitions"], json!(1));

    let ended = op.stop().await;
    assert!(ended.is_ok(), "{ended:?}");
}

#[tokio::test]
async fn a_leader_stopped_gracefully_hands_over_without_waiting_out_its_lease() {
    let api = FakeApi::new();
    seed_group(&api, GROUP, json!({}));
    seed_pods(&api, 0..2);
    let first = start_operator(&api, "operator-0");
    eventually("reconciled", || config_map(&api, "edge-peers")).await;
    let second = start_operator(&api, "operator-1");
    eventually("ready as a follower", || second.admin.readiness().ok()).await;
    assert_eq!(holder(&api).as_deref(), Some("operator-0"));

    // A rollout stops the leader with SIGTERM: it releases the Lease on the way out.
    let stopped = tokio::time::Instant::now();
    let ended = first.stop().await;
    assert!(ended.is_ok(), "{ended:?}");
    let lease = api.get(&format!("{LEASES}/{LEASE}")).expect("lease");
    assert!(
        lease["spec"]["holderIdentity"].is_null() || holder(&api).as_deref() == Some("operator-1"),
        "released: {lease}"
    );
    eventually("takeover", || {
        (holder(&api).as_deref() == Some("operator-1")).then_some(())
    })
    .await;
    let lease_duration = config("operator-0").lease.duration;
    assert!(
        stopped.elapsed() < lease_duration,
        "the follower took over after {:?}: it waited out the {lease_duration:?} lease",
        stopped.elapsed()
    );
    eventually("the new leader's gauge", || {
        leading(&second.admin).then_some(())
    })
    .await;
    let ended = second.stop().await;
    assert!(ended.is_ok(), "{ended:?}");
}

#[tokio::test]
async fn a_leader_that_loses_its_lease_stops() {
    let api = FakeApi::new();
    seed_group(&api, GROUP, json!({}));
    seed_pods(&api, 0..2);
    let op = start_operator(&api, "operator-0");
    eventually("reconciled", || config_map(&api, "edge-peers")).await;

    // Another replica wrote the Lease (this one was partitioned away and came back).
    seed_lease(&api, "operator-9", 15);
    let ended = tokio::time::timeout(Duration::from_secs(20), op.task)
        .await
        .expect("stops in time")
        .expect("task");
    let err = ended.expect_err("lost leadership is an error");
    assert!(matches!(err, Error::LeadershipLost { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("operator-9 holds it now")
            && text.contains("restarts this replica as a follower"),
        "{text}"
    );
    assert!(!leading(&op.admin), "the leader gauge is 0");
}

#[test]
fn pods_map_to_the_groups_that_select_or_list_them() {
    use haproxy_peers_operator::api::PeerGroup;
    use haproxy_peers_operator::controller::groups_for_pod;
    use k8s_openapi::api::core::v1::Pod;

    let api = FakeApi::new();
    let edge = seed_group(&api, GROUP, json!({}));
    let cache = seed_group(
        &api,
        "cache",
        json!({"selector": {"matchLabels": {APP_LABEL: "cache"}}}),
    );
    let mut elsewhere: PeerGroup = edge.clone();
    elsewhere.metadata.namespace = Some("staging".into());
    let mut listing = cache.clone();
    listing.metadata.name = Some("old-home".into());
    listing.spec.selector.match_labels = Some([(APP_LABEL.to_string(), "gone".to_string())].into());
    listing.status = Some(haproxy_peers_operator::api::PeerGroupStatus {
        members: vec![haproxy_peers_operator::api::MemberStatus {
            name: "edge-0".into(),
            pod_ip: None,
            ready: true,
            since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        }],
        ..Default::default()
    });
    let groups: Vec<Arc<PeerGroup>> = [edge, cache, elsewhere, listing]
        .into_iter()
        .map(Arc::new)
        .collect();
    let pod: Pod = serde_json::from_value(sts_pod("edge-0", "10.0.0.1")).expect("pod");
    let names: Vec<String> = groups_for_pod(&pod, &groups)
        .into_iter()
        .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
        .collect();
    assert_eq!(names, ["web/edge", "web/old-home"]);
}
