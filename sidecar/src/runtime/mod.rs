//! `run`: the replicator process. Binds the three listeners (HAProxy link, mesh, admin),
//! starts the TLS reloader, the mesh tasks and the admin server over the live state, and
//! shuts down cleanly on the given signal: listeners stop, sessions are closed after flushing
//! what they queued, and `run` returns.

mod convert;
mod source;
mod tick;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::admin::{self, Limits};
use crate::config::{membership_problem, Config};
use crate::mesh::{local, membership, supervisor, Settings, Shared};
use crate::metrics::Metrics;
use crate::session::Timers;
use crate::tls::{MaterialError, TlsReloader};

use source::Source;

/// How often the mounted TLS Secret is read for changes.
pub const TLS_POLL: Duration = Duration::from_secs(2);
/// How long shutdown waits for sessions to close.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the replicator could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "cannot listen on {addr} ({flag}): {source}: another process holds the port, or the \
         address is not local to this pod"
    )]
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot watch the TLS material: {0}")]
    Tls(#[from] MaterialError),
}

async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { flag, addr, source })
}

/// Runs the replicator until `shutdown` completes (SIGTERM/SIGINT in the binary), then closes
/// every session and returns. A pod not (yet) listed in `members.yaml` does not stop it: that
/// is a readiness blocker until the file lists the pod.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    for line in config.summary().lines() {
        tracing::info!("{line}");
    }
    let metrics = Arc::new(Metrics::new());
    let local_listener = bind(config.local_listen, "--local-listen").await?;
    let mesh_listener = bind(config.mesh_listen, "--mesh-listen").await?;
    let admin_listener = bind(config.admin_listen, "--admin-listen").await?;
    let (reloader, watch) = if config.members.tls {
        let (reloader, watch) =
            TlsReloader::spawn(&config.tls_dir, &config.pod_name, TLS_POLL).await?;
        if let Some(e) = reloader.last_error() {
            tracing::warn!(
                "TLS material not usable yet: {e}; the mesh waits for it (checked every {} s)",
                TLS_POLL.as_secs()
            );
        }
        (Some(Arc::new(reloader)), Some(watch))
    } else {
        tracing::warn!("members.yaml says tls: false: the mesh runs in plain text");
        (None, None)
    };
    let settings = Settings {
        pod: config.pod_name.clone(),
        local_listen: config.local_listen,
        haproxy_addr: config.haproxy_addr,
        mesh_port: config.members.ports.mesh,
        tls: config.members.tls,
        members_path: config.members_path(),
        max_entries: config.max_entries_per_table,
        timers: Timers::default(),
    };
    let shared = Shared::new(
        settings,
        config.members.clone(),
        Arc::clone(&metrics),
        watch,
    );
    {
        let mut core = shared.lock();
        membership::apply(&shared, &mut core, config.members.clone());
    }
    if let Some(problem) = membership_problem(&config.members, &config.pod_name) {
        tracing::warn!("{problem}; waiting for members.yaml to list this pod (readiness blocker)");
    }
    shared.spawn(local::serve(Arc::clone(&shared), local_listener));
    shared.spawn(local::dial_loop(Arc::clone(&shared)));
    shared.spawn(supervisor::serve(Arc::clone(&shared), mesh_listener));
    shared.spawn(membership::watch(Arc::clone(&shared)));
    let source = Arc::new(Source::new(Arc::clone(&shared), reloader.clone()));
    shared.spawn(tick::run(Arc::clone(&shared), Arc::clone(&source)));
    let admin_task = tokio::spawn(admin::serve(
        admin_listener,
        source,
        Arc::clone(&metrics),
        Limits::default(),
        shared.shutdown.clone().cancelled_owned(),
    ));
    tokio::select! {
        () = shutdown => tracing::info!("shutting down: closing every session"),
        () = shared.shutdown.cancelled() => {}
    }
    shared.shutdown.cancel();
    if !shared.wait_tasks(SHUTDOWN_GRACE).await {
        tracing::warn!(
            "some connections did not close within {} s; exiting anyway",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, admin_task).await;
    drop(reloader);
    tracing::info!("stopped");
    Ok(())
}
