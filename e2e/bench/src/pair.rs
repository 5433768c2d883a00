//! Two real sidecars (`edge-0`, `edge-1`) meshed on loopback as the operator wires them, with
//! mutual TLS or plain; no HAProxy: the benchmark's fake peers stand in for both HAProxies.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use haproxy_peers_members::{Member, Members, Policy, Ports, FORMAT_VERSION};
use haproxy_peers_testkit::cluster::{mesh_ip, pod_name, render_peers_cfg, PEERS_SECTION};
use haproxy_peers_testkit::pki::{secret, write_secret, Ca, GROUP, NAMESPACE};
use haproxy_peers_testkit::{free_addr, Sidecar, SidecarOptions};
use tempfile::TempDir;

/// The two sidecars and what they read.
pub struct Pair {
    pub sidecars: Vec<Sidecar>,
    /// Where each sidecar listens for its HAProxy.
    pub local: Vec<SocketAddr>,
    /// Where each sidecar expects its HAProxy's peers listener (`peers.cfg` `bind`).
    pub haproxy: Vec<SocketAddr>,
    _dirs: Vec<TempDir>,
}

impl Pair {
    pub fn start(binary: &Path, tls: bool) -> crate::Result<Pair> {
        let mesh_port = common_port()?;
        let tls_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        if tls {
            let ca = Ca::new(&format!("{GROUP} bench CA"));
            let leaves: Vec<_> = (0..2)
                .map(|i| (pod_name(i), ca.leaf(&pod_name(i))))
                .collect();
            let named: Vec<_> = leaves.iter().map(|(n, l)| (n.as_str(), l)).collect();
            write_secret(tls_dir.path(), &secret(&[&ca], &named)).map_err(|e| e.to_string())?;
        }
        let addr = || free_addr().map_err(|e| e.to_string());
        let mut sidecars = Vec::new();
        let mut local = Vec::new();
        let mut haproxies = Vec::new();
        let mut dirs = Vec::new();
        for i in 0..2 {
            let (haproxy, sidecar_local, admin) = (addr()?, addr()?, addr()?);
            let config = tempfile::tempdir().map_err(|e| e.to_string())?;
            let members = Members {
                version: FORMAT_VERSION,
                group: GROUP.into(),
                namespace: NAMESPACE.into(),
                generation: 1,
                peers_section: PEERS_SECTION.into(),
                tls,
                ports: Ports {
                    mesh: mesh_port,
                    haproxy: haproxy.port(),
                    sidecar: sidecar_local.port(),
                    admin: admin.port(),
                },
                resync_timeout_seconds: 5,
                tables: Vec::new(),
                default_policy: Policy::Replicate,
                members: (0..2)
                    .map(|m| Member {
                        name: pod_name(m),
                        address: mesh_ip(m).to_string(),
                    })
                    .collect(),
            };
            let yaml = members.to_yaml().map_err(|e| e.to_string())?;
            let write = |name: &str, text: &str| {
                std::fs::write(config.path().join(name), text).map_err(|e| e.to_string())
            };
            write(haproxy_peers_members::FILE_NAME, &yaml)?;
            write(
                "peers.cfg",
                &render_peers_cfg(PEERS_SECTION, haproxy.port(), sidecar_local.port()),
            )?;
            let sidecar = Sidecar::start(SidecarOptions {
                binary: binary.to_path_buf(),
                pod_name: pod_name(i),
                config_dir: config.path().to_path_buf(),
                tls_dir: tls_dir.path().to_path_buf(),
                admin,
                mesh: SocketAddr::new(mesh_ip(i), mesh_port),
                local: sidecar_local,
                haproxy,
                log_level: "warn".into(),
                env: Vec::new(),
                start_timeout: Duration::from_secs(10),
            })
            .map_err(|e| e.to_string())?;
            sidecars.push(sidecar);
            local.push(sidecar_local);
            haproxies.push(haproxy);
            dirs.push(config);
        }
        dirs.push(tls_dir);
        Ok(Pair {
            sidecars,
            local,
            haproxy: haproxies,
            _dirs: dirs,
        })
    }

    pub fn pids(&self) -> crate::Result<Vec<u32>> {
        self.sidecars
            .iter()
            .map(|s| {
                s.pid()
                    .ok_or_else(|| format!("sidecar {} is not running", s.name()))
            })
            .collect()
    }
}

/// One port free on both mesh addresses (members.yaml has one mesh port for the group).
fn common_port() -> crate::Result<u16> {
    for _ in 0..50 {
        let probe = TcpListener::bind(SocketAddr::new(mesh_ip(0), 0)).map_err(|e| e.to_string())?;
        let port = probe.local_addr().map_err(|e| e.to_string())?.port();
        if TcpListener::bind(SocketAddr::new(mesh_ip(1), port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no port free on both 127.0.0.2 and 127.0.0.3".into())
}
