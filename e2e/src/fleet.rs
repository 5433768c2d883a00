//! A fleet: pods of StatefulSet `edge`, each a network namespace running a real HAProxy
//! (master-worker) and a real sidecar, configured from the operator's render, plus a client
//! namespace that sends traffic. Files per pod, under the run's directory:
//!
//! ```text
//! <pod>/haproxy.cfg     HAProxy's own configuration (tables, frontends)
//! <pod>/config/         ConfigMap edge-peers (peers.cfg, members.yaml), kubelet layout
//! <pod>/tls/            Secret edge-peer-tls (ca.crt, <pod>.crt/.key of every member), kubelet layout
//! <pod>/run/            HAProxy's stats socket and master CLI
//! <pod>/haproxy.log, <pod>/sidecar.log
//! ```
//!
//! Dropping the fleet kills every process, deletes every namespace and the run's directory
//! (kept when `HAPROXY_PEERS_E2E_KEEP=1`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use haproxy_peers_testkit::RuntimeApi;
use rustix::process::Signal;
use tempfile::TempDir;

use crate::binaries::Binaries;
use crate::control::{ControlPlane, GroupOptions, PodInfo, Rendered, STATEFUL_SET};
use crate::error::{Error, Result};
use crate::haproxy_cfg::{
    haproxy_cfg, Binds, HTTP_PORT, MASTER_SOCKET, RATE_TABLE, STATS_SOCKET, STICKY_TABLE,
};
use crate::netns::{Host, Network};
use crate::probe::{run_probe, AdminSnapshot, HttpTally};
use crate::proc::{Proc, ProcSpec};
use crate::projection::project;
use crate::wait::poll;

/// Set to `1` to keep the run's directory (configs, certificates, logs) after the fleet.
pub const KEEP_ENV: &str = "HAPROXY_PEERS_E2E_KEEP";
/// The client namespace's name.
pub const CLIENT: &str = "client";

/// What to start.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub pods: usize,
    pub group: GroupOptions,
    /// The operator's clock for the first reconcile (certificates are issued as of then). The
    /// sidecars check certificates against the real clock, so a rotation test starts in the
    /// past (e.g. 25 days ago) and [`Fleet::advance`]s towards the present: a certificate
    /// minted more than a minute ahead of the real clock is not valid yet.
    pub now: SystemTime,
    /// Requests per client per 10 s before HAProxy answers 429.
    pub rate_limit: u64,
    /// The sidecars' `--log-level`.
    pub log_level: String,
    pub binaries: Binaries,
    /// How long one process may take to start serving.
    pub start_timeout: Duration,
}

impl FleetOptions {
    /// `pods` pods with mutual TLS, a 5 s resync timeout, both tables replicated.
    pub fn new(binaries: Binaries, pods: usize) -> FleetOptions {
        FleetOptions {
            pods,
            group: GroupOptions {
                tls: true,
                resync_timeout: "5s".into(),
                tables: vec![
                    (RATE_TABLE.into(), "replicate".into()),
                    (STICKY_TABLE.into(), "replicate".into()),
                ],
                tls_policy: Vec::new(),
            },
            now: SystemTime::now(),
            rate_limit: 1_000,
            log_level: "info".into(),
            binaries,
            start_timeout: Duration::from_secs(20),
        }
    }
}

/// One pod: its namespace and its two processes.
#[derive(Debug)]
pub struct Pod {
    pub name: String,
    host: Host,
    dir: PathBuf,
    /// Dropped (killed) before the sidecar, as in a pod being deleted.
    pub haproxy: Proc,
    pub sidecar: Proc,
}

impl Pod {
    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn ip(&self) -> std::net::Ipv4Addr {
        self.host.ip
    }

