//! A loopback TCP relay standing in for the network between two pods: it forwards every
//! connection to one target until it is cut, and forwards again once healed.
//!
//! A cut closes every live connection through the relay (both ends see the connection end, as
//! when a node's conntrack entry is lost) and then either closes new connections at once
//! ([`CutMode::Refuse`]) or accepts and holds them without forwarding a byte
//! ([`CutMode::Blackhole`], a partition that drops packets: the caller's handshake times out).
//! Healing closes the held connections, so that callers retry at once.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a cut relay does with new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Accept and close at once.
    Refuse,
    /// Accept and never forward anything until healed.
    Blackhole,
}

/// A running relay; stopped (every connection closed) on drop.
#[derive(Debug)]
pub struct Relay {
    listen: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    next_id: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    cut: Option<CutMode>,
    /// Forwarded connections by id: the accepted side and the side dialed to the target.
    live: HashMap<u64, [TcpStream; 2]>,
    /// Connections accepted while blackholed.
    held: Vec<TcpStream>,
    forwarded: u64,
    dropped: u64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Relay {
    /// Listens on `listen` and forwards to `target`.
    pub fn start(listen: SocketAddr, target: SocketAddr) -> Result<Relay> {
        let listener =
            TcpListener::bind(listen).map_err(Error::io(format!("bind the relay on {listen}")))?;
        let listen = listener
            .local_addr()
            .map_err(Error::io("read the relay's address"))?;
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("relay {listen}"))
                .spawn(move || accept_loop(&listener, target, &shared))
                .map_err(Error::io("spawn the relay thread"))?
        };
        Ok(Relay {
            listen,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where callers connect.
    pub fn addr(&self) -> SocketAddr {
        self.listen
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every live connection; new ones are treated as `mode` says until [`Relay::heal`].
    pub fn cut(&self, mode: CutMode) {
        let mut state = self.shared.state();
        state.cut = Some(mode);
        for [a, b] in state.live.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Forwards new connections again; connections held by a blackhole are closed.
    pub fn heal(&self) {
        let mut state = self.shared.state();
        state.cut = None;
        for held in state.held.drain(..) {
            let _ = held.shutdown(Shutdown::Both);
        }
    }

    pub fn is_cut(&self) -> bool {
        self.shared.state().cut.is_some()
    }

    /// Connections forwarded to the target so far.
    pub fn forwarded(&self) -> u64 {
        self.shared.state().forwarded
    }

    /// Connections refused or blackholed so far.
    pub fn dropped(&self) -> u64 {
        self.shared.state().dropped
    }

    /// Forwarded connections still open.
    pub fn live(&self) -> usize {
        self.shared.state().live.len()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.listen, CONNECT_TIMEOUT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let mut state = self.shared.state();
        for [a, b] in state.live.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        for held in state.held.drain(..) {
            let _ = held.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: &TcpListener, target: SocketAddr, shared: &Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((inbound, _)) = accepted else {
            // EMFILE and the like: back off instead of spinning.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let cut = shared.state().cut;
        match cut {
            Some(CutMode::Refuse) => {
                shared.state().dropped += 1;
                let _ = inbound.shutdown(Shutdown::Both);
            }
            Some(CutMode::Blackhole) => {
                let mut state = shared.state();
                state.dropped += 1;
                state.held.push(inbound);
            }
            None => forward(inbound, target, shared),
        }
    }
}

fn forward(inbound: TcpStream, target: SocketAddr, shared: &Arc<Shared>) {
    let Ok(outbound) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        let _ = inbound.shutdown(Shutdown::Both);
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (Ok(in_copy), Ok(out_copy), Ok(in_reg), Ok(out_reg)) = (
        inbound.try_clone(),
        outbound.try_clone(),
        inbound.try_clone(),
        outbound.try_clone(),
    ) else {
        return;
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    {
        let mut state = shared.state();
        // A cut may have come between the accept and now: honour it.
        if state.cut.is_some() {
            let _ = inbound.shutdown(Shutdown::Both);
            let _ = outbound.shutdown(Shutdown::Both);
            state.dropped += 1;
            return;
        }
        state.forwarded += 1;
        state.live.insert(id, [in_reg, out_reg]);
    }
    let done = Arc::new(AtomicU64::new(0));
    for (from, to) in [(inbound, out_copy), (outbound, in_copy)] {
        let shared = Arc::clone(shared);
        let done = Arc::clone(&done);
        let _ = std::thread::Builder::new()
            .name(format!("relay pump {id}"))
            .spawn(move || {
                pump(from, to);
                if done.fetch_add(1, Ordering::SeqCst) == 1 {
                    shared.state().live.remove(&id);
                }
            });
    }
}

/// Copies until end of stream or error; passes an orderly end on as a half-close and an error
/// as a full close.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::free_addr;

    /// An echo server on loopback; returns its address.
    fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                std::thread::spawn(move || {
                    let mut reader = conn.try_clone().unwrap();
                    let _ = std::io::copy(&mut reader, &mut conn);
                });
            }
        });
        addr
    }

    fn roundtrip(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        stream.write_all(bytes)?;
        let mut got = vec![0u8; bytes.len()];
        stream.read_exact(&mut got)?;
        Ok(got)
    }

    fn dial(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    #[test]
    fn forwards_cuts_and_heals() {
        let relay = Relay::start(free_addr().unwrap(), echo()).unwrap();
        let mut first = dial(relay.addr());
        assert_eq!(roundtrip(&mut first, b"hello").unwrap(), b"hello");
        assert_eq!((relay.forwarded(), relay.live()), (1, 1));

        relay.cut(CutMode::Refuse);
        assert!(relay.is_cut());
        // The live connection ends: reads see the end (or a reset), never an echo.
        let mut buf = [0u8; 8];
        let after_cut = first.write_all(b"x").and_then(|()| first.read(&mut buf));
        assert!(matches!(after_cut, Ok(0) | Err(_)), "{after_cut:?}");
        // New connections are closed at once.
        let mut refused = dial(relay.addr());
        assert!(matches!(refused.read(&mut buf), Ok(0) | Err(_)));

        relay.heal();
        let mut again = dial(relay.addr());
        assert_eq!(roundtrip(&mut again, b"back").unwrap(), b"back");
        assert_eq!(relay.forwarded(), 2);
        assert_eq!(relay.dropped(), 1);
    }

    #[test]
    fn a_blackhole_holds_connections_silently_until_healed() {
        let relay = Relay::start(free_addr().unwrap(), echo()).unwrap();
        relay.cut(CutMode::Blackhole);
        let mut held = dial(relay.addr());
        held.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        held.write_all(b"anyone?").unwrap();
        let mut buf = [0u8; 8];
        let silent = held.read(&mut buf).unwrap_err();
        assert!(
            matches!(silent.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{silent:?}"
        );
        relay.heal();
        held.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert!(matches!(held.read(&mut buf), Ok(0) | Err(_)));
        assert_eq!((relay.forwarded(), relay.dropped()), (0, 1));
    }
}
