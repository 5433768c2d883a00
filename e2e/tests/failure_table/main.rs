//! The design's failure table, row by row, on a fleet of pods in network namespaces (real
//! HAProxy and real sidecars configured from the operator's render), each under real traffic: a
//! writer per pod through `set table` and HTTP through every pod into the rate-limit and
//! sticky-session tables ([`haproxy_peers_e2e::workload`]). Every scenario ends with
//! [`haproxy_peers_e2e::workload::assert_nothing_lost`]: every key on every node with the value
//! it must have (exact for `set table` counters, request counts and sticky servers; rates equal
//! across nodes within a stated tolerance), and no sticky session ever moved.
//!
//! The scenarios run one at a time ([`support::serial`]): each is timing-sensitive traffic on
//! two shared cores.

mod support;

mod crashes;
mod identity;
mod partition;
mod reload;
mod rotation;

mod lifecycle;

mod hostile;
mod replace;
mod rollout;
mod scale;
