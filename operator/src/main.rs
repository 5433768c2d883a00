//! `haproxy-peers-operator`: the PeerGroup operator's command line.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use haproxy_peers_operator::admin::{self, AdminState};
use haproxy_peers_operator::controller::{self, context, Config, LeaseConfig};
use haproxy_peers_operator::metrics::Metrics;
use tracing::{error, info};

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
    /// Run the controller against the cluster of the in-cluster config or kubeconfig.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// Watch PeerGroups in this namespace only (default: every namespace).
    #[arg(long, env = "WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Address of the /healthz, /readyz and /metrics server.
    #[arg(long, env = "ADMIN_LISTEN", default_value = "0.0.0.0:8080")]
    admin_listen: SocketAddr,
    /// Namespace of the leader-election Lease: the operator's own (downward API).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: String,
    /// This replica's name in the Lease (default: the hostname, which is the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log lines as text for people, or as one JSON object per line for a log pipeline.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crdgen => crdgen(),
        Command::Run(args) => run(args),
    }
}

fn crdgen() -> ExitCode {
    match haproxy_peers_operator::api::crd::crd_yaml() {
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
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

fn run(args: RunArgs) -> ExitCode {
    init_logging(args.log_format);
    let Some(identity) = args.identity.or_else(hostname) else {
        error!("no identity for leader election: set --identity or POD_NAME (downward API metadata.name)");
        return ExitCode::FAILURE;
    };
    // kube's TLS uses rustls; say which crypto provider rather than rely on feature unification.
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let config = Config {
        namespace: args.namespace,
        lease: LeaseConfig::new(&args.lease_namespace, &identity),
        resync: context::DEFAULT_RESYNC,
        clock: context::system_clock(),
    };
    runtime.block_on(serve(config, args.admin_listen))
}

async fn serve(config: Config, admin_listen: SocketAddr) -> ExitCode {
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "cannot configure a Kubernetes client: run in a pod with a ServiceAccount, or set KUBECONFIG");
            return ExitCode::FAILURE;
        }
    };
    let state = Arc::new(AdminState::new(Arc::new(Metrics::new())));
    let listener = match tokio::net::TcpListener::bind(admin_listen).await {
        Ok(l) => l,
        Err(e) => {
            error!(error = %e, %admin_listen, "cannot listen for the admin server: choose another --admin-listen");
            return ExitCode::FAILURE;
        }
    };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let admin_server = tokio::spawn(admin::serve(listener, state.clone(), async {
        let _ = admin_stopped.await;
    }));
    info!(%admin_listen, identity = %config.lease.identity, "haproxy-peers-operator starting");
    let result = controller::run(client, config, state, shutdown_signal()).await;
    let _ = stop_admin.send(());
    if let Ok(Err(e)) = admin_server.await {
        error!(error = %e, "admin server failed");
    }
    match result {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!(error = %e, "stopping");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
    info!("shutdown requested: finishing the reconciles in flight");
}
