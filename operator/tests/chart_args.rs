//! The real `haproxy-peers-operator` accepts the arguments the Helm chart gives it: each
//! scenario of `charts/tests/golden/operator.yaml` (kept equal to the chart's render by
//! `.ci/validate-manifests`) is run with `$(VAR)` expanded from the container's downward-API
//! environment, as the kubelet does. Without a cluster the binary must get past its command line
//! and stop at the Kubernetes client, not at a usage error.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;

const GOLDEN: &str = "charts/tests/golden/operator.yaml";
/// What the downward API would give a replica of release `hp` in namespace `haproxy-peers`.
const POD_NAME: &str = "hp-haproxy-peers-7d9f8b6c5-x2k4q";
const POD_NAMESPACE: &str = "haproxy-peers";

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(GOLDEN);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run .ci/validate-manifests --update",
            path.display()
        )
    });
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
}

/// The container's environment: name -> value, from the downward API fields it names.
fn environment(env: &Value) -> Vec<(String, String)> {
    env.as_sequence()
        .expect("operator.env is a list")
        .iter()
        .map(|e| {
            let name = e["name"].as_str().expect("env name").to_string();
            let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                Some("metadata.name") => POD_NAME.to_string(),
                Some("metadata.namespace") => POD_NAMESPACE.to_string(),
                Some(other) => panic!("{GOLDEN}: env {name} from an unexpected field {other}"),
                None => e["value"].as_str().unwrap_or_default().to_string(),
            };
            (name, value)
        })
        .collect()
}

/// `$(VAR)` expanded as the kubelet expands container arguments.
fn expand(arg: &str, env: &[(String, String)]) -> String {
    env.iter().fold(arg.to_string(), |a, (name, value)| {
        a.replace(&format!("$({name})"), value)
    })
}

/// Runs the operator with `args` and no reachable cluster; the admin server (which the binary
/// would bind only later) is moved to loopback so the test can never listen elsewhere.
fn run(args: &[String], env: &[(String, String)]) -> Output {
    let home = tempfile::tempdir().expect("tempdir");
    let args: Vec<String> = args
        .iter()
        .map(|a| match a.strip_prefix("--admin-listen=") {
            Some(_) => "--admin-listen=127.0.0.1:0".to_string(),
            None => a.clone(),
        })
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_haproxy-peers-operator"))
        .args(&args)
        .envs(env.iter().cloned())
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("WATCH_NAMESPACE")
        .env_remove("ADMIN_LISTEN")
        .env_remove("LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start haproxy-peers-operator");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("haproxy-peers-operator {args:?} did not stop without a cluster");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// One install of the golden file: the operator container's expanded arguments and environment.
struct Scenario {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn scenarios() -> Vec<Scenario> {
    let doc = golden();
    doc.as_mapping()
        .expect("scenarios")
        .iter()
        .map(|(name, s)| {
            let env = environment(&s["operator"]["env"]);
            let args = s["operator"]["args"]
                .as_sequence()
                .expect("operator.args is a list")
                .iter()
                .map(|a| expand(a.as_str().expect("string arg"), &env))
                .collect();
            Scenario {
                name: name.as_str().expect("name").to_string(),
                args,
                env,
            }
        })
        .collect()
}

#[test]
fn the_operator_accepts_the_charts_arguments() {
    let all = scenarios();
    assert_eq!(
        all.len(),
        2,
        "{GOLDEN}: a cluster-wide and a namespaced install"
    );
    for Scenario { name, args, env } in &all {
        assert!(
            !args.iter().any(|a| a.contains("$(")),
            "{name}: an argument names a variable the container does not set: {args:?}"
        );
        let out = run(args, env);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // clap exits 2 on a usage error; past the command line the binary stops at the client.
        assert_ne!(
            out.status.code(),
            Some(2),
            "{name}: {args:?} refused:\n{text}"
        );
        assert!(
            text.contains("cannot configure a Kubernetes client"),
            "{name}: {args:?} should stop only for want of a cluster, got {:?}:\n{text}",
            out.status
        );
    }
}

/// The check above tells a usage error apart: a renamed flag is refused with status 2.
#[test]
fn a_flag_the_binary_does_not_know_is_a_usage_error() {
    let Scenario { mut args, env, .. } = scenarios().remove(0);
    let lease = args
        .iter_mut()
        .find(|a| a.starts_with("--lease-namespace="))
        .expect("the chart passes --lease-namespace");
    *lease = lease.replace("--lease-namespace=", "--lease-ns=");
    let out = run(&args, &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lease-ns"));
}
