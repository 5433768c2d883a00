//! `hp-e2e-probe`: runs inside a pod's (or the client's) network namespace, started by the
//! harness with `ip netns exec`, and prints JSON on stdout.
//!
//! * `admin <addr>`: the sidecar's `/readyz`, `/peers` and `/tables` (`AdminSnapshot`).
//! * `connect <addr> --timeout-ms T`: whether a TCP connection opens (`Reach`).
//! * `http <addr> --count N --header 'name: value'…`: N requests (`HttpTally`).
//! * `traffic <host:port>… --per-second N --clients C --sessions S`: steady traffic until killed,
//!   one `HttpTally` line per second (the demo's load), half of it from one heavy client.
//! * `metrics <addr>`: the sidecar's `/metrics` text, as a JSON string.
//! * `tls-call <addr> --tls-dir D --name N --server-name S --callee C --caller K`: an intruder's
//!   call to a mesh port with the pair of `N` in `D`, claiming `K` (`CallOutcome`).
//! * `tls-serve <addr> --tls-dir D --name N`: an intruder's listener presenting the pair of `N`,
//!   one `ServeEvent` line per connection, until killed.
//! * `first-ready <admin addr> --stats SOCKET --table T…`: `/readyz` every few milliseconds
//!   until the first `200`, then `show table` of each table (`FirstReady`).
//! * `send <addr> --payload P [--tls-dir D --member M --server-name S]`: hostile bytes, optionally
//!   inside mutual TLS as member M, read until the far end ends the connection (`Sent`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use haproxy_peers_e2e::first_ready;
use haproxy_peers_e2e::haproxy_cfg::{CLIENT_HEADER, SESSION_HEADER};
use haproxy_peers_e2e::hostile::{self, Payload, TlsCaller};
use haproxy_peers_e2e::intruder::{self, REFUSAL_BOUND};
use haproxy_peers_e2e::probe::{connect, read_admin, send_requests, HttpTally};
use haproxy_peers_sidecar::tls::{TlsConfigs, TlsMaterial};
use haproxy_peers_testkit::http_get;

#[derive(Debug, Parser)]
#[command(about = "Reads and drives a pod from inside its network namespace")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read the sidecar admin API at ADDR.
    Admin { addr: SocketAddr },
    /// Open (and close) a TCP connection to ADDR within a timeout.
    Connect {
        addr: SocketAddr,
        #[arg(long, default_value = "1000")]
        timeout_ms: u64,
    },
    /// Send requests to ADDR.
    Http {
        addr: SocketAddr,
        #[arg(long, default_value = "1")]
        count: u64,
        /// `name: value`, repeatable.
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// Send steady traffic to every TARGET until killed.
    Traffic {
        /// `host:port`, resolved at every request.
        #[arg(required = true)]
        targets: Vec<String>,
        #[arg(long, default_value = "20")]
        per_second: u64,
        /// Distinct `x-client` values (rate-table keys); `client-0` sends half of the requests.
        #[arg(long, default_value = "5")]
        clients: u64,
        /// Distinct `x-session` values (sticky-table keys).
        #[arg(long, default_value = "8")]
        sessions: u64,
    },
    /// Read the sidecar's /metrics at ADDR.
    Metrics { addr: SocketAddr },
    /// Call a mesh port at ADDR over TLS with chosen credentials and hello.
    TlsCall {
        addr: SocketAddr,
        #[command(flatten)]
        held: Held,
        /// The name the server's certificate is checked against.
        #[arg(long)]
        server_name: String,
        /// Line 2 of the hello: the peer called.
        #[arg(long)]
        callee: String,
        /// Line 3 of the hello: the peer name claimed.
        #[arg(long)]
        caller: String,
    },
    /// Listen on ADDR and answer every connection with TLS presenting chosen credentials.
    TlsServe {
        addr: SocketAddr,
        #[command(flatten)]
        held: Held,
    },
    /// Watch the sidecar admin API at ADMIN until the first `/readyz` 200, then read tables.
    FirstReady {
        admin: SocketAddr,
        /// The pod's HAProxy stats socket.
        #[arg(long)]
        stats: PathBuf,
        /// A table to read at the first 200, repeatable.
        #[arg(long = "table")]
        tables: Vec<String>,
        #[arg(long, default_value = "60000")]
        timeout_ms: u64,
    },
    /// Send hostile bytes to ADDR and read until the far end ends the connection.
    Send {
        addr: SocketAddr,
        #[arg(long, value_enum)]
        payload: Payload,
        /// The peer name a hello addresses (the callee pod).
        #[arg(long, default_value = "edge-0")]
        callee: String,
        /// Open mutual TLS first with member MEMBER's certificate from this Secret volume.
        #[arg(long, requires_all = ["member", "server_name"])]
        tls_dir: Option<PathBuf>,
        #[arg(long)]
        member: Option<String>,
        /// The name the callee's certificate must hold.
        #[arg(long)]
        server_name: Option<String>,
        /// Give up (and report it) if the far end keeps the connection this long.
        #[arg(long, default_value = "30000")]
        bound_ms: u64,
    },
}

