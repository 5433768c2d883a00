//! `make demo`: a 3-pod fleet on this machine with steady traffic and a live view.
//! See `haproxy_peers_e2e::demo`.

use std::process::ExitCode;

use clap::Parser;
use haproxy_peers_e2e::demo::{run, DemoArgs};

/// A haproxy-peers fleet on this machine: network namespaces as root, loopback ports otherwise.
/// Keys: k kills a random pod's HAProxy (-9) and starts it again, s does the same to a sidecar,
/// r replaces a pod (same name, new IP), q or Ctrl-C stops and removes everything.
#[derive(Debug, Parser)]
#[command(name = "demo")]
struct Cli {
    #[arg(long, default_value = "3")]
    pods: usize,
    /// Requests per second, round robin over the pods.
    #[arg(long, default_value = "20")]
    per_second: u64,
    /// Requests per client per 10 s before HAProxy answers 429, counted across the fleet.
    #[arg(long, default_value = "50")]
    rate_limit: u64,
    /// Kill a random pod's HAProxy (-9) after N seconds and start it again.
    #[arg(long, value_name = "N")]
    kill_after: Option<u64>,
    /// Stop after N seconds (for runs without a terminal).
    #[arg(long, value_name = "N")]
    duration: Option<u64>,
    /// Loopback ports even as root.
    #[arg(long)]
    loopback: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = DemoArgs {
        pods: cli.pods.max(1),
        per_second: cli.per_second.max(1),
        rate_limit: cli.rate_limit,
        kill_after: cli.kill_after,
        duration: cli.duration,
        loopback: cli.loopback,
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}
