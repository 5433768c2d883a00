//! Item 1: propagation latency of one update from HAProxy A to HAProxy B, native peers
//! (A ↔ B) against our path (A → sidecar A → sidecar B → B, wired as the operator wires it).
//!
//! One update = `set table st key <k> data.gpc0 <n>` on A's runtime API at t0; its arrival =
//! the end of the first `show table st key <k>` on B that shows `gpc0=<n>`, B being polled in a
//! tight loop. Both sides keep one interactive runtime connection open, so no query pays a
//! connect. The arrival is therefore known to within one query (the poll resolution, measured
//! and reported); the method is the same for both paths, so their difference is fair.
//!
//! Each route: first at a low rate (one update at a time, `gap` apart), then under a background
//! load of `set table` writes on A (other keys) at a stated rate, which travels the same path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use haproxy_peers_testkit::cluster::{Cluster, ClusterOptions};
use haproxy_peers_testkit::{free_addr, Haproxy, HaproxyOptions};

use crate::haproxy_cfg::{self, TABLE};
use crate::prompt::Prompt;
use crate::stats::{median, quantile};

/// Table size of both HAProxies (`2m` in HAProxy's units).
const SIZE: u64 = 2 << 20;
/// Updates sent and discarded before each route's figures.
const WARMUP: usize = 200;
/// An update not seen on B after this long stops the run.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(10);

/// What to run.
#[derive(Debug, Clone)]
pub struct LatencyOptions {
    pub sidecar: PathBuf,
    /// Measured updates per phase.
    pub updates: usize,
    /// Pause after each update has arrived (the low rate).
    pub gap: Duration,
    /// Background `set table` writes per second on A during the loaded phase.
    pub load_rate: u64,
    /// Also measure the sidecar path with a plain-text mesh.
    pub plain: bool,
}

/// The path an update takes from A to B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Native,
    Sidecars { tls: bool },
}

impl Route {
    pub fn label(self) -> &'static str {
        match self {
            Route::Native => "native",
            Route::Sidecars { tls: true } => "sidecars-tls",
            Route::Sidecars { tls: false } => "sidecars-plain",
        }
    }
}

/// Figures of one phase, in µs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phase {
    /// p50, p99, p99.9 of the propagation latency.
    pub latency_us: [f64; 3],
    /// p50, p99 of one query on B (the poll resolution).
    pub query_us: [f64; 2],
    /// Queries on B per update (how many polls an update waited for).
    pub polls_per_update: f64,
    pub samples: usize,
    /// Background writes per second on A that were achieved (0 for the low-rate phase).
    pub load_per_s: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct RouteFigures {
    pub route: Route,
    pub idle: Phase,
    pub loaded: Phase,
}

/// One run: every route, one after the other, on the same machine.
pub fn run(options: &LatencyOptions) -> crate::Result<Vec<RouteFigures>> {
    let mut routes = vec![Route::Native, Route::Sidecars { tls: true }];
    if options.plain {
        routes.push(Route::Sidecars { tls: false });
    }
    routes
        .into_iter()
        .map(|route| measure_route(route, options))
        .collect()
}

/// The processes of one route; they stop on drop.
enum Ends {
    Native(Box<[Haproxy; 2]>),
    Sidecars(Box<Cluster>),
}

impl Ends {
    fn start(route: Route, sidecar: &Path) -> crate::Result<Ends> {
        let err = |e: haproxy_peers_testkit::Error| e.to_string();
        match route {
            Route::Native => {
                let (a, b) = (free_addr().map_err(err)?, free_addr().map_err(err)?);
                let start = |local: &str, bind, remote: &str, addr| {
                    Haproxy::start(
                        HaproxyOptions::new(haproxy_cfg::native(
                            local,
                            bind,
                            &[(remote, addr)],
                            SIZE,
                        ))
                        .local_peer(local),
                    )
                    .map_err(err)
                };
                let ha = start("a", a, "b", b)?;
                let hb = start("b", b, "a", a)?;
                Ok(Ends::Native(Box::new([ha, hb])))
            }
            Route::Sidecars { tls } => {
                let options = ClusterOptions::new(sidecar, 2).tls(tls).log_level("warn");
                let cluster = Cluster::start(options, |_| haproxy_cfg::pod(SIZE)).map_err(err)?;
                cluster
                    .wait_ready(Duration::from_secs(60))
                    .map_err(|e| format!("{e}\n{}", cluster.logs()))?;
                Ok(Ends::Sidecars(Box::new(cluster)))
            }
        }
    }

