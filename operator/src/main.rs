//! `haproxy-peers-operator`: the PeerGroup operator's command line.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "haproxy-peers-operator",
    version,
    about = "Operator for haproxy-peers PeerGroups"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the PeerGroup CustomResourceDefinition as YAML
    /// (`haproxy-peers-operator crdgen > crds/peergroups.yaml`).
    Crdgen,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crdgen => match haproxy_peers_operator::api::crd::crd_yaml() {
            Ok(yaml) => match std::io::stdout().lock().write_all(yaml.as_bytes()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("haproxy-peers-operator: cannot write the CRD to stdout: {e}");
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("haproxy-peers-operator: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
