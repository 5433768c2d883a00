//! The sidecar's acceptance suite: groups of real HAProxy 2.6 processes and real sidecar
//! processes on loopback, wired as the operator wires them (testkit `cluster`), and the failure
//! table of the design, scenario by scenario. Every scenario ends by checking that nothing was
//! lost: every key on every node, counters exact, rates within the bounds of peers-protocol
//! §6.3 ([`expect`]).
//!
//! Each test starts its own group on its own ports, so they run in parallel; every wait is
//! bounded and names what it waited for; processes die with the values that own them, also when
//! a test panics.

mod admin;
mod expect;
mod intruder;
mod lab;
mod writes;

mod fresh_haproxy;
mod garbage;
mod haproxy_restart;
mod impostors;
mod network_cut;
mod partition_heal;
mod replicate;
mod sidecar_restart;
