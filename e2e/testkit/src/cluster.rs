//! N pods on loopback, each a real HAProxy and a real sidecar, wired as the operator wires them:
//! `peers.cfg` (rendered like the operator's) and `members.yaml` in a config directory, the
//! group's TLS Secret in a TLS directory, HAProxy started with `POD_NAME` (no `-L`).
//!
//! Layout, in one network namespace: pod `edge-<i>` has the mesh address `127.0.0.<i+2>:<mesh
//! port>` (one mesh port for the group, as `members.yaml` has one `ports.mesh`), and its own
//! loopback ports for HAProxy's peers listener, the sidecar's local listener, the admin server
//! and two HTTP frontends. With [`ClusterOptions::relayed`], every member reaches every other
//! through its own [`Relay`] at `127.0.<10+from>.<to+2>:<mesh port>` (written as that member's
//! address in the caller's `members.yaml`), so a test can cut one link both ways.
//!
//! Leaves carry exactly the operator's four DNS SANs: a sidecar verifies the member it dialed by
//! the member's name (the bare `<pod>` SAN), not by the address it dialed.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use haproxy_peers_members::{Member, Members, Ports, FORMAT_VERSION, SIDECAR_PEER_NAME};
use tempfile::TempDir;

use crate::error::{Error, Result};
use crate::pki::{secret, write_secret, Ca, GROUP, NAMESPACE};
use crate::ports::free_port;
use crate::process::{Haproxy, HaproxyOptions};
use crate::relay::{CutMode, Relay};
use crate::runtime::RuntimeApi;
use crate::sidecar_proc::{Sidecar, SidecarOptions};

/// The HAProxy `peers` section (the operator's default: the PeerGroup's name).
pub const PEERS_SECTION: &str = GROUP;

/// The name of pod `i`.
pub fn pod_name(i: usize) -> String {
    format!("{GROUP}-{i}")
}

/// `peers.cfg` as the operator renders it (see operator/tests/golden/edge/peers.cfg), for the
/// given loopback ports.
pub fn render_peers_cfg(section: &str, haproxy_port: u16, sidecar_port: u16) -> String {
    format!(
        "global\n    localpeer \"${{POD_NAME}}\"\n\n\
         peers {section}\n    bind 127.0.0.1:{haproxy_port}\n    server \"${{POD_NAME}}\"\n    \
         server {SIDECAR_PEER_NAME} 127.0.0.1:{sidecar_port}\n"
    )
}

/// Every address of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddrs {
    pub index: usize,
    pub name: String,
    /// Where the sidecar listens for other members.
    pub mesh: SocketAddr,
    /// HAProxy's peers listener (`bind` in `peers.cfg`).
    pub haproxy_peers: SocketAddr,
    /// The sidecar's listener HAProxy calls.
    pub sidecar_local: SocketAddr,
    pub admin: SocketAddr,
    /// Two ports for the test's HAProxy frontends (traffic, and an origin server).
    pub http: SocketAddr,
    pub origin: SocketAddr,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The `haproxy-peers-sidecar` executable.
    pub sidecar_binary: PathBuf,
    pub size: usize,
    /// `members.yaml` `tls:` (mutual TLS on the mesh).
    pub tls: bool,
    /// Every mesh link through its own [`Relay`].
    pub relayed: bool,
    pub resync_timeout_seconds: u32,
    /// The sidecars' `--log-level`.
    pub log_level: String,
}

impl ClusterOptions {
    pub fn new(sidecar_binary: impl Into<PathBuf>, size: usize) -> ClusterOptions {
        ClusterOptions {
            sidecar_binary: sidecar_binary.into(),
            size,
            tls: true,
            relayed: false,
            resync_timeout_seconds: 5,
            log_level: "info".into(),
        }
    }

    pub fn tls(mut self, tls: bool) -> ClusterOptions {
        self.tls = tls;
        self
    }

    pub fn relayed(mut self, relayed: bool) -> ClusterOptions {
        self.relayed = relayed;
        self
    }

