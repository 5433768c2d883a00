//! Objects for the controller tests, stored in the in-memory API as the API server would hold
//! them: the PeerGroup `web/edge`, the pods of StatefulSet `web/edge`, and readers that decode
//! what the operator wrote.

#![allow(dead_code)] // each test file uses a different part

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use haproxy_peers_members::Members;
use haproxy_peers_operator::api::{PeerGroup, PeerGroupStatus};
use haproxy_peers_operator::certs::{CertInventory, ParsedInventory, SecretData};
use haproxy_peers_operator::controller::{reconcile_at, Outcome};
use haproxy_peers_operator::controller::{Clock, Context};
use haproxy_peers_operator::metrics::Metrics;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::{json, Value};

use super::fake_api::{FakeApi, LoggedRequest};

pub const NS: &str = "web";
pub const GROUP: &str = "edge";
pub const APP_LABEL: &str = "app.kubernetes.io/name";
pub const DAY: Duration = Duration::from_secs(86_400);

pub const PEERGROUPS: &str = "/apis/haproxy-peers.io/v1alpha1/namespaces/web/peergroups";
pub const PODS: &str = "/api/v1/namespaces/web/pods";
pub const CONFIGMAPS: &str = "/api/v1/namespaces/web/configmaps";
pub const SECRETS: &str = "/api/v1/namespaces/web/secrets";
pub const SERVICES: &str = "/api/v1/namespaces/web/services";
pub const NETPOLS: &str = "/apis/networking.k8s.io/v1/namespaces/web/networkpolicies";
pub const EVENTS: &str = "/apis/events.k8s.io/v1/events";

/// 2026-11-23T12:00:00Z.
pub fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_435_200)
}

/// A PeerGroup as stored (uid, generation set by the fake), with `spec` merged over the
/// default spec (selector `app.kubernetes.io/name=<name>`).
pub fn seed_group(api: &FakeApi, name: &str, spec: Value) -> PeerGroup {
    let mut full = json!({"selector": {"matchLabels": {APP_LABEL: GROUP}}});
    merge(&mut full, &spec);
    let stored = api.seed(
        PEERGROUPS,
        json!({
            "apiVersion": "haproxy-peers.io/v1alpha1",
            "kind": "PeerGroup",
            "metadata": {"name": name, "namespace": NS},
            "spec": full,
        }),
    );
    serde_json::from_value(stored).expect("a PeerGroup")
}

/// The PeerGroup as stored now.
pub fn group(api: &FakeApi, name: &str) -> PeerGroup {
    let v = api
        .get(&format!("{PEERGROUPS}/{name}"))
        .unwrap_or_else(|| panic!("no PeerGroup {name}"));
    serde_json::from_value(v).expect("a PeerGroup")
}

/// Changes the PeerGroup's spec as `kubectl apply` would (generation bumps).
pub fn edit_spec(api: &FakeApi, name: &str, patch: Value) {
    let path = format!("{PEERGROUPS}/{name}");
    let mut v = api.get(&path).expect("group exists");
    merge(&mut v["spec"], &patch);
    api.put(&path, v);
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// A pod of StatefulSet `edge` (serviceName `edge-peers`), Ready, with an IP.
pub fn sts_pod(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NS,
            "labels": {APP_LABEL: GROUP, "statefulset.kubernetes.io/pod-name": name},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": GROUP,
                "uid": "sts-edge-uid", "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "hostname": name,
            "subdomain": "edge-peers",
            "containers": [{"name": "haproxy", "image": "haproxy:2.6"}]
        },
        "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

pub fn pod_ip(i: usize) -> String {
    format!("10.244.0.{}", 10 + i)
}

/// Pods `edge-<i>` for each `i`.
pub fn seed_pods(api: &FakeApi, ordinals: impl IntoIterator<Item = usize>) {
    for i in ordinals {
        api.seed(PODS, sts_pod(&format!("edge-{i}"), &pod_ip(i)));
    }
}

/// Pods the group must not select: another app in the namespace, the same app elsewhere.
pub fn seed_bystanders(api: &FakeApi) {
    let mut other_app = sts_pod("cache-0", "10.244.1.1");
    other_app["metadata"]["labels"][APP_LABEL] = json!("cache");
    api.seed(PODS, other_app);
    let mut elsewhere = sts_pod("edge-0", "10.244.2.1");
    elsewhere["metadata"]["namespace"] = json!("staging");
    api.seed("/api/v1/namespaces/staging/pods", elsewhere);
}

/// A clock the test sets.
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<SystemTime>>);

impl TestClock {
    pub fn new(t: SystemTime) -> Self {
        TestClock(Arc::new(Mutex::new(t)))
    }

    pub fn set(&self, t: SystemTime) {
        *self.0.lock().expect("clock") = t;
    }

    pub fn clock(&self) -> Clock {
        let me = self.0.clone();
        Arc::new(move || *me.lock().expect("clock"))
    }
}

