//! The operator's admin HTTP server: `/healthz` (the process serves), `/readyz` (a follower
//! that reaches the API server, or a leader whose PeerGroup cache has synced), `/metrics`.

use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::{Metrics, CONTENT_TYPE};

/// What the admin server shows; shared with the controller, which updates it.
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// `Ok(())` when ready, else what it waits for.
    readiness: Mutex<Result<(), String>>,
}

impl AdminState {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        AdminState {
            metrics,
            readiness: Mutex::new(Err("starting: leader election has not run yet".into())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Result<(), String>> {
        // One value inside, always whole: a panic elsewhere cannot leave it half-written.
        self.readiness.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_ready(&self) {
        *self.lock() = Ok(());
    }

    /// Not ready, and why (shown by `/readyz`).
    pub fn set_not_ready(&self, why: impl Into<String>) {
        *self.lock() = Err(why.into());
    }

    pub fn readiness(&self) -> Result<(), String> {
        self.lock().clone()
    }
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    match state.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}\n"),
        )
            .into_response(),
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
