//! What the demo runs: a fleet in network namespaces (as root), or a loopback cluster
//! otherwise. The main loop sees both through [`DemoTarget`].

use std::collections::BTreeMap;
use std::process::Command;

use haproxy_peers_testkit::cluster::{Cluster, ClusterOptions, NodeAddrs, PEERS_SECTION};
use haproxy_peers_testkit::RuntimeApi;

use crate::error::Result;
use crate::fleet::{Fleet, FleetOptions};
use crate::haproxy_cfg::{haproxy_cfg, Binds, HTTP_PORT, RATE_TABLE, SERVERS, STICKY_TABLE};
use crate::probe::read_admin;
use crate::view::NodeView;
use crate::Binaries;

/// The tables the view shows.
pub const TABLES: [&str; 2] = [RATE_TABLE, STICKY_TABLE];

/// A running group the demo observes and disturbs.
pub trait DemoTarget {
    /// One line saying what runs and how it is wired.
    fn describe(&self) -> String;
    fn names(&self) -> Vec<String>;
    fn observe(&self, name: &str) -> NodeView;
    /// The probe's `traffic` command aimed at every pod's HTTP frontend.
    fn traffic(&self, per_second: u64) -> Result<Command>;
    /// kill -9 of the pod's HAProxy, then a start; returns what happened.
    fn kill_haproxy(&mut self, name: &str) -> Result<String>;
    /// kill -9 of the pod's sidecar, then a start.
    fn kill_sidecar(&mut self, name: &str) -> Result<String>;
    /// Delete the pod and recreate it with a new IP.
    fn replace_pod(&mut self, name: &str) -> Result<String>;
}

/// HAProxy's side of a node: the worker's pid and the entries of every shown table.
fn haproxy_side(api: &RuntimeApi) -> (Option<u32>, BTreeMap<String, Option<u64>>) {
    let worker = api.pid().ok();
    let entries = TABLES
        .iter()
        .map(|t| {
            let used = worker
                .and_then(|_| api.show_table(t).ok())
                .and_then(|d| d.header)
                .map(|h| h.used);
            ((*t).to_string(), used)
        })
        .collect();
    (worker, entries)
}

fn traffic_args(addrs: impl Iterator<Item = String>, per_second: u64) -> Vec<String> {
    let mut args = vec!["traffic".to_string()];
    args.extend(addrs);
    args.extend(["--per-second".to_string(), per_second.to_string()]);
    args
}

/// The fleet in network namespaces, configured from the operator's render.
#[derive(Debug)]
pub struct NetnsTarget {
    fleet: Fleet,
}

impl NetnsTarget {
    pub fn start(options: FleetOptions) -> Result<NetnsTarget> {
        Ok(NetnsTarget {
            fleet: Fleet::start(options)?,
        })
    }
}

impl DemoTarget for NetnsTarget {
    fn describe(&self) -> String {
        format!(
            "{} pods in network namespaces {}* on 10.213.0.0/24, configured by the operator's render, mutual TLS",
            self.fleet.pod_names().len(),
            self.fleet.network().prefix()
        )
    }

    fn names(&self) -> Vec<String> {
        self.fleet.pod_names()
    }

    fn observe(&self, name: &str) -> NodeView {
        let Ok(pod) = self.fleet.pod(name) else {
            return NodeView::default();
        };
        let (haproxy_worker, haproxy_entries) = haproxy_side(&pod.runtime());
        NodeView {
            name: name.to_string(),
            address: pod.ip().to_string(),
            haproxy_worker,
            haproxy_entries,
            admin: self.fleet.admin(name).ok(),
        }
    }

    fn traffic(&self, per_second: u64) -> Result<Command> {
        // By name, as a client would: the client namespace's hosts file follows replacements.
        let group = self.fleet.control().group();
        let addrs: Vec<String> = self
            .fleet
            .pod_names()
            .iter()
            .map(|p| format!("{}:{HTTP_PORT}", group.member_address(p)))
            .collect();
        let mut command = self
            .fleet
            .client()
            .command(&self.fleet.options().binaries.probe);
        command.args(traffic_args(addrs.into_iter(), per_second));
        Ok(command)
    }

