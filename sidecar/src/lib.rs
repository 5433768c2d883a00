//! The replicator sidecar.
//!
//! Rooms, each with one job:
//! * [`codec`]: bytes <-> peers-protocol messages. No sockets, no clock.
//!
//! The session state machine, the table store, the mesh, TLS and the admin server join as the
//! sidecar issue lands; only the mesh will own sockets.

pub mod codec;
