//! The mesh port: other members call here. Mutual TLS first (unless `tls: false`), with the
//! configs current at that moment; then the hello, answered as HAProxy would (§2.2: `503` if
//! line 2 is not this pod, `504` if the caller is not a member — after re-reading
//! `members.yaml` if it changed on disk); then the name the caller claims must be the one its
//! certificate was issued for. A valid caller gets `200` and a session, replacing an existing
//! session with the same member (§2.5).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::admin::views::Direction;
use crate::codec::{check_hello, HelloLines, StatusCode};
use crate::tls::{self, PeerIdentity};

use super::conn::Established;
use super::handshake::{read_hello, status_bytes, HelloRead, HANDSHAKE_TIMEOUT};
use super::listen;
use super::membership;
use super::peers::PeerKey;
use super::state::{NewSession, Shared};

/// Mesh handshakes (TLS + hello) in progress at once; more connections are closed on accept.
const MAX_HANDSHAKES: usize = 64;
/// TLS handshake bound.
pub(crate) const TLS_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts members' calls until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    if let Ok(addr) = listener.local_addr() {
        let mode = if shared.tls.is_some() {
            "mutual TLS"
        } else {
            "plain text (members.yaml tls: false)"
        };
        tracing::info!(%addr, "mesh listening ({mode})");
    }
    while let Some((tcp, addr)) = listen::next(&shared, &listener, "mesh port").await {
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            shared.metrics.error("mesh_handshake_limit");
            tracing::debug!(%addr, "too many mesh handshakes in progress: connection closed");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let task = Arc::clone(&shared);
        shared.spawn(async move {
            let established = tokio::select! {
                () = task.shutdown.cancelled() => None,
                established = accept(Arc::clone(&task), tcp, addr, slot) => established,
            };
            if let Some(session) = established {
                session.drive().await;
            }
        });
    }
}

async fn accept(
    shared: Arc<Shared>,
    tcp: TcpStream,
    addr: SocketAddr,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Option<Established> {
    // A connection closed before its first byte is what TCP probes and port scans look like:
    // not worth a warning.
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {
            tracing::debug!(%addr, "connection from {addr} on the mesh port closed before a byte");
            return None;
        }
        Err(_) => {
            tracing::warn!(
                %addr,
                "connection from {addr} on the mesh port sent nothing within {} s: closed",
                HANDSHAKE_TIMEOUT.as_secs()
            );
            shared.metrics.error("mesh_hello_timeout");
            return None;
        }
        Ok(Ok(_)) => {}
    }
    let Some(watch) = &shared.tls else {
        return incoming(shared, tcp, addr, None, slot).await;
    };
    let Some(configs) = watch.current() else {
        tracing::warn!(
            %addr,
            "mesh connection from {addr} closed: this pod's TLS certificate is not loaded yet \
             (see /readyz)"
        );
        shared.metrics.error("tls_not_loaded");
        return None;
    };
    match tokio::time::timeout(TLS_TIMEOUT, tls::accept(&configs, tcp)).await {
        Ok(Ok((stream, identity))) => incoming(shared, stream, addr, Some(identity), slot).await,
        Ok(Err(e)) => {
            tracing::warn!(%addr, kind = e.metric_label(), "TLS handshake with {addr} on the mesh port failed: {e}");
            shared.metrics.error(e.metric_label());
            None
        }
        Err(_) => {
            tracing::warn!(%addr, "TLS handshake with {addr} on the mesh port timed out");
            shared.metrics.error("tls_timeout");
            None
        }
    }
}