    pub fn netns(&self) -> &str {
        &self.host.netns
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("config")
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join("tls")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// HAProxy's runtime API (the current worker's stats socket).
    pub fn runtime(&self) -> RuntimeApi {
        RuntimeApi::new(self.run_dir().join(STATS_SOCKET))
    }

    /// HAProxy's master CLI.
    pub fn master(&self) -> RuntimeApi {
        RuntimeApi::new(self.run_dir().join(MASTER_SOCKET))
    }

    fn set_host(&mut self, host: Host) {
        for proc in [&mut self.haproxy, &mut self.sidecar] {
            proc.spec_mut().netns.clone_from(&host.netns);
        }
        self.host = host;
    }
}

/// A running fleet. Fields drop in order: processes, then namespaces, then files.
#[derive(Debug)]
pub struct Fleet {
    pods: BTreeMap<String, Pod>,
    control: ControlPlane,
    rendered: Option<Rendered>,
    now: SystemTime,
    options: FleetOptions,
    client: Host,
    net: Network,
    dir: TempDir,
}

impl Fleet {
    /// Creates the namespaces, renders and writes every pod's files, then starts each pod's
    /// sidecar and HAProxy (the sidecar first, as a native sidecar container starts). Returns
    /// once every process serves, without waiting for readiness.
    pub fn start(options: FleetOptions) -> Result<Fleet> {
        let mut net = Network::create()?;
        let dir = tempfile::Builder::new()
            .prefix(&net.files_prefix())
            .disable_cleanup(std::env::var(KEEP_ENV).is_ok_and(|v| v == "1"))
            .tempdir()
            .map_err(Error::io("create the run's directory"))?;
        let client = net.add(CLIENT)?;
        let mut fleet = Fleet {
            pods: BTreeMap::new(),
            control: ControlPlane::new(&options.group)?,
            rendered: None,
            now: options.now,
            options,
            client,
            net,
            dir,
        };
        let names: Vec<String> = (0..fleet.options.pods).map(pod_name).collect();
        for name in &names {
            fleet.add_pod(name)?;
        }
        fleet.reconcile()?;
        for name in &names {
            fleet.start_pod(name)?;
        }
        Ok(fleet)
    }

