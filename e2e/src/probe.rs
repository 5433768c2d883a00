//! How the harness, in the root network namespace, sees inside a pod: it cannot reach pod
//! addresses (no route into the switch, on purpose), so it runs the `hp-e2e-probe` binary in
//! the pod's namespace with `ip netns exec` and reads the JSON it prints. The probe reads the
//! sidecar's admin API on the pod's own loopback (`/readyz`, `/peers`, `/tables`, as
//! `kubectl exec` would) or sends HTTP requests from the client namespace to a pod's HAProxy.
//!
//! HAProxy's runtime API needs none of this: its stats socket is a file, reachable from every
//! namespace.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use haproxy_peers_sidecar::admin::views::{
    PeerRole, PeersView, Readiness, SessionState, TablesView,
};
use haproxy_peers_testkit::{http_get, HttpResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::haproxy_cfg::{POD_HEADER, SERVER_HEADER};
use crate::ip::run;
use crate::netns::Host;

/// The sidecar's admin API at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminSnapshot {
    /// `/readyz`'s status code; `None` when the admin server did not answer.
    pub readyz_status: Option<u16>,
    pub readiness: Option<Readiness>,
    pub peers: Option<PeersView>,
    pub tables: Option<TablesView>,
    /// What could not be read, and why.
    pub errors: Vec<String>,
}

impl AdminSnapshot {
    pub fn is_ready(&self) -> bool {
        self.readyz_status == Some(200)
    }

    /// Whether the admin server answered at all.
    pub fn is_serving(&self) -> bool {
        self.readyz_status.is_some()
    }

    /// The members with an established session, by name.
    pub fn established_members(&self) -> Vec<String> {
        self.sessions(PeerRole::Member)
    }

    /// Whether the local HAProxy's session is established.
    pub fn haproxy_established(&self) -> bool {
        !self.sessions(PeerRole::Haproxy).is_empty()
    }

    fn sessions(&self, role: PeerRole) -> Vec<String> {
        self.peers
            .iter()
            .flat_map(|p| &p.peers)
            .filter(|p| p.role == role && p.state == SessionState::Established)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Entries in the sidecar's replica of `table`.
    pub fn replica_entries(&self, table: &str) -> Option<u64> {
        self.tables
            .as_ref()?
            .tables
            .iter()
            .find(|t| t.definition.name == table)
            .map(|t| t.entries)
    }

    /// Why the pod is not ready, one line per blocker.
    pub fn blockers(&self) -> Vec<String> {
        self.readiness
            .iter()
            .flat_map(|r| &r.blockers)
            .map(|b| b.message.clone())
            .collect()
    }
}

/// Reads `/readyz`, `/peers` and `/tables` (JSON) from the admin server at `addr`. Runs inside
/// the pod's namespace (in the probe binary).
pub fn read_admin(addr: SocketAddr) -> AdminSnapshot {
    let mut snap = AdminSnapshot::default();
    match http_get(addr, "/readyz?format=json", &[]) {
        Ok(r) => {
            snap.readyz_status = Some(r.status);
            snap.readiness = parse_body(&r, "/readyz", &mut snap.errors);
        }
        Err(e) => snap.errors.push(format!("/readyz: {e}")),
    }
    if snap.readyz_status.is_none() {
        return snap;
    }
    for path in ["/peers", "/tables"] {
        match http_get(addr, &format!("{path}?format=json"), &[]) {
            Ok(r) if r.status == 200 => {
                if path == "/peers" {
                    snap.peers = parse_body(&r, path, &mut snap.errors);
                } else {
                    snap.tables = parse_body(&r, path, &mut snap.errors);
                }
            }
            Ok(r) => snap.errors.push(format!("{path}: status {}", r.status)),
            Err(e) => snap.errors.push(format!("{path}: {e}")),
        }
    }
    snap
}

fn parse_body<T: DeserializeOwned>(
    r: &HttpResponse,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<T> {
    serde_json::from_slice(&r.body)
        .map_err(|e| {
            errors.push(format!(
                "{path}: {e} in {}",
                String::from_utf8_lossy(&r.body)
            ))
        })
        .ok()
}

/// The answers to a batch of HTTP requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTally {
    pub sent: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Answers by application server (`x-server`).
    pub servers: BTreeMap<String, u64>,
    /// Answers by the pod whose HAProxy answered (`x-pod`).
    pub pods: BTreeMap<String, u64>,
    /// Requests that got no HTTP answer.
    pub failed: u64,
    pub last_error: Option<String>,
}

impl HttpTally {
    pub fn record(&mut self, result: haproxy_peers_testkit::Result<HttpResponse>) {
        self.sent += 1;
        match result {
            Ok(r) => {
                *self.statuses.entry(r.status).or_default() += 1;
                if let Some(server) = r.header(SERVER_HEADER) {
                    *self.servers.entry(server.to_string()).or_default() += 1;
                }
                if let Some(pod) = r.header(POD_HEADER) {
                    *self.pods.entry(pod.to_string()).or_default() += 1;
                }
            }
            Err(e) => {
                self.failed += 1;
                self.last_error = Some(e.to_string());
            }
        }
    }

