//! Test harness for real HAProxy processes on loopback.
//!
//! * [`Haproxy`]: start HAProxy from a configuration string in a temp dir (optionally
//!   master-worker), kill / terminate / restart / reload it, read its log; killed on drop.
//! * [`RuntimeApi`]: the stats socket: raw commands, `set table`, `show table` and `show peers`,
//!   parsed by [`show_table`] and [`show_peers`].
//! * [`http_get`]: real HTTP requests through a frontend, so tracking rules create entries.
//! * [`config`]: `peers` sections and stick-table backends as text; [`free_port`] for their
//!   addresses.
//!
//! Everything is synchronous (std only) so that both plain and tokio tests can use it; from an
//! async test call it on a multi-threaded runtime or through `spawn_blocking`.

mod binary;
pub mod config;
mod error;
mod http;
mod ports;
mod process;
mod runtime;
pub mod show_peers;
pub mod show_table;
mod wait;

pub use binary::haproxy_binary;
pub use error::{Error, Result};
pub use http::{http_get, http_request, HttpResponse};
pub use ports::{free_addr, free_port, loopback};
pub use process::{Haproxy, HaproxyOptions};
pub use runtime::RuntimeApi;
pub use wait::{wait_until, POLL_INTERVAL};
