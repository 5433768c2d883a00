//! `haproxy-peers-sidecar`: the replicator, and the commands that inspect a running one.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use haproxy_peers_sidecar::cli::{self, PeersArgs, TablesArgs};
use haproxy_peers_sidecar::config::{Config, RunArgs};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "HAProxy peers replicator sidecar",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// `run` (the replicator itself: `runtime::run(config)`) is added with the runtime; until then
// the binary offers only the commands that work.
#[derive(Debug, Subcommand)]
enum Command {
    /// Check flags, environment and members.yaml as `run` would, and print the result.
    CheckConfig(RunArgs),
    /// Show every peer session of a running sidecar, like HAProxy's `show peers`.
    Peers(PeersArgs),
    /// Show a running sidecar's tables, one table, or one entry (`--key`).
    Tables(TablesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(args) => match Config::from_args(&args) {
            Ok(config) => {
                print!("{}", config.summary());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("haproxy-peers-sidecar: {e}");
                ExitCode::from(2)
            }
        },
        Command::Peers(args) => client(cli::peers(&args)),
        Command::Tables(args) => client(cli::tables(&args)),
    }
}

/// Runs one admin query on a small runtime and prints its answer.
fn client(query: impl std::future::Future<Output = Result<String, String>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("haproxy-peers-sidecar: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(query) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("haproxy-peers-sidecar: {e}");
            ExitCode::FAILURE
        }
    }
}
