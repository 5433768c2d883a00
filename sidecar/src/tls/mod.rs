//! Mutual TLS between sidecars: configs from the mounted Secret, hot reload, peer identity.
//!
//! The operator renders Secret `<group>-peer-tls` and mounts it into every sidecar: `ca.crt`
//! (the trust bundle; two CAs during a CA rotation) and `<pod>.crt` / `<pod>.key` per member.
//! A sidecar uses only its own pair.
//!
//! * [`TlsReloader::spawn`] reads and validates the files (key matches leaf, leaf chains to the
//!   bundle, valid now, usable as server and client certificate for the pod's name), publishes
//!   [`TlsConfigs`] through a [`TlsWatch`], and polls for changes. An invalid new set is
//!   rejected, counted ([`ReloadCounters`]) and logged; the previous configs stay published.
//! * [`accept`] and [`connect`] run a handshake with the configs current at that moment and
//!   return the verified peer's [`PeerIdentity`]. Live sessions keep the TLS state they started
//!   with, so a rotation never drops a connection.
//! * After the peers-protocol hello, [`check_claimed_name`] ties the claimed peer name to the
//!   certificate, and [`check_member`] to `members.yaml`.
//!
//! ```no_run
//! # async fn demo(tcp: tokio::net::TcpStream) -> Result<(), Box<dyn std::error::Error>> {
//! use haproxy_peers_sidecar::tls;
//! let (_reloader, mut watch) =
//!     tls::TlsReloader::spawn("/etc/peer-tls", "edge-0", std::time::Duration::from_secs(2)).await?;
//! let configs = watch.ready().await?;
//! let (_stream, peer) =
//!     tls::connect(&configs, tcp, "edge-1.edge-peers.default.svc.cluster.local").await?;
//! peer.check_claimed_name("edge-1")?;
//! # Ok(()) }
//! ```

mod config;
mod handshake;
mod identity;
mod material;
mod reload;

pub use config::TlsConfigs;
pub use handshake::{accept, connect, HandshakeError};
pub use identity::{check_claimed_name, check_member, IdentityError, PeerIdentity};
pub use material::{MaterialError, MaterialFiles, MaterialPaths, TlsMaterial, BUNDLE_FILE};
pub use reload::{ReloadCounters, ReloaderGone, TlsReloader, TlsWatch};
