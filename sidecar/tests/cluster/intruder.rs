//! A scripted client that calls a sidecar's ports the way a hostile or broken peer would: over
//! TLS with the certificate it chooses (tokio-rustls, configs from the sidecar's own builder
//! without validation, as a misconfigured pod could present them) or over plain TCP, sending a
//! peers-protocol hello built with the codec, or any bytes at all, then reading whatever comes
//! back until the sidecar closes.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use haproxy_peers_sidecar::codec::Hello;
use haproxy_peers_sidecar::tls::{TlsConfigs, TlsMaterial};
use haproxy_peers_testkit::pki::{secret, write_secret, Ca, Leaf};
use rustls::pki_types::ServerName;
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Longest wait for the sidecar to end a connection it must refuse: above its own handshake
/// bounds (5 s for a hello, 10 s for TLS).
pub const REFUSAL_BOUND: Duration = Duration::from_secs(15);

/// A TLS identity: the client config a peer holding `leaf` (named `name`) and trusting
/// `bundle` would use.
pub struct Identity {
    pub configs: TlsConfigs,
    _dir: TempDir,
}

impl Identity {
    pub fn new(bundle: &[&Ca], name: &str, leaf: &Leaf) -> Identity {
        let dir = tempfile::tempdir().expect("temp dir");
        write_secret(dir.path(), &secret(bundle, &[(name, leaf)])).expect("write secret");
        Identity {
            configs: load(dir.path(), name),
            _dir: dir,
        }
    }
}

/// The configs of member `name` from the group's TLS directory.
pub fn load(dir: &Path, name: &str) -> TlsConfigs {
    let material = TlsMaterial::load(dir, name).expect("material loads");
    TlsConfigs::build(&material).expect("configs build")
}

/// `HAProxyS 2.1\n<callee>\n<caller> <pid> 1\n`, as the codec encodes it.
pub fn hello(callee: &str, caller: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    Hello::new(callee, caller, 4242)
        .encode(&mut out)
        .expect("hello encodes");
    out.to_vec()
}

/// How a sidecar answered one connection.
#[derive(Debug)]
pub struct Outcome {
    /// Our end of the connection, as the sidecar logs it.
    pub local: SocketAddr,
    /// The TLS handshake as the client saw it (with TLS 1.3 a refusal of our certificate shows
    /// on the first read instead).
    pub tls: Result<(), String>,
    /// Everything received before the end.
    pub received: Vec<u8>,
    /// How the connection ended: `None` for an orderly close, else the error.
    pub ended_by: Option<String>,
}

impl Outcome {
    pub fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }
}

/// How to write the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// One write.
    AtOnce,
    /// One byte per write, with this pause between bytes, until the sidecar closes.
    ByteAtATime(Duration),
}

/// Connects to `to` (TLS with `tls` if given, checking the server as `server_name`), writes
/// `payload` at `pace`, and reads until the sidecar ends the connection. Panics if the sidecar
/// keeps it open beyond [`REFUSAL_BOUND`].
pub async fn call(
    to: SocketAddr,
    tls: Option<(&TlsConfigs, &str)>,
    payload: &[u8],
    pace: Pace,
) -> Outcome {
    let tcp = TcpStream::connect(to).await.expect("connect");
    let local = tcp.local_addr().expect("local addr");
    let Some((configs, server_name)) = tls else {
        let (tls, received, ended_by) = exchange(tcp, payload, pace).await;
        return Outcome {
            local,
            tls,
            received,
            ended_by,
        };
    };
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let connector = TlsConnector::from(configs.client.clone());
    match tokio::time::timeout(REFUSAL_BOUND, connector.connect(name, tcp)).await {
        Err(_) => panic!("TLS handshake with {to} hung for {REFUSAL_BOUND:?}"),
        Ok(Err(e)) => Outcome {
            local,
            tls: Err(e.to_string()),
            received: Vec::new(),
            ended_by: Some(e.to_string()),
        },
        Ok(Ok(stream)) => {
            let (_, received, ended_by) = exchange(stream, payload, pace).await;
            Outcome {
                local,
                tls: Ok(()),
                received,
                ended_by,
            }
        }
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    payload: &[u8],
    pace: Pace,
) -> (Result<(), String>, Vec<u8>, Option<String>) {
    let work = async {
        let mut received = Vec::new();
        let mut buf = vec![0u8; 4096];
        match pace {
            Pace::AtOnce => {
                // The sidecar may close before it read everything: a failed write is an end too.
                if let Err(e) = stream.write_all(payload).await {
                    return (received, Some(format!("write: {e}")));
                }
                let _ = stream.flush().await;
            }
            Pace::ByteAtATime(pause) => {
                for byte in payload {
                    if let Err(e) = stream.write_all(std::slice::from_ref(byte)).await {
                        return (received, Some(format!("write: {e}")));
                    }
                    let _ = stream.flush().await;
                    // Stop writing as soon as the sidecar answers or closes.
                    if let Ok(read) = tokio::time::timeout(pause, stream.read(&mut buf)).await {
                        match read {
                            Ok(0) => return (received, None),
                            Ok(n) => received.extend_from_slice(&buf[..n]),
                            Err(e) => return (received, Some(format!("read: {e}"))),
                        }
                    }
                }
            }
        }
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return (received, None),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) => return (received, Some(format!("read: {e}"))),
            }
        }
    };
    match tokio::time::timeout(REFUSAL_BOUND, work).await {
        Ok((received, ended_by)) => (Ok(()), received, ended_by),
        Err(_) => panic!("the sidecar kept a connection it must refuse open for {REFUSAL_BOUND:?}"),
    }
}

/// A current-thread runtime for one scripted exchange inside a synchronous test.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}
