//! Sidecars run in-process (`runtime::run` on a runtime of their own, in a thread) and real
//! HAProxy processes, wired like a pod: the group's `members.yaml` and TLS Secret in temporary
//! directories, pod `edge-<i>`'s mesh address on `127.0.0.<i+2>`, everything else on
//! 127.0.0.1 ports of its own.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use haproxy_peers_members::{Member, Members, Ports, FORMAT_VERSION, SIDECAR_PEER_NAME};
use haproxy_peers_sidecar::admin::views::{PeerView, PeersView, Readiness};
use haproxy_peers_sidecar::config::{Config, RunArgs};
use haproxy_peers_sidecar::runtime;
use haproxy_peers_testkit::pki::{secret, write_secret, Ca};
use haproxy_peers_testkit::{free_port, http_get, wait_until, Haproxy, HaproxyOptions};
use tempfile::TempDir;

pub const SECTION: &str = "edge";

/// Sidecar logs go through the test harness's capture (shown for failing tests, or with
/// `--nocapture`). `MESH_TEST_LOG` sets the filter (default `info`).
pub fn init_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("MESH_TEST_LOG").unwrap_or_else(|_| "info".into());
        let subscriber = haproxy_peers_sidecar::cli::logging::subscriber(
            haproxy_peers_sidecar::config::LogFormat::Text,
            &filter,
            false,
            tracing_subscriber::fmt::TestWriter::new,
        );
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// One group: its config directory (`members.yaml`) and TLS directory.
pub struct Group {
    pub config: TempDir,
    pub tls: TempDir,
    pub members: Members,
}

/// The mesh address of pod `edge-<i>`.
pub fn mesh_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + i as u8)
}

impl Group {
    /// `names` with their mesh IPs as addresses; a leaf for each (and for `extra_leaves`, pods
    /// that hold a certificate of the group without running a sidecar).
    pub fn new(
        names: &[&str],
        extra_leaves: &[&str],
        tls: bool,
        resync_timeout_seconds: u32,
    ) -> Group {
        let config = TempDir::new().unwrap();
        let tls_dir = TempDir::new().unwrap();
        let ca = Ca::new("edge CA");
        let pods: Vec<&str> = names.iter().chain(extra_leaves).copied().collect();
        let leaves: Vec<_> = pods.iter().map(|p| (*p, ca.leaf(p))).collect();
        let named: Vec<(&str, &_)> = leaves.iter().map(|(p, l)| (*p, l)).collect();
        write_secret(tls_dir.path(), &secret(&[&ca], &named)).unwrap();
        let members = Members {
            version: FORMAT_VERSION,
            group: "edge".into(),
            namespace: "web".into(),
            generation: 1,
            peers_section: SECTION.into(),
            tls,
            // The ports every pod shares; only `mesh` is used as such (each sidecar gets its
            // own loopback ports by flag).
            ports: Ports {
                mesh: free_port().unwrap(),
                haproxy: free_port().unwrap(),
                sidecar: free_port().unwrap(),
                admin: free_port().unwrap(),
            },
            resync_timeout_seconds,
            tables: Vec::new(),
            default_policy: Default::default(),
            members: names
                .iter()
                .enumerate()
                .map(|(i, n)| Member {
                    name: (*n).into(),
                    address: mesh_ip(i).to_string(),
                })
                .collect(),
        };
        let group = Group {
            config,
            tls: tls_dir,
            members,
        };
        group.write_members();
        group
    }

    /// Writes `members.yaml` (atomically, as a ConfigMap update lands).
    pub fn write_members(&self) {
        let tmp = self.config.path().join(".members.yaml.tmp");
        std::fs::write(&tmp, self.members.to_yaml().unwrap()).unwrap();
        std::fs::rename(&tmp, self.config.path().join("members.yaml")).unwrap();
    }

    pub fn mesh_addr(&self, i: usize) -> SocketAddr {
        SocketAddr::from((mesh_ip(i), self.members.ports.mesh))
    }

    /// Starts pod `edge-<i>`'s sidecar.
    pub fn sidecar(&self, pod: &str, i: usize) -> Sidecar {
        Sidecar::start(self, pod, self.mesh_addr(i))
    }
}

/// The addresses one sidecar and its HAProxy use.
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub mesh: SocketAddr,
    pub local: SocketAddr,
    pub haproxy: SocketAddr,
    pub admin: SocketAddr,
}