    fn kill_haproxy(&mut self, name: &str) -> Result<String> {
        self.fleet.restart_haproxy(name)?;
        let pid = self.fleet.pod(name)?.runtime().pid()?;
        Ok(format!(
            "killed HAProxy of {name} (-9) and started it again: worker pid {pid}, taught by its sidecar"
        ))
    }

    fn kill_sidecar(&mut self, name: &str) -> Result<String> {
        self.fleet.restart_sidecar(name)?;
        Ok(format!(
            "killed the sidecar of {name} (-9) and started it again: it relearns from HAProxy and the members"
        ))
    }

    fn replace_pod(&mut self, name: &str) -> Result<String> {
        let old = self.fleet.pod(name)?.ip();
        self.fleet.replace_pod(name)?;
        let new = self.fleet.pod(name)?.ip();
        Ok(format!(
            "replaced pod {name}: {old} -> {new}, same name; no HAProxy was reloaded"
        ))
    }
}

/// A loopback cluster from the testkit (no root needed): members and certificates are the
/// testkit's, HAProxy is not in master-worker mode, and pods cannot be replaced.
#[derive(Debug)]
pub struct LoopbackTarget {
    cluster: Cluster,
    probe: std::path::PathBuf,
}

impl LoopbackTarget {
    pub fn start(binaries: &Binaries, pods: usize, rate_limit: u64) -> Result<LoopbackTarget> {
        let options = ClusterOptions::new(&binaries.sidecar, pods).resync_timeout_seconds(5);
        let run = std::process::id();
        let cluster = Cluster::start(options, |addrs: &NodeAddrs| {
            // Abstract sockets: one namespace for every pod, so names must differ per pod.
            let server = |i: usize| format!("abns@hp-demo-{run}-{}-{}", addrs.index, SERVERS[i].0);
            let binds = Binds {
                http: addrs.http.to_string(),
                servers: [server(0), server(1)],
                stats_socket: None,
            };
            haproxy_cfg(&binds, PEERS_SECTION, rate_limit)
        })?;
        Ok(LoopbackTarget {
            cluster,
            probe: binaries.probe.clone(),
        })
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.cluster.nodes().iter().position(|n| n.name() == name)
    }
}

impl DemoTarget for LoopbackTarget {
    fn describe(&self) -> String {
        format!(
            "{} pods on loopback ports (no network namespaces; certificates and members.yaml from the testkit, not the operator's render)",
            self.cluster.nodes().len()
        )
    }

    fn names(&self) -> Vec<String> {
        self.cluster
            .nodes()
            .iter()
            .map(|n| n.name().to_string())
            .collect()
    }

    fn observe(&self, name: &str) -> NodeView {
        let Some(node) = self.index(name).map(|i| self.cluster.node(i)) else {
            return NodeView::default();
        };
        let (haproxy_worker, haproxy_entries) = haproxy_side(&node.api());
        NodeView {
            name: name.to_string(),
            address: node.addrs.mesh.to_string(),
            haproxy_worker,
            haproxy_entries,
            admin: Some(read_admin(node.addrs.admin)),
        }
    }

    fn traffic(&self, per_second: u64) -> Result<Command> {
        let addrs = self
            .cluster
            .nodes()
            .iter()
            .map(|n| n.addrs.http.to_string());
        let mut command = Command::new(&self.probe);
        command.args(traffic_args(addrs, per_second));
        Ok(command)
    }

    fn kill_haproxy(&mut self, name: &str) -> Result<String> {
        let Some(i) = self.index(name) else {
            return Ok(format!("no pod {name}"));
        };
        let node = self.cluster.node_mut(i);
        node.haproxy.kill()?;
        node.haproxy.restart()?;
        let pid = node.haproxy.worker_pid()?;
        Ok(format!(
            "killed HAProxy of {name} (-9) and started it again: pid {pid}, taught by its sidecar"
        ))
    }

    fn kill_sidecar(&mut self, name: &str) -> Result<String> {
        let Some(i) = self.index(name) else {
            return Ok(format!("no pod {name}"));
        };
        self.cluster.node_mut(i).sidecar.restart()?;
        Ok(format!(
            "killed the sidecar of {name} (-9) and started it again: it relearns from HAProxy and the members"
        ))
    }

    fn replace_pod(&mut self, name: &str) -> Result<String> {
        Ok(format!(
            "cannot replace {name} on loopback: a new IP needs network namespaces (run as root)"
        ))
    }
}
