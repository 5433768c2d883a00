//! haproxy-peers operator: turns a `PeerGroup` into what a group of HAProxy pods needs to share
//! stick tables through the haproxy-peers sidecar.
//!
//! * [`api`] — the `PeerGroup` CRD (types, defaults, schema rules, the generated CRD).
//! * [`render`] — the pure core: PeerGroup + pods + certificates + now -> owned objects, status,
//!   events. No client, no clock.
//! * [`certs`] — certificate inventory, rotation plan (pure) and minting.
//! * [`controller`] — the kube-runtime glue around render and certs.
//! * [`error`] — the error type, with a metric label per variant.
//! * [`metrics`], [`admin`] — Prometheus metrics and the health/metrics HTTP server.

pub mod admin;
pub mod api;
pub mod certs;
pub mod controller;
pub mod error;
pub mod metrics;
pub mod render;
pub mod text;

pub use error::{Error, Result};
