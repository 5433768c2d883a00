//! The checked-in CRD is what the types generate, and PeerGroups are judged by the CRD's own
//! schema as the API server would: structure, patterns and bounds (`jsonschema`, with unknown
//! fields refused as `kubectl apply`'s strict field validation does), then defaults, then the
//! CEL `x-kubernetes-validations` rules (`kube-cel`, kube-rs' client-side CEL engine).

#[path = "golden/fixture.rs"]
mod fixture;

use std::path::{Path, PathBuf};
use std::process::Command;

use haproxy_peers_operator::api::crd::{crd, crd_yaml};
use haproxy_peers_operator::api::PeerGroup;
use serde::Deserialize;
use serde_json::{json, Value};

const REGENERATE: &str = "cargo run -p haproxy-peers-operator -- crdgen > crds/peergroups.yaml";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn checked_in_crd_is_fresh() {
    let path = repo_root().join("crds/peergroups.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = crd_yaml().expect("serialise the CRD");
    assert!(
        checked_in == generated,
        "{} is stale: the Rust types changed. Regenerate it from the repository root with\n  {REGENERATE}\n\
         and commit the result.",
        path.display()
    );
}

#[test]
fn crdgen_prints_the_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_haproxy-peers-operator"))
        .arg("crdgen")
        .output()
        .expect("run crdgen");
    assert!(
        out.status.success(),
        "crdgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).expect("utf-8"),
        crd_yaml().expect("crd")
    );
}

#[test]
fn crd_names_and_subresources() {
    let crd = crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("peergroups.haproxy-peers.io")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.short_names, Some(vec!["hpg".to_string()]));
    let v = &crd.spec.versions[0];
    assert_eq!(
        (v.name.as_str(), v.served, v.storage),
        ("v1alpha1", true, true)
    );
    assert!(
        v.subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status subresource"
    );
    let columns: Vec<&str> = v
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Members", "Ready", "Certificates", "Age"]);
}

/// The openAPIV3Schema as JSON.
fn open_api_schema() -> Value {
    let crd = crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    serde_json::to_value(schema).expect("schema as JSON")
}

