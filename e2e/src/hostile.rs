//! Hostile bytes for a pod's ports, sent by the probe from inside a namespace: what a broken or
//! malicious client sends instead of a TLS ClientHello, a peers-protocol hello or an HTTP
//! request, all at once or trickled, optionally inside a mutual-TLS session opened with a
//! member's certificate. [`send`] reports how the far end ended the connection; it never closes
//! first, so any end but [`End::GaveUp`] is the far end's doing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use haproxy_peers_sidecar::tls::{self, TlsConfigs};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Noise sent at once.
pub const GARBAGE_LEN: usize = 4096;
/// The oversized payload: far beyond any line, hello, record or header bound.
pub const JUNK_LEN: usize = 1 << 20;
/// Pause between two bytes of a trickled payload: a whole hello (or request head) would take
/// longer than the handshake bounds of the sidecar (5 s for a hello or an HTTP head, 10 s for
/// TLS), so the far end must give up on it.
pub const TRICKLE_PACE: Duration = Duration::from_millis(25);
/// A trickled payload's length: at [`TRICKLE_PACE`], longer than any of those bounds.
const TRICKLE_LEN: usize = 1024;
/// The most one write hands to the stream.
const CHUNK: usize = 16 * 1024;
/// Bytes of what came back kept for the report (a status line, an HTTP error, a TLS alert).
const HEAD_LEN: usize = 256;

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Payload {
    /// 4 KiB of noise, at once.
    Garbage,
    /// 1 MiB of noise, at once.
    Junk,
    /// A peers-protocol hello to `callee` whose last line never ends, one byte at a time.
    SlowHello,
    /// A TLS handshake record announcing a ClientHello that never completes, one byte at a time.
    SlowClientHello,
    /// An HTTP request head that never ends, one byte at a time.
    SlowRequest,
}

impl Payload {
    /// The bytes; `callee` is the peer name a hello addresses.
    pub fn bytes(self, callee: &str) -> Vec<u8> {
        match self {
            Payload::Garbage => noise(GARBAGE_LEN),
            Payload::Junk => noise(JUNK_LEN),
            Payload::SlowHello => {
                let mut out = format!("HAProxyS 2.1\n{callee}\nslowpoke ").into_bytes();
                extend_with(&mut out, b"0123456789", TRICKLE_LEN);
                out
            }
            Payload::SlowClientHello => {
                // Record: handshake (22), TLS 1.0 record version, 512 bytes; inside, a
                // ClientHello (1) of 508 bytes. Neither ever completes at the trickle's pace.
                let mut out = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
                out.extend_from_slice(&noise(TRICKLE_LEN - out.len()));
                out
            }
            Payload::SlowRequest => {
                let mut out = b"GET /readyz HTTP/1.1\r\nHost: pod\r\nX-Slow: ".to_vec();
                extend_with(&mut out, b"abcdefghij", TRICKLE_LEN);
                out
            }
        }
    }

    /// `None`: written at once.
    pub fn pace(self) -> Option<Duration> {
        match self {
            Payload::Garbage | Payload::Junk => None,
            Payload::SlowHello | Payload::SlowClientHello | Payload::SlowRequest => {
                Some(TRICKLE_PACE)
            }
        }
    }
}

/// Repeats `pattern` until `out` is `len` bytes long.
fn extend_with(out: &mut Vec<u8>, pattern: &[u8], len: usize) {
    let missing = len.saturating_sub(out.len());
    out.extend(pattern.iter().copied().cycle().take(missing));
}

/// `len` bytes of no protocol at all (a fixed sequence, so a failure replays), never starting
/// with a TLS record type, so that the TLS layer rejects it at once instead of waiting for a
/// record it announces.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect();
    if let Some(first) = out.first_mut() {
        *first = b'#';
    }
    out
}

/// How the connection ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// The far end closed it (end of stream).
    Closed,
    /// The far end broke it: a reset, or a write into a closed connection.
    Broken(String),
    /// We could not even connect (or finish TLS): nothing was sent.
    Refused(String),
    /// The far end kept it open past our bound: the attack was not dealt with.
    GaveUp,
}

impl End {
    /// Whether the far end ended the connection.
    pub fn by_far_end(&self) -> bool {
        matches!(self, End::Closed | End::Broken(_))
    }
}

/// The report of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Our end of the connection, as the far end logs it.
    pub local: Option<String>,
    /// Whether the bytes travelled inside a TLS session.
    pub tls: bool,
    pub written: u64,
    pub received: u64,
    /// The first bytes received.
    pub head: Vec<u8>,
    pub end: End,
    pub elapsed_ms: u64,
}

impl Sent {
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }
}

/// Opening TLS first, as a member would.
#[derive(Debug, Clone)]
pub struct TlsCaller {
    pub configs: TlsConfigs,
    /// The name the callee's certificate must hold.
    pub server_name: String,
}

