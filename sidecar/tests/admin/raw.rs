//! Raw TCP clients for the hostile-input tests: what a scanner, a broken client or a slowloris
//! would send, byte for byte.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a raw exchange ended.
#[derive(Debug)]
pub enum Ending {
    /// The server closed; these bytes came first.
    Closed(Vec<u8>),
    /// The connection was reset (the server closed with unread input); bytes read before.
    Reset(Vec<u8>),
    /// Still open when the wait ended.
    Open(Vec<u8>),
}

impl Ending {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Ending::Closed(b) | Ending::Reset(b) | Ending::Open(b) => b,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }
}

/// Reads until the server closes, resets, or `wait` passes.
pub async fn read_to_end(stream: &mut TcpStream, wait: Duration) -> Ending {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Ending::Open(got),
            Ok(Ok(0)) => return Ending::Closed(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return Ending::Reset(got),
        }
    }
}

/// Sends `bytes` (ignoring a write refused because the server already closed) and reads the
/// answer.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Ending {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let _ = stream.write_all(bytes).await;
    read_to_end(&mut stream, wait).await
}

/// Sends `bytes` one at a time, `gap` apart. Returns the connection and whether every byte went
/// out before the server answered or closed.
pub async fn trickle(addr: SocketAddr, bytes: &[u8], gap: Duration) -> (TcpStream, bool) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    for (i, b) in bytes.iter().enumerate() {
        if stream.write_all(&[*b]).await.is_err() {
            return (stream, false);
        }
        if i + 1 == bytes.len() {
            break;
        }
        // The pause doubles as a watch: anything readable (an answer, EOF, a reset) before the
        // request is complete means the server gave up on it.
        let mut probe = [0u8; 1];
        if tokio::time::timeout(gap, stream.peek(&mut probe))
            .await
            .is_ok()
        {
            return (stream, false);
        }
    }
    (stream, true)
}