/// OpenAPI v3 -> JSON Schema draft 4 for the structural checks: `nullable` becomes a "null"
/// type, and objects without `additionalProperties` or `x-kubernetes-preserve-unknown-fields`
/// refuse unknown fields (the API server prunes them; kubectl's strict validation refuses them).
fn strict(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(obj) = s.as_object_mut() {
        if obj.get("nullable") == Some(&json!(true)) {
            if let Some(t) = obj.get("type").cloned() {
                obj.insert("type".into(), json!([t, "null"]));
            }
        }
        let open = obj.contains_key("additionalProperties")
            || obj.contains_key("x-kubernetes-preserve-unknown-fields");
        if obj.get("type") == Some(&json!("object")) && obj.contains_key("properties") && !open {
            obj.insert("additionalProperties".into(), json!(false));
        }
        for key in ["properties"] {
            if let Some(Value::Object(props)) = obj.get_mut(key) {
                for v in props.values_mut() {
                    *v = strict(v);
                }
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(v) = obj.get_mut(key).filter(|v| v.is_object()) {
                *v = strict(v);
            }
        }
    }
    s
}

/// What the API server would answer to a create of `object`: every error, or nothing.
fn admission_errors(object: &Value) -> Vec<String> {
    let schema = open_api_schema();
    // The API server knows the root's apiVersion, kind and metadata without the CRD saying so.
    let mut root = schema.clone();
    root["properties"]["apiVersion"] = json!({"type": "string"});
    root["properties"]["kind"] = json!({"type": "string"});
    root["properties"]["metadata"] =
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let structural =
        jsonschema::draft4::new(&strict(&root)).expect("the CRD schema is a valid JSON schema");
    let mut errors: Vec<String> = structural
        .iter_errors(object)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        let defaulted = kube_cel::apply_defaults(&schema, object);
        if let Err(cel) = kube_cel::validate(&schema, &defaulted, None) {
            errors.extend(cel.iter().map(ToString::to_string));
        }
    }
    errors
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = fixture::read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn every_rule_of_the_crd_compiles() {
    let schema = open_api_schema();
    let compiled = kube_cel::compile_schema(&schema);
    assert!(
        !compiled.has_errors(),
        "CEL rules that do not compile: {:#?}",
        compiled.compilation_errors()
    );
    // Three rule sites: the root (name), spec.ports, spec.selector.
    let text = schema.to_string();
    assert_eq!(
        text.matches("\"rule\":").count(),
        4,
        "every rule is exercised by a test below"
    );
}

#[test]
fn examples_are_accepted() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples"))
        .expect("examples/ exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths.push(fixture::golden_dir().join("input/peergroup.yaml"));
    let mut groups = 0;
    for path in &paths {
        for doc in yaml_docs(path) {
            if doc["kind"] != "PeerGroup" {
                continue;
            }
            groups += 1;
            let errors = admission_errors(&doc);
            assert!(
                errors.is_empty(),
                "{} is refused by the CRD:\n{}",
                path.display(),
                errors.join("\n")
            );
            serde_json::from_value::<PeerGroup>(doc)
                .unwrap_or_else(|e| panic!("{}: the operator cannot read it: {e}", path.display()));
        }
    }
    assert!(
        groups >= 2,
        "examples/peergroup.yaml and the golden input hold PeerGroups (found {groups})"
    );
}

/// A valid PeerGroup with `spec` and `metadata` merged from `patch`.
fn peer_group(patch: Value) -> Value {
    let mut pg = json!({
        "apiVersion": "haproxy-peers.io/v1alpha1",
        "kind": "PeerGroup",
        "metadata": {"name": "edge", "namespace": "web"},
        "spec": {"selector": {"matchLabels": {"app": "edge"}}},
    });
    merge(&mut pg, patch);
    pg
}

fn merge(into: &mut Value, patch: Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

#[test]
fn minimal_group_is_accepted() {
    assert_eq!(
        admission_errors(&peer_group(json!({}))),
        Vec::<String>::new()
    );
}

#[test]
fn bad_groups_are_refused_with_a_clear_message() {
    let cases = [
        (
            "ports clash",
            json!({"spec": {"ports": {"admin": 10000}}}),
            "must be four different ports",
        ),
        (
            "port clash with a default",
            json!({"spec": {"ports": {"mesh": 10002}}}),
            "must be four different ports",
        ),
        (
            "port 0",
            json!({"spec": {"ports": {"mesh": 0}}}),
            "/spec/ports/mesh: 0 is less than the minimum of 1",
        ),
        (
            "port too big",
            json!({"spec": {"ports": {"admin": 70000}}}),
            "/spec/ports/admin: 70000 is greater than the maximum of 65535",
        ),
        (
            "section name",
            json!({"spec": {"peersSection": "edge peers"}}),
            "/spec/peersSection: \"edge peers\" does not match",
        ),
        (
            "duration",
            json!({"spec": {"tls": {"leafLifetime": "30 days"}}}),
            "/spec/tls/leafLifetime: \"30 days\" does not match",
        ),
        (
            "resync",
            json!({"spec": {"resyncTimeout": "1.5m"}}),
            "/spec/resyncTimeout",
        ),
        (
            "empty table name",
            json!({"spec": {"tables": [{"name": "", "policy": "replicate"}]}}),
            "/spec/tables/0/name",
        ),
        (
            "unknown policy",
            json!({"spec": {"tables": [{"name": "be", "policy": "aggregate"}]}}),
            "/spec/tables/0/policy: \"aggregate\" is not one of",
        ),
        (
            "no selector",
            json!({"spec": {"selector": null}}),
            "\"selector\" is a required property",
        ),
        (
            "selector without labels",
            json!({"spec": {"selector": {"matchLabels": null, "matchExpressions": [{"key": "app", "operator": "Exists"}]}}}),
            "selector.matchLabels must name at least one label",
        ),
        (
            "typo in a field",
            json!({"spec": {"networkPolicy": {"enable": false}}}),
            "/spec/networkPolicy: Additional properties are not allowed ('enable' was unexpected)",
        ),
        (
            "long name",
            json!({"metadata": {"name": "e".repeat(58)}}),
            "at most 57 characters",
        ),
        (
            "dotted name",
            json!({"metadata": {"name": "edge.v2"}}),
            "must start with a letter and contain no '.'",
        ),
        (
            "name with a digit first",
            json!({"metadata": {"name": "2edge"}}),
            "must start with a letter",
        ),
    ];
    for (what, patch, expected) in cases {
        let mut pg = peer_group(patch);
        // `null` in a patch means "remove".
        if let Some(sel) = pg["spec"]["selector"].as_object_mut() {
            sel.retain(|_, v| !v.is_null());
        }
        if pg["spec"]["selector"].is_null() {
            pg["spec"].as_object_mut().expect("spec").remove("selector");
        }
        let errors = admission_errors(&pg);
        let shown = errors.join("\n");
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{what}: expected an error containing {expected:?}, got:\n{shown}"
        );
    }
}