    pub fn resync_timeout_seconds(mut self, seconds: u32) -> ClusterOptions {
        self.resync_timeout_seconds = seconds;
        self
    }

    pub fn log_level(mut self, level: impl Into<String>) -> ClusterOptions {
        self.log_level = level.into();
        self
    }
}

/// One pod. Fields drop in declaration order: HAProxy first, then the sidecar.
#[derive(Debug)]
pub struct Node {
    pub addrs: NodeAddrs,
    pub haproxy: Haproxy,
    pub sidecar: Sidecar,
    config_dir: TempDir,
}

impl Node {
    pub fn name(&self) -> &str {
        &self.addrs.name
    }

    /// HAProxy's runtime API.
    pub fn api(&self) -> RuntimeApi {
        self.haproxy.runtime()
    }

    /// The directory holding `members.yaml` and `peers.cfg`.
    pub fn config_dir(&self) -> &Path {
        self.config_dir.path()
    }
}

/// A running group. Dropping it kills every process and stops every relay.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Node>,
    /// Links by (caller, callee).
    relays: Vec<((usize, usize), Relay)>,
    ca: Option<Ca>,
    tls_dir: TempDir,
    mesh_port: u16,
    options: ClusterOptions,
}

impl Cluster {
    /// Starts every pod (sidecar first, then HAProxy, as a native sidecar container starts) and
    /// returns without waiting for readiness. `haproxy_config` gives each HAProxy's own
    /// configuration (tables, frontends); `peers.cfg` is appended to it.
    pub fn start(
        options: ClusterOptions,
        haproxy_config: impl Fn(&NodeAddrs) -> String,
    ) -> Result<Cluster> {
        let size = options.size;
        let mut relay_ips: Vec<IpAddr> = Vec::new();
        if options.relayed {
            for from in 0..size {
                for to in (0..size).filter(|to| *to != from) {
                    relay_ips.push(relay_ip(from, to));
                }
            }
        }
        let mesh_ips: Vec<IpAddr> = (0..size).map(mesh_ip).collect();
        let mesh_port = common_port(mesh_ips.iter().chain(&relay_ips))?;

        let tls_dir = tempdir("haproxy-peers-tls-")?;
        let ca = if options.tls {
            let ca = Ca::new(&format!("{GROUP} test CA"));
            let leaves: Vec<(String, crate::pki::Leaf)> = (0..size)
                .map(|i| (pod_name(i), ca.leaf(&pod_name(i))))
                .collect();
            let named: Vec<(&str, &crate::pki::Leaf)> =
                leaves.iter().map(|(n, l)| (n.as_str(), l)).collect();
            write_secret(tls_dir.path(), &secret(&[&ca], &named))
                .map_err(Error::io("write the group's TLS files"))?;
            Some(ca)
        } else {
            None
        };

        let addrs: Vec<NodeAddrs> = (0..size)
            .map(|index| {
                Ok(NodeAddrs {
                    index,
                    name: pod_name(index),
                    mesh: SocketAddr::new(mesh_ip(index), mesh_port),
                    haproxy_peers: crate::ports::free_addr()?,
                    sidecar_local: crate::ports::free_addr()?,
                    admin: crate::ports::free_addr()?,
                    http: crate::ports::free_addr()?,
                    origin: crate::ports::free_addr()?,
                })
            })
            .collect::<Result<_>>()?;

        let mut relays = Vec::new();
        if options.relayed {
            for from in 0..size {
                for to in (0..size).filter(|to| *to != from) {
                    let listen = SocketAddr::new(relay_ip(from, to), mesh_port);
                    relays.push(((from, to), Relay::start(listen, addrs[to].mesh)?));
                }
            }
        }

        let mut nodes = Vec::with_capacity(size);
        for node in &addrs {
            let config_dir = tempdir("haproxy-peers-config-")?;
            let members = members_for(&options, &addrs, node, mesh_port);
            let yaml = members.to_yaml().map_err(|e| Error::Io {
                action: "serialise members.yaml".into(),
                source: std::io::Error::other(e.to_string()),
            })?;
            write(
                &config_dir.path().join(haproxy_peers_members::FILE_NAME),
                &yaml,
            )?;
            let peers_cfg = render_peers_cfg(
                PEERS_SECTION,
                node.haproxy_peers.port(),
                node.sidecar_local.port(),
            );
            write(&config_dir.path().join("peers.cfg"), &peers_cfg)?;

            let sidecar = Sidecar::start(SidecarOptions {
                binary: options.sidecar_binary.clone(),
                pod_name: node.name.clone(),
                config_dir: config_dir.path().to_path_buf(),
                tls_dir: tls_dir.path().to_path_buf(),
                admin: node.admin,
                mesh: node.mesh,
                local: node.sidecar_local,
                haproxy: node.haproxy_peers,
                log_level: options.log_level.clone(),
                env: Vec::new(),
                start_timeout: Duration::from_secs(10),
            })?;
            let config = format!("{}\n{peers_cfg}", haproxy_config(node));
            let haproxy = Haproxy::start(HaproxyOptions::new(config).env("POD_NAME", &node.name))?;
            nodes.push(Node {
                addrs: node.clone(),
                haproxy,
                sidecar,
                config_dir,
            });
        }
        Ok(Cluster {
            nodes,
            relays,
            ca,
            tls_dir,
            mesh_port,
            options,
        })
    }

