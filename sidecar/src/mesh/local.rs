//! The link with the pod's own HAProxy, plain TCP on loopback.
//!
//! HAProxy calls the sidecar (the remote peer `haproxy_peers_sidecar` of peers.cfg) every 5 s
//! while it has no session. Its hello must name the sidecar on line 2 and the pod on line 3;
//! anything else is closed **without a status line**: a 5xx would make HAProxy stop calling
//! for good (§2.3), a plain close makes it retry. A valid hello gets `200` and a
//! `Role::LocalHaproxy` session; a new call replaces an open session (a reload's new worker).
//!
//! When HAProxy has not called for a while the sidecar dials HAProxy's own peers listener
//! itself: a `200` gives the session just the same, a refused connection or a `503` tells the
//! operator that HAProxy's local peer name is not the pod name (readiness blocker).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use haproxy_peers_members::SIDECAR_PEER_NAME;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::admin::readiness::Probe;
use crate::admin::views::{Direction, LastStatus, SessionState};
use crate::codec::{check_hello, StatusCode};

use super::conn::Established;
use super::handshake::{hello_bytes, read_hello, read_status, HelloRead, HANDSHAKE_TIMEOUT};
use super::listen;
use super::peers::PeerKey;
use super::state::{NewSession, RegisterError, Shared};

/// HAProxy handshakes read at once (it opens one connection at a time; more is noise).
const MAX_HANDSHAKES: usize = 8;
/// The first dial waits this long for HAProxy to call first.
pub(crate) const FIRST_DIAL_AFTER: Duration = Duration::from_secs(2);
/// Then one dial every so often while there is no session (HAProxy's own retry period).
pub(crate) const DIAL_EVERY: Duration = Duration::from_secs(5);
/// Never dial within this long after HAProxy called: its next call is on the way, and two
/// crossing handshakes would replace each other (HAProxy drops an established session when the
/// same name connects again).
const QUIET_MS: u64 = 2_000;

/// Accepts HAProxy's calls until shutdown.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "listening for HAProxy's peer connection");
    }
    while let Some((tcp, addr)) = listen::next(&shared, &listener, "HAProxy link").await {
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            shared.metrics.error("local_handshake_limit");
            continue;
        };
        {
            let now = shared.clock.now();
            let mut core = shared.lock();
            core.last_local_call = Some(now);
            core.local_handshakes = core.local_handshakes.saturating_add(1);
        }
        let task = Arc::clone(&shared);
        shared.spawn(async move {
            let outcome = tokio::select! {
                () = task.shutdown.cancelled() => None,
                outcome = answer(&task, tcp, addr) => outcome,
            };
            {
                let mut core = task.lock();
                core.local_handshakes = core.local_handshakes.saturating_sub(1);
            }
            drop(slot);
            if let Some(session) = outcome {
                session.drive().await;
            }
        });
    }
}