    /// The stats sockets of A and B.
    fn sockets(&self) -> [PathBuf; 2] {
        match self {
            Ends::Native(h) => [h[0].stats_socket(), h[1].stats_socket()],
            Ends::Sidecars(c) => [
                c.node(0).haproxy.stats_socket(),
                c.node(1).haproxy.stats_socket(),
            ],
        }
    }
}

fn measure_route(route: Route, options: &LatencyOptions) -> crate::Result<RouteFigures> {
    let ends = Ends::start(route, &options.sidecar)?;
    let [socket_a, socket_b] = ends.sockets();
    let mut probe = Probe {
        a: Prompt::connect(&socket_a)?,
        b: Prompt::connect(&socket_b)?,
        seq: 0,
    };
    probe.first_crossing()?;
    probe.run(WARMUP, options.gap)?;
    let idle = probe.run(options.updates, options.gap)?.phase();
    let load = Load::start(&socket_a, options.load_rate);
    std::thread::sleep(Duration::from_secs(1));
    let loaded = probe.run(options.updates, options.gap);
    let load_per_s = load.stop()?;
    let mut loaded = loaded?.phase();
    loaded.load_per_s = load_per_s;
    drop(ends);
    Ok(RouteFigures {
        route,
        idle,
        loaded,
    })
}

/// The measuring client: one interactive connection to A (writes) and one to B (polls).
struct Probe {
    a: Prompt,
    b: Prompt,
    /// The last `gpc0` value written: every update writes a new one.
    seq: u64,
}

/// Raw samples of one phase, in ns.
#[derive(Default)]
struct Samples {
    latency: Vec<u64>,
    query: Vec<u64>,
}

impl Probe {
    /// Waits until an update crosses at all (sessions and lessons settle after start).
    fn first_crossing(&mut self) -> crate::Result<()> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            self.seq += 1;
            let key = probe_key(self.seq);
            self.a.command_ok(&set_gpc0(&key, self.seq))?;
            let sent = Instant::now();
            while sent.elapsed() < Duration::from_secs(1) {
                if self.b.gpc0(TABLE, &key)? == Some(self.seq) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Err("no update crossed from HAProxy A to HAProxy B within 60 s".into())
    }

    /// `count` updates, one at a time, `gap` apart.
    fn run(&mut self, count: usize, gap: Duration) -> crate::Result<Samples> {
        let mut samples = Samples {
            latency: Vec::with_capacity(count),
            query: Vec::with_capacity(count * 8),
        };
        for _ in 0..count {
            self.seq += 1;
            let key = probe_key(self.seq);
            let command = set_gpc0(&key, self.seq);
            let t0 = Instant::now();
            // A's answer is read after the arrival, so reading it does not delay the first poll.
            self.a.write(&command)?;
            loop {
                let q0 = Instant::now();
                let seen = self.b.gpc0(TABLE, &key)?;
                let q1 = Instant::now();
                samples.query.push(nanos(q1 - q0));
                if seen == Some(self.seq) {
                    samples.latency.push(nanos(q1 - t0));
                    break;
                }
                if q1 - t0 > ARRIVAL_TIMEOUT {
                    return Err(format!(
                        "`{command}` on A did not show on B within {ARRIVAL_TIMEOUT:?} (B shows {seen:?})"
                    ));
                }
            }
            self.a.read_ok(&command)?;
            std::thread::sleep(gap);
        }
        Ok(samples)
    }
}

impl Samples {
    fn phase(mut self) -> Phase {
        self.latency.sort_unstable();
        self.query.sort_unstable();
        let us = |sorted: &[u64], q: f64| quantile(sorted, q) as f64 / 1e3;
        Phase {
            latency_us: [
                us(&self.latency, 0.5),
                us(&self.latency, 0.99),
                us(&self.latency, 0.999),
            ],
            query_us: [us(&self.query, 0.5), us(&self.query, 0.99)],
            polls_per_update: self.query.len() as f64 / self.latency.len().max(1) as f64,
            samples: self.latency.len(),
            load_per_s: 0.0,
        }
    }
}

