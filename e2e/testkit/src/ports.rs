//! Free loopback TCP ports for processes that must be told their port before they bind it.
//!
//! Binding port 0 and closing again is racy twice over: the kernel may hand the same ephemeral
//! port to someone's outgoing connection, and two tests of one binary may get the same port in
//! turn. So ports come from below the Linux ephemeral range (32768+), each process starts at its
//! own offset, a process never hands out a port twice, and every candidate is probed by binding it.
//!
//! Test processes running at the same time (two `cargo test` runs, or suites of several crates)
//! would still race between one's probe and its bind. So a port handed out is also claimed with
//! an exclusive lock on a file named after it in a shared directory, held until the process
//! ends (the kernel drops the lock even when the process is killed); other processes skip it.

use std::collections::HashSet;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use crate::error::{Error, Result};

const FIRST: u16 = 20_000;
const LAST: u16 = 32_000;

static HANDED_OUT: Mutex<Option<Allocator>> = Mutex::new(None);

struct Allocator {
    next: u16,
    used: HashSet<u16>,
    /// Lock files of the ports handed out, held for the life of the process.
    claims: Vec<File>,
}

/// A port on 127.0.0.1 that nothing was bound to a moment ago and that this process has not
/// handed out before.
pub fn free_port() -> Result<u16> {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let alloc = guard.get_or_insert_with(|| Allocator::starting_at(start_for(std::process::id())));
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
            claims: Vec::new(),
        }
    }

    fn take(&mut self) -> Option<u16> {
        for _ in FIRST..LAST {
            let port = self.next;
            self.next = if port + 1 >= LAST { FIRST } else { port + 1 };
            if self.used.contains(&port) {
                continue;
            }
            let Some(claim) = claim(port) else {
                continue;
            };
            if TcpListener::bind(loopback(port)).is_ok() {
                self.used.insert(port);
                self.claims.extend(claim);
                return Some(port);
            }
        }
        None
    }
}

/// Where processes start looking: spread over the range by pid, so that processes started one
/// after the other (close pids) do not walk the same ports.
fn start_for(pid: u32) -> u16 {
    let span = u64::from(LAST - FIRST);
    FIRST + (u64::from(pid).wrapping_mul(7919) % span) as u16
}

/// `Some(Some(lock))` when this process now holds `port`'s lock, `None` when another process
/// holds it, `Some(None)` when locks cannot be taken here (then only the bind probe protects).
fn claim(port: u16) -> Option<Option<File>> {
    let dir = claims_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return Some(None);
    }
    let Ok(file) = File::create(dir.join(port.to_string())) else {
        return Some(None);
    };
    match file.try_lock() {
        Ok(()) => Some(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => None,
        Err(std::fs::TryLockError::Error(_)) => Some(None),
    }
}

fn claims_dir() -> PathBuf {
    std::env::temp_dir().join("haproxy-peers-testkit-ports")
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
    fn a_port_another_process_claimed_is_skipped() {
        let port = free_port().unwrap();
        // This process holds the claim: a second claim of the same file (as another process
        // would try) fails.
        let file = File::create(claims_dir().join(port.to_string())).unwrap();
        assert!(matches!(
            file.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        assert!(claim(port).is_none());
        assert_ne!(start_for(1000), start_for(1001));
        assert!((FIRST..LAST).contains(&start_for(u32::MAX)));
    }

    #[test]
    fn a_port_someone_holds_is_skipped() {
        let port = free_port().unwrap();
        let _held = TcpListener::bind(loopback(port)).unwrap();
        let next = Allocator::starting_at(port).take().unwrap();
        assert_ne!(next, port, "the allocator handed out a port that is bound");
    }
}
