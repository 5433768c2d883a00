//! An intruder on the mesh: a namespace of its own on the fleet's switch, holding certificates
//! of its choosing, that calls a sidecar's mesh port claiming any peer name, or listens where a
//! member dials and presents a certificate of its choosing.
//!
//! * Certificates ([`Credentials`]) come from the operator's own code: a member's pair from the
//!   group's Secret, a leaf minted with the group's CA key from the control plane's inventory
//!   (an expired one, one for a name outside the group), or a leaf of another CA.
//! * The TLS ([`call`], [`serve`]) is rustls with the sidecar's own config builder (TLS 1.3,
//!   client certificates required, the files' chain and dates not checked: a misconfigured or
//!   hostile pod presents whatever it holds). It runs in the `hp-e2e-probe` binary inside the
//!   intruder's namespace (`tls-call`, `tls-serve`), which prints what happened as JSON.
//! * [`Intruder`] is the harness's side: files, probe runs, the listener process.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use haproxy_peers_operator::certs::{
    self, CertAction, CertInventory, CertPlan, CertPolicy, LeafReason, Validity,
};
use haproxy_peers_sidecar::codec::Hello;
use haproxy_peers_sidecar::tls::{TlsConfigs, TlsMaterial, BUNDLE_FILE};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fleet::Fleet;
use crate::netns::Host;
use crate::probe::run_probe;
use crate::proc::{Proc, ProcSpec};
use crate::wait::poll;

/// Longest wait for a sidecar to end a connection it must refuse: above its own bounds (10 s
/// for TLS, 5 s for a hello).
pub const REFUSAL_BOUND: Duration = Duration::from_secs(15);
/// What is kept of the bytes a peer sends (a status line, a hello).
const RECEIVED_MAX: usize = 4096;

/// A certificate, its key and the trust bundle, for the peer name `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub name: String,
    pub bundle_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Credentials {
    /// Member `name`'s own pair and the bundle, from a Secret volume (a pod's `tls` directory).
    pub fn from_secret(dir: &Path, name: &str) -> Result<Credentials> {
        let read = |file: String| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).map_err(Error::io(format!("read {}", path.display())))
        };
        Ok(Credentials {
            name: name.to_string(),
            bundle_pem: read(BUNDLE_FILE.to_string())?,
            cert_pem: read(format!("{name}.crt"))?,
            key_pem: read(format!("{name}.key"))?,
        })
    }

    /// A leaf for `name` signed by the signing CA of `inventory` (the group's: its key is in
    /// the control plane's inventory), valid over `validity`, with the group's bundle: the
    /// operator's own minting, given a plan of one leaf.
    pub fn group_leaf(
        inventory: &CertInventory,
        group: &str,
        name: &str,
        dns_names: &[String],
        validity: Validity,
    ) -> Result<Credentials> {
        let plan = CertPlan {
            actions: vec![CertAction::IssueLeaf {
                member: name.to_string(),
                dns_names: dns_names.to_vec(),
                validity,
                reason: LeafReason::New,
            }],
            next_check: None,
            events: Vec::new(),
        };
        Credentials::minted(inventory, &plan, group, name, &inventory.ca_bundle_pem())
    }

    /// A leaf for `name`, valid at `now`, from a CA of its own (another group's operator
    /// would mint exactly this), trusting `bundle_pem` (so that it accepts the sidecars it
    /// calls).
    pub fn foreign(
        name: &str,
        dns_names: &[String],
        now: SystemTime,
        bundle_pem: &str,
    ) -> Result<Credentials> {
        let desired = [(name.to_string(), dns_names.to_vec())].into();
        let plan = certs::plan(
            &CertInventory::default(),
            &desired,
            &CertPolicy::default(),
            now,
        );
        Credentials::minted(
            &CertInventory::default(),
            &plan,
            "intruder",
            name,
            bundle_pem,
        )
    }

    /// Carries out `plan` on `inventory` and takes the leaf of `name` it minted.
    fn minted(
        inventory: &CertInventory,
        plan: &CertPlan,
        group: &str,
        name: &str,
        bundle_pem: &str,
    ) -> Result<Credentials> {
        let minted = certs::mint(inventory, plan, group).map_err(|e| {
            Error::Render(format!("minting an intruder's certificate for {name}: {e}"))
        })?;
        let leaf = minted
            .leaves
            .get(name)
            .ok_or_else(|| Error::Render(format!("minting a leaf for {name} gave none")))?;
        Ok(Credentials {
            name: name.to_string(),
            bundle_pem: bundle_pem.to_string(),
            cert_pem: leaf.cert_pem.clone(),
            key_pem: leaf.key_pem.clone(),
        })
    }

    /// Writes `ca.crt`, `<name>.crt` and `<name>.key` into `dir` (the Secret's layout).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
        for (file, text) in [
            (BUNDLE_FILE.to_string(), &self.bundle_pem),
            (format!("{}.crt", self.name), &self.cert_pem),
            (format!("{}.key", self.name), &self.key_pem),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(Error::io(format!("write {}", path.display())))?;
        }
        Ok(())
    }
}

