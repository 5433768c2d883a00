//! Item 5: the operator's pure calls for many groups, in-process: member identities,
//! certificate plan, mint, render. Wall time per phase and the process's peak RSS (VmHWM).
//!
//! Shape: `namespaces` namespaces each holding `groups_per_ns` PeerGroups of `pods` pods, so
//! every render sees its namespace's pods and PeerGroups (what the controller observes), never
//! the whole cluster's.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, UNIX_EPOCH};

use haproxy_peers_operator::api::PeerGroup;
use haproxy_peers_operator::certs::{self, CertInventory};
use haproxy_peers_operator::render::{self, MemberIdentity};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use crate::procfs::status_bytes;

/// 2026-11-23T12:00:00Z, as the golden render tests use.
const NOW_SECS: u64 = 1_795_435_200;

/// What to build.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub namespaces: usize,
    pub groups_per_ns: usize,
    pub pods: usize,
}

/// Wall time per phase (all groups) and peak RSS.
#[derive(Debug, Clone)]
pub struct OperatorFigures {
    pub groups: usize,
    pub pods: usize,
    pub build: Duration,
    pub identities: Duration,
    pub plan: Duration,
    pub mint: Duration,
    pub render: Duration,
    pub leaves_minted: usize,
    pub objects_rendered: usize,
    pub peak_rss: u64,
}

fn peer_group(ns: &str, name: &str, i: usize) -> crate::Result<PeerGroup> {
    serde_json::from_value(json!({
        "apiVersion": "haproxy-peers.io/v1alpha1",
        "kind": "PeerGroup",
        "metadata": {
            "name": name, "namespace": ns, "generation": 1,
            "uid": format!("00000000-0000-4000-8000-{i:012}"),
        },
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "ports": {"mesh": 10000, "haproxy": 10001, "sidecar": 10002, "admin": 9090},
            "tls": {"enabled": true, "leafLifetime": "30d", "leafRenewBefore": "10d",
                    "caLifetime": "365d", "caRenewBefore": "60d"},
            "resyncTimeout": "30s",
            "tables": [{"name": "be_rate", "policy": "replicate"}],
            "networkPolicy": {"enabled": true, "allowOtherPorts": true},
            "clusterDomain": "cluster.local",
        }
    }))
    .map_err(|e| format!("build PeerGroup {ns}/{name}: {e}"))
}

fn pod(ns: &str, group: &str, i: usize, ip: u32) -> crate::Result<Pod> {
    let name = format!("{group}-{i}");
    let octets = ip.to_be_bytes();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {"app.kubernetes.io/name": group,
                       "statefulset.kubernetes.io/pod-name": name},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": group,
                                  "uid": format!("0b8e6a52-7f1d-4e2a-8c3b-{ip:012}"),
                                  "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"hostname": name, "subdomain": format!("{group}-peers"),
                 "containers": [{"name": "haproxy", "image": "haproxy:2.6"}]},
        "status": {"podIP": format!("10.{}.{}.{}", octets[1], octets[2], octets[3]),
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }))
    .map_err(|e| format!("build Pod {ns}/{name}: {e}"))
}

struct Namespace {
    groups: Vec<PeerGroup>,
    pods: Vec<Pod>,
}

pub fn run(shape: Shape) -> crate::Result<OperatorFigures> {
    let now = UNIX_EPOCH + Duration::from_secs(NOW_SECS);
    let start = Instant::now();
    let mut namespaces = Vec::new();
    let mut ip = 0u32;
    for n in 0..shape.namespaces {
        let ns = format!("ns-{n}");
        let mut space = Namespace {
            groups: Vec::new(),
            pods: Vec::new(),
        };
        for g in 0..shape.groups_per_ns {
            let name = format!("edge-{g}");
            space
                .groups
                .push(peer_group(&ns, &name, n * shape.groups_per_ns + g)?);
            for p in 0..shape.pods {
                ip += 1;
                space.pods.push(pod(&ns, &name, p, ip)?);
            }
        }
        namespaces.push(space);
    }
    let build = start.elapsed();

    let phase = Instant::now();
    let mut identities: Vec<Vec<Vec<MemberIdentity>>> = Vec::new();
    for space in &namespaces {
        let mut per_group = Vec::new();
        for pg in &space.groups {
            per_group.push(render::member_identities(pg, &space.pods).map_err(|e| e.to_string())?);
        }
        identities.push(per_group);
    }
    let identities_time = phase.elapsed();

    let phase = Instant::now();
    let mut plans = Vec::new();
    for (space, ids) in namespaces.iter().zip(&identities) {
        let mut per_group = Vec::new();
        for (pg, members) in space.groups.iter().zip(ids) {
            let policy = pg.spec.tls.cert_policy().map_err(|e| format!("{e:?}"))?;
            let desired: BTreeMap<String, Vec<String>> = members
                .iter()
                .map(|m| (m.name.clone(), m.dns_names.clone()))
                .collect();
            per_group.push(certs::plan(
                &CertInventory::default(),
                &desired,
                &policy,
                now,
            ));
        }
        plans.push(per_group);
    }
    let plan_time = phase.elapsed();

    let phase = Instant::now();
    let mut inventories: Vec<Vec<CertInventory>> = Vec::new();
    let mut leaves_minted = 0;
    for (space, group_plans) in namespaces.iter().zip(&plans) {
        let mut per_group = Vec::new();
        for (pg, plan) in space.groups.iter().zip(group_plans) {
            let name = pg.metadata.name.as_deref().unwrap_or("edge");
            let inv = certs::mint(&CertInventory::default(), plan, name)
                .map_err(|e| format!("mint: {e}"))?;
            leaves_minted += inv.leaves.len();
            per_group.push(inv);
        }
        inventories.push(per_group);
    }
    let mint_time = phase.elapsed();

    let phase = Instant::now();
    let mut objects_rendered = 0;
    // Kept until the end so that the peak RSS includes every rendered object.
    let mut desired = Vec::new();
    for (space, invs) in namespaces.iter().zip(&inventories) {
        for (pg, inv) in space.groups.iter().zip(invs) {
            let d = render::render(pg, &space.pods, &space.groups, inv, now)
                .map_err(|e| e.to_string())?;
            objects_rendered += usize::from(d.objects.is_some());
            desired.push(d);
        }
    }
    let render_time = phase.elapsed();
    let peak_rss = status_bytes("self", "VmHWM")?;
    drop(desired);

    Ok(OperatorFigures {
        groups: shape.namespaces * shape.groups_per_ns,
        pods: shape.namespaces * shape.groups_per_ns * shape.pods,
        build,
        identities: identities_time,
        plan: plan_time,
        mint: mint_time,
        render: render_time,
        leaves_minted,
        objects_rendered,
        peak_rss,
    })
}