/// Reads and checks HAProxy's hello; on success registers the session (the caller then
/// drives it, sending `200` first). On failure the connection is dropped without a status.
async fn answer(shared: &Arc<Shared>, mut tcp: TcpStream, addr: SocketAddr) -> Option<Established> {
    let pod = &shared.settings.pod;
    let mut buf = BytesMut::new();
    let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_hello(&mut tcp, &mut buf, None)).await;
    let lines = match read {
        Ok(HelloRead::Lines(lines)) => lines,
        Ok(HelloRead::Silent) => {
            tracing::debug!(%addr, "connection from {addr} on the HAProxy port closed before a hello");
            return None;
        }
        Ok(HelloRead::Bad(why)) => {
            refuse(
                shared,
                "local_bad_hello",
                format!(
                    "connection from {addr} on the HAProxy port is not a peers-protocol hello \
                 ({why}): closed without a status"
                ),
            );
            return None;
        }
        Ok(HelloRead::Early(_)) => return None,
        Err(_) => {
            refuse(
                shared,
                "local_hello_timeout",
                format!(
                "connection from {addr} on the HAProxy port sent no complete hello within {} s: \
                 closed",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
            );
            return None;
        }
    };
    let hello = match check_hello(&lines, SIDECAR_PEER_NAME, |name| name == pod) {
        Ok(hello) => hello,
        Err(StatusCode::LocalNameMismatch) => {
            let found = String::from_utf8_lossy(&lines.remote_name);
            refuse(
                shared,
                "local_wrong_sidecar_name",
                format!(
                    "HAProxy at {addr} calls this sidecar '{found}' but its peer name is \
                 '{SIDECAR_PEER_NAME}': load the operator's peers.cfg unchanged (server \
                 {SIDECAR_PEER_NAME} {}); closed without a status so that HAProxy keeps \
                 retrying",
                    shared.settings.local_listen
                ),
            );
            return None;
        }
        Err(StatusCode::UnknownPeer) => {
            let found = lines.peer.split(|&b| b == b' ').next().unwrap_or_default();
            let found = String::from_utf8_lossy(found);
            refuse(
                shared,
                "local_peer_name",
                format!(
                    "HAProxy's local peer name is '{found}' but this pod is '{pod}': HAProxy must \
                 run with POD_NAME set and no -L flag; peers.cfg uses localpeer \"${{POD_NAME}}\" \
                 (connection from {addr} closed without a status: HAProxy retries every 5 s)"
                ),
            );
            return None;
        }
        Err(status) => {
            refuse(
                shared,
                "local_bad_hello",
                format!(
                    "malformed hello from HAProxy at {addr} (would be answered {status}): closed \
                 without a status"
                ),
            );
            return None;
        }
    };
    let new = NewSession {
        key: PeerKey::Local,
        direction: Direction::Inbound,
        pid: hello.pid(),
        remote_addr: Some(addr),
    };
    let greeting = Bytes::from_static(b"200\n");
    match Established::register(shared, &new, pod, Box::new(tcp), buf, greeting) {
        Ok(session) => {
            tracing::info!(
                pid = hello.pid(),
                "HAProxy connected (pid {}, hello {}.{})",
                hello
                    .pid()
                    .map_or_else(|| "?".to_owned(), |p| p.to_string()),
                hello.version.major,
                hello.version.minor
            );
            Some(session)
        }
        Err(e) => {
            tracing::warn!("HAProxy's session cannot be created: {e:?}");
            None
        }
    }
}

/// Logs, counts and records a refused local call.
fn refuse(shared: &Shared, kind: &'static str, message: String) {
    tracing::warn!(kind, "{message}");
    shared.metrics.error(kind);
    shared.lock().local.last_error = Some(message);
}

/// Dials HAProxy's own peers listener whenever it has not called for a while.
pub(crate) async fn dial_loop(shared: Arc<Shared>) {
    let started = shared.clock.now();
    let first = u64::try_from(FIRST_DIAL_AFTER.as_millis()).unwrap_or(u64::MAX);
    let every = u64::try_from(DIAL_EVERY.as_millis()).unwrap_or(u64::MAX);
    let mut next = started.saturating_add(first);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            () = tokio::time::sleep_until(shared.clock.instant(next)) => {}
        }
        let now = shared.clock.now();
        let quiet_since = {
            let core = shared.lock();
            let busy = core.local.live.is_some() || core.local_handshakes > 0;
            (!busy).then(|| core.last_local_call.unwrap_or(started))
        };
        next = match quiet_since {
            None => now.saturating_add(every),
            Some(since) if now.saturating_sub(since) < QUIET_MS => since.saturating_add(QUIET_MS),
            Some(_) => {
                dial(&shared).await;
                shared.clock.now().saturating_add(every)
            }
        };
    }
}

/// One dial: a session on `200`, a readiness probe result otherwise.
async fn dial(shared: &Arc<Shared>) {
    shared
        .lock()
        .local
        .set_state(SessionState::Connecting, &shared.metrics);
    let session = dial_handshake(shared).await;
    idle(shared);
    if let Some(session) = session {
        tracing::info!(
            addr = %shared.settings.haproxy_addr,
            "dialed HAProxy's peers listener: session established"
        );
        session.drive().await;
    }
}

