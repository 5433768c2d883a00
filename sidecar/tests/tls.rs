//! Mutual TLS between sidecars, always with real handshakes over TCP on 127.0.0.1.
//!
//! `tls/pki.rs` mints an operator-shaped PKI with rcgen, `tls/volume.rs` lays it out like a
//! kubelet Secret volume, `tls/net.rs` holds the socket plumbing; the other modules are the
//! scenarios.

#[path = "tls/net.rs"]
mod net;
#[path = "tls/pki.rs"]
mod pki;
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
