//! Mutual TLS between sidecars, always with real handshakes over TCP on 127.0.0.1.
//!
//! The testkit's `pki` mints an operator-shaped PKI with rcgen, `tls/volume.rs` lays it out like a
//! kubelet Secret volume, `tls/net.rs` holds the socket plumbing; the other modules are the
//! scenarios.

use haproxy_peers_testkit::pki;

#[path = "tls/net.rs"]
mod net;
#[path = "tls/volume.rs"]
mod volume;

#[path = "tls/handshake.rs"]
mod handshake;
#[path = "tls/material.rs"]
mod material;
#[path = "tls/refusal.rs"]
mod refusal;
#[path = "tls/rotation.rs"]
mod rotation;