/// Connect, hello, status; records what HAProxy's listener showed when it is not a `200`.
async fn dial_handshake(shared: &Arc<Shared>) -> Option<Established> {
    let settings = &shared.settings;
    let addr = settings.haproxy_addr;
    let connected = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await;
    let mut tcp = match connected {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            if shared.lock().probe != Some(Probe::Refused) {
                tracing::warn!(
                    %addr,
                    "HAProxy has not called and its peers listener {addr} refuses connections: \
                     HAProxy is not running, or its local peer name is not '{}' and it dropped \
                     the peers section (HAProxy must run with POD_NAME set and no -L flag; \
                     peers.cfg uses localpeer \"${{POD_NAME}}\")",
                    settings.pod
                );
            }
            set_probe(shared, Probe::Refused, LastStatus::Conn);
            return None;
        }
        Ok(Err(e)) => {
            tracing::debug!(%addr, "dialing HAProxy failed: {e}");
            return None;
        }
        Err(_) => {
            tracing::debug!(%addr, "dialing HAProxy timed out");
            return None;
        }
    };
    shared
        .lock()
        .local
        .set_state(SessionState::Handshake, &shared.metrics);
    let hello = hello_bytes(&settings.pod, SIDECAR_PEER_NAME)
        .map_err(|e| tracing::error!("cannot build a hello to HAProxy: {e}"))
        .ok()?;
    let mut buf = BytesMut::new();
    let answered = async {
        tcp.write_all(&hello).await.map_err(|e| e.to_string())?;
        read_status(&mut tcp, &mut buf)
            .await
            .map_err(|e| e.to_string())
    };
    let status = match tokio::time::timeout(HANDSHAKE_TIMEOUT, answered).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => {
            tracing::debug!(%addr, "HAProxy did not answer our hello: {e}");
            return None;
        }
        Err(_) => {
            tracing::debug!(%addr, "HAProxy did not answer our hello in time");
            return None;
        }
    };
    if status != StatusCode::Success {
        let code = u16::try_from(status.code()).unwrap_or(u16::MAX);
        if shared.lock().probe != Some(Probe::Status(code)) {
            match status {
                StatusCode::LocalNameMismatch => tracing::warn!(
                    %addr,
                    "HAProxy's local peer name is not '{}': its peers listener answered 503 to a \
                     hello for '{}'. HAProxy must run with POD_NAME set and no -L flag; peers.cfg \
                     uses localpeer \"${{POD_NAME}}\"",
                    settings.pod,
                    settings.pod
                ),
                other => tracing::warn!(
                    %addr,
                    "HAProxy's peers listener answered {other} to the sidecar's hello: load the \
                     operator's peers.cfg unchanged"
                ),
            }
        }
        set_probe(shared, Probe::Status(code), last_status(status));
        return None;
    }
    let new = NewSession {
        key: PeerKey::Local,
        direction: Direction::Outbound,
        pid: None,
        remote_addr: Some(addr),
    };
    match Established::register(
        shared,
        &new,
        &settings.pod,
        Box::new(tcp),
        buf,
        Bytes::new(),
    ) {
        Ok(session) => Some(session),
        Err(RegisterError::Superseded) => {
            tracing::debug!("HAProxy called us while we dialed it: keeping its session");
            None
        }
        Err(e) => {
            tracing::warn!("HAProxy's session cannot be created: {e:?}");
            None
        }
    }
}

/// What the dial showed, for readiness (while HAProxy has no session with us).
fn set_probe(shared: &Shared, probe: Probe, status: LastStatus) {
    let mut core = shared.lock();
    if core.local.live.is_none() {
        core.probe = Some(probe);
        core.local.last_status = status;
    }
}

/// Back to waiting for HAProxy's call, unless a session exists.
fn idle(shared: &Shared) {
    let mut core = shared.lock();
    if core.local.live.is_none() {
        core.local.set_state(SessionState::Idle, &shared.metrics);
    }
}

/// `show peers` vocabulary for a status we received.
pub(crate) fn last_status(status: StatusCode) -> LastStatus {
    match status {
        StatusCode::Success => LastStatus::Esta,
        StatusCode::TryAgain => LastStatus::Retr,
        StatusCode::ProtocolError | StatusCode::Other(_) => LastStatus::Prot,
        StatusCode::BadVersion => LastStatus::Vers,
        StatusCode::LocalNameMismatch => LastStatus::Name,
        StatusCode::UnknownPeer => LastStatus::Unkn,
    }
}
