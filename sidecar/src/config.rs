//! Flags and environment -> [`Config`]. Every setting is read as text and checked here rather
//! than by clap, so that one start reports every bad setting at once, each naming its flag, its
//! environment variable and the value found.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use haproxy_peers_members::{is_peer_name, Members, Policy};

/// Where the PeerGroup's ConfigMap (`members.yaml`, `peers.cfg`) is mounted.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/haproxy-peers";
/// Where the Secret `<group>-peer-tls` is mounted.
pub const DEFAULT_TLS_DIR: &str = "/etc/haproxy-peers/tls";
/// Default memory bound per table, in entries.
pub const DEFAULT_MAX_ENTRIES: u64 = 1_000_000;
/// The peers configuration file next to `members.yaml` (HAProxy reads it; the sidecar reports it).
pub const PEERS_CFG: &str = "peers.cfg";

pub const ENV_POD_NAME: &str = "POD_NAME";
pub const ENV_CONFIG_DIR: &str = "HAPROXY_PEERS_CONFIG_DIR";
pub const ENV_TLS_DIR: &str = "HAPROXY_PEERS_TLS_DIR";
pub const ENV_ADMIN_LISTEN: &str = "HAPROXY_PEERS_ADMIN_LISTEN";
pub const ENV_MESH_LISTEN: &str = "HAPROXY_PEERS_MESH_LISTEN";
pub const ENV_LOCAL_LISTEN: &str = "HAPROXY_PEERS_LOCAL_LISTEN";
pub const ENV_HAPROXY_ADDR: &str = "HAPROXY_PEERS_HAPROXY_ADDR";
pub const ENV_MAX_ENTRIES: &str = "HAPROXY_PEERS_MAX_ENTRIES_PER_TABLE";
pub const ENV_LOG_FORMAT: &str = "HAPROXY_PEERS_LOG_FORMAT";
pub const ENV_LOG_LEVEL: &str = "HAPROXY_PEERS_LOG_LEVEL";

/// The replicator's settings as given: flags, else environment, else defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct RunArgs {
    /// This pod's name: the sidecar's peer name and HAProxy's local peer name.
    #[arg(long, env = ENV_POD_NAME)]
    pub pod_name: Option<String>,
    /// Directory holding members.yaml and peers.cfg (the PeerGroup's ConfigMap).
    #[arg(long, env = ENV_CONFIG_DIR, default_value = DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,
    /// Directory holding ca.crt, <pod>.crt and <pod>.key (the group's TLS Secret).
    #[arg(long, env = ENV_TLS_DIR, default_value = DEFAULT_TLS_DIR)]
    pub tls_dir: PathBuf,
    /// Admin HTTP address [default: 0.0.0.0:<members.yaml ports.admin>].
    #[arg(long, env = ENV_ADMIN_LISTEN)]
    pub admin_listen: Option<String>,
    /// Mesh address other sidecars call [default: 0.0.0.0:<ports.mesh>].
    #[arg(long, env = ENV_MESH_LISTEN)]
    pub mesh_listen: Option<String>,
    /// Loopback address HAProxy calls [default: 127.0.0.1:<ports.sidecar>].
    #[arg(long, env = ENV_LOCAL_LISTEN)]
    pub local_listen: Option<String>,
    /// HAProxy's own peers listener [default: 127.0.0.1:<ports.haproxy>].
    #[arg(long, env = ENV_HAPROXY_ADDR)]
    pub haproxy_addr: Option<String>,
    /// Memory bound per table; when full, the entry expiring soonest is evicted.
    #[arg(long, env = ENV_MAX_ENTRIES, default_value = "1000000")]
    pub max_entries_per_table: String,
    /// `text` or `json`.
    #[arg(long, env = ENV_LOG_FORMAT, default_value = "text")]
    pub log_format: String,
    /// A level (`info`, `debug`) or a tracing filter (`haproxy_peers_sidecar=debug,info`).
    #[arg(long, env = ENV_LOG_LEVEL, default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Checked settings, with `members.yaml` loaded and this pod found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub pod_name: String,
    pub config_dir: PathBuf,
    pub tls_dir: PathBuf,
    pub members: Members,
    pub admin_listen: SocketAddr,
    pub mesh_listen: SocketAddr,
    pub local_listen: SocketAddr,
    pub haproxy_addr: SocketAddr,
    pub max_entries_per_table: u64,
    pub log_format: LogFormat,
    /// Valid for `tracing_subscriber::EnvFilter`.
    pub log_level: String,
}

