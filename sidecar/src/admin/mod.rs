//! The admin HTTP server: read-only views over the runtime's snapshots, on their own port.
//!
//! | path | answers |
//! | --- | --- |
//! | `/healthz` | 200 while the process serves requests |
//! | `/readyz` | 200 when ready, else 503 with one named blocker per line ([`readiness`]) |
//! | `/metrics` | Prometheus / OpenMetrics text ([`crate::metrics::Metrics`]) |
//! | `/peers` | the `show peers` equivalent ([`views::PeersView`]) |
//! | `/tables` | table definitions and entry counts ([`views::TablesView`]) |
//! | `/tables/<name>[?key=<k>]` | one table, and one entry with its rates computed ([`views::TableView`]) |
//!
//! JSON by default (`/readyz`: text); `?format=text` or `Accept: text/plain` gives the human
//! rendering of [`text`], `?format=json` or `Accept: application/json` JSON. Table names are
//! wire names: `/tables/be`, and `/tables//t1` or `/tables/%2Ft1` for `table t1` of a peers
//! section.
//!
//! The runtime implements [`AdminSource`]; [`serve`] runs the server with [`Limits`] that keep
//! garbage, oversized and slow input from holding it.

mod routes;
mod server;
mod watched;

pub mod readiness;
pub mod text;
pub mod views;

pub use server::{serve, Limits};

use crate::metrics::Metrics;
use views::{LookupError, PeersView, Readiness, TableView, TablesView};

/// Where the admin server reads its views. Each call returns a snapshot and must be quick: it
/// runs on the server's task.
pub trait AdminSource: Send + Sync + 'static {
    fn peers(&self) -> PeersView;
    fn tables(&self) -> TablesView;
    /// One table by wire name; with `key`, also that entry (the key in HAProxy's notation:
    /// dotted IP, decimal integer, string, or hex for binary keys).
    fn table(&self, name: &str, key: Option<&str>) -> Result<TableView, LookupError>;
    /// Usually [`readiness::evaluate`] over the runtime's current facts.
    fn readiness(&self) -> Readiness;
    /// Called before each scrape, to set gauges that are read from snapshots (entries per
    /// table, replication lag) rather than counted as things happen.
    fn refresh_metrics(&self, _metrics: &Metrics) {}
}