    pub fn options(&self) -> &ClusterOptions {
        &self.options
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    pub fn mesh_port(&self) -> u16 {
        self.mesh_port
    }

    /// The group's CA (TLS clusters only): tests mint hostile certificates with it.
    pub fn ca(&self) -> Option<&Ca> {
        self.ca.as_ref()
    }

    /// The directory every sidecar reads its TLS files from.
    pub fn tls_dir(&self) -> &Path {
        self.tls_dir.path()
    }

    /// Waits until every sidecar's `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let start = std::time::Instant::now();
        for node in &self.nodes {
            node.sidecar
                .wait_ready(timeout.saturating_sub(start.elapsed()))?;
        }
        Ok(())
    }

    /// The relay `from` dials `to` through.
    pub fn relay(&self, from: usize, to: usize) -> Option<&Relay> {
        self.relays
            .iter()
            .find(|(link, _)| *link == (from, to))
            .map(|(_, relay)| relay)
    }

    /// Cuts the link between `a` and `b`, both ways (relayed clusters only).
    pub fn cut(&self, a: usize, b: usize, mode: CutMode) -> Result<()> {
        for relay in self.link(a, b)? {
            relay.cut(mode);
        }
        Ok(())
    }

    /// Heals the link between `a` and `b`.
    pub fn heal(&self, a: usize, b: usize) -> Result<()> {
        for relay in self.link(a, b)? {
            relay.heal();
        }
        Ok(())
    }

    /// Every process's output, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            let _ = write!(
                out,
                "===== sidecar {} =====\n{}\n===== haproxy {} =====\n{}\n",
                node.name(),
                node.sidecar.log(),
                node.name(),
                node.haproxy.log()
            );
        }
        out
    }

    fn link(&self, a: usize, b: usize) -> Result<[&Relay; 2]> {
        match (self.relay(a, b), self.relay(b, a)) {
            (Some(ab), Some(ba)) => Ok([ab, ba]),
            _ => Err(Error::NotRelayed { a, b }),
        }
    }
}