/// Every problem found, in flag order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

fn render(problems: &[String]) -> String {
    let mut out = match problems.len() {
        1 => "invalid configuration (1 problem):".to_string(),
        n => format!("invalid configuration ({n} problems):"),
    };
    for p in problems {
        let _ = write!(out, "\n  - {p}");
    }
    out
}

/// `--flag (ENV)`: how every message names a setting.
fn setting(flag: &str, env: &str) -> String {
    format!("--{flag} ({env})")
}

/// The path of `members.yaml` in a config directory.
pub fn members_path(config_dir: &Path) -> PathBuf {
    config_dir.join(haproxy_peers_members::FILE_NAME)
}

/// Reads and validates `members.yaml`, with a message that says where it comes from.
pub fn load_members(config_dir: &Path) -> Result<Members, String> {
    let path = members_path(config_dir);
    let from = setting("config-dir", ENV_CONFIG_DIR);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {} ({from}): {e}: mount the PeerGroup's ConfigMap <group>-peers at the \
             config directory",
            path.display()
        )
    })?;
    Members::from_yaml(&text).map_err(|e| {
        format!(
            "{}: {e} (the operator writes this file into ConfigMap <group>-peers; do not edit \
             it by hand)",
            path.display()
        )
    })
}

/// `None` when `pod` is a member, else what to check.
pub fn membership_problem(members: &Members, pod: &str) -> Option<String> {
    if members.member(pod).is_some() {
        return None;
    }
    let names: Vec<&str> = members.members.iter().map(|m| m.name.as_str()).collect();
    Some(format!(
        "pod '{pod}' is not in members.yaml (members: {}): is the pod selected by the \
         PeerGroup's selector?",
        names.join(", ")
    ))
}

impl Config {
    /// Checks every setting; on failure, lists every problem. This pod must be listed in
    /// `members.yaml` (what `check-config` reports).
    pub fn from_args(args: &RunArgs) -> Result<Config, ConfigError> {
        Config::check(args, true)
    }

    /// As [`Config::from_args`], except that a pod not (yet) listed in `members.yaml` is
    /// accepted: `run` starts anyway, reports it as a readiness blocker and waits for the
    /// operator to add the pod (a new pod can start before its ConfigMap has caught up).
    pub fn for_run(args: &RunArgs) -> Result<Config, ConfigError> {
        Config::check(args, false)
    }

    /// Whether this pod is listed in the `members.yaml` read at start-up.
    pub fn is_member(&self) -> bool {
        self.members.member(&self.pod_name).is_some()
    }

