//! The text handshake on a socket (§2): reading a hello or a status line with a byte bound,
//! writing ours. The decisions (which status to answer) are the codec's and the callers'.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::codec::handshake::MAX_LINE_LEN;
use crate::codec::{decode_hello, decode_status, early_status, Hello, HelloLines, StatusCode};

/// How long a caller has to complete its hello, and a callee to answer with its status.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Three lines of at most [`MAX_LINE_LEN`] bytes plus CR LF each: a longer hello is refused
/// without reading further.
const HELLO_MAX: usize = 3 * (MAX_LINE_LEN + 2);

/// What came in instead of, or as, a hello.
#[derive(Debug)]
pub(crate) enum HelloRead {
    /// The three lines; any bytes after them stay in the buffer (binary messages may follow).
    Lines(HelloLines),
    /// Lines 1–2 already decide an error status (HAProxy answers these before line 3).
    Early(StatusCode),
    /// Not a hello at all: close without a status. The text says what was wrong.
    Bad(String),
    /// Closed before sending a byte (a TCP probe, a port scan): nothing to report.
    Silent,
}

/// Reads until `buf` holds a complete hello. `early_name`: our own name, to answer a wrong
/// line 1 or 2 early as HAProxy does (`None` on the local link, where no status but 200 is
/// ever sent). The caller bounds the time.
pub(crate) async fn read_hello<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    early_name: Option<&str>,
) -> HelloRead {
    loop {
        match decode_hello(buf) {
            Ok(Some((lines, used))) => {
                let _ = buf.split_to(used);
                return HelloRead::Lines(lines);
            }
            Err(e) => return HelloRead::Bad(e.to_string()),
            Ok(None) => {}
        }
        if let Some(status) = early_name.and_then(|name| early_status(buf, name)) {
            return HelloRead::Early(status);
        }
        if buf.len() >= HELLO_MAX {
            return HelloRead::Bad(format!("no complete hello within {HELLO_MAX} bytes"));
        }
        buf.reserve(HELLO_MAX - buf.len());
        match rd.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return HelloRead::Silent,
            Ok(0) => {
                return HelloRead::Bad(format!(
                    "connection closed in the middle of a hello ({} bytes)",
                    buf.len()
                ))
            }
            Ok(_) => {}
            Err(e) => return HelloRead::Bad(format!("read failed during the hello: {e}")),
        }
    }
}

/// Why no status line came.
#[derive(Debug)]
pub(crate) enum StatusError {
    Closed,
    Io(std::io::Error),
    Garbled(String),
}

impl std::fmt::Display for StatusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatusError::Closed => f.write_str("the peer closed the connection without a status"),
            StatusError::Io(e) => write!(f, "read failed while waiting for the status: {e}"),
            StatusError::Garbled(why) => write!(f, "unreadable status line: {why}"),
        }
    }
}

/// Reads the callee's status line; bytes after it stay in `buf`. The caller bounds the time.
pub(crate) async fn read_status<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
) -> Result<StatusCode, StatusError> {
    loop {
        match decode_status(buf) {
            Ok(Some((status, used))) => {
                let _ = buf.split_to(used);
                return Ok(status);
            }
            Ok(None) => {}
            Err(e) => return Err(StatusError::Garbled(e.to_string())),
        }
        buf.reserve(MAX_LINE_LEN + 2);
        match rd.read_buf(buf).await {
            Ok(0) => return Err(StatusError::Closed),
            Ok(_) => {}
            Err(e) => return Err(StatusError::Io(e)),
        }
    }
}

/// Our hello to `callee`, as `caller` with our pid.
pub(crate) fn hello_bytes(callee: &str, caller: &str) -> Result<Bytes, String> {
    let mut out = BytesMut::new();
    Hello::new(callee, caller, std::process::id())
        .encode(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

/// A status line to send.
pub(crate) fn status_bytes(status: StatusCode) -> Bytes {
    let mut out = BytesMut::new();
    status.encode(&mut out);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hello_split_across_reads_keeps_what_follows() {
        let (mut a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for part in [&b"HAProxyS 2.1\nedge"[..], b"-0\nedge-1 12 1\n\x00\x04"] {
                b.write_all(part).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let mut buf = BytesMut::new();
        let HelloRead::Lines(lines) = read_hello(&mut a, &mut buf, Some("edge-0")).await else {
            panic!("no hello");
        };
        assert_eq!(lines.remote_name, b"edge-0");
        assert_eq!(&buf[..], b"\x00\x04");
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn wrong_callee_is_answered_early_and_garbage_refused() {
        let mut input: &[u8] = b"HAProxyS 2.1\nedge-9\n";
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_hello(&mut input, &mut buf, Some("edge-0")).await,
            HelloRead::Early(StatusCode::LocalNameMismatch)
        ));
        let mut input: &[u8] = b"HAProxyS 2.1\nedge-9\n";
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_hello(&mut input, &mut buf, None).await,
            HelloRead::Bad(_)
        ));
        let mut input: &[u8] = b"";
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_hello(&mut input, &mut buf, None).await,
            HelloRead::Silent
        ));
        let noise = vec![0xffu8; 4096];
        let mut input: &[u8] = &noise;
        let mut buf = BytesMut::new();
        let HelloRead::Bad(why) = read_hello(&mut input, &mut buf, None).await else {
            panic!("garbage accepted");
        };
        assert!(why.contains("longer than"), "{why}");
        assert!(buf.len() <= HELLO_MAX);
    }

    #[tokio::test]
    async fn status_then_binary() {
        let mut input: &[u8] = b"200\n\x00\x00";
        let mut buf = BytesMut::new();
        assert_eq!(
            read_status(&mut input, &mut buf).await.unwrap(),
            StatusCode::Success
        );
        assert_eq!(&buf[..], b"\x00\x00");
        let mut input: &[u8] = b"20";
        let mut buf = BytesMut::new();
        assert!(matches!(
            read_status(&mut input, &mut buf).await,
            Err(StatusError::Closed)
        ));
    }
}