fn members_for(
    options: &ClusterOptions,
    addrs: &[NodeAddrs],
    node: &NodeAddrs,
    mesh_port: u16,
) -> Members {
    Members {
        version: FORMAT_VERSION,
        group: GROUP.into(),
        namespace: NAMESPACE.into(),
        generation: 1,
        peers_section: PEERS_SECTION.into(),
        tls: options.tls,
        ports: Ports {
            mesh: mesh_port,
            haproxy: node.haproxy_peers.port(),
            sidecar: node.sidecar_local.port(),
            admin: node.admin.port(),
        },
        resync_timeout_seconds: options.resync_timeout_seconds,
        tables: Vec::new(),
        default_policy: haproxy_peers_members::Policy::Replicate,
        members: addrs
            .iter()
            .map(|member| {
                let ip = if options.relayed && member.index != node.index {
                    relay_ip(node.index, member.index)
                } else {
                    mesh_ip(member.index)
                };
                Member {
                    name: member.name.clone(),
                    address: ip.to_string(),
                }
            })
            .collect(),
    }
}

/// `127.0.0.<i+2>`: pod `i`'s own address.
pub fn mesh_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, octet(i + 2)))
}

/// `127.0.<10+from>.<to+2>`: where `from` reaches `to` in a relayed cluster.
pub fn relay_ip(from: usize, to: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, octet(10 + from), octet(to + 2)))
}

fn octet(n: usize) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// A port free on every one of `ips` (the group shares one mesh port).
fn common_port<'a>(ips: impl Iterator<Item = &'a IpAddr> + Clone) -> Result<u16> {
    for _ in 0..50 {
        let port = free_port()?;
        if ips
            .clone()
            .all(|ip| TcpListener::bind(SocketAddr::new(*ip, port)).is_ok())
        {
            return Ok(port);
        }
    }
    Err(Error::NoFreePort {
        first: 0,
        last: u16::MAX,
    })
}

fn tempdir(prefix: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(Error::io("create a temporary directory"))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(Error::io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operator's golden peers.cfg for ports 10001/10002, comments and blank lines aside.
    #[test]
    fn peers_cfg_matches_the_operator_render() {
        let golden = include_str!("../../../operator/tests/golden/edge/peers.cfg");
        let strip = |text: &str| -> Vec<String> {
            text.lines()
                .map(str::trim_end)
                .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            strip(&render_peers_cfg("edge", 10001, 10002)),
            strip(golden)
        );
    }

    #[test]
    fn addresses_are_distinct_loopback_ips() {
        let mut ips = vec![mesh_ip(0), mesh_ip(1), mesh_ip(2)];
        for from in 0..3 {
            for to in (0..3).filter(|t| *t != from) {
                ips.push(relay_ip(from, to));
            }
        }
        let distinct: std::collections::HashSet<_> = ips.iter().collect();
        assert_eq!(distinct.len(), ips.len());
        assert!(ips.iter().all(IpAddr::is_loopback));
        assert_eq!(relay_ip(1, 2).to_string(), "127.0.11.4");
    }

    #[test]
    fn members_yaml_points_at_relays_when_relayed() {
        let addrs: Vec<NodeAddrs> = (0..3)
            .map(|index| NodeAddrs {
                index,
                name: pod_name(index),
                mesh: SocketAddr::new(mesh_ip(index), 7000),
                haproxy_peers: crate::ports::loopback(7001 + 10 * index as u16),
                sidecar_local: crate::ports::loopback(7002 + 10 * index as u16),
                admin: crate::ports::loopback(7003 + 10 * index as u16),
                http: crate::ports::loopback(7004 + 10 * index as u16),
                origin: crate::ports::loopback(7005 + 10 * index as u16),
            })
            .collect();
        let options = ClusterOptions::new("/bin/false", 3).relayed(true);
        let members = members_for(&options, &addrs, &addrs[1], 7000);
        members.validate().unwrap();
        let address = |name: &str| members.member(name).unwrap().address.clone();
        assert_eq!(address("edge-0"), "127.0.11.2");
        assert_eq!(address("edge-1"), "127.0.0.3");
        assert_eq!(address("edge-2"), "127.0.11.4");
        assert_eq!(members.ports.sidecar, 7012);
        let direct = members_for(&options.clone().relayed(false), &addrs, &addrs[1], 7000);
        assert_eq!(direct.member("edge-0").unwrap().address, "127.0.0.2");
    }
}
