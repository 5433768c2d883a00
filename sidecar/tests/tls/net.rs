//! Loopback plumbing: one handshake between two configs, echo sessions, bounded waits.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use haproxy_peers_sidecar::tls::{self, HandshakeError, PeerIdentity, TlsConfigs, TlsMaterial};
use rustls::pki_types::UnixTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsStream;

pub type Side = Result<(TlsStream<TcpStream>, PeerIdentity), HandshakeError>;

/// Upper bound for any single wait; only hit when something is broken.
pub const BOUND: Duration = Duration::from_secs(10);

pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {BOUND:?}: {what}"))
}

/// Configs for `pod` from `dir`, validated as the reloader would.
pub fn configs(dir: &Path, pod: &str) -> TlsConfigs {
    let material = TlsMaterial::load(dir, pod).expect("material loads");
    TlsConfigs::validated(&material, UnixTime::now()).expect("material is valid")
}

/// Configs built without validation: how a misbehaving peer could still present bad material.
pub fn unchecked(dir: &Path, pod: &str) -> TlsConfigs {
    let material = TlsMaterial::load(dir, pod).expect("material loads");
    TlsConfigs::build(&material).expect("configs build")
}

/// One TCP connection on loopback; `server` accepts it, `client` dials it as `dial`.
pub async fn handshake(server: &TlsConfigs, client: &TlsConfigs, dial: &str) -> (Side, Side) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = server.clone();
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        tls::accept(&server, tcp).await
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let client = within("client handshake", tls::connect(client, tcp, dial)).await;
    let server = within("server handshake", accepted)
        .await
        .expect("accept task");
    (server, client)
}

/// Under TLS 1.3 a client learns that the server refused its certificate only on its first
/// read; either way the refusal must come back as a [`HandshakeError`].
pub async fn client_refusal(client: Side) -> HandshakeError {
    match client {
        Err(error) => error,
        Ok((mut stream, _)) => {
            let mut byte = [0u8; 1];
            match within("read after refused handshake", stream.read(&mut byte)).await {
                Ok(n) => panic!("refused client read {n} bytes instead of an error"),
                Err(error) => HandshakeError::from_io(error),
            }
        }
    }
}

/// Echoes everything until the peer closes.
pub async fn echo(mut stream: TlsStream<TcpStream>) {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Sends `message` and expects it back unchanged.
pub async fn ping(stream: &mut TlsStream<TcpStream>, message: &str) {
    within("ping", async {
        stream.write_all(message.as_bytes()).await.expect("write");
        let mut back = vec![0u8; message.len()];
        stream.read_exact(&mut back).await.expect("read echo");
        assert_eq!(back, message.as_bytes());
    })
    .await;
}