/// A sidecar running `runtime::run` on its own runtime; stopped (gracefully) on drop.
pub struct Sidecar {
    pub pod: String,
    pub addrs: Addrs,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

fn lo(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Sidecar {
    pub fn start(group: &Group, pod: &str, mesh: SocketAddr) -> Sidecar {
        let addrs = Addrs {
            mesh,
            local: lo(free_port().unwrap()),
            haproxy: lo(free_port().unwrap()),
            admin: lo(free_port().unwrap()),
        };
        Sidecar::start_with(group.config.path(), group.tls.path(), pod, addrs)
    }

    pub fn start_with(config_dir: &Path, tls_dir: &Path, pod: &str, addrs: Addrs) -> Sidecar {
        init_logs();
        let args = RunArgs {
            pod_name: Some(pod.into()),
            config_dir: config_dir.to_path_buf(),
            tls_dir: tls_dir.to_path_buf(),
            admin_listen: Some(addrs.admin.to_string()),
            mesh_listen: Some(addrs.mesh.to_string()),
            local_listen: Some(addrs.local.to_string()),
            haproxy_addr: Some(addrs.haproxy.to_string()),
            max_entries_per_table: "100000".into(),
            log_format: "text".into(),
            log_level: "info".into(),
        };
        let config = Config::for_run(&args).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("sidecar-{pod}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(runtime::run(config, async {
                    let _ = stopped.await;
                }))
                .map_err(|e| e.to_string())
            })
            .unwrap();
        let sidecar = Sidecar {
            pod: pod.into(),
            addrs,
            stop: Some(stop),
            thread: Some(thread),
        };
        wait_until("the admin server", Duration::from_secs(10), || {
            Ok(http_get(addrs.admin, "/healthz", &[]).ok().map(|_| ()))
        })
        .unwrap();
        sidecar
    }

    /// Stops it cleanly and starts it again on the same addresses (a restarted container),
    /// then waits until it has learned the table from `teacher`.
    pub fn restart_and_learn(&mut self, group: &Group, teacher: &str, timeout: Duration) {
        self.stop().unwrap();
        *self = Sidecar::start_with(group.config.path(), group.tls.path(), &self.pod, self.addrs);
        self.wait_for(&format!("a lesson from {teacher}"), timeout, |s| {
            s.peers().replica
                == haproxy_peers_sidecar::admin::views::ReplicaSync::Learned {
                    from: teacher.into(),
                }
        });
    }

    /// Stops it (SIGTERM's path) and returns `run`'s result.
    pub fn stop(&mut self) -> Result<(), String> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| "the runtime panicked".to_owned())?,
            None => Ok(()),
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = http_get(self.addrs.admin, path, &[]).unwrap();
        (r.status, String::from_utf8_lossy(&r.body).into_owned())
    }

    pub fn peers(&self) -> PeersView {
        let (status, body) = self.get("/peers");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn peer(&self, name: &str) -> PeerView {
        let view = self.peers();
        view.peers
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no peer {name} in {view:#?}"))
    }

    pub fn readiness(&self) -> Readiness {
        let (_, body) = self.get("/readyz?format=json");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let mut last = String::new();
        let ok = wait_until("readiness", timeout, || {
            let (status, body) = self.get("/readyz");
            last = body;
            Ok((status == 200).then_some(()))
        });
        assert!(
            ok.is_ok(),
            "{} not ready within {timeout:?}: {last}",
            self.pod
        );
    }

    /// The value of one metric line (`name{labels}` exactly as exposed), if present.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Waits until `check` holds, printing the last `/peers` on failure.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut(&Sidecar) -> bool) {
        let ok = wait_until(what, timeout, || Ok(check(self).then_some(())));
        if ok.is_err() {
            panic!(
                "{}: {what} not within {timeout:?}; /peers: {:#?}",
                self.pod,
                self.peers()
            );
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// HAProxy for pod `pod_env` (its `POD_NAME`), with the operator's peers section and a table
/// `be` (ip keys, gpc0 and a request rate) replicated through it.
pub fn haproxy(pod_env: &str, addrs: &Addrs) -> Haproxy {
    let http = lo(free_port().unwrap());
    let config = format!(
        "global\n    localpeer \"${{POD_NAME}}\"\n\n\
         defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    \
         timeout connect 1s\n\n\
         peers {SECTION}\n    bind {}\n    server \"${{POD_NAME}}\"\n    \
         server {SIDECAR_PEER_NAME} {}\n\n\
         backend be\n    stick-table type ip size 100k expire 60s store gpc0,http_req_rate(10s) \
         peers {SECTION}\n\n\
         backend scratch\n    stick-table type ip size 1k expire 60s store gpc0 peers {SECTION}\n\n\
         frontend fe\n    bind {http}\n    http-request track-sc0 src table be\n    \
         http-request return status 200\n",
        addrs.haproxy, addrs.local
    );
    Haproxy::start(HaproxyOptions::new(config).env("POD_NAME", pod_env)).unwrap()
}

/// `gpc0` of `key` in HAProxy's table `be`.
pub fn gpc0(h: &Haproxy, key: &str) -> Option<u64> {
    gpc0_in(h, "be", key)
}

/// `gpc0` of `key` in HAProxy's table `table`.
pub fn gpc0_in(h: &Haproxy, table: &str, key: &str) -> Option<u64> {
    h.runtime()
        .show_table(table)
        .ok()?
        .entry(key)
        .and_then(|e| e.u64("gpc0"))
}

/// Waits until HAProxy `who` shows `gpc0 = want` for `key`.
pub fn wait_gpc0(h: &Haproxy, who: &str, key: &str, want: u64, timeout: Duration) {
    let mut last = None;
    let ok = wait_until(&format!("{key} gpc0={want} on {who}"), timeout, || {
        last = gpc0(h, key);
        Ok((last == Some(want)).then_some(()))
    });
    assert!(ok.is_ok(), "{who}: {key} gpc0 is {last:?}, expected {want}");
}

/// Pods `edge-0` and `edge-1` of `group`, each a sidecar and a HAProxy, both Ready.
pub struct Pair {
    pub a: Sidecar,
    pub b: Sidecar,
    pub hap_a: Haproxy,
    pub hap_b: Haproxy,
}

pub fn ready_pair(group: &Group, timeout: Duration) -> Pair {
    let a = group.sidecar("edge-0", 0);
    let b = group.sidecar("edge-1", 1);
    let hap_a = haproxy("edge-0", &a.addrs);
    let hap_b = haproxy("edge-1", &b.addrs);
    a.wait_ready(timeout);
    b.wait_ready(timeout);
    Pair { a, b, hap_a, hap_b }
}