    pub fn merge(&mut self, other: &HttpTally) {
        self.sent += other.sent;
        self.failed += other.failed;
        for (k, v) in &other.statuses {
            *self.statuses.entry(*k).or_default() += v;
        }
        for (k, v) in &other.servers {
            *self.servers.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.pods {
            *self.pods.entry(k.clone()).or_default() += v;
        }
        if other.last_error.is_some() {
            self.last_error.clone_from(&other.last_error);
        }
    }

    pub fn status(&self, code: u16) -> u64 {
        self.statuses.get(&code).copied().unwrap_or(0)
    }
}

/// Sends `count` `GET /` requests with `headers` to `target`, one connection each.
pub fn send_requests(target: SocketAddr, count: u64, headers: &[(String, String)]) -> HttpTally {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut tally = HttpTally::default();
    for _ in 0..count {
        tally.record(http_get(target, "/", &headers));
    }
    tally
}

/// Whether a TCP connection opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    pub connected: bool,
    pub error: Option<String>,
}

/// Opens and closes a TCP connection to `addr` within `timeout` (a cut link times out).
pub fn connect(addr: SocketAddr, timeout: std::time::Duration) -> Reach {
    match std::net::TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Reach {
            connected: true,
            error: None,
        },
        Err(e) => Reach {
            connected: false,
            error: Some(e.to_string()),
        },
    }
}

/// Runs the probe in `host`'s namespace with `args` and parses the JSON it prints.
pub fn run_probe<T: DeserializeOwned>(probe: &Path, host: &Host, args: &[String]) -> Result<T> {
    let fail = |detail: String| Error::Probe {
        netns: host.netns.clone(),
        detail,
    };
    let out = run(host.command(probe).args(args)).map_err(|e| fail(e.to_string()))?;
    serde_json::from_str(&out).map_err(|e| fail(format!("{e} in its output {out:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_statuses_servers_and_failures() {
        let ok = |status, server: &str| {
            Ok(HttpResponse {
                status,
                headers: vec![
                    (SERVER_HEADER.to_string(), server.to_string()),
                    (POD_HEADER.to_string(), "edge-1".to_string()),
                ],
                body: Vec::new(),
            })
        };
        let mut a = HttpTally::default();
        a.record(ok(200, "s1"));
        a.record(ok(200, "s2"));
        a.record(Err(haproxy_peers_testkit::Error::NotRunning));
        let mut b = HttpTally::default();
        b.record(ok(429, "s1"));
        b.merge(&a);
        assert_eq!(b.sent, 4);
        assert_eq!(b.status(200), 2);
        assert_eq!(b.status(429), 1);
        assert_eq!(b.failed, 1);
        assert_eq!(b.servers["s1"], 2);
        assert_eq!(b.pods["edge-1"], 3);
        assert!(b.last_error.is_some());
    }
}
