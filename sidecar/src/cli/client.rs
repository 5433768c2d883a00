//! A one-request HTTP/1.1 client for the admin port (plain `http://` only: the admin server
//! speaks nothing else). Bounded in time and in response size.

use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest response body accepted.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// Connect, send, and read the whole answer within this.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// An admin server's base address, `http://host:port[/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUrl {
    host: String,
    port: u16,
    prefix: String,
}

impl AdminUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("--admin {text:?} is not usable: {why} (e.g. http://127.0.0.1:9090)")
        };
        let uri: Uri = text.trim().parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => return Err(bad(&format!("scheme {other} is not served, only http"))),
            None => return Err(bad("it has no http:// scheme")),
        }
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it has no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            host,
            port: uri.port_u16().unwrap_or(80),
            prefix,
        })
    }

    pub fn local(port: u16) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            prefix: String::new(),
        }
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for AdminUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
}

/// `GET <base><path_and_query>` with the given `Accept`.
pub async fn get(base: &AdminUrl, path_and_query: &str, accept: &str) -> Result<Response, String> {
    let url = format!("{base}{path_and_query}");
    let unreachable = |why: String| {
        format!(
            "cannot query the admin server at {url}: {why}: is the sidecar running? pass --admin \
             <url> if it listens elsewhere"
        )
    };
    tokio::time::timeout(TIMEOUT, fetch(base, path_and_query, accept))
        .await
        .map_err(|_| unreachable(format!("no answer within {}s", TIMEOUT.as_secs())))?
        .map_err(unreachable)
}

async fn fetch(base: &AdminUrl, path_and_query: &str, accept: &str) -> Result<Response, String> {
    let stream = TcpStream::connect((base.host.as_str(), base.port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(conn);
    let request = Request::get(format!("{}{path_and_query}", base.prefix))
        .header(HOST, base.authority())
        .header(ACCEPT, accept)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    driver.abort();
    let body =
        String::from_utf8(body.to_vec()).map_err(|_| "the answer is not UTF-8".to_string())?;
    Ok(Response {
        status,
        content_type,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls() {
        let u = AdminUrl::parse("http://127.0.0.1:9090").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:9090");
        let u = AdminUrl::parse("http://[::1]:9090/").unwrap();
        assert_eq!(u.to_string(), "http://[::1]:9090");
        assert_eq!(u.host, "::1");
        let u = AdminUrl::parse("http://proxy.local/ns/pod/").unwrap();
        assert_eq!(u.to_string(), "http://proxy.local:80/ns/pod");
        assert_eq!(
            AdminUrl::parse("https://x:1").unwrap_err(),
            "--admin \"https://x:1\" is not usable: scheme https is not served, only http (e.g. \
             http://127.0.0.1:9090)"
        );
        assert!(AdminUrl::parse("127.0.0.1:9090").is_err());
        assert!(AdminUrl::parse("http://").is_err());
        assert_eq!(AdminUrl::local(9091).to_string(), "http://127.0.0.1:9091");
    }
}