/// A validity from `from` to `until`, in whole seconds as the operator mints them.
pub fn validity(from: SystemTime, until: SystemTime) -> Validity {
    Validity {
        not_before: whole_seconds(from),
        not_after: whole_seconds(until),
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The sidecar's TLS configs for the pair `name` in `dir`, built without checking dates or the
/// chain (as a hostile pod would use them).
pub fn load_configs(dir: &Path, name: &str) -> std::result::Result<TlsConfigs, String> {
    let material = TlsMaterial::load(dir, name).map_err(|e| e.to_string())?;
    TlsConfigs::build(&material).map_err(|e| e.to_string())
}

/// `HAProxyS 2.1\n<callee>\n<caller> <pid> 1\n`, as the codec encodes it.
pub fn hello(callee: &str, caller: &str) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    Hello::new(callee, caller, std::process::id())
        .encode(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// How a sidecar answered one call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallOutcome {
    /// Our end of the connection, as the sidecar logs it.
    pub local: String,
    /// The TLS handshake as the client saw it (under TLS 1.3 a refusal of our certificate
    /// shows on the first read instead, in `ended_by`).
    pub tls_error: Option<String>,
    /// What came back before the end (a status line at most).
    pub received: String,
    /// How the connection ended: `None` for an orderly close, else the error.
    pub ended_by: Option<String>,
    /// The sidecar kept the connection open beyond [`REFUSAL_BOUND`].
    pub timed_out: bool,
}

/// Connects to `to`, runs TLS with `configs` (checking the server as `server_name`), sends
/// `payload` and reads until the sidecar ends the connection or `bound` passes.
pub fn call(
    to: SocketAddr,
    configs: &TlsConfigs,
    server_name: &str,
    payload: &[u8],
    bound: Duration,
) -> CallOutcome {
    let mut out = CallOutcome::default();
    let mut tcp = match TcpStream::connect_timeout(&to, bound) {
        Ok(tcp) => tcp,
        Err(e) => {
            out.ended_by = Some(format!("connect: {e}"));
            return out;
        }
    };
    let _ = tcp.set_read_timeout(Some(bound));
    let _ = tcp.set_write_timeout(Some(bound));
    out.local = tcp.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let conn = ServerName::try_from(server_name.to_owned())
        .map_err(|e| e.to_string())
        .and_then(|name| {
            ClientConnection::new(configs.client.clone(), name).map_err(|e| e.to_string())
        });
    let mut conn = match conn {
        Ok(conn) => conn,
        Err(e) => {
            out.tls_error = Some(e.clone());
            out.ended_by = Some(e);
            return out;
        }
    };
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            out.timed_out = timed_out(&e);
            out.tls_error = Some(e.to_string());
            out.ended_by = Some(e.to_string());
            return out;
        }
    }
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    if let Err(e) = stream.write_all(payload).and_then(|()| stream.flush()) {
        // The sidecar may close before it read everything: a failed write is an end too.
        out.ended_by = Some(format!("write: {e}"));
        return out;
    }
    let (received, ended_by, late) = read_to_end(&mut stream, |_| false);
    out.received = received;
    out.ended_by = ended_by;
    out.timed_out = late;
    out
}

/// What a listener saw of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The caller's address.
    pub peer: String,
    /// Why the TLS handshake failed (the caller's alert when it refused our certificate).
    pub tls_error: Option<String>,
    /// The caller's hello, when the handshake went through.
    pub received: String,
}

/// One line of a listener's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ServeEvent {
    Listening { addr: String },
    Accepted(Accepted),
}