pub fn context(api: &FakeApi, clock: &TestClock) -> Context {
    Context::new(
        api.client(),
        Arc::new(Metrics::new()),
        clock.clock(),
        "operator-test-0",
    )
}

pub fn config_map(api: &FakeApi, name: &str) -> Option<ConfigMap> {
    api.get(&format!("{CONFIGMAPS}/{name}"))
        .map(|v| serde_json::from_value(v).expect("a ConfigMap"))
}

pub fn secret(api: &FakeApi, name: &str) -> Option<Secret> {
    api.get(&format!("{SECRETS}/{name}"))
        .map(|v| serde_json::from_value(v).expect("a Secret"))
}

/// The keys of a Secret's data, sorted.
pub fn secret_keys(api: &FakeApi, name: &str) -> Vec<String> {
    secret(api, name)
        .and_then(|s| s.data)
        .map(|d| d.keys().cloned().collect())
        .unwrap_or_default()
}

pub fn secret_text(api: &FakeApi, name: &str, key: &str) -> Option<String> {
    let data = secret(api, name)?.data?;
    let bytes = data.get(key)?.0.clone();
    Some(String::from_utf8(bytes).expect("PEM is text"))
}

/// The members.yaml of `edge-peers`, parsed by the sidecar's own contract type.
pub fn members(api: &FakeApi) -> Members {
    let cm = config_map(api, "edge-peers").expect("ConfigMap edge-peers");
    let text = &cm.data.expect("data")["members.yaml"];
    Members::from_yaml(text).expect("members.yaml parses")
}

pub fn member_names(api: &FakeApi) -> Vec<String> {
    members(api).members.into_iter().map(|m| m.name).collect()
}

/// Requests other than reads (GET), i.e. everything that could change the store.
pub fn writes(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter()
        .filter(|r| r.method != http::Method::GET)
        .collect()
}

/// `METHOD path` of every write except published events: what a reconcile changed.
pub fn changes(log: &[LoggedRequest]) -> Vec<String> {
    describe(&writes(log))
        .into_iter()
        .filter(|w| !w.contains("/events"))
        .collect()
}

/// `METHOD path` of each request, for assertion messages.
pub fn describe(log: &[&LoggedRequest]) -> Vec<String> {
    log.iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// Events stored for the group, as (type, reason, note).
pub fn events(api: &FakeApi) -> Vec<(String, String, String)> {
    api.list(EVENTS)
        .into_iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("type"), s("reason"), s("note"))
        })
        .collect()
}

pub fn reasons(api: &FakeApi) -> Vec<String> {
    events(api).into_iter().map(|(_, r, _)| r).collect()
}

fn secret_data(api: &FakeApi, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let data = secret(api, name)?.data.unwrap_or_default();
    Some(data.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// The certificates as the operator would read them back from `edge-peer-tls` and `edge-ca`.
pub fn inventory(api: &FakeApi) -> ParsedInventory {
    let tls = secret_data(api, "edge-peer-tls");
    let ca = secret_data(api, "edge-ca");
    CertInventory::from_secrets(
        tls.as_ref().map(|d| SecretData::new("edge-peer-tls", d)),
        ca.as_ref().map(|d| SecretData::new("edge-ca", d)),
    )
}

/// A fake API, a clock and a controller context on it.
pub struct Bench {
    pub api: FakeApi,
    pub clock: TestClock,
    pub ctx: Context,
}

impl Default for Bench {
    fn default() -> Self {
        Self::new()
    }
}

impl Bench {
    pub fn new() -> Self {
        let api = FakeApi::new();
        let clock = TestClock::new(start());
        let ctx = context(&api, &clock);
        Bench { api, clock, ctx }
    }

    pub async fn try_reconcile(
        &self,
        now: SystemTime,
    ) -> Result<Outcome, haproxy_peers_operator::Error> {
        reconcile_at(&group(&self.api, GROUP), &self.ctx, now).await
    }

    pub async fn reconcile(&self, now: SystemTime) -> Outcome {
        self.try_reconcile(now)
            .await
            .unwrap_or_else(|e| panic!("reconcile failed: {e}"))
    }

    pub fn status(&self) -> PeerGroupStatus {
        group(&self.api, GROUP).status.expect("status written")
    }

    pub fn condition(&self, type_: &str) -> Condition {
        self.status()
            .conditions
            .into_iter()
            .find(|c| c.type_ == type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
    }

    /// Asserts a condition's status and reason, and that its message names every needle.
    pub fn assert_condition(&self, type_: &str, status: &str, reason: &str, needles: &[&str]) {
        let c = self.condition(type_);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            (status, reason),
            "{type_}: {}",
            c.message
        );
        for n in needles {
            assert!(c.message.contains(n), "{type_} lacks {n:?}: {}", c.message);
        }
    }
}
