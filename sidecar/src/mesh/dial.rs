//! Dialing one member: its address from `members.yaml` re-resolved at every attempt (a pod
//! that comes back with a new IP is reached without any reload), TLS with the member's name as
//! server name (the bare `<pod>` SAN of every leaf: identity does not depend on DNS), the hello,
//! the status, then the session. Failures back off exponentially with jitter; after a session
//! ends or is replaced, HAProxy's random 50–2050 ms pause.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::admin::views::{Direction, LastStatus, SessionState};
use crate::codec::StatusCode;
use crate::tls;

use super::backoff::Backoff;
use super::conn::Established;
use super::handshake::{hello_bytes, read_status, StatusError, HANDSHAKE_TIMEOUT};
use super::local::last_status;
use super::peers::PeerKey;
use super::state::{NewSession, RegisterError, Shared};
use super::supervisor::TLS_TIMEOUT;

/// How often an idle dialer looks again (session gone, membership changed).
const RECHECK: Duration = Duration::from_millis(250);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the dialer of member `name`; cancel the token when it leaves the group. Does not
/// take the state lock (callers may hold it).
pub(crate) fn start(shared: &Arc<Shared>, name: &str) -> CancellationToken {
    let token = shared.shutdown.child_token();
    let task = Arc::clone(shared);
    let (name, stop) = (name.to_owned(), token.clone());
    shared.spawn(async move { dial_loop(task, name, stop).await });
    token
}

/// Why an attempt did not give a session.
struct Failed {
    message: String,
    /// Also counted in the errors metric.
    kind: &'static str,
}

async fn dial_loop(shared: Arc<Shared>, name: String, stop: CancellationToken) {
    let mut backoff = Backoff::default();
    loop {
        if stop.is_cancelled() {
            return;
        }
        let now = shared.clock.now();
        let due = {
            let core = shared.lock();
            let Some(peer) = core.members.get(&name) else {
                return;
            };
            (core.self_member && peer.live.is_none()).then_some(peer.next_dial_at)
        };
        let wake = match due {
            Some(at) if at <= now => None,
            Some(at) => Some(
                shared
                    .clock
                    .instant(at)
                    .min(tokio::time::Instant::now() + RECHECK),
            ),
            None => Some(tokio::time::Instant::now() + RECHECK),
        };
        if let Some(wake) = wake {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(wake) => continue,
            }
        }
        let result = tokio::select! {
            () = stop.cancelled() => return,
            result = attempt(&shared, &name) => result,
        };
        let failed = match result {
            Ok(session) => {
                backoff.reset();
                if let Some(session) = session {
                    session.drive().await;
                }
                continue;
            }
            Err(failed) => failed,
        };
        let now = shared.clock.now();
        let mut guard = shared.lock();
        let core = &mut *guard;
        let delay = backoff.failed(&mut core.rng);
        let Some(peer) = core.members.get_mut(&name) else {
            return;
        };
        if peer.last_error.as_deref() == Some(failed.message.as_str()) {
            tracing::debug!(peer = %name, "{}", failed.message);
        } else {
            tracing::warn!(peer = %name, kind = failed.kind, "{}", failed.message);
        }
        shared.metrics.error(failed.kind);
        peer.last_error = Some(failed.message);
        peer.next_dial_at = now.saturating_add(delay);
        if peer.live.is_none() {
            peer.set_state(SessionState::Backoff, &shared.metrics);
        }
    }
}