/// Listens on `addr` and answers every connection with a TLS handshake presenting `configs`'
/// certificate, then reads the caller's hello (answering nothing); reports each connection.
/// Runs until killed.
pub fn serve(
    addr: SocketAddr,
    configs: &TlsConfigs,
    bound: Duration,
    mut report: impl FnMut(&ServeEvent),
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    report(&ServeEvent::Listening {
        addr: listener.local_addr()?.to_string(),
    });
    for tcp in listener.incoming() {
        let Ok(tcp) = tcp else { continue };
        report(&ServeEvent::Accepted(answer(tcp, configs, bound)));
    }
    Ok(())
}

fn answer(mut tcp: TcpStream, configs: &TlsConfigs, bound: Duration) -> Accepted {
    let mut out = Accepted {
        peer: tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
        ..Accepted::default()
    };
    let _ = tcp.set_read_timeout(Some(bound));
    let _ = tcp.set_write_timeout(Some(bound));
    let mut conn = match ServerConnection::new(configs.server.clone()) {
        Ok(conn) => conn,
        Err(e) => {
            out.tls_error = Some(e.to_string());
            return out;
        }
    };
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            out.tls_error = Some(e.to_string());
            return out;
        }
    }
    let mut stream = rustls::Stream::new(&mut conn, &mut tcp);
    // A hello is three lines.
    let (received, _, _) = read_to_end(&mut stream, |r| {
        r.iter().filter(|b| **b == b'\n').count() >= 3
    });
    out.received = received;
    out
}

/// Reads until the end, an error or `enough`; returns the text, the error that ended it and
/// whether that was a timeout.
fn read_to_end(
    stream: &mut impl Read,
    enough: impl Fn(&[u8]) -> bool,
) -> (String, Option<String>, bool) {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let (ended_by, late) = loop {
        if enough(&received) {
            break (None, false);
        }
        match stream.read(&mut buf) {
            Ok(0) => break (None, false),
            Ok(n) => {
                let room = RECEIVED_MAX.saturating_sub(received.len());
                received.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) => break (Some(format!("read: {e}")), timed_out(&e)),
        }
    };
    (
        String::from_utf8_lossy(&received).into_owned(),
        ended_by,
        late,
    )
}

fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Credentials written out for the probe: a directory in the Secret's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub dir: PathBuf,
    pub name: String,
}

impl Held {
    /// The probe's arguments naming them.
    fn args(&self) -> Vec<String> {
        strings(&[
            "--tls-dir",
            &self.dir.to_string_lossy(),
            "--name",
            &self.name,
        ])
    }
}

/// The harness's side of an intruder.
#[derive(Debug)]
pub struct Intruder {
    host: Host,
    dir: PathBuf,
    probe: PathBuf,
    listener: Option<Proc>,
}

impl Intruder {
    /// Creates the intruder's namespace on the fleet's switch (gone with the fleet).
    pub fn join(fleet: &mut Fleet, name: &str) -> Result<Intruder> {
        let host = fleet.add_host(name)?;
        let dir = fleet.dir().join(name);
        std::fs::create_dir_all(&dir).map_err(Error::io(format!("create {}", dir.display())))?;
        Ok(Intruder {
            host,
            dir,
            probe: fleet.options().binaries.probe.clone(),
            listener: None,
        })
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.host.ip
    }

    /// Writes `credentials` into a directory of their own, `label`.
    pub fn hold(&self, label: &str, credentials: &Credentials) -> Result<Held> {
        let dir = self.dir.join(label);
        credentials.write(&dir)?;
        Ok(Held {
            dir,
            name: credentials.name.clone(),
        })
    }

    /// Calls `to` from the intruder's namespace with `held`, checks the server as
    /// `server_name`, and sends the hello of `caller` to `callee`.
    pub fn call(
        &self,
        to: SocketAddr,
        held: &Held,
        server_name: &str,
        callee: &str,
        caller: &str,
    ) -> Result<CallOutcome> {
        let mut args = strings(&["tls-call", &to.to_string()]);
        args.extend(held.args());
        args.extend(strings(&[
            "--server-name",
            server_name,
            "--callee",
            callee,
            "--caller",
            caller,
        ]));
        run_probe(&self.probe, &self.host, &args)
    }

