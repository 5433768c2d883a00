//! Item 2: relay throughput and latency of two sidecars alone. A fake "HAProxy A" streams updates
//! into sidecar A, which relays them over the mesh to sidecar B, which relays them to the fake
//! "HAProxy B" (the sink). Figures: updates/s at saturation, CPU seconds of both sidecars per
//! million updates, and end-to-end latency at half the saturated rate.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use haproxy_peers_members::SIDECAR_PEER_NAME;
use haproxy_peers_testkit::cluster::pod_name;

use crate::pair::Pair;
use crate::peer::Peer;
use crate::procfs::cpu_seconds;
use crate::stats::quantile;

/// What to run.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub binary: PathBuf,
    pub tls: bool,
    pub seconds: u64,
    /// Distinct keys the load cycles through.
    pub key_space: u64,
    /// Updates per write at saturation.
    pub batch: u64,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct RelayFigures {
    pub sent_per_s: f64,
    pub delivered_per_s: f64,
    pub cpu_s_per_million: [f64; 2],
    pub paced_rate: f64,
    pub paced_delivered: u64,
    pub latency_us: [u64; 3],
}

pub struct Setup {
    pub pair: Pair,
    pub source: Peer,
    pub sink: Peer,
}

/// Starts the sidecars and both fake HAProxies and waits until an update crosses end to end.
pub fn setup(binary: &Path, tls: bool) -> crate::Result<Setup> {
    let pair = Pair::start(binary, tls)?;
    let epoch = Instant::now();
    let source = Peer::connect(pair.local[0], SIDECAR_PEER_NAME, &pod_name(0), epoch)?;
    let sink = Peer::connect(pair.local[1], SIDECAR_PEER_NAME, &pod_name(1), epoch)?;
    source.wait_ready(Duration::from_secs(15))?;
    sink.wait_ready(Duration::from_secs(15))?;
    let mut setup = Setup { pair, source, sink };
    let start = Instant::now();
    // The mesh session may come up after the local ones: resend until one arrives.
    while setup.sink.counters.updates.load(Ordering::Relaxed) == 0 {
        if start.elapsed() > Duration::from_secs(20) {
            return Err("no update crossed sidecar A → sidecar B within 20 s".into());
        }
        setup.source.send_batch(0, 1, 1)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(setup)
}

pub fn run(options: &RelayOptions) -> crate::Result<RelayFigures> {
    let mut s = setup(&options.binary, options.tls)?;
    let pids = s.pair.pids()?;
    let window = Duration::from_secs(options.seconds);

    // Saturation: write as fast as sidecar A takes it.
    let (sent0, got0) = (0u64, s.sink.counters.updates.load(Ordering::Relaxed));
    let cpu0 = [cpu_seconds(pids[0])?, cpu_seconds(pids[1])?];
    let start = Instant::now();
    let mut sent = sent0;
    while start.elapsed() < window {
        s.source
            .send_batch(sent, options.batch, options.key_space)?;
        sent += options.batch;
        if s.source.is_closed() || s.sink.is_closed() {
            return Err("a session closed during the saturation run".into());
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent_per_s = (sent - sent0) as f64 / elapsed;
    let got = s.sink.counters.updates.load(Ordering::Relaxed) - got0;
    let cpu1 = [cpu_seconds(pids[0])?, cpu_seconds(pids[1])?];
    let delivered_per_s = got as f64 / elapsed;
    // A handles every update written to it (TCP backpressure: at most the socket buffers are
    // still in flight); B handles what A relayed, which is fewer when a key changed again before
    // A sent it (the relay log keeps the latest change per entry).
    let handled = [sent - sent0, got];
    let per_million = |i: usize| (cpu1[i] - cpu0[i]) / (handled[i].max(1) as f64 / 1e6);
    // Let the backlog drain before the paced run.
    let drain = Instant::now();
    let mut last = u64::MAX;
    while drain.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(500));
        let now = s.sink.counters.updates.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
    }

    // Half of saturation, paced in 1 ms ticks.
    let paced_rate = delivered_per_s / 2.0;
    let per_tick = ((paced_rate / 1000.0).round() as u64).max(1);
    s.sink.record_latency(true);
    let got_before = s.sink.counters.updates.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut ticks = 0u64;
    while start.elapsed() < window {
        s.source.send_batch(sent, per_tick, options.key_space)?;
        sent += per_tick;
        ticks += 1;
        let next = Duration::from_millis(ticks);
        if let Some(wait) = next.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut samples = s.sink.record_latency(false);
    let paced_delivered = s.sink.counters.updates.load(Ordering::Relaxed) - got_before;
    samples.sort_unstable();
    Ok(RelayFigures {
        sent_per_s,
        delivered_per_s,
        cpu_s_per_million: [per_million(0), per_million(1)],
        paced_rate: per_tick as f64 * 1000.0,
        paced_delivered,
        latency_us: [
            quantile(&samples, 0.5),
            quantile(&samples, 0.99),
            quantile(&samples, 0.999),
        ],
    })
}
