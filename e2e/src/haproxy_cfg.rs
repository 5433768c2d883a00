//! Each pod's own HAProxy configuration (what the chart's example puts in ConfigMap
//! `edge-haproxy`): a rate-limit table and a sticky-session table, both `peers <section>`, and
//! two stand-in application servers inside the same HAProxy. `peers.cfg` from the operator's
//! render is loaded after it (`-f haproxy.cfg -f peers.cfg`).

use std::path::{Path, PathBuf};

/// The traffic port, on every address of the pod.
pub const HTTP_PORT: u16 = 8080;
/// Rate limit per client: requests counted per `x-client` value.
pub const RATE_TABLE: &str = "be_rate";
/// Sticky sessions: the server chosen for each `x-session` value.
pub const STICKY_TABLE: &str = "be_app";
/// The request header that names the client (the rate table's key).
pub const CLIENT_HEADER: &str = "x-client";
/// The request header that names the session (the sticky table's key).
pub const SESSION_HEADER: &str = "x-session";
/// The response header naming the application server that answered (`s1` or `s2`).
pub const SERVER_HEADER: &str = "x-server";
/// The response header naming the pod whose HAProxy answered.
pub const POD_HEADER: &str = "x-pod";
/// Server names and ids of the sticky backend.
pub const SERVERS: [(&str, u16, u8); 2] = [("s1", 8081, 1), ("s2", 8082, 2)];
/// The stats socket and the master CLI, in the pod's run directory.
pub const STATS_SOCKET: &str = "admin.sock";
pub const MASTER_SOCKET: &str = "master.sock";

/// Where a pod's HAProxy listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binds {
    /// The traffic frontend's `bind` address (`:8080`: every address of the pod).
    pub http: String,
    /// The addresses of the two application servers, in the order of [`SERVERS`].
    pub servers: [String; 2],
    /// The stats socket; `None` when the caller adds its own (the testkit does).
    pub stats_socket: Option<PathBuf>,
}

impl Binds {
    /// A pod in its own network namespace: the standard ports, sockets in `run_dir`.
    pub fn pod(run_dir: &Path) -> Binds {
        Binds {
            http: format!(":{HTTP_PORT}"),
            servers: SERVERS.map(|(_, port, _)| format!("127.0.0.1:{port}")),
            stats_socket: Some(run_dir.join(STATS_SOCKET)),
        }
    }
}

/// The configuration of one pod's HAProxy. Requests beyond `rate_limit` per client in 10 s
/// are denied with 429, counted over the whole fleet.
pub fn haproxy_cfg(binds: &Binds, section: &str, rate_limit: u64) -> String {
    let mut servers = String::new();
    let mut apps = String::new();
    for ((name, _, id), addr) in SERVERS.iter().zip(&binds.servers) {
        servers.push_str(&format!("    server {name} {addr} id {id}\n"));
        apps.push_str(&format!(
            "\nfrontend app_{name}\n    bind {addr}\n    \
             http-request return status 200 content-type text/plain string \"{name}\" hdr \
             {SERVER_HEADER} {name}\n"
        ));
    }
    let global = match &binds.stats_socket {
        Some(path) => format!(
            "global\n    stats socket {} level admin\n    stats timeout 30s\n\n",
            path.display()
        ),
        None => String::new(),
    };
    format!(
        "\
{global}defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend fe_http
    bind {http}
    http-request track-sc0 req.hdr({CLIENT_HEADER}) table {RATE_TABLE} if {{ req.hdr({CLIENT_HEADER}) -m found }}
    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt {rate_limit} }}
    http-response set-header {POD_HEADER} \"${{POD_NAME}}\"
    default_backend {STICKY_TABLE}

# Rate-limit table: requests per client over 10 s, shared by every pod.
backend {RATE_TABLE}
    stick-table type string len 64 size 100k expire 10m store http_req_cnt,http_req_rate(10s),gpc0 peers {section}

# Sticky sessions: a session keeps its server on every pod.
backend {STICKY_TABLE}
    balance roundrobin
    stick-table type string len 64 size 100k expire 30m store server_id,server_key peers {section}
    stick on req.hdr({SESSION_HEADER})
{servers}{apps}",
        http = binds.http,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use haproxy_peers_testkit::haproxy_binary;
    use std::process::Command;

    /// The real HAProxy accepts it together with a peers section of the operator's shape.
    #[test]
    fn haproxy_accepts_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("haproxy.cfg");
        let peers = dir.path().join("peers.cfg");
        std::fs::write(&cfg, haproxy_cfg(&Binds::pod(dir.path()), "edge", 100)).unwrap();
        std::fs::write(
            &peers,
            haproxy_peers_testkit::cluster::render_peers_cfg("edge", 10001, 10002),
        )
        .unwrap();
        let out = Command::new(haproxy_binary().unwrap())
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .arg("-f")
            .arg(&peers)
            .env("POD_NAME", "edge-0")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(!text.contains("WARNING"), "{text}");
    }
}