async fn incoming<S>(
    shared: Arc<Shared>,
    mut stream: S,
    addr: SocketAddr,
    identity: Option<PeerIdentity>,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Option<Established>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let pod = shared.settings.pod.clone();
    let mut buf = BytesMut::new();
    let read = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        read_hello(&mut stream, &mut buf, Some(&pod)),
    )
    .await;
    let lines = match read {
        Ok(HelloRead::Lines(lines)) => lines,
        Ok(HelloRead::Early(status)) => {
            let line2 = second_line(&buf);
            refuse(
                &shared,
                &mut stream,
                status,
                &explain(status, addr, &line2, "", &pod),
            )
            .await;
            return None;
        }
        Ok(HelloRead::Silent) => {
            tracing::debug!(%addr, "connection from {addr} on the mesh port closed before a hello");
            return None;
        }
        Ok(HelloRead::Bad(why)) => {
            tracing::warn!(
                %addr,
                "connection from {addr} on the mesh port is not a peers-protocol hello ({why}): \
                 closed"
            );
            shared.metrics.error("mesh_bad_hello");
            return None;
        }
        Err(_) => {
            tracing::warn!(
                %addr,
                "connection from {addr} on the mesh port sent no complete hello within {} s: \
                 closed",
                HANDSHAKE_TIMEOUT.as_secs()
            );
            shared.metrics.error("mesh_hello_timeout");
            return None;
        }
    };
    let mut checked = check(&shared, &lines, &pod);
    if checked == Err(StatusCode::UnknownPeer) && membership::reload_if_changed(&shared) {
        checked = check(&shared, &lines, &pod);
    }
    let hello = match checked {
        Ok(hello) => hello,
        Err(status) => {
            let line2 = String::from_utf8_lossy(&lines.remote_name).into_owned();
            let caller = caller_name(&lines);
            let text = explain(status, addr, &line2, &caller, &pod);
            refuse(&shared, &mut stream, status, &text).await;
            return None;
        }
    };
    let name = hello.local_name.clone();
    if let Some(identity) = &identity {
        if let Err(e) = identity.check_claimed_name(&name) {
            let expected = identity
                .pod_name()
                .map_or_else(|| identity.dns_names.join(", "), str::to_owned);
            let text = format!(
                "mesh connection from {addr} refused: expected {expected} (the name in its \
                 certificate), found '{name}' in its hello: {e}"
            );
            tracing::warn!(%addr, peer = %name, "{text}");
            shared.metrics.error(e.metric_label());
            if let Some(peer) = shared.lock().members.get_mut(&name) {
                peer.last_error = Some(text);
            }
            return None;
        }
    }
    let new = NewSession {
        key: PeerKey::Member(name.clone()),
        direction: Direction::Inbound,
        pid: hello.pid(),
        remote_addr: Some(addr),
    };
    let greeting = Bytes::from_static(b"200\n");
    let established = Established::register(&shared, &new, &name, Box::new(stream), buf, greeting);
    drop(slot);
    match established {
        Ok(session) => {
            tracing::info!(peer = %name, %addr, "{name} connected from {addr}: session established");
            Some(session)
        }
        Err(e) => {
            tracing::warn!(peer = %name, "session with {name} cannot be created: {e:?}");
            None
        }
    }
}

fn check(
    shared: &Shared,
    lines: &HelloLines,
    pod: &str,
) -> Result<crate::codec::Hello, StatusCode> {
    check_hello(lines, pod, |name| shared.lock().members.contains_key(name))
}

/// Sends an error status, then closes; logs and counts it.
async fn refuse<S: AsyncWrite + Unpin>(
    shared: &Shared,
    stream: &mut S,
    status: StatusCode,
    text: &str,
) {
    tracing::warn!(code = status.code(), "{text}");
    shared.metrics.error(match status {
        StatusCode::LocalNameMismatch => "mesh_wrong_callee",
        StatusCode::UnknownPeer => "mesh_unknown_peer",
        _ => "mesh_bad_hello",
    });
    let answer = async {
        stream.write_all(&status_bytes(status)).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

fn second_line(buf: &[u8]) -> String {
    let line = buf.split(|&b| b == b'\n').nth(1).unwrap_or_default();
    String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned()
}

fn caller_name(lines: &HelloLines) -> String {
    let name = lines.peer.split(|&b| b == b' ').next().unwrap_or_default();
    String::from_utf8_lossy(name).into_owned()
}

/// The log line for a refused hello: what was found and what to check.
fn explain(status: StatusCode, addr: SocketAddr, line2: &str, caller: &str, pod: &str) -> String {
    match status {
        StatusCode::LocalNameMismatch => format!(
            "mesh caller at {addr} asked for '{line2}' but this pod is '{pod}': answered 503; the \
             caller's address for {line2} leads here (stale DNS or a wrong members.yaml address)"
        ),
        StatusCode::UnknownPeer => format!(
            "mesh caller at {addr} claims to be '{caller}', which is not a member in this pod's \
             members.yaml: answered 504; a new member is admitted once the ConfigMap update \
             reaches this pod"
        ),
        other => format!("mesh caller at {addr} sent a bad hello: answered {other}"),
    }
}
