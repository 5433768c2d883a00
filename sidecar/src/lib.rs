//! The replicator sidecar.
//!
//! Rooms, each with one job:
//! * [`codec`]: bytes <-> peers-protocol messages. No sockets, no clock.
//! * [`store`]: the replica (tables, entries, relay order, expiry, per-peer pointers).
//! * [`session`]: one peer session as a state machine.
//! * [`tls`]: rustls configurations from the mounted Secret, hot reload, peer identity checks.
//! * `mesh`: sockets and tasks (the HAProxy link, the members, `members.yaml`); the only room
//!   that owns sockets besides the admin server.
//! * [`admin`]: the admin HTTP views; [`runtime`]: `run`, which joins everything up.

pub mod admin;
pub mod cli;
pub mod codec;
pub mod config;
pub(crate) mod mesh;
pub mod metrics;
pub mod runtime;
pub mod session;
pub mod store;
pub mod tls;
