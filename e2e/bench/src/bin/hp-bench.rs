//! `hp-bench relay|memory`: prints benchmark figures (see docs/benchmarks.md).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use haproxy_peers_bench::relay::{self, RelayOptions};
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
    }
    Ok(())
}
