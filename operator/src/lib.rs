//! haproxy-peers operator (being built).
