//! The rendered peers.cfg against the real HAProxy (Debian's `haproxy` package).
//!
//! `haproxy -c` must accept it for every member, and must not print
//! "Removing incomplete section": HAProxy's only sign that it dropped the peers section because
//! its local peer name matched no line, after which nothing replicates and nothing is logged.
//! The negative tests show the check catches exactly that. A last test starts HAProxy and
//! checks the names on the wire: HAProxy calls the sidecar by `SIDECAR_PEER_NAME` and presents
//! the pod name, and accepts the sidecar's call.

#[path = "golden/fixture.rs"]
mod fixture;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use haproxy_peers_operator::render::names::{PEERS_CFG_KEY, POD_NAME_ENV, SIDECAR_PEER_NAME};
use haproxy_peers_operator::render::render;
use tempfile::TempDir;

const DROPPED: &str = "Removing incomplete section";

fn haproxy() -> PathBuf {
    for candidate in ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v haproxy"])
        .output()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !path.is_empty() {
            return path.into();
        }
    }
    panic!("haproxy not found: install Debian's haproxy package (apt-get install haproxy)");
}

/// The fixture's peers.cfg, rendered with the given HAProxy and sidecar loopback ports.
fn rendered_peers_cfg(haproxy_port: u16, sidecar_port: u16) -> String {
    let mut pg = fixture::peer_group();
    pg.spec.ports.haproxy = haproxy_port;
    pg.spec.ports.sidecar = sidecar_port;
    let d = render(
        &pg,
        &fixture::pods(),
        &[],
        &fixture::certs(),
        fixture::now(),
    )
    .expect("render");
    let cm = d.objects.expect("objects").config_map;
    cm.data.expect("data")[PEERS_CFG_KEY].clone()
}

/// A user's haproxy.cfg: a rate-limit table replicated through the rendered section `edge`.
fn base_cfg(http_port: u16) -> String {
    format!(
        "global\n    log stderr format raw local0\n\n\
         defaults\n    mode http\n    timeout client 5s\n    timeout server 5s\n    timeout connect 5s\n\n\
         frontend fe\n    bind 127.0.0.1:{http_port}\n    http-request track-sc0 src table be_rate\n    \
         http-request deny if {{ sc_http_req_rate(0) gt 100 }}\n    default_backend be_rate\n\n\
         backend be_rate\n    stick-table type ip size 100k expire 30m store http_req_rate(10s) peers edge\n    \
         server app 127.0.0.1:9\n"
    )
}

/// A directory holding haproxy.cfg and peers.cfg.
struct Configs {
    dir: TempDir,
}

impl Configs {
    fn new(base: &str, peers: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("haproxy.cfg"), base).expect("write haproxy.cfg");
        std::fs::write(dir.path().join("peers.cfg"), peers).expect("write peers.cfg");
        Self { dir }
    }

    fn rendered() -> Self {
        Self::new(&base_cfg(18080), &rendered_peers_cfg(10001, 10002))
    }

    /// `haproxy -f haproxy.cfg -f peers.cfg`, as the pod runs it, plus `extra` arguments.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        for f in ["haproxy.cfg", "peers.cfg"] {
            args.push("-f".into());
            args.push(self.dir.path().join(f).display().to_string());
        }
        args
    }

    /// `haproxy -c` with the environment of a pod: only `POD_NAME` (if given) and, if given,
    /// a hostname of its own (a UTS namespace, as each pod has).
    fn check(&self, pod_name: Option<&str>, hostname: Option<&str>, extra: &[&str]) -> Output {
        let mut args = vec!["-c".to_string()];
        args.extend(self.args(extra));
        let mut cmd = match hostname {
            None => {
                let mut c = Command::new(haproxy());
                c.args(&args);
                c
            }
            Some(h) => {
                let mut c = Command::new("unshare");
                c.args([
                    "--uts",
                    "--",
                    "sh",
                    "-c",
                    "hostname \"$1\" && shift && exec \"$@\"",
                    "sh",
                    h,
                ])
                .arg(haproxy())
                .args(&args);
                c
            }
        };
        cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        if let Some(p) = pod_name {
            cmd.env(POD_NAME_ENV, p);
        }
        let out = cmd
            .output()
            .expect("run haproxy -c (and unshare, which needs root, for a hostname)");
        if hostname.is_some() {
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(
                !text.contains("unshare:"),
                "cannot give HAProxy its own hostname (run as root): {text}"
            );
        }
        out
    }
}

/// Why a `haproxy -c` result would not replicate: refused, dropped section, or any warning.
fn problems(out: &Output) -> Vec<String> {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut problems: Vec<String> = text
        .lines()
        .filter(|l| l.contains("[WARNING]") || l.contains("[ALERT]") || l.contains(DROPPED))
        .map(str::to_string)
        .collect();
    if !out.status.success() || !text.contains("Configuration file is valid") {
        problems.push(format!("haproxy -c failed ({}):\n{text}", out.status));
    }
    problems
}

fn assert_replicates(out: &Output, who: &str) {
    let p = problems(out);
    assert!(
        p.is_empty(),
        "{who}: HAProxy would not replicate with the rendered peers.cfg:\n{}",
        p.join("\n")
    );
}

