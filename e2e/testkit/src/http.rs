//! A tiny HTTP/1.1 client, enough to drive traffic through a HAProxy frontend so that
//! `http-request track-sc0 …` rules create and update stick-table entries.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Answers from a test frontend are tiny; anything bigger is a mistake.
const MAX_RESPONSE: u64 = 1 << 20;

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET <path>` with extra headers, `Connection: close`, and the whole answer read back.
pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<HttpResponse> {
    http_request(addr, "GET", path, headers, b"")
}

/// Any method, with a body (sent with `Content-Length`).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse> {
    let fail = |detail: String| Error::Http {
        addr: addr.to_string(),
        detail,
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| fail(format!("connect: {e}")))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| fail(format!("socket options: {e}")))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream
        .write_all(&bytes)
        .map_err(|e| fail(format!("send: {e}")))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(|e| fail(format!("receive: {e}")))?;
    parse_response(&raw).ok_or_else(|| {
        fail(format!(
            "malformed response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

/// Status line, headers, then the body (chunked bodies are returned as sent).
fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(HttpResponse {
        status,
        headers,
        body: raw[head_end + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_a_response() {
        let response =
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nX-A: b c\r\n\r\nhi").unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Content-Length"), Some("2"));
        assert_eq!(response.header("x-a"), Some("b c"));
        assert_eq!(response.body, b"hi");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_none());
        assert!(parse_response(b"SSH-2.0\r\n\r\n").is_none());
        assert!(parse_response(b"HTTP/1.1 abc OK\r\n\r\n").is_none());
    }

    #[test]
    fn sends_headers_and_reads_the_answer() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "client closed before the end of its headers");
                seen.extend_from_slice(&buf[..n]);
            }
            conn.write_all(b"HTTP/1.1 204 No Content\r\nx-seen: yes\r\n\r\n")
                .unwrap();
            String::from_utf8(seen).unwrap()
        });
        let response = http_get(addr, "/p?q=1", &[("x-key", "abc")]).unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /p?q=1 HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nx-key: abc\r\n"), "{request}");
        assert!(request.contains("\r\nConnection: close\r\n"), "{request}");
        assert_eq!(response.status, 204);
        assert_eq!(response.header("X-Seen"), Some("yes"));
    }
}