    fn check(args: &RunArgs, require_member: bool) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let pod_setting = setting("pod-name", ENV_POD_NAME);
        let pod_name = match args.pod_name.as_deref().map(str::trim) {
            None | Some("") => {
                problems.push(format!(
                    "{pod_setting} is not set: set {ENV_POD_NAME} from the pod's name (downward \
                     API fieldRef metadata.name) or pass --pod-name"
                ));
                None
            }
            Some(name) if !is_peer_name(name) => {
                problems.push(format!(
                    "{pod_setting}: '{name}' is not a valid peer name (letters, digits, '-', \
                     '_', '.', ':')"
                ));
                None
            }
            Some(name) => Some(name.to_string()),
        };
        let members = match load_members(&args.config_dir) {
            Ok(m) => Some(m),
            Err(p) => {
                problems.push(p);
                None
            }
        };
        if let (Some(m), Some(pod), true) = (&members, &pod_name, require_member) {
            problems.extend(membership_problem(m, pod));
        }
        let ports = members.as_ref().map(|m| m.ports);
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let [admin_listen, mesh_listen, local_listen, haproxy_addr] = [
            (
                "admin-listen",
                ENV_ADMIN_LISTEN,
                &args.admin_listen,
                any,
                ports.map(|p| p.admin),
            ),
            (
                "mesh-listen",
                ENV_MESH_LISTEN,
                &args.mesh_listen,
                any,
                ports.map(|p| p.mesh),
            ),
            (
                "local-listen",
                ENV_LOCAL_LISTEN,
                &args.local_listen,
                lo,
                ports.map(|p| p.sidecar),
            ),
            (
                "haproxy-addr",
                ENV_HAPROXY_ADDR,
                &args.haproxy_addr,
                lo,
                ports.map(|p| p.haproxy),
            ),
        ]
        .map(|(flag, env, given, ip, port)| address(&mut problems, flag, env, given, ip, port));
        for (flag, env, addr) in [
            ("local-listen", ENV_LOCAL_LISTEN, local_listen),
            ("haproxy-addr", ENV_HAPROXY_ADDR, haproxy_addr),
        ] {
            if let Some(a) = addr.filter(|a| !a.ip().is_loopback()) {
                problems.push(format!(
                    "{}: {a} is not a loopback address: the link between HAProxy and its sidecar \
                     is plain text and unauthenticated, so it must stay on 127.0.0.1",
                    setting(flag, env)
                ));
            }
        }
        let max_entries = match args.max_entries_per_table.trim().parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                problems.push(format!(
                    "{}: '{}' is not a number of entries above 0",
                    setting("max-entries-per-table", ENV_MAX_ENTRIES),
                    args.max_entries_per_table
                ));
                None
            }
        };
        let log_format = match args.log_format.trim() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            other => {
                problems.push(format!(
                    "{}: '{other}' is not a log format: use text or json",
                    setting("log-format", ENV_LOG_FORMAT)
                ));
                None
            }
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&args.log_level) {
            problems.push(format!(
                "{}: '{}' is not a log level or filter (e.g. info, debug, \
                 haproxy_peers_sidecar=debug,info): {e}",
                setting("log-level", ENV_LOG_LEVEL),
                args.log_level
            ));
        }
        match (
            pod_name,
            members,
            admin_listen,
            mesh_listen,
            local_listen,
            haproxy_addr,
            max_entries,
            log_format,
        ) {
            (
                Some(pod_name),
                Some(members),
                Some(admin_listen),
                Some(mesh_listen),
                Some(local_listen),
                Some(haproxy_addr),
                Some(max_entries_per_table),
                Some(log_format),
            ) if problems.is_empty() => Ok(Config {
                pod_name,
                config_dir: args.config_dir.clone(),
                tls_dir: args.tls_dir.clone(),
                members,
                admin_listen,
                mesh_listen,
                local_listen,
                haproxy_addr,
                max_entries_per_table,
                log_format,
                log_level: args.log_level.clone(),
            }),
            _ => Err(ConfigError { problems }),
        }
    }

    pub fn members_path(&self) -> PathBuf {
        members_path(&self.config_dir)
    }

    pub fn peers_cfg_path(&self) -> PathBuf {
        self.config_dir.join(PEERS_CFG)
    }

    /// How long a starting sidecar waits for a full lesson from a member.
    pub fn resync_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.members.resync_timeout_seconds))
    }

    /// The effective settings, one per line, for `check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let m = &self.members;
        let names: Vec<&str> = m.members.iter().map(|x| x.name.as_str()).collect();
        let address = m.member(&self.pod_name).map_or("?", |x| x.address.as_str());
        let tls = if m.tls {
            format!("mutual TLS from {}", self.tls_dir.display())
        } else {
            "plain text (members.yaml tls: false)".to_string()
        };
        let policy = |p: Policy| match p {
            Policy::Replicate => "replicate",
            Policy::Ignore => "ignore",
        };
        let mut tables = format!("default {}", policy(m.default_policy));
        for t in &m.tables {
            let _ = write!(tables, ", {} {}", t.name, policy(t.policy));
        }
        let format = match self.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        format!(
            "pod: {} ({address})\n\
             group: {}/{} (generation {}), peers section {}\n\
             members: {} ({})\n\
             mesh: {} listening on {}\n\
             haproxy link: sidecar listens on {}, HAProxy's peers listener {}\n\
             admin: {}\n\
             config: {}\n\
             resync timeout: {}s\n\
             max entries per table: {}\n\
             tables: {tables}\n\
             log: {format}, {}\n",
            self.pod_name,
            m.namespace,
            m.group,
            m.generation,
            m.peers_section,
            names.len(),
            names.join(", "),
            tls,
            self.mesh_listen,
            self.local_listen,
            self.haproxy_addr,
            self.admin_listen,
            self.members_path().display(),
            m.resync_timeout_seconds,
            self.max_entries_per_table,
            self.log_level,
        )
    }
}