/// One dial, up to the session: `Ok(None)` when another session with the member exists
/// meanwhile (or it left the group).
async fn attempt(shared: &Arc<Shared>, name: &str) -> Result<Option<Established>, Failed> {
    let port = shared.settings.mesh_port;
    let address = {
        let mut core = shared.lock();
        let Some(peer) = core.members.get_mut(name) else {
            return Ok(None);
        };
        if peer.last_status != LastStatus::None {
            peer.reconnects = peer.reconnects.saturating_add(1);
            shared.metrics.reconnect(name);
        }
        peer.last_status = LastStatus::Conn;
        peer.set_state(SessionState::Connecting, &shared.metrics);
        peer.address.clone()
    };
    let host = address;
    let resolved = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| {
        fail(
            "dns",
            format!("resolving {host} for member {name} timed out"),
        )
    })?
    .map_err(|e| fail("dns", format!("cannot resolve {host} (member {name}): {e}")))?;
    let mut last = String::from("no address");
    let mut connected = None;
    for addr in resolved {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                connected = Some((tcp, addr));
                break;
            }
            Ok(Err(e)) => last = format!("{addr}: {e}"),
            Err(_) => last = format!("{addr}: timed out"),
        }
    }
    let (tcp, addr) = connected.ok_or_else(|| {
        fail(
            "connect",
            format!("cannot connect to member {name} at {host}:{port}: {last}"),
        )
    })?;
    let _ = tcp.set_nodelay(true);
    let Some(watch) = &shared.tls else {
        return handshake(shared, name, tcp, addr, false).await;
    };
    let configs = watch.current().ok_or_else(|| {
        fail(
            "tls_not_loaded",
            format!("not dialing {name}: this pod's TLS certificate is not loaded yet"),
        )
    })?;
    let (stream, identity) = tokio::time::timeout(TLS_TIMEOUT, tls::connect(&configs, tcp, name))
        .await
        .map_err(|_| {
            fail(
                "tls_timeout",
                format!("TLS handshake with {name} at {addr} timed out"),
            )
        })?
        .map_err(|e| {
            fail(
                e.metric_label(),
                format!("TLS handshake with member {name} at {addr} failed: {e}"),
            )
        })?;
    identity.check_claimed_name(name).map_err(|e| {
        fail(
            e.metric_label(),
            format!("member {name} at {addr}: expected {name}, found a certificate for another peer: {e}"),
        )
    })?;
    handshake(shared, name, stream, addr, true).await
}

fn fail(kind: &'static str, message: String) -> Failed {
    Failed { message, kind }
}

/// Hello, status, session.
async fn handshake<S>(
    shared: &Arc<Shared>,
    name: &str,
    mut stream: S,
    addr: SocketAddr,
    tls: bool,
) -> Result<Option<Established>, Failed>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let pod = &shared.settings.pod;
    {
        let mut core = shared.lock();
        if let Some(peer) = core.members.get_mut(name) {
            peer.last_status = LastStatus::Hshk;
            peer.set_state(SessionState::Handshake, &shared.metrics);
        }
    }
    let hello = hello_bytes(name, pod).map_err(|e| fail("hello", e))?;
    let mut buf = BytesMut::new();
    let exchange = async {
        stream.write_all(&hello).await.map_err(StatusError::Io)?;
        read_status(&mut stream, &mut buf).await
    };
    let status = match tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange).await {
        Err(_) => {
            return Err(fail(
                "handshake_timeout",
                format!("member {name} at {addr} did not answer our hello in time"),
            ))
        }
        Ok(Err(StatusError::Io(e))) if tls => {
            // Under TLS 1.3 a refusal of our certificate arrives here (tls module docs).
            let e = tls::HandshakeError::from_io(e);
            return Err(fail(
                e.metric_label(),
                format!("member {name} at {addr} closed the connection during the hello: {e}"),
            ));
        }
        Ok(Err(e)) => return Err(fail("handshake", format!("member {name} at {addr}: {e}"))),
        Ok(Ok(status)) => status,
    };
    if status != StatusCode::Success {
        if let Some(peer) = shared.lock().members.get_mut(name) {
            peer.last_status = last_status(status);
        }
        let why = match status {
            StatusCode::LocalNameMismatch => format!(
                "the pod answering at {addr} is not {name} (stale DNS, or a wrong address in \
                 members.yaml)"
            ),
            StatusCode::UnknownPeer => format!(
                "{name} does not list this pod ('{pod}') as a member yet: its members.yaml is \
                 older than ours; retrying"
            ),
            _ => "see that member's log".to_owned(),
        };
        return Err(fail(
            "status",
            format!("member {name} at {addr} answered {status}: {why}"),
        ));
    }
    let new = NewSession {
        key: PeerKey::Member(name.to_owned()),
        direction: Direction::Outbound,
        pid: None,
        remote_addr: Some(addr),
    };
    match Established::register(shared, &new, name, Box::new(stream), buf, Bytes::new()) {
        Ok(session) => {
            tracing::info!(peer = %name, %addr, "connected to {name} at {addr}: session established");
            Ok(Some(session))
        }
        Err(RegisterError::Superseded) => {
            tracing::debug!(peer = %name, "{name} called us while we dialed it: keeping its session");
            Ok(None)
        }
        Err(RegisterError::Gone) => Ok(None),
        Err(e @ RegisterError::TooManyPeers) => Err(fail(
            "session",
            format!("session with {name} cannot be created: {e:?}"),
        )),
    }
}
