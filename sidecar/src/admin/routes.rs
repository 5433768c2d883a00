//! Paths, content negotiation and status codes. Every handler reads one snapshot and renders it.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};

use super::views::LookupError;
use super::{text, AdminSource};
use crate::metrics::{self, Metrics};

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

#[derive(Clone)]
struct AppState {
    source: Arc<dyn AdminSource>,
    metrics: Arc<Metrics>,
}

pub(super) fn router(source: Arc<dyn AdminSource>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .route("/peers", get(peers))
        .route("/tables", get(tables))
        .route("/tables/{*name}", get(table))
        .fallback(not_found)
        .with_state(AppState { source, metrics })
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    format: Option<String>,
    key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

type QueryResult = Result<Query<Params>, QueryRejection>;

/// A malformed query: answered 400 with the reason, in plain text.
struct BadRequest(String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        plain(StatusCode::BAD_REQUEST, format!("{}\n", self.0))
    }
}

/// The query, and the format: `?format=` wins; then the first of `text/plain` /
/// `application/json` named in `Accept`; then `default`.
fn negotiate(
    query: QueryResult,
    headers: &HeaderMap,
    default: Format,
) -> Result<(Params, Format), BadRequest> {
    let Query(params) = query.map_err(|e| BadRequest(e.to_string()))?;
    let format = match params.format.as_deref() {
        Some("text") => Format::Text,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(BadRequest(format!(
                "format={other:?} is not known: use format=text or format=json"
            )))
        }
        None => headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|v| match v.split(';').next().unwrap_or("").trim() {
                "text/plain" => Some(Format::Text),
                "application/json" => Some(Format::Json),
                _ => None,
            })
            .unwrap_or(default),
    };
    Ok((params, format))
}

impl Format {
    fn render<T: Serialize>(
        self,
        status: StatusCode,
        view: &T,
        human: impl FnOnce(&T) -> String,
    ) -> Response {
        match self {
            Format::Text => plain(status, human(view)),
            Format::Json => json(status, view),
        }
    }
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static(TEXT))],
        body,
    )
        .into_response()
}

fn json<T: Serialize>(status: StatusCode, view: &T) -> Response {
    match serde_json::to_string_pretty(view) {
        Ok(mut body) => {
            body.push('\n');
            (
                status,
                [(CONTENT_TYPE, HeaderValue::from_static(JSON))],
                body,
            )
                .into_response()
        }
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialise the view: {e}\n"),
        ),
    }
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n".to_string())
}

async fn readyz(
    State(s): State<AppState>,
    query: QueryResult,
    headers: HeaderMap,
) -> Result<Response, BadRequest> {
    let (_, format) = negotiate(query, &headers, Format::Text)?;
    let r = s.source.readiness();
    s.metrics.ready(r.ready);
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(format.render(status, &r, text::readiness))
}

async fn scrape(State(s): State<AppState>) -> Response {
    s.source.refresh_metrics(&s.metrics);
    s.metrics.ready(s.source.readiness().ready);
    (
        StatusCode::OK,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn peers(
    State(s): State<AppState>,
    query: QueryResult,
    headers: HeaderMap,
) -> Result<Response, BadRequest> {
    let (_, format) = negotiate(query, &headers, Format::Json)?;
    Ok(format.render(StatusCode::OK, &s.source.peers(), text::peers))
}

async fn tables(
    State(s): State<AppState>,
    query: QueryResult,
    headers: HeaderMap,
) -> Result<Response, BadRequest> {
    let (_, format) = negotiate(query, &headers, Format::Json)?;
    Ok(format.render(StatusCode::OK, &s.source.tables(), text::tables))
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

async fn table(
    State(s): State<AppState>,
    Path(name): Path<String>,
    query: QueryResult,
    headers: HeaderMap,
) -> Result<Response, BadRequest> {
    let (params, format) = negotiate(query, &headers, Format::Json)?;
    Ok(match s.source.table(&name, params.key.as_deref()) {
        Ok(view) => format.render(StatusCode::OK, &view, text::table),
        Err(e) => {
            let status = match e {
                LookupError::BadKey { .. } => StatusCode::BAD_REQUEST,
                LookupError::NoSuchTable { .. } | LookupError::NoSuchKey { .. } => {
                    StatusCode::NOT_FOUND
                }
            };
            let body = ErrorBody {
                error: e.to_string(),
            };
            format.render(status, &body, |b| format!("{}\n", b.error))
        }
    })
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "not found: the admin server answers /healthz, /readyz, /metrics, /peers, /tables and \
         /tables/<name>[?key=<key>]\n"
            .to_string(),
    )
}
