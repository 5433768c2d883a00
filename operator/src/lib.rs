//! haproxy-peers operator.

pub mod certs;
pub mod controller;