/// The given address, checked, or `ip` with the port from `members.yaml`. The example in the
/// message shows the kind of address the setting wants.
fn address(
    problems: &mut Vec<String>,
    flag: &str,
    env: &str,
    given: &Option<String>,
    ip: IpAddr,
    default_port: Option<u16>,
) -> Option<SocketAddr> {
    match given {
        Some(text) => match text.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                let example = SocketAddr::new(ip, default_port.unwrap_or(9090));
                problems.push(format!(
                    "{}: '{text}' is not an IP address and port such as {example}",
                    setting(flag, env)
                ));
                None
            }
        },
        None => default_port.map(|port| SocketAddr::new(ip, port)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBERS: &str = "version: 1
group: edge
namespace: web
generation: 3
peersSection: edge
tls: true
ports:
  mesh: 10000
  haproxy: 10001
  sidecar: 10002
  admin: 9090
resyncTimeoutSeconds: 30
tables:
- name: /scratch
  policy: ignore
defaultPolicy: replicate
members:
- name: edge-0
  address: edge-0.edge-peers.web.svc
- name: edge-1
  address: edge-1.edge-peers.web.svc
- name: edge-2
  address: edge-2.edge-peers.web.svc
";

    fn dir_with(members: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("members.yaml"), members).unwrap();
        dir
    }

    fn args(dir: &Path, pod: Option<&str>) -> RunArgs {
        RunArgs {
            pod_name: pod.map(str::to_string),
            config_dir: dir.to_path_buf(),
            tls_dir: PathBuf::from(DEFAULT_TLS_DIR),
            max_entries_per_table: "1000000".into(),
            log_format: "text".into(),
            log_level: "info".into(),
            ..RunArgs::default()
        }
    }

    #[test]
    fn defaults_come_from_members_yaml() {
        let dir = dir_with(MEMBERS);
        let c = Config::from_args(&args(dir.path(), Some("edge-1"))).unwrap();
        assert_eq!(c.pod_name, "edge-1");
        assert_eq!(c.admin_listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(c.mesh_listen, "0.0.0.0:10000".parse().unwrap());
        assert_eq!(c.local_listen, "127.0.0.1:10002".parse().unwrap());
        assert_eq!(c.haproxy_addr, "127.0.0.1:10001".parse().unwrap());
        assert_eq!(c.max_entries_per_table, 1_000_000);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.resync_timeout(), Duration::from_secs(30));
        assert_eq!(c.peers_cfg_path(), dir.path().join("peers.cfg"));
        let summary = c.summary();
        assert!(
            summary.starts_with("pod: edge-1 (edge-1.edge-peers.web.svc)\n"),
            "{summary}"
        );
        assert!(
            summary.contains("tables: default replicate, /scratch ignore\n"),
            "{summary}"
        );
    }

    #[test]
    fn flags_override_defaults() {
        let dir = dir_with(MEMBERS);
        let a = RunArgs {
            admin_listen: Some("127.0.0.1:19090".into()),
            mesh_listen: Some("[::]:11000".into()),
            local_listen: Some("127.0.0.2:12002".into()),
            haproxy_addr: Some("[::1]:12001".into()),
            max_entries_per_table: "5".into(),
            log_format: "json".into(),
            log_level: "haproxy_peers_sidecar=debug,info".into(),
            ..args(dir.path(), Some("edge-0"))
        };
        let c = Config::from_args(&a).unwrap();
        assert_eq!(c.admin_listen, "127.0.0.1:19090".parse().unwrap());
        assert_eq!(c.mesh_listen, "[::]:11000".parse().unwrap());
        assert_eq!(c.local_listen, "127.0.0.2:12002".parse().unwrap());
        assert_eq!(c.haproxy_addr, "[::1]:12001".parse().unwrap());
        assert_eq!(c.max_entries_per_table, 5);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn missing_pod_name() {
        let dir = dir_with(MEMBERS);
        let err = Config::from_args(&args(dir.path(), None)).unwrap_err();
        assert_eq!(
            err.problems,
            [
                "--pod-name (POD_NAME) is not set: set POD_NAME from the pod's name (downward API \
              fieldRef metadata.name) or pass --pod-name"
            ]
        );
        let err = Config::from_args(&args(dir.path(), Some("  "))).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].starts_with("--pod-name (POD_NAME) is not set"));
    }

    #[test]
    fn pod_not_a_member() {
        let dir = dir_with(MEMBERS);
        let err = Config::from_args(&args(dir.path(), Some("edge-7"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration (1 problem):\n  - pod 'edge-7' is not in members.yaml \
             (members: edge-0, edge-1, edge-2): is the pod selected by the PeerGroup's selector?"
        );
    }

    #[test]
    fn run_accepts_a_pod_not_yet_listed() {
        let dir = dir_with(MEMBERS);
        let c = Config::for_run(&args(dir.path(), Some("edge-7"))).unwrap();
        assert!(!c.is_member());
        assert_eq!(c.mesh_listen, "0.0.0.0:10000".parse().unwrap());
        let c = Config::for_run(&args(dir.path(), Some("edge-2"))).unwrap();
        assert!(c.is_member());
        let err = Config::for_run(&args(dir.path(), None)).unwrap_err();
        assert_eq!(err.problems.len(), 1);
    }

    #[test]
    fn unreadable_and_invalid_members_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::from_args(&args(dir.path(), Some("edge-0"))).unwrap_err();
        let path = dir.path().join("members.yaml");
        assert_eq!(
            err.problems,
            [format!(
                "cannot read {} (--config-dir (HAPROXY_PEERS_CONFIG_DIR)): No such file or \
                 directory (os error 2): mount the PeerGroup's ConfigMap <group>-peers at the \
                 config directory",
                path.display()
            )]
        );
        let dir = dir_with("version: 1\ngroup: [\n");
        let err = Config::from_args(&args(dir.path(), Some("edge-0"))).unwrap_err();
        let p = &err.problems[0];
        assert!(
            p.starts_with(&format!(
                "{}: members.yaml is not valid YAML for this format: ",
                dir.path().join("members.yaml").display()
            )),
            "{p}"
        );
        assert!(p.ends_with("(the operator writes this file into ConfigMap <group>-peers; do not edit it by hand)"), "{p}");
        let dir = dir_with(&MEMBERS.replace("version: 1", "version: 9"));
        let err = Config::from_args(&args(dir.path(), Some("edge-0"))).unwrap_err();
        assert!(err.problems[0].contains("format version 9"), "{err}");
    }

    #[test]
    fn every_problem_at_once() {
        let dir = dir_with(MEMBERS);
        let a = RunArgs {
            pod_name: Some("bad name".into()),
            admin_listen: Some("localhost".into()),
            local_listen: Some("10.0.0.5:10002".into()),
            max_entries_per_table: "0".into(),
            log_format: "yaml".into(),
            log_level: "verbose=maybe".into(),
            ..args(dir.path(), None)
        };
        let err = Config::from_args(&a).unwrap_err();
        assert_eq!(
            err.problems[..5],
            [
                "--pod-name (POD_NAME): 'bad name' is not a valid peer name (letters, digits, \
                 '-', '_', '.', ':')",
                "--admin-listen (HAPROXY_PEERS_ADMIN_LISTEN): 'localhost' is not an IP address \
                 and port such as 0.0.0.0:9090",
                "--local-listen (HAPROXY_PEERS_LOCAL_LISTEN): 10.0.0.5:10002 is not a loopback \
                 address: the link between HAProxy and its sidecar is plain text and \
                 unauthenticated, so it must stay on 127.0.0.1",
                "--max-entries-per-table (HAPROXY_PEERS_MAX_ENTRIES_PER_TABLE): '0' is not a \
                 number of entries above 0",
                "--log-format (HAPROXY_PEERS_LOG_FORMAT): 'yaml' is not a log format: use text \
                 or json",
            ]
        );
        assert_eq!(err.problems.len(), 6, "{err}");
        assert!(
            err.problems[5].starts_with(
                "--log-level (HAPROXY_PEERS_LOG_LEVEL): 'verbose=maybe' is not a log level or \
                 filter"
            ),
            "{err}"
        );
        assert!(err
            .to_string()
            .starts_with("invalid configuration (6 problems):\n  - --pod-name"));
    }
}
