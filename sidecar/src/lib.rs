//! The replicator sidecar.
//!
//! Rooms, each with one job:
//! * [`codec`]: bytes <-> peers-protocol messages. No sockets, no clock.
//! * [`tls`]: rustls configurations from the mounted Secret, hot reload, peer identity checks.
//!
//! The session state machine, the table store, the mesh, TLS and the admin server join as the
//! sidecar issue lands; only the mesh will own sockets.

pub mod admin;
pub mod cli;
pub mod codec;
pub mod config;
pub mod metrics;
pub mod session;
pub mod store;
pub mod tls;