    pub fn pod_names(&self) -> Vec<String> {
        self.pods.keys().cloned().collect()
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    pub fn pod(&self, name: &str) -> Result<&Pod> {
        self.pods
            .get(name)
            .ok_or_else(|| Error::NoSuchPod(name.to_string()))
    }

    fn pod_mut(&mut self, name: &str) -> Result<&mut Pod> {
        self.pods
            .get_mut(name)
            .ok_or_else(|| Error::NoSuchPod(name.to_string()))
    }

    pub fn control(&self) -> &ControlPlane {
        &self.control
    }

    /// The latest reconcile's output.
    pub fn rendered(&self) -> Option<&Rendered> {
        self.rendered.as_ref()
    }

    pub fn now(&self) -> SystemTime {
        self.now
    }

    pub fn network(&self) -> &Network {
        &self.net
    }

    pub fn client(&self) -> &Host {
        &self.client
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn options(&self) -> &FleetOptions {
        &self.options
    }

    /// `ip netns exec` of a pod's namespace, for anything else a test wants to run there.
    pub fn exec(&self, pod: &str, program: &Path) -> Result<std::process::Command> {
        Ok(self.pod(pod)?.host.command(program))
    }

    // ----- the operator's side -----

    /// Reconciles at the fleet's `now` and writes every pod's ConfigMap and Secret volumes (a
    /// volume whose content did not change is left alone, as the kubelet does), then every
    /// namespace's hosts file.
    fn reconcile(&mut self) -> Result<&Rendered> {
        let pods: Vec<PodInfo> = self
            .pods
            .values()
            .map(|p| PodInfo {
                name: p.name.clone(),
                ip: p.host.ip,
                ready: true,
            })
            .collect();
        let rendered = self.control.reconcile(&pods, self.now)?;
        for pod in self.pods.values() {
            project(&pod.config_dir(), &rendered.config)?;
            if let Some(tls) = &rendered.tls {
                project(&pod.tls_dir(), tls)?;
            }
        }
        let entries: Vec<_> = self
            .pods
            .values()
            .map(|p| (p.host.ip, self.control.dns_names(&p.name)))
            .collect();
        self.net.set_hosts(&entries)?;
        Ok(self.rendered.insert(rendered))
    }

    /// Moves the operator's clock to `now` and reconciles: certificates due by then are
    /// renewed (or the CA rotated) and swapped into every pod's Secret volume in place.
    pub fn advance(&mut self, now: SystemTime) -> Result<&Rendered> {
        self.now = now;
        self.reconcile()
    }

    /// Scales the StatefulSet to `replicas` (`edge-0` … `edge-<n-1>`; scaling down removes
    /// the highest ordinals) at the operator's time `now`: new pods are created and started
    /// after the reconcile that made them members, removed pods are deleted before it.
    pub fn scale_to(&mut self, replicas: usize, now: SystemTime) -> Result<()> {
        self.now = now;
        let wanted: Vec<String> = (0..replicas).map(pod_name).collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|n| !wanted.contains(n))
            .cloned()
            .collect();
        for name in &gone {
            if let Some(mut pod) = self.pods.remove(name) {
                pod.haproxy.kill()?;
                pod.sidecar.kill()?;
            }
            self.net.remove(name)?;
        }
        let new: Vec<String> = wanted
            .iter()
            .filter(|n| !self.pods.contains_key(*n))
            .cloned()
            .collect();
        for name in &new {
            self.add_pod(name)?;
        }
        self.reconcile()?;
        for name in &new {
            self.start_pod(name)?;
        }
        Ok(())
    }

    // ----- pods -----

    fn add_pod(&mut self, name: &str) -> Result<()> {
        let host = self.net.add(name)?;
        let dir = self.dir.path().join(name);
        let run = dir.join("run");
        std::fs::create_dir_all(&run).map_err(Error::io(format!("create {}", run.display())))?;
        let cfg = dir.join("haproxy.cfg");
        let section = self
            .control
            .peer_group()
            .spec
            .peers_section_or(&self.control.group().name)
            .to_string();
        std::fs::write(
            &cfg,
            haproxy_cfg(&Binds::pod(&run), &section, self.options.rate_limit),
        )
        .map_err(Error::io(format!("write {}", cfg.display())))?;
        let spec = |role, program: &Path, args: Vec<OsString>, env| ProcSpec {
            role,
            pod: name.to_string(),
            netns: host.netns.clone(),
            program: program.to_path_buf(),
            args,
            env,
            log: dir.join(format!("{role}.log")),
            cwd: dir.clone(),
        };
        let bins = &self.options.binaries;
        let haproxy = spec(
            "haproxy",
            &bins.haproxy,
            vec![
                "-W".into(),
                "-S".into(),
                run.join(MASTER_SOCKET).into(),
                "-f".into(),
                cfg.clone().into(),
                "-f".into(),
                dir.join("config/peers.cfg").into(),
            ],
            vec![("POD_NAME".to_string(), name.to_string())],
        );
        let sidecar = spec(
            "sidecar",
            &bins.sidecar,
            vec![
                "run".into(),
                "--pod-name".into(),
                name.into(),
                "--config-dir".into(),
                dir.join("config").into(),
                "--tls-dir".into(),
                dir.join("tls").into(),
                "--log-level".into(),
                self.options.log_level.clone().into(),
            ],
            Vec::new(),
        );
        self.pods.insert(
            name.to_string(),
            Pod {
                name: name.to_string(),
                host,
                dir,
                haproxy: Proc::new(haproxy),
                sidecar: Proc::new(sidecar),
            },
        );
        Ok(())
    }

    fn start_pod(&mut self, name: &str) -> Result<()> {
        self.start_sidecar(name)?;
        self.start_haproxy(name)
    }

    /// Starts the pod's sidecar; returns once its admin server answers.
    pub fn start_sidecar(&mut self, name: &str) -> Result<()> {
        let (probe, port) = (self.options.binaries.probe.clone(), self.admin_port());
        let timeout = self.options.start_timeout;
        let pod = self.pod_mut(name)?;
        pod.sidecar.start()?;
        poll(
            &format!("the sidecar of {name} to serve its admin API"),
            timeout,
            || {
                pod.sidecar.check_alive()?;
                Ok(admin_of(&probe, &pod.host, port)
                    .is_ok_and(|s| s.is_serving())
                    .then_some(()))
            },
        )
        .map_err(|e| with_log(e, &pod.sidecar))
    }

    /// Starts the pod's HAProxy; returns once its worker's stats socket and its master CLI
    /// answer.
    pub fn start_haproxy(&mut self, name: &str) -> Result<()> {
        self.pod_mut(name)?.haproxy.start()?;
        self.wait_haproxy(name, None).map(drop)
    }

    /// Waits until a HAProxy worker other than `old_worker` serves; returns its pid.
    fn wait_haproxy(&mut self, name: &str, old_worker: Option<u32>) -> Result<u32> {
        let timeout = self.options.start_timeout;
        let pod = self.pod_mut(name)?;
        poll(
            &format!("HAProxy of {name} to serve its stats socket and master CLI"),
            timeout,
            || {
                pod.haproxy.check_alive()?;
                let Ok(worker) = pod.runtime().pid() else {
                    return Ok(None);
                };
                let master_ok = pod.master().command("show proc").is_ok();
                Ok((master_ok && Some(worker) != old_worker).then_some(worker))
            },
        )
        .map_err(|e| with_log(e, &pod.haproxy))
    }

    /// SIGKILL to the pod's HAProxy, master and workers.
    pub fn kill_haproxy(&mut self, name: &str) -> Result<()> {
        self.pod_mut(name)?.haproxy.kill()
    }

    /// kill -9, then start again with the same files.
    pub fn restart_haproxy(&mut self, name: &str) -> Result<()> {
        self.kill_haproxy(name)?;
        self.start_haproxy(name)
    }

    /// Soft reload (SIGUSR2 to the master); returns the new worker's pid once it serves.
    pub fn reload_haproxy(&mut self, name: &str) -> Result<u32> {
        let pod = self.pod(name)?;
        let old = pod.runtime().pid()?;
        pod.haproxy.signal(Signal::USR2)?;
        self.wait_haproxy(name, Some(old))
    }

    /// SIGKILL to the pod's sidecar.
    pub fn kill_sidecar(&mut self, name: &str) -> Result<()> {
        self.pod_mut(name)?.sidecar.kill()
    }

    pub fn restart_sidecar(&mut self, name: &str) -> Result<()> {
        self.kill_sidecar(name)?;
        self.start_sidecar(name)
    }

    /// Deletes the pod and creates it again under the same name with a new IP: its processes
    /// die with its namespace, every pod's hosts file maps its names to the new address, the
    /// operator reconciles (the status has the new IP; peers.cfg and members.yaml name pods,
    /// not addresses, so they do not change), and the new pod starts. No other pod is touched.
    pub fn replace_pod(&mut self, name: &str) -> Result<()> {
        let pod = self.pod_mut(name)?;
        pod.haproxy.kill()?;
        pod.sidecar.kill()?;
        self.net.remove(name)?;
        let host = self.net.add(name)?;
        self.pod_mut(name)?.set_host(host);
        self.reconcile()?;
        self.start_pod(name)
    }

    /// A namespace on the fleet's switch that is no pod (an intruder, a stranger): not a
    /// member, no processes; every reconcile rewrites its hosts file as the pods'. It goes
    /// with the fleet.
    pub fn add_host(&mut self, name: &str) -> Result<Host> {
        self.net.add(name)
    }

    /// Cuts the pod off the switch (its processes keep running).
    pub fn cut(&self, name: &str) -> Result<()> {
        self.net.cut(name)
    }

    pub fn heal(&self, name: &str) -> Result<()> {
        self.net.heal(name)
    }

    /// Partitions two pods from each other only (see [`Network::partition`]).
    pub fn partition(&self, a: &str, b: &str) -> Result<()> {
        self.net.partition(a, b)
    }

    pub fn unpartition(&self, a: &str, b: &str) -> Result<()> {
        self.net.unpartition(a, b)
    }

    // ----- readers -----

    /// The pod's sidecar admin API, read inside its namespace on 127.0.0.1 (so it works while
    /// the pod is cut off).
    pub fn admin(&self, name: &str) -> Result<AdminSnapshot> {
        admin_of(
            &self.options.binaries.probe,
            &self.pod(name)?.host,
            self.admin_port(),
        )
    }

    fn admin_port(&self) -> u16 {
        self.control.peer_group().spec.ports.admin
    }

    /// Sends `count` requests with `headers` from the client namespace to the pod's HAProxy.
    pub fn http(&self, pod: &str, count: u64, headers: &[(&str, &str)]) -> Result<HttpTally> {
        let mut args = vec![
            "http".to_string(),
            format!("{}:{HTTP_PORT}", self.pod(pod)?.ip()),
            "--count".to_string(),
            count.to_string(),
        ];
        for (k, v) in headers {
            args.push("--header".into());
            args.push(format!("{k}: {v}"));
        }
        run_probe(&self.options.binaries.probe, &self.client, &args)
    }

    /// Waits until every pod's `/readyz` answers 200; the error lists what still blocks.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let mut last = BTreeMap::new();
        poll("every pod to be ready", timeout, || {
            last.clear();
            for name in self.pods.keys() {
                match self.admin(name) {
                    Ok(s) if s.is_ready() => {}
                    Ok(s) => {
                        last.insert(name.clone(), format!("{:?} {:?}", s.blockers(), s.errors));
                    }
                    Err(e) => {
                        last.insert(name.clone(), e.to_string());
                    }
                }
            }
            Ok(last.is_empty().then_some(()))
        })
        .map_err(|e| Error::Probe {
            netns: "every pod".into(),
            detail: format!("{e}; still not ready: {last:?}"),
        })
    }