/// A pair in the Secret's layout: `<dir>/ca.crt`, `<dir>/<name>.crt`, `<dir>/<name>.key`.
#[derive(Debug, clap::Args)]
struct Held {
    #[arg(long)]
    tls_dir: std::path::PathBuf,
    #[arg(long)]
    name: String,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Admin { addr } => print(&read_admin(addr)),
        Command::Connect { addr, timeout_ms } => {
            print(&connect(addr, Duration::from_millis(timeout_ms)))
        }
        Command::Http {
            addr,
            count,
            headers,
        } => {
            let mut parsed = Vec::new();
            for h in &headers {
                let Some((name, value)) = h.split_once(':') else {
                    eprintln!("hp-e2e-probe: --header {h:?} is not `name: value`");
                    return ExitCode::from(2);
                };
                parsed.push((name.trim().to_string(), value.trim().to_string()));
            }
            print(&send_requests(addr, count, &parsed))
        }
        Command::Traffic {
            targets,
            per_second,
            clients,
            sessions,
        } => traffic(targets, per_second.max(1), clients.max(1), sessions.max(1)),
        Command::Metrics { addr } => match http_get(addr, "/metrics", &[]) {
            Ok(r) if r.status == 200 => print(&String::from_utf8_lossy(&r.body)),
            Ok(r) => fail(&format!("/metrics answered {}", r.status)),
            Err(e) => fail(&format!("/metrics: {e}")),
        },
        Command::TlsCall {
            addr,
            held,
            server_name,
            callee,
            caller,
        } => {
            let configs = match intruder::load_configs(&held.tls_dir, &held.name) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            let hello = match intruder::hello(&callee, &caller) {
                Ok(h) => h,
                Err(e) => return fail(&e),
            };
            print(&intruder::call(
                addr,
                &configs,
                &server_name,
                &hello,
                REFUSAL_BOUND,
            ))
        }
        Command::TlsServe { addr, held } => {
            let configs = match intruder::load_configs(&held.tls_dir, &held.name) {
                Ok(c) => c,
                Err(e) => return fail(&e),
            };
            match intruder::serve(addr, &configs, REFUSAL_BOUND, |event| {
                print(event);
            }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("listen on {addr}: {e}")),
            }
        }
        Command::FirstReady {
            admin,
            stats,
            tables,
            timeout_ms,
        } => print(&first_ready::watch(
            admin,
            &stats,
            &tables,
            Duration::from_millis(timeout_ms),
        )),
        Command::Send {
            addr,
            payload,
            callee,
            tls_dir,
            member,
            server_name,
            bound_ms,
        } => {
            let tls = match (tls_dir, member, server_name) {
                (Some(dir), Some(member), Some(server_name)) => {
                    match TlsMaterial::load(&dir, &member).and_then(|m| TlsConfigs::build(&m)) {
                        Ok(configs) => Some(TlsCaller {
                            configs,
                            server_name,
                        }),
                        Err(e) => {
                            eprintln!(
                                "hp-e2e-probe: {member}'s TLS material in {}: {e}",
                                dir.display()
                            );
                            return ExitCode::from(2);
                        }
                    }
                }
                _ => None,
            };
            send(addr, tls, payload, &callee, Duration::from_millis(bound_ms))
        }
    }
}

fn fail(why: &str) -> ExitCode {
    eprintln!("hp-e2e-probe: {why}");
    ExitCode::FAILURE
}

fn send(
    addr: SocketAddr,
    tls: Option<TlsCaller>,
    payload: Payload,
    callee: &str,
    bound: Duration,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hp-e2e-probe: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bytes = payload.bytes(callee);
    let sent = runtime.block_on(hostile::send(
        addr,
        tls.as_ref(),
        &bytes,
        payload.pace(),
        bound,
    ));
    print(&sent)
}

fn print<T: serde::Serialize>(value: &T) -> ExitCode {
    match serde_json::to_string(value) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hp-e2e-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Request `k`'s client: every other request is `client-0`'s (the heavy hitter a rate limit
/// is for), the rest spread over the others.
fn client(k: u64, clients: u64) -> u64 {
    if clients < 2 || k.is_multiple_of(2) {
        0
    } else {
        1 + (k / 2) % (clients - 1)
    }
}

/// One thread per target, so that a target that does not answer (a pod being replaced) does
/// not slow the others; each prints its own tally every second.
fn traffic(targets: Vec<String>, per_second: u64, clients: u64, sessions: u64) -> ExitCode {
    let count = u64::try_from(targets.len()).unwrap_or(1).max(1);
    let rate = (per_second / count).max(1);
    let threads: Vec<_> = targets
        .into_iter()
        .zip(0..)
        .map(|(target, index)| {
            std::thread::spawn(move || loop {
                target_second(&target, index, count, rate, clients, sessions);
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    ExitCode::FAILURE
}

/// One second of traffic to `target`, resolved at every request (a replaced pod's name points
/// to its new address as soon as the hosts file says so).
fn target_second(target: &str, index: u64, count: u64, rate: u64, clients: u64, sessions: u64) {
    thread_local! {
        static K: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let second = Instant::now();
    let gap = Duration::from_secs(1) / u32::try_from(rate).unwrap_or(u32::MAX);
    let mut tally = HttpTally::default();
    for _ in 0..rate {
        let k = K.with(|c| {
            let k = c.get();
            c.set(k + 1);
            k
        });
        let headers = [
            (
                CLIENT_HEADER.to_string(),
                format!("client-{}", client(k, clients)),
            ),
            (
                SESSION_HEADER.to_string(),
                format!("session-{}", (k * count + index) % sessions),
            ),
        ];
        match resolve(target) {
            Ok(addr) => tally.merge(&send_requests(addr, 1, &headers)),
            Err(e) => tally.record(Err(e)),
        }
        std::thread::sleep(gap.saturating_sub(Duration::from_millis(1)));
    }
    print(&tally);
    std::thread::sleep(Duration::from_secs(1).saturating_sub(second.elapsed()));
}

/// `host:port` to an address, through the namespace's hosts file.
fn resolve(target: &str) -> haproxy_peers_testkit::Result<SocketAddr> {
    target
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| haproxy_peers_testkit::Error::Http {
            addr: target.to_string(),
            detail: "cannot resolve".into(),
        })
}