/// 4096 probe keys in 10.0.0.0/20: an update either creates an entry or changes one.
fn probe_key(seq: u64) -> String {
    format!("10.0.{}.{}", (seq >> 8) & 15, seq & 255)
}

fn set_gpc0(key: &str, value: u64) -> String {
    format!("set table {TABLE} key {key} data.gpc0 {value}")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Background writes on A: `set table` on keys of 172.16.0.0/16 (never a probe key), each with
/// a new value (so that every write is a change the sidecars relay), paced in 1 ms ticks of
/// `rate / 1000` commands on one line.
struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<crate::Result<f64>>,
}

impl Load {
    fn start(socket: &Path, rate: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let (socket, flag) = (socket.to_path_buf(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || load(&socket, rate, &flag));
        Load { stop, thread }
    }

    /// Stops the writer; the achieved rate in writes per second.
    fn stop(self) -> crate::Result<f64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| "the load writer panicked".to_string())?
    }
}

fn load(socket: &Path, rate: u64, stop: &AtomicBool) -> crate::Result<f64> {
    let mut cli = Prompt::connect(socket)?;
    let per_tick = (rate / 1000).max(1);
    let mut written = 0u64;
    let start = Instant::now();
    let mut ticks = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let line: Vec<String> = (0..per_tick)
            .map(|i| {
                let n = written + i;
                let key = format!("172.16.{}.{}", (n >> 8) & 255, n & 255);
                format!("set table {TABLE} key {key} data.gpc0 {n}")
            })
            .collect();
        let answer = cli.send(&line.join(";"), line.len())?;
        if !answer.trim().is_empty() {
            return Err(format!("HAProxy A refused a load write: {}", answer.trim()));
        }
        written += per_tick;
        ticks += 1;
        if let Some(wait) = Duration::from_millis(ticks).checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    Ok(written as f64 / start.elapsed().as_secs_f64())
}

/// Medians over runs of each figure of one route and phase.
pub fn median_phase(runs: &[Phase]) -> Phase {
    let med = |get: &dyn Fn(&Phase) -> f64| median(runs.iter().map(get).collect());
    Phase {
        latency_us: [
            med(&|p| p.latency_us[0]),
            med(&|p| p.latency_us[1]),
            med(&|p| p.latency_us[2]),
        ],
        query_us: [med(&|p| p.query_us[0]), med(&|p| p.query_us[1])],
        polls_per_update: med(&|p| p.polls_per_update),
        samples: runs.iter().map(|p| p.samples).sum(),
        load_per_s: med(&|p| p.load_per_s),
    }
}

/// Ours against native, percentile by percentile: the ratio, and the latency each sidecar
/// adds, `(ours - native) / 2` (an update crosses two sidecars). A difference of percentiles,
/// not a percentile of differences.
pub fn against_native(native: &Phase, ours: &Phase) -> ([f64; 3], [f64; 3]) {
    let mut ratio = [0.0; 3];
    let mut per_hop = [0.0; 3];
    for i in 0..3 {
        ratio[i] = ours.latency_us[i] / native.latency_us[i].max(f64::MIN_POSITIVE);
        per_hop[i] = (ours.latency_us[i] - native.latency_us[i]) / 2.0;
    }
    (ratio, per_hop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_and_load_keys_never_meet() {
        let probes: std::collections::HashSet<String> = (0..5000).map(probe_key).collect();
        assert_eq!(probes.len(), 4096);
        assert!(probes.iter().all(|k| k.starts_with("10.0.")));
        assert_eq!(probe_key(4096 + 257), "10.0.1.1");
    }

    #[test]
    fn added_latency_per_hop_is_half_the_difference() {
        let native = Phase {
            latency_us: [100.0, 400.0, 1000.0],
            ..Phase::default()
        };
        let ours = Phase {
            latency_us: [300.0, 600.0, 3000.0],
            ..Phase::default()
        };
        let (ratio, per_hop) = against_native(&native, &ours);
        assert_eq!(ratio, [3.0, 1.5, 3.0]);
        assert_eq!(per_hop, [100.0, 100.0, 1000.0]);
    }
}