#[test]
fn valid_for_every_member_without_warnings() {
    let cfg = Configs::rendered();
    for pod in ["edge-0", "edge-1", "edge-2"] {
        assert_replicates(&cfg.check(Some(pod), None, &[]), pod);
    }
}

#[test]
fn fqdn_hostname_does_not_disable_the_section() {
    // setHostnameAsFQDN: the hostname is no peer name, localpeer still names the pod.
    let cfg = Configs::rendered();
    let out = cfg.check(
        Some("edge-0"),
        Some("edge-0.edge-peers.web.svc.cluster.local"),
        &[],
    );
    assert_replicates(&out, "edge-0 with an FQDN hostname");
}

fn assert_dropped(out: &Output, name: &str) {
    let p = problems(out);
    let expected = format!("{DROPPED} 'peers edge' (no peer named '{name}')");
    assert!(
        p.iter().any(|l| l.contains(&expected)),
        "expected {expected:?} among {p:#?}"
    );
    assert!(
        out.status.success(),
        "HAProxy accepts the configuration: the drop is silent but for the warning"
    );
}

#[test]
fn the_check_catches_a_dropped_section() {
    let cfg = Configs::rendered();
    // A local peer name that is not the pod's: -L wins over localpeer.
    assert_dropped(
        &cfg.check(Some("edge-0"), None, &["-L", "edge-9"]),
        "edge-9",
    );

    // Without the localpeer line, HAProxy takes the hostname: an FQDN matches no server line.
    let without_localpeer: String = rendered_peers_cfg(10001, 10002)
        .lines()
        .filter(|l| !l.contains("localpeer"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = Configs::new(&base_cfg(18080), &without_localpeer);
    let fqdn = "edge-0.edge-peers.web.svc.cluster.local";
    assert_dropped(&cfg.check(Some("edge-0"), Some(fqdn), &[]), fqdn);
    // ... and is fine only while the hostname happens to be the pod name.
    assert_replicates(
        &cfg.check(Some("edge-0"), Some("edge-0"), &[]),
        "short hostname",
    );

    // A peers section of the user's before ours makes HAProxy ignore localpeer.
    let base = base_cfg(18080).replace(
        "defaults",
        "peers mine\n    peer other 127.0.0.1:12000\n\ndefaults",
    );
    let cfg = Configs::new(&base, &rendered_peers_cfg(10001, 10002));
    let out = cfg.check(
        Some("edge-0"),
        Some("edge-0.edge-peers.web.svc.cluster.local"),
        &[],
    );
    assert_dropped(&out, "edge-0.edge-peers.web.svc.cluster.local");
}

#[test]
fn missing_pod_name_is_refused_loudly() {
    let out = Configs::rendered().check(None, None, &[]);
    assert!(
        !out.status.success(),
        "HAProxy must refuse an empty local peer name"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("'localpeer' expects a name"), "{err}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Kills the HAProxy it holds when dropped, so a failing assertion leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_line(r: &mut impl BufRead) -> String {
    let mut line = String::new();
    r.read_line(&mut line).expect("read a hello line");
    line
}

#[test]
fn haproxy_and_sidecar_call_each_other_by_the_rendered_names() {
    let sidecar = TcpListener::bind("127.0.0.1:0").expect("bind the sidecar's port");
    let sidecar_port = sidecar.local_addr().expect("addr").port();
    let haproxy_port = free_port();
    let cfg = Configs::new(
        &base_cfg(free_port()),
        &rendered_peers_cfg(haproxy_port, sidecar_port),
    );
    let child = Command::new(haproxy())
        .arg("-db")
        .args(cfg.args(&[]))
        .env_clear()
        .env(POD_NAME_ENV, "edge-1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start haproxy");
    let mut running = Running(child);

    // HAProxy calls its remote peer, the sidecar, as soon as it starts.
    sidecar.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(20);
    let conn = loop {
        match sidecar.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                if let Ok(Some(status)) = running.0.try_wait() {
                    let mut err = String::new();
                    let _ = running
                        .0
                        .stderr
                        .take()
                        .map(|mut s| s.read_to_string(&mut err));
                    panic!("haproxy exited ({status}) before calling the sidecar:\n{err}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("HAProxy did not call the sidecar on 127.0.0.1:{sidecar_port}: {e}"),
        }
    };
    conn.set_nonblocking(false).expect("blocking");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut hello = BufReader::new(conn);
    assert_eq!(read_line(&mut hello), "HAProxyS 2.1\n");
    assert_eq!(
        read_line(&mut hello),
        format!("{SIDECAR_PEER_NAME}\n"),
        "the name HAProxy calls the sidecar by"
    );
    let caller = read_line(&mut hello);
    assert!(
        caller.starts_with("edge-1 "),
        "HAProxy must present the pod name, got {caller:?}"
    );

    // The sidecar calls HAProxy: it must address it by the pod name and be known by its own.
    let mut call = loop {
        match TcpStream::connect(("127.0.0.1", haproxy_port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("HAProxy does not listen on 127.0.0.1:{haproxy_port}: {e}"),
        }
    };
    call.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    call.write_all(format!("HAProxyS 2.1\nedge-1\n{SIDECAR_PEER_NAME} 1 1\n").as_bytes())
        .expect("send hello");
    assert_eq!(
        read_line(&mut BufReader::new(call)),
        "200\n",
        "HAProxy must accept the sidecar's hello"
    );
}
