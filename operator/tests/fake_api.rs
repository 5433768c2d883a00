//! The in-memory API behaves like the API server for everything the operator relies on. The
//! controller tests are only as good as this stand-in, so its semantics are pinned here.

mod support;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use support::fake_api::{selector_matches, FakeApi};

fn cm(name: &str, data: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "edge", "tier": "lb"}},
        "data": {"k": data}
    }))
    .expect("configmap")
}

#[tokio::test]
async fn apply_get_list_delete() {
    let api = FakeApi::new();
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "web");
    let pp = PatchParams::apply("haproxy-peers-operator").force();
    let created = cms
        .patch("a", &pp, &Patch::Apply(cm("a", "1")))
        .await
        .expect("apply creates");
    let rv1 = created.metadata.resource_version.clone().expect("rv");
    assert_eq!(created.metadata.namespace.as_deref(), Some("web"));
    let same = cms
        .patch("a", &pp, &Patch::Apply(cm("a", "1")))
        .await
        .expect("re-apply");
    assert_eq!(
        same.metadata.resource_version.as_deref(),
        Some(rv1.as_str()),
        "no-op apply keeps the resourceVersion"
    );
    let changed = cms
        .patch("a", &pp, &Patch::Apply(cm("a", "2")))
        .await
        .expect("apply changes");
    assert_ne!(
        changed.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    assert_eq!(
        cms.get("a").await.expect("get").data.expect("data")["k"],
        "2"
    );

    let err = cms
        .patch("b", &PatchParams::default(), &Patch::Apply(cm("b", "1")))
        .await;
    assert!(err.is_err(), "apply without a field manager is refused");

    cms.create(&PostParams::default(), &cm("b", "x"))
        .await
        .expect("create");
    assert!(
        cms.create(&PostParams::default(), &cm("b", "x"))
            .await
            .is_err(),
        "409 on create of an existing name"
    );
    let listed = cms
        .list(&ListParams::default().labels("app=edge,tier in (lb, web)"))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 2);
    let none = cms
        .list(&ListParams::default().labels("app!=edge"))
        .await
        .expect("list");
    assert!(none.items.is_empty());
    cms.delete("b", &DeleteParams::default())
        .await
        .expect("delete");
    let missing = cms.get("b").await.expect_err("deleted");
    assert!(
        matches!(missing, kube::Error::Api(ref s) if s.code == 404),
        "{missing:?}"
    );
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let api = FakeApi::new();
    let pods: Api<Pod> = Api::namespaced(api.client(), "web");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "edge-0"}, "spec": {"containers": [{"name": "haproxy"}]}
    }))
    .expect("pod");
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let st = pods
        .patch_status(
            "edge-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"podIP": "10.0.0.1"}})),
        )
        .await
        .expect("status");
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status writes do not bump generation"
    );
    assert_eq!(
        st.status.expect("status").pod_ip.as_deref(),
        Some("10.0.0.1")
    );
    let spec = pods
        .patch(
            "edge-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hostname": "edge-0"}, "status": {"podIP": "evil"}})),
        )
        .await
        .expect("spec");
    assert_eq!(
        spec.metadata.generation,
        Some(2),
        "spec writes bump generation"
    );
    assert_eq!(
        spec.status.expect("status").pod_ip.as_deref(),
        Some("10.0.0.1"),
        "spec writes never touch status"
    );
}

#[tokio::test]
async fn watch_streams_changes_and_gc_follows_owner_uids() {
    let api = FakeApi::new();
    let client = api.client();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "web");
    let pp = PatchParams::apply("t").force();
    let owner = cms
        .patch("owner", &pp, &Patch::Apply(cm("owner", "0")))
        .await
        .expect("owner");
    let uid = owner.metadata.uid.clone().expect("uid");
    let mut dep = cm("dep", "0");
    dep.metadata.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "owner".into(),
            uid,
            controller: Some(true),
            ..Default::default()
        },
    ]);
    cms.patch("dep", &pp, &Patch::Apply(dep))
        .await
        .expect("dep");

    let mut stream = watcher(cms.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let o = tokio::time::timeout(std::time::Duration::from_secs(5), stream.try_next())
            .await
            .expect("initial list in time")
            .expect("watch ok")
            .expect("stream open");
        seen.push(o.metadata.name.expect("name"));
    }
    seen.sort();
    assert_eq!(seen, ["dep", "owner"]);
    cms.patch("late", &pp, &Patch::Apply(cm("late", "1")))
        .await
        .expect("late");
    let o = tokio::time::timeout(std::time::Duration::from_secs(5), stream.try_next())
        .await
        .expect("watch event in time")
        .expect("watch ok")
        .expect("open");
    assert_eq!(o.metadata.name.as_deref(), Some("late"));

    let removed = api.delete_with_gc("/api/v1/namespaces/web/configmaps/owner");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].name, "dep");
    assert!(
        api.get("/api/v1/namespaces/web/configmaps/late").is_some(),
        "unowned objects stay"
    );
}

#[test]
fn label_selectors() {
    let labels = json!({"app": "edge", "region": "eu"});
    assert!(selector_matches("", &labels));
    assert!(selector_matches("app=edge", &labels));
    assert!(selector_matches("app==edge,region", &labels));
    assert!(selector_matches("region in (eu,us),!zone", &labels));
    assert!(!selector_matches("region notin (eu)", &labels));
    assert!(!selector_matches("app=edge,region=us", &labels));
    assert!(!selector_matches("zone", &labels));
}

#[tokio::test]
async fn the_log_records_answers_and_deletes_honour_preconditions() {
    let api = FakeApi::new();
    let cms: Api<ConfigMap> = Api::namespaced(api.client(), "web");
    let pp = PatchParams::apply("haproxy-peers-operator").force();
    let created = cms
        .patch("a", &pp, &Patch::Apply(cm("a", "1")))
        .await
        .expect("apply creates");
    cms.patch("a", &pp, &Patch::Apply(cm("a", "2")))
        .await
        .expect("apply updates");
    let statuses: Vec<(String, u16)> = api
        .requests()
        .iter()
        .map(|r| (r.method.to_string(), r.status))
        .collect();
    assert_eq!(
        statuses,
        [("PATCH".to_string(), 201), ("PATCH".to_string(), 200)],
        "an apply that creates answers 201 Created, like the API server"
    );

    let stale = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("uid-of-another-object".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let err = cms.delete("a", &stale).await.expect_err("uid differs");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err:?}"
    );
    assert!(api.get("/api/v1/namespaces/web/configmaps/a").is_some());
    let exact = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: created.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    cms.delete("a", &exact).await.expect("uid matches");
    assert!(api.get("/api/v1/namespaces/web/configmaps/a").is_none());
    assert_eq!(api.requests().last().map(|r| r.status), Some(200));
}
