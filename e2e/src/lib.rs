//! The end-to-end suite's harness: pods as network namespaces, each a real HAProxy and a real
//! sidecar, configured from the operator's own render.
//!
//! * [`netns`]: namespaces on a private bridge, per-namespace hosts files (the pods' DNS), link
//!   cuts, cleanup and the sweeper of leftovers.
//! * [`control`]: the operator's reconcile (certificates and render) without Kubernetes.
//! * [`fleet`]: the pods, their files and processes, and every operation the failure table
//!   needs (kill, restart, reload, replace with a new IP, scale, rotate certificates).
//! * [`probe`]: what the harness reads inside a namespace (sidecar admin API, HTTP traffic),
//!   through the `hp-e2e-probe` binary.
//! * [`workload`]: traffic during a scenario, and [`ledger`]: what it wrote, so that a test can
//!   assert that nothing was lost.
//! * [`sessions`] and [`metrics`]: the sidecars' `/peers` and `/metrics` as a scenario checks
//!   them (no session replaced, an error counted by kind).
//! * [`intruder`]: a namespace that calls the mesh with certificates of its choosing.
//! * [`holds`]: what a node must already hold while the traffic goes on, and a graceful drain;
//!   [`first_ready`]: what a new pod's HAProxy held at its first Ready; [`hostile`]: bytes a
//!   hostile client sends to a pod's ports.
//! * [`view`]: the demo's live view.

pub mod binaries;
pub mod control;
pub mod demo;
mod error;
pub mod first_ready;
pub mod fleet;
pub mod haproxy_cfg;
pub mod holds;
pub mod hostile;
pub mod intruder;
pub mod ip;
pub mod ledger;
pub mod metrics;
pub mod netns;
pub mod probe;
pub mod proc;
pub mod projection;
pub mod sessions;
pub mod view;
mod wait;
pub mod workload;

pub use binaries::Binaries;
pub use error::{Error, Result};
pub use fleet::{Fleet, FleetOptions, Pod};
pub use wait::poll;
