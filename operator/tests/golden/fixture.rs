//! Inputs shared by the render tests: the PeerGroup `web/edge`, its pods (StatefulSet `edge`),
//! a fixed certificate inventory and a fixed `now`. Included with `#[path]` by the test files
//! that need it.

#![allow(dead_code)] // each test file uses a different part

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use haproxy_peers_operator::api::PeerGroup;
use haproxy_peers_operator::certs::{CaCert, CertInventory, LeafCert};
use haproxy_peers_operator::render::names::GroupRef;
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

/// 2026-11-23T12:00:00Z.
pub const NOW_SECS: u64 = 1_795_435_200;
pub const DAY: Duration = Duration::from_secs(86_400);

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

pub fn peer_group() -> PeerGroup {
    let text = read(&golden_dir().join("input/peergroup.yaml"));
    serde_yaml::from_str(&text).expect("input/peergroup.yaml is a PeerGroup")
}

/// Every pod of `input/pods.yaml`, including the two that the group must not select.
pub fn pods() -> Vec<Pod> {
    let text = read(&golden_dir().join("input/pods.yaml"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Pod::deserialize(doc).expect("input/pods.yaml holds pods"))
        .collect()
}

pub fn pod_mut<'a>(pods: &'a mut [Pod], name: &str) -> &'a mut Pod {
    pods.iter_mut()
        .find(|p| {
            p.metadata.name.as_deref() == Some(name)
                && p.metadata.namespace.as_deref() == Some("web")
        })
        .unwrap_or_else(|| panic!("no pod web/{name} in the fixture"))
}

pub const CA_FINGERPRINT: &str = "c0ffee00000000000000000000000000000000000000000000000000000000ca";

/// One CA (issued 30 days ago, a year long) and a leaf per member with the names render asks
/// for. The PEM texts are placeholders: render only copies them.
pub fn certs() -> CertInventory {
    let now = now();
    let group = GroupRef {
        namespace: "web".into(),
        name: "edge".into(),
    };
    let mut inv = CertInventory {
        cas: vec![CaCert {
            cert_pem: pem("CERTIFICATE", "edge CA"),
            not_before: now - 30 * DAY,
            not_after: now + 335 * DAY,
            fingerprint: CA_FINGERPRINT.into(),
        }],
        signing_ca: Some(CA_FINGERPRINT.into()),
        signing_ca_key_pem: Some(pem("PRIVATE KEY", "edge CA key")),
        ..CertInventory::default()
    };
    for (i, pod) in ["edge-0", "edge-1", "edge-2"].into_iter().enumerate() {
        let mut dns_names = group.member_dns_names(pod, "cluster.local");
        dns_names.sort();
        let age = u32::try_from(5 + i).expect("small");
        inv.leaves.insert(
            pod.to_string(),
            LeafCert {
                cert_pem: pem("CERTIFICATE", &format!("{pod} leaf")),
                key_pem: pem("PRIVATE KEY", &format!("{pod} key")),
                not_before: now - age * DAY,
                not_after: now + (30 - age) * DAY,
                dns_names,
                issuer_fingerprint: CA_FINGERPRINT.into(),
            },
        );
    }
    inv
}

fn pem(label: &str, what: &str) -> String {
    format!("-----BEGIN {label}-----\nplaceholder for the {what}\n-----END {label}-----\n")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
