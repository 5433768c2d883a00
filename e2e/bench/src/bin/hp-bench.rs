//! `hp-bench relay|memory|operator|latency|resync`: prints benchmark figures (see docs/benchmarks.md).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use haproxy_peers_bench::latency::{self, LatencyOptions, Phase, Route};
use haproxy_peers_bench::procfs::loadavg;
use haproxy_peers_bench::relay::{self, RelayOptions};
use haproxy_peers_bench::resync::{self, Resync, Teacher};
use haproxy_peers_bench::stats::median;
use haproxy_peers_bench::{memory, operator};

#[derive(Parser)]
#[command(about = "haproxy-peers benchmarks: they print figures, they never pass or fail")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Relay throughput, CPU and latency of two sidecars (fake HAProxies on both ends).
    Relay {
        /// The release `haproxy-peers-sidecar` binary.
        #[arg(long)]
        sidecar: PathBuf,
        /// Mutual TLS on the mesh.
        #[arg(long)]
        tls: bool,
        /// Seconds of each phase (saturation, then half rate).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        #[arg(long, default_value_t = 1 << 20)]
        keys: u64,
        #[arg(long, default_value_t = 1024)]
        batch: u64,
    },
    /// RSS per entry: HAProxy 2.6 vs the sidecar's replica.
    Memory {
        #[arg(long)]
        sidecar: PathBuf,
        #[arg(long, default_value_t = 1_000_000)]
        entries: u64,
    },
    /// Operator: identities, certificate plan, mint and render for many PeerGroups, in-process.
    Operator {
        #[arg(long, default_value_t = 100)]
        namespaces: usize,
        #[arg(long, default_value_t = 10)]
        groups_per_ns: usize,
        #[arg(long, default_value_t = 10)]
        pods: usize,
    },
    /// Propagation latency HAProxy A → HAProxy B: native peers vs A → sidecar → sidecar → B.
    Latency {
        #[arg(long)]
        sidecar: PathBuf,
        /// Measured updates per phase (low rate, then under load).
        #[arg(long, default_value_t = 10_000)]
        updates: usize,
        /// Milliseconds between one update's arrival and the next update (the low rate).
        #[arg(long, default_value_t = 2)]
        gap_ms: u64,
        /// Background `set table` writes per second on A during the loaded phase (sent in 1 ms
        /// ticks: whole thousands, at least 1 000).
        #[arg(long, default_value_t = 10_000)]
        load_rate: u64,
        /// Also measure the sidecar path with a plain-text mesh (mutual TLS is always measured).
        #[arg(long)]
        plain: bool,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Full resync of a restarted HAProxy: taught by a native peer vs by its own sidecar.
    Resync {
        #[arg(long)]
        sidecar: PathBuf,
        /// Entries the teacher holds (repeat for several sizes).
        #[arg(long, default_values_t = [100_000, 1_000_000])]
        entries: Vec<u64>,
        /// Restarts of the learner per teacher.
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
}

fn main() {
    if let Err(err) = run(Cli::parse()) {
        eprintln!("hp-bench: {err}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> haproxy_peers_bench::Result<()> {
    match cli.command {
        Command::Relay {
            sidecar,
            tls,
            seconds,
            runs,
            keys,
            batch,
        } => {
            let options = RelayOptions {
                binary: sidecar,
                tls,
                seconds,
                key_space: keys,
                batch,
            };
            let mut all = Vec::new();
            for run in 1..=runs {
                let f = relay::run(&options)?;
                println!(
                    "run {run} tls={tls}: sent {:.0}/s delivered {:.0}/s; CPU s per 1M handled: A {:.3} B {:.3}; \
                     paced {:.0}/s ({} delivered): latency p50 {} µs p99 {} µs p99.9 {} µs",
                    f.sent_per_s, f.delivered_per_s, f.cpu_s_per_million[0], f.cpu_s_per_million[1],
                    f.paced_rate, f.paced_delivered, f.latency_us[0], f.latency_us[1], f.latency_us[2]
                );
                all.push(f);
            }
            let med =
                |get: &dyn Fn(&relay::RelayFigures) -> f64| median(all.iter().map(get).collect());
            println!(
                "median tls={tls}: into A {:.0}/s, delivered {:.0}/s; CPU s per 1M handled: A {:.3} B {:.3} (per core: A {:.0}/s, B {:.0}/s); \
                 latency p50 {:.0} µs p99 {:.0} µs p99.9 {:.0} µs",
                med(&|f| f.sent_per_s),
                med(&|f| f.delivered_per_s),
                med(&|f| f.cpu_s_per_million[0]),
                med(&|f| f.cpu_s_per_million[1]),
                1e6 / med(&|f| f.cpu_s_per_million[0]),
                1e6 / med(&|f| f.cpu_s_per_million[1]),
                med(&|f| f.latency_us[0] as f64),
                med(&|f| f.latency_us[1] as f64),
                med(&|f| f.latency_us[2] as f64),
            );
        }
        Command::Memory { sidecar, entries } => {
            let hap = memory::haproxy(entries)?;
            println!(
                "haproxy 2.6: {} entries, RSS {} → {} bytes: {:.1} bytes/entry (filled in {:.1} s)",
                hap.entries,
                hap.before,
                hap.after,
                hap.bytes_per_entry(),
                hap.seconds
            );
            let [a, b] = memory::sidecars(&sidecar, entries)?;
            for (name, f) in [("sidecar A", a), ("sidecar B", b)] {
                println!(
                    "{name}: {} entries, RSS {} → {} bytes: {:.1} bytes/entry (relayed end to end in {:.1} s)",
                    f.entries, f.before, f.after, f.bytes_per_entry(), f.seconds
                );
            }
        }
        Command::Operator {
            namespaces,
            groups_per_ns,
            pods,
        } => {
            let f = operator::run(operator::Shape {
                namespaces,
                groups_per_ns,
                pods,
            })?;
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            println!(
                "operator: {} groups / {} pods: build inputs {:.0} ms, identities {:.0} ms, plan {:.0} ms, \
                 mint {:.0} ms ({} leaves), render {:.0} ms ({} groups with objects); peak RSS {:.1} MiB",
                f.groups, f.pods, ms(f.build), ms(f.identities), ms(f.plan), ms(f.mint),
                f.leaves_minted, ms(f.render), f.objects_rendered, f.peak_rss as f64 / 1048576.0
            );
        }
        Command::Latency {
            sidecar,
            updates,
            gap_ms,
            load_rate,
            plain,
            runs,
        } => {
            let options = LatencyOptions {
                sidecar,
                updates,
                gap: std::time::Duration::from_millis(gap_ms),
                load_rate,
                plain,
            };
            let mut all: Vec<Vec<latency::RouteFigures>> = Vec::new();
            for run in 1..=runs {
                let load_before = loadavg()?;
                let figures = latency::run(&options)?;
                println!("run {run}: load average {load_before} → {}", loadavg()?);
                for f in &figures {
                    println!("  {}", phase_line(f.route.label(), "low rate", &f.idle));
                    println!("  {}", phase_line(f.route.label(), "loaded", &f.loaded));
                }
                all.push(figures);
            }
            let routes: Vec<Route> = all
                .first()
                .map(|r| r.iter().map(|f| f.route).collect())
                .unwrap_or_default();
            let medians = |route: Route, loaded: bool| {
                let phases: Vec<Phase> = all
                    .iter()
                    .flatten()
                    .filter(|f| f.route == route)
                    .map(|f| if loaded { f.loaded } else { f.idle })
                    .collect();
                latency::median_phase(&phases)
            };
            for loaded in [false, true] {
                let phase = if loaded { "loaded" } else { "low rate" };
                let native = medians(Route::Native, loaded);
                println!("median {}", phase_line("native", phase, &native));
                for route in routes.iter().filter(|r| **r != Route::Native) {
                    let ours = medians(*route, loaded);
                    let (ratio, per_hop) = latency::against_native(&native, &ours);
                    println!("median {}", phase_line(route.label(), phase, &ours));
                    println!(
                        "  {} / native ({phase}): ratio p50 {:.2} p99 {:.2} p99.9 {:.2}; \
                         added per sidecar hop p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs",
                        route.label(),
                        ratio[0],
                        ratio[1],
                        ratio[2],
                        per_hop[0],
                        per_hop[1],
                        per_hop[2]
                    );
                }
            }
        }
        Command::Resync {
            sidecar,
            entries,
            runs,
        } => {
            for n in entries {
                let load_before = loadavg()?;
                let native = resync::run(Teacher::Native, &sidecar, n, runs)?;
                print_resync(&native);
                let ours = resync::run(Teacher::Sidecar, &sidecar, n, runs)?;
                print_resync(&ours);
                let (tn, to) = (median_complete(&native), median_complete(&ours));
                println!(
                    "{n} entries: median resync native {tn:.3} s, sidecar {to:.3} s; \
                     sidecar / native {:.2}; load average {load_before} → {}",
                    to / tn,
                    loadavg()?
                );
            }
        }
    }
    Ok(())
}

fn phase_line(route: &str, phase: &str, p: &Phase) -> String {
    let load = if p.load_per_s > 0.0 {
        format!(", load {:.0} writes/s on A", p.load_per_s)
    } else {
        String::new()
    };
    format!(
        "{route} {phase}: p50 {:.1} µs p99 {:.1} µs p99.9 {:.1} µs ({} updates{load}; \
         one query on B p50 {:.1} µs p99 {:.1} µs, {:.1} queries per update)",
        p.latency_us[0],
        p.latency_us[1],
        p.latency_us[2],
        p.samples,
        p.query_us[0],
        p.query_us[1],
        p.polls_per_update
    )
}

fn median_complete(r: &Resync) -> f64 {
    median(
        r.restarts
            .iter()
            .map(|x| x.complete.as_secs_f64())
            .collect(),
    )
}

fn print_resync(r: &Resync) {
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "{:?} teacher, {} entries (first lesson after {:.1} s); RSS teacher {:.1} MiB, learner {:.1} MiB",
        r.teacher,
        r.entries,
        r.fill_seconds,
        mib(r.teacher_rss),
        mib(r.learner_rss)
    );
    for (i, x) in r.restarts.iter().enumerate() {
        println!(
            "  restart {}: serving {:.0} ms, first entry {:.0} ms, complete {:.3} s; \
             CPU teacher {:.2} s, learner {:.2} s",
            i + 1,
            x.serving.as_secs_f64() * 1e3,
            x.first_entry.as_secs_f64() * 1e3,
            x.complete.as_secs_f64(),
            x.teacher_cpu,
            x.learner_cpu
        );
    }
}
