//! `haproxy-peers-sidecar`: the replicator, and the commands that inspect a running one.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use haproxy_peers_sidecar::cli::{self, PeersArgs, TablesArgs};
use haproxy_peers_sidecar::config::{Config, RunArgs};
use haproxy_peers_sidecar::runtime;

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

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the replicator: the HAProxy link, the mesh of members, the admin server. Stops
    /// cleanly on SIGTERM or SIGINT.
    Run(RunArgs),
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
        Command::Run(args) => match Config::for_run(&args) {
            Ok(config) => {
                cli::logging::init(config.log_format, &config.log_level);
                replicate(config)
            }
            Err(e) => {
                eprintln!("haproxy-peers-sidecar: {e}");
                ExitCode::from(2)
            }
        },
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

/// The replicator on a multi-threaded runtime, until SIGTERM or SIGINT.
fn replicate(config: Config) -> ExitCode {
    let runtime = match async_runtime(tokio::runtime::Builder::new_multi_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    // The handlers go in first, so that a SIGTERM during start-up is a clean stop too.
    match runtime.block_on(async { runtime::run(config, stop_signal()).await }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("haproxy-peers-sidecar: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Installs the SIGTERM (Kubernetes stopping the pod) and SIGINT handlers now; the future
/// completes on either. Call it inside the runtime.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            },
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!("cannot watch SIGTERM/SIGINT: {e}; stop the process with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Runs one admin query on a small runtime and prints its answer.
fn client(query: impl std::future::Future<Output = Result<String, String>>) -> ExitCode {
    let runtime = match async_runtime(tokio::runtime::Builder::new_current_thread()) {
        Ok(rt) => rt,
        Err(code) => return code,
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

/// Builds the async runtime, or says why it cannot start.
fn async_runtime(
    mut builder: tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, ExitCode> {
    builder.enable_all().build().map_err(|e| {
        eprintln!("haproxy-peers-sidecar: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}
