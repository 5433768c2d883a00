//! Benchmarks for haproxy-peers. They print figures; nothing here passes or fails on timing.
//!
//! * [`peer`]: a fake HAProxy speaking the peers protocol on loopback (load generator or sink).
//! * [`pair`]: two real `haproxy-peers-sidecar run` processes meshed on loopback, no HAProxy.
//! * [`procfs`]: CPU time and resident memory of a process.
//! * [`prompt`]: an interactive runtime API connection; [`haproxy_cfg`]: the HAProxies' config.
//! * [`relay`], [`memory`], [`operator`], [`latency`], [`resync`]: the benchmarks themselves;
//!   [`stats`]: quantiles.

pub mod haproxy_cfg;
pub mod latency;
pub mod memory;
pub mod operator;
pub mod pair;
pub mod peer;
pub mod procfs;
pub mod prompt;
pub mod relay;
pub mod resync;
pub mod stats;

/// Any error of a benchmark run: said in words, the run stops.
pub type Result<T> = std::result::Result<T, String>;
