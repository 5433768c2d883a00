//! haproxy-peers operator.

pub mod certs;