    /// Starts a listener on the intruder's `port` presenting `held`; returns once it listens.
    pub fn listen(&mut self, port: u16, held: &Held) -> Result<()> {
        self.stop_listening()?;
        let addr = SocketAddr::from((self.host.ip, port));
        let mut args = strings(&["tls-serve", &addr.to_string()]);
        args.extend(held.args());
        let log = self.dir.join("listener.log");
        let _ = std::fs::remove_file(&log);
        let mut proc = Proc::new(ProcSpec {
            role: "intruder",
            pod: self.host.name.clone(),
            netns: self.host.netns.clone(),
            program: self.probe.clone(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            log,
            cwd: self.dir.clone(),
        });
        proc.start()?;
        let listener = self.listener.insert(proc);
        poll(
            &format!("the intruder to listen on {addr}"),
            Duration::from_secs(10),
            || {
                listener.check_alive()?;
                Ok(events(&listener.log())
                    .iter()
                    .any(|e| matches!(e, ServeEvent::Listening { .. }))
                    .then_some(()))
            },
        )
    }

    /// The connections the listener answered so far.
    pub fn accepted(&self) -> Vec<Accepted> {
        let log = self.listener.as_ref().map(Proc::log).unwrap_or_default();
        events(&log)
            .into_iter()
            .filter_map(|e| match e {
                ServeEvent::Accepted(a) => Some(a),
                ServeEvent::Listening { .. } => None,
            })
            .collect()
    }

    /// Kills the listener, if any.
    pub fn stop_listening(&mut self) -> Result<()> {
        match self.listener.as_mut() {
            Some(proc) => proc.kill(),
            None => Ok(()),
        }
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// The JSON lines of a listener's log (the harness's own lines are not JSON).
fn events(log: &str) -> Vec<ServeEvent> {
    log.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_lines_parse_and_harness_lines_are_skipped() {
        let accepted = ServeEvent::Accepted(Accepted {
            peer: "10.213.0.10:40000".into(),
            tls_error: Some("received fatal alert: BadCertificate".into()),
            received: String::new(),
        });
        let log = format!(
            "--- haproxy-peers-e2e: start 1: ip netns exec …\n{}\n{}\n",
            serde_json::to_string(&ServeEvent::Listening {
                addr: "10.213.0.20:10000".into()
            })
            .unwrap(),
            serde_json::to_string(&accepted).unwrap()
        );
        let events = events(&log);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], accepted);
    }

    #[test]
    fn minted_credentials_load_as_sidecar_configs_the_sidecar_would_refuse() {
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let names = |pod: &str| vec![pod.to_string(), format!("{pod}.edge-peers")];
        // The group's CA, as the operator's first reconcile mints it.
        let desired = [("edge-0".to_string(), names("edge-0"))].into();
        let plan = certs::plan(
            &CertInventory::default(),
            &desired,
            &CertPolicy::default(),
            now,
        );
        let group = certs::mint(&CertInventory::default(), &plan, "edge").unwrap();
        let load = |creds: &Credentials| {
            let dir = tempfile::tempdir().unwrap();
            creds.write(dir.path()).unwrap();
            let configs = load_configs(dir.path(), &creds.name).unwrap();
            let material = TlsMaterial::load(dir.path(), &creds.name).unwrap();
            (
                configs,
                material.validate(rustls::pki_types::UnixTime::now()),
            )
        };

        let stranger = Credentials::group_leaf(
            &group,
            "edge",
            "edge-7",
            &names("edge-7"),
            validity(now - day, now + day),
        )
        .unwrap();
        assert_eq!(stranger.bundle_pem, group.ca_bundle_pem());
        let (configs, valid) = load(&stranger);
        assert_eq!(configs.own.pod_name(), Some("edge-7"));
        assert!(valid.is_ok(), "{valid:?}");

        let expired = Credentials::group_leaf(
            &group,
            "edge",
            "edge-1",
            &names("edge-1"),
            validity(now - 40 * day, now - 10 * day),
        )
        .unwrap();
        let (configs, valid) = load(&expired);
        let now_s = i64::try_from(now.duration_since(UNIX_EPOCH).unwrap().as_secs()).unwrap();
        assert!(configs.not_after < now_s);
        assert!(valid.is_err());

        let foreign =
            Credentials::foreign("edge-1", &names("edge-1"), now, &group.ca_bundle_pem()).unwrap();
        let (configs, valid) = load(&foreign);
        assert_eq!(configs.own.pod_name(), Some("edge-1"));
        assert!(configs.own.issuer.contains("intruder"), "{:?}", configs.own);
        assert!(
            valid.is_err(),
            "a leaf of another CA must not chain to the group's"
        );
    }
}
