//! The accept loop. Its own rather than `axum::serve`, for the limits a port reachable from the
//! pod network needs: a header-read deadline (slow or idle clients), a header size cap, a cap
//! on open connections, a maximum connection age, and a bounded graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::watched::{MidHead, Watched};
use super::{routes, AdminSource};
use crate::metrics::Metrics;

/// Bounds on what one client can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A request's head (line and headers) must arrive within this; an idle keep-alive
    /// connection is closed after it too.
    pub header_read_timeout: Duration,
    /// Request line plus headers, in bytes (at least 8 KiB: hyper's minimum buffer).
    pub max_header_bytes: usize,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
    /// A connection is asked to close (after its current response) once this old.
    pub max_connection_age: Duration,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            max_connections: 64,
            max_connection_age: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Why hyper ended a connection, as far as the operator of the pod cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Not HTTP/1 at all, or a malformed request line or header.
    Malformed,
    /// A request head over [`Limits::max_header_bytes`].
    TooLarge,
    /// No complete request head within [`Limits::header_read_timeout`].
    Slow,
    /// The client went away, an idle keep-alive connection reached the deadline, or another I/O
    /// ending: routine, not worth a line.
    Other,
}

impl Ended {
    fn of(e: &hyper::Error, mid_head: bool) -> Self {
        if e.is_parse_too_large() {
            Ended::TooLarge
        } else if e.is_parse() {
            Ended::Malformed
        } else if e.is_timeout() && mid_head {
            Ended::Slow
        } else {
            Ended::Other
        }
    }
}

/// A hostile or broken client on the admin port gets one line naming it and the problem (the
/// mesh and HAProxy ports do the same), and a counter; a client hanging up is not logged above
/// debug.
fn log_ended(
    metrics: &Metrics,
    peer: std::net::SocketAddr,
    e: &hyper::Error,
    mid_head: bool,
    deadline: Duration,
) {
    match Ended::of(e, mid_head) {
        Ended::Malformed => {
            metrics.error("admin_bad_request");
            tracing::warn!(%peer, "request from {peer} on the admin port is not a valid HTTP/1 request ({e}): refused and closed");
        }
        Ended::TooLarge => {
            metrics.error("admin_bad_request");
            tracing::warn!(%peer, "request from {peer} on the admin port has a request head over the size limit: refused and closed");
        }
        Ended::Slow => {
            metrics.error("admin_request_timeout");
            tracing::warn!(%peer, "client {peer} on the admin port sent no complete request head within {} s: closed", deadline.as_secs());
        }
        Ended::Other => tracing::debug!(%peer, error = %e, "admin connection ended"),
    }
}

/// hyper refuses smaller read buffers.
const MIN_BUF: usize = 8 * 1024;

/// Serves the admin endpoints on `listener` until `shutdown` completes, then lets open
/// connections finish their current request for up to [`Limits::shutdown_grace`].
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn AdminSource>,
    metrics: Arc<Metrics>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let service = TowerToHyperService::new(routes::router(source, Arc::clone(&metrics)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_BUF))
        .max_header_size(limits.max_header_bytes)
        .max_headers(64);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(false);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "admin server listening");
    }
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: not fatal; pause so
                    // a persistent condition does not spin.
                    tracing::warn!(error = %e, "admin server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Counted rather than logged each time: a flood would otherwise flood the log too.
            metrics.error("admin_connection_limit");
            tracing::debug!(%peer, max = limits.max_connections, "admin server: too many connections, closing a new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mid_head = MidHead::default();
        let per_conn = {
            let (service, mid_head) = (service.clone(), mid_head.clone());
            hyper::service::service_fn(move |request| {
                mid_head.request_parsed();
                hyper::service::Service::call(&service, request)
            })
        };
        let conn = http.serve_connection(
            TokioIo::new(Watched::new(stream, mid_head.clone())),
            per_conn,
        );
        let mut stopped = stopped.clone();
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        log_ended(&metrics, peer, &e, mid_head.is_mid_head(), limits.header_read_timeout);
                    }
                    return;
                }
                _ = stopped.wait_for(|s| *s) => {}
                () = tokio::time::sleep(limits.max_connection_age) => {}
            }
            conn.as_mut().graceful_shutdown();
            if tokio::time::timeout(limits.shutdown_grace, conn)
                .await
                .is_err()
            {
                tracing::debug!(%peer, "admin connection did not finish in time; dropped");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every slot back means every connection task has ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let drained = tokio::time::timeout(
        limits.shutdown_grace + Duration::from_millis(100),
        slots.acquire_many(all),
    )
    .await;
    if drained.is_err() {
        tracing::warn!("admin server: connections still open after the shutdown grace period");
    }
    tracing::info!("admin server stopped");
}