    /// The pid of every process in the fleet's namespaces.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let mut pids = Vec::new();
        for host in self.net.hosts() {
            pids.extend(self.net.pids(&host.name)?);
        }
        Ok(pids)
    }

    /// Every process's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for pod in self.pods.values() {
            for proc in [&pod.sidecar, &pod.haproxy] {
                out.push_str(&format!(
                    "===== {} of {} ({}) =====\n{}\n",
                    proc.spec().role,
                    pod.name,
                    proc.log_path().display(),
                    proc.log()
                ));
            }
        }
        out
    }
}

/// `edge-<i>`: the StatefulSet's pod names.
pub fn pod_name(i: usize) -> String {
    format!("{STATEFUL_SET}-{i}")
}

/// The sidecar admin API of the pod in `host`, read by the probe on the pod's loopback.
fn admin_of(probe: &Path, host: &Host, port: u16) -> Result<AdminSnapshot> {
    run_probe(
        probe,
        host,
        &["admin".to_string(), format!("127.0.0.1:{port}")],
    )
}

/// A start-up timeout, with the process's log appended.
fn with_log(err: Error, proc: &Proc) -> Error {
    match err {
        Error::Testkit(haproxy_peers_testkit::Error::Timeout { what, waited }) => {
            Error::Testkit(haproxy_peers_testkit::Error::Timeout {
                what: format!("{what}; its log:\n{}", proc.log()),
                waited,
            })
        }
        other => other,
    }
}
