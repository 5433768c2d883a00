//! Free loopback TCP ports for processes that must be told their port before they bind it.
//!
//! Binding port 0 and closing again is racy twice over: the kernel may hand the same ephemeral
//! port to someone's outgoing connection, and two tests of one binary may get the same port in
//! turn. So ports come from below the Linux ephemeral range (32768+), each process starts at its
//! own offset, a process never hands out a port twice, and every candidate is probed by binding it.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};

const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

static HANDED_OUT: Mutex<Option<Allocator>> = Mutex::new(None);

struct Allocator {
    next: u16,
    used: HashSet<u16>,
}

/// A port on 127.0.0.1 that nothing was bound to a moment ago and that this process has not
/// handed out before.
pub fn free_port() -> Result<u16> {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let alloc = guard.get_or_insert_with(|| {
        Allocator::starting_at(FIRST + (std::process::id() % u32::from(LAST - FIRST)) as u16)
    });
    alloc.take().ok_or(Error::NoFreePort {
        first: FIRST,
        last: LAST,
    })
}

impl Allocator {
    fn starting_at(next: u16) -> Allocator {
        Allocator {
            next,
            used: HashSet::new(),
        }
    }

    fn take(&mut self) -> Option<u16> {
        for _ in FIRST..LAST {
            let port = self.next;
            self.next = if port + 1 >= LAST { FIRST } else { port + 1 };
            if !self.used.contains(&port) && TcpListener::bind(loopback(port)).is_ok() {
                self.used.insert(port);
                return Some(port);
            }
        }
        None
    }
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> Result<SocketAddr> {
    free_port().map(loopback)
}

/// `127.0.0.1:<port>`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let distinct: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        for port in ports {
            assert!((FIRST..LAST).contains(&port), "{port}");
            TcpListener::bind(loopback(port)).expect("handed-out port must be bindable");
        }
    }

    #[test]
    fn a_port_someone_holds_is_skipped() {
        let port = free_port().unwrap();
        let _held = TcpListener::bind(loopback(port)).unwrap();
        let next = Allocator::starting_at(port).take().unwrap();
        assert_ne!(next, port, "the allocator handed out a port that is bound");
    }
}