/// Connects to `to` (then TLS, with `tls`), writes `payload` (at once, or one byte per `pace`
/// until the far end ends the connection) and reads until it does; gives up after `bound`.
pub async fn send(
    to: SocketAddr,
    tls: Option<&TlsCaller>,
    payload: &[u8],
    pace: Option<Duration>,
    bound: Duration,
) -> Sent {
    let started = Instant::now();
    let mut sent = Sent {
        local: None,
        tls: tls.is_some(),
        written: 0,
        received: 0,
        head: Vec::new(),
        end: End::GaveUp,
        elapsed_ms: 0,
    };
    let work = async {
        let tcp = match TcpStream::connect(to).await {
            Ok(tcp) => tcp,
            Err(e) => return End::Refused(format!("connect: {e}")),
        };
        sent.local = tcp.local_addr().ok().map(|a| a.to_string());
        match tls {
            None => exchange(tcp, payload, pace, &mut sent).await,
            Some(caller) => match tls::connect(&caller.configs, tcp, &caller.server_name).await {
                Ok((stream, _)) => exchange(stream, payload, pace, &mut sent).await,
                Err(e) => End::Refused(format!("TLS: {e}")),
            },
        }
    };
    let end = tokio::time::timeout(bound, work).await;
    sent.end = end.unwrap_or(End::GaveUp);
    sent.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    sent
}

/// Writes and reads until the far end ends the connection.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    payload: &[u8],
    pace: Option<Duration>,
    sent: &mut Sent,
) -> End {
    let mut buf = vec![0u8; 16 * 1024];
    let Some(pace) = pace else {
        // Counted chunk by chunk: the far end may break the connection halfway through (and a
        // TLS stream reports a write that failed on the wire as failed as a whole).
        let mut rest = payload;
        while !rest.is_empty() {
            let chunk = &rest[..rest.len().min(CHUNK)];
            match stream.write(chunk).await {
                Ok(0) => return End::Broken("write: the connection accepts no more".into()),
                Ok(n) => {
                    sent.written += n as u64;
                    rest = &rest[n..];
                }
                Err(e) => return End::Broken(format!("write: {e}")),
            }
        }
        let _ = stream.flush().await;
        return read_to_end(&mut stream, &mut buf, sent).await;
    };
    for byte in payload {
        if let Err(e) = stream.write_all(std::slice::from_ref(byte)).await {
            return End::Broken(format!("write: {e}"));
        }
        let _ = stream.flush().await;
        sent.written += 1;
        // Between two bytes, listen: the far end may answer or close at any point.
        if let Ok(read) = tokio::time::timeout(pace, stream.read(&mut buf)).await {
            match read {
                Ok(0) => return End::Closed,
                Ok(n) => keep(sent, &buf[..n]),
                Err(e) => return End::Broken(format!("read: {e}")),
            }
        }
    }
    read_to_end(&mut stream, &mut buf, sent).await
}

async fn read_to_end<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8], sent: &mut Sent) -> End {
    loop {
        match stream.read(buf).await {
            Ok(0) => return End::Closed,
            Ok(n) => keep(sent, &buf[..n]),
            Err(e) => return End::Broken(format!("read: {e}")),
        }
    }
}

fn keep(sent: &mut Sent, bytes: &[u8]) {
    sent.received += bytes.len() as u64;
    let room = HEAD_LEN.saturating_sub(sent.head.len());
    sent.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_have_their_shape() {
        assert_eq!(Payload::Garbage.bytes("edge-1").len(), GARBAGE_LEN);
        assert_eq!(Payload::Junk.bytes("edge-1").len(), JUNK_LEN);
        assert_ne!(Payload::Garbage.bytes("x")[0], 0x16);
        let hello = Payload::SlowHello.bytes("edge-1");
        assert!(hello.starts_with(b"HAProxyS 2.1\nedge-1\nslowpoke 0123"));
        // The third line never ends.
        assert_eq!(hello.iter().filter(|b| **b == b'\n').count(), 2);
        assert_eq!(hello.len(), TRICKLE_LEN);
        let client_hello = Payload::SlowClientHello.bytes("edge-1");
        assert_eq!(client_hello[..3], [0x16, 0x03, 0x01]);
        assert_eq!(client_hello.len(), TRICKLE_LEN);
        let request = Payload::SlowRequest.bytes("edge-1");
        assert!(request.starts_with(b"GET /readyz HTTP/1.1\r\n"));
        assert!(!request.windows(4).any(|w| w == b"\r\n\r\n"));
        assert_eq!(Payload::Junk.pace(), None);
        assert_eq!(Payload::SlowRequest.pace(), Some(TRICKLE_PACE));
        // A trickled payload outlasts the sidecar's bounds (5 s, 10 s for TLS).
        let trickle = TRICKLE_PACE * u32::try_from(TRICKLE_LEN).unwrap();
        assert!(trickle > Duration::from_secs(20), "{trickle:?}");
    }

    #[test]
    fn only_the_far_end_ending_counts() {
        assert!(End::Closed.by_far_end());
        assert!(End::Broken("read: reset".into()).by_far_end());
        assert!(!End::GaveUp.by_far_end());
        assert!(!End::Refused("connect".into()).by_far_end());
    }

    #[test]
    fn a_closing_listener_is_reported_closed_and_a_silent_one_given_up_on() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = closing.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut s, _) = closing.accept().await.unwrap();
                let mut b = [0u8; 4];
                let _ = s.read_exact(&mut b).await;
                let _ = s.write_all(b"400\n").await;
            });
            let sent = send(addr, None, b"abcd", None, Duration::from_secs(5)).await;
            assert!(sent.end.by_far_end(), "{sent:?}");
            assert_eq!(sent.head_text(), "400\n");
            assert_eq!(sent.written, 4);

            let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = silent.local_addr().unwrap();
            let held = tokio::spawn(async move { silent.accept().await });
            let sent = send(addr, None, b"x", None, Duration::from_millis(200)).await;
            assert_eq!(sent.end, End::GaveUp);
            drop(held);
        });
    }
}
