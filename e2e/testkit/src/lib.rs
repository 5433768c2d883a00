//! Test harness for real HAProxy and sidecar processes on loopback.
//!
//! * [`Haproxy`]: start HAProxy from a configuration string in a temp dir (optionally
//!   master-worker), kill / terminate / restart / reload it, read its log; killed on drop.
//! * [`RuntimeApi`]: the stats socket: raw commands, `set table`, `show table` and `show peers`,
//!   parsed by [`show_table`] and [`show_peers`].
//! * [`http_get`]: real HTTP requests through a frontend, so tracking rules create entries.
//! * [`config`]: `peers` sections and stick-table backends as text; [`free_port`] for their
//!   addresses.
//! * [`Sidecar`]: a `haproxy-peers-sidecar run` process with its log and admin API; killed on
//!   drop.
//! * [`cluster`]: N pods (HAProxy + sidecar each) wired as the operator wires them.
//! * [`displayed_rate`]: a frequency counter as `show table` prints it (§6.3).
//! * [`Relay`]: a TCP relay that cuts and heals a link; [`pki`]: an operator-shaped test PKI.
//!
//! Everything is synchronous (std only) so that both plain and tokio tests can use it; from an
//! async test call it on a multi-threaded runtime or through `spawn_blocking`.

mod binary;
mod child;
pub mod cluster;
pub mod config;
mod error;
mod freq;
mod http;
pub mod pki;
mod ports;
mod process;
mod relay;
mod runtime;
pub mod show_peers;
pub mod show_table;
mod sidecar_proc;
mod wait;

pub use binary::haproxy_binary;
pub use error::{Error, Result};
pub use freq::{displayed_rate, rate_bounds};
pub use http::{http_get, http_request, HttpResponse};
pub use ports::{free_addr, free_port, loopback};
pub use process::{Haproxy, HaproxyOptions};
pub use relay::{CutMode, Relay};
pub use runtime::RuntimeApi;
pub use sidecar_proc::{Sidecar, SidecarOptions};
pub use wait::{wait_until, POLL_INTERVAL};
