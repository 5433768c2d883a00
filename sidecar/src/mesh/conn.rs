//! Drives one [`Session`](crate::session::Session) over any byte stream (plain TCP to HAProxy,
//! TLS to a member) once the handshake is done: frames in, session outputs out, timers from
//! `next_deadline()`, wake-ups when other sessions changed the replica. Reading and writing
//! progress independently (a peer that does not read cannot stop us from reading, so two
//! sidecars teaching each other cannot deadlock), and both buffers are bounded. A malformed
//! message ends this connection only.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio_util::codec::Decoder;

use crate::codec::{Control, FrameCodec, FrameError, Message, MessageError, RxState};
use crate::session::{Output, SessionEvent};

use super::events::{on_close, on_event};
use super::peers::{PeerKey, SessionId};
use super::state::{NewSession, Parts, RegisterError, Shared};
use super::txcount::TxCount;

/// Updates one poll may produce (HAProxy's `tune.peers.max-updates-at-once`).
pub(crate) const BUDGET: usize = 200;
/// Above this many unsent bytes the session is polled with no budget for updates (controls,
/// acks and its liveness check still run).
const HIGH_WATER: usize = 256 * 1024;
/// Read granularity; with the frame limit it bounds the read buffer.
const READ_CHUNK: usize = 16 * 1024;
/// Messages handled per lock hold; the rest wait for the next turn of the loop.
const MAX_BATCH: usize = 1_024;
/// How long a closing connection may take to flush what is queued.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a replaced HAProxy session is still read (its process closes it at once, §7.5).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// A connection after its handshake, plain or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A handshake that ended in a session: what [`drive`] needs. Handshakes race shutdown and
/// may be dropped half-way; a session, once created, is always driven to a clean close.
pub(crate) struct Established {
    pub handle: Handle,
    pub stream: Box<dyn Stream>,
    /// Bytes read after the handshake.
    pub leftover: BytesMut,
    /// Bytes to send first (our `200` on accepted connections).
    pub greeting: Bytes,
}

impl Established {
    /// Creates the session for a finished handshake (collisions resolved by
    /// [`Core::register`](super::state::Core::register)) and holds what driving it needs.
    pub(crate) fn register(
        shared: &Arc<Shared>,
        new: &NewSession,
        name: &str,
        stream: Box<dyn Stream>,
        leftover: BytesMut,
        greeting: Bytes,
    ) -> Result<Established, RegisterError> {
        let now = shared.clock.now();
        let (id, kick) =
            shared
                .lock()
                .register(new, shared.settings.timers, now, &shared.metrics)?;
        Ok(Established {
            handle: Handle {
                shared: Arc::clone(shared),
                key: new.key.clone(),
                id,
                kick,
                name: name.to_owned(),
            },
            stream,
            leftover,
            greeting,
        })
    }

    pub(crate) async fn drive(self) {
        drive(self.handle, self.stream, self.leftover, self.greeting).await;
    }
}

/// The task's ticket to its session in the shared state.
pub(crate) struct Handle {
    pub shared: Arc<Shared>,
    pub key: PeerKey,
    pub id: SessionId,
    pub kick: Arc<Notify>,
    /// The peer's name, for logs and metrics.
    pub name: String,
}

#[derive(Debug)]
enum InputError {
    Frame(FrameError),
    Message(MessageError),
}

#[derive(Debug, Default)]
struct Input {
    messages: Vec<Message>,
    error: Option<InputError>,
    heartbeats: u64,
    /// Complete frames were left in the buffer (batch limit).
    more: bool,
}

struct Stepped {
    sends: Vec<Bytes>,
    /// The input's message buffer, emptied, for the next turn (a burst fills 1 024 messages:
    /// growing a new one each turn cost a chain of reallocations and a large free).
    spare: Vec<Message>,
    /// The session closed itself or is no longer the peer's current one.
    done: bool,
    /// A replaced HAProxy session: keep reading until the old process closes, send nothing.
    draining: bool,
    deadline: u64,
    /// When the peer counts as silent: the wake-up that matters while writes are stuck.
    silent_at: u64,
    /// The step changed the replica and woke the other sessions to send it on.
    kicked: bool,
}

/// How the connection ended.
#[derive(Debug)]
enum Ending {
    /// Retired by someone else (collision, member removed, shutdown) or closed by the session:
    /// already logged and recorded.
    Settled,
    PeerClosed,
    Io(std::io::Error),
}

/// Drives the session until it ends. `leftover`: bytes read after the handshake (binary
/// messages may share a segment with the hello or status, §2.6); `greeting`: bytes to send
/// before the session's own (our `200` status on accepted connections).
pub(crate) async fn drive<S>(h: Handle, stream: S, leftover: BytesMut, greeting: Bytes)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut rbuf = leftover;
    let mut wbuf = BytesMut::from(&greeting[..]);
    let mut frames = FrameCodec::new();
    let mut rx = RxState::new();
    let mut sent = TxCount::default();
    let clock = h.shared.clock;
    let mut end: Option<Ending> = None;
    let mut flush_by: Option<tokio::time::Instant> = None;
    let mut drain_by: Option<tokio::time::Instant> = None;
    let mut deadline = 0u64;
    let mut silent_at = u64::MAX;
    let mut more = false;
    // Written but maybe not on the wire: TLS keeps ciphertext the socket did not take until
    // the next write or a flush.
    let mut unflushed = false;
    let mut spare = Vec::new();
    loop {
        if end.is_none() {
            let input = decode(
                &mut frames,
                &mut rx,
                &mut rbuf,
                &h,
                std::mem::take(&mut spare),
            );
            more = input.more;
            let budget = if wbuf.len() < HIGH_WATER { BUDGET } else { 0 };
            let s = h.step(input, budget);
            spare = s.spare;
            for bytes in &s.sends {
                for (table, n) in sent.count(bytes) {
                    h.shared.metrics.updates_out(&h.name, &table, n);
                }
                wbuf.extend_from_slice(bytes);
            }
            deadline = s.deadline;
            silent_at = s.silent_at;
            if s.done {
                end = Some(Ending::Settled);
            }
            if s.draining {
                drain_by.get_or_insert_with(|| tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            if s.kicked && !wbuf.is_empty() {
                // Forward before acknowledging: the sessions just woken (queued on this worker)
                // write the update onwards first, so this step's ack, whose only effect is to
                // move the sender's resume point, is not a send on every hop's path.
                tokio::task::yield_now().await;
            }
        }
        if end.is_some() {
            if wbuf.is_empty() && !unflushed {
                break;
            }
            flush_by.get_or_insert_with(|| tokio::time::Instant::now() + FLUSH_TIMEOUT);
        }
        let wake_at = match (flush_by, drain_by) {
            (Some(at), _) => at,
            (None, _) if more => tokio::time::Instant::now(),
            (None, Some(at)) => at,
            // A peer that reads nothing must still be dropped once it is silent too.
            (None, None) if wbuf.len() >= HIGH_WATER => clock.instant(silent_at),
            (None, None) => clock.instant(deadline),
        };
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
            rbuf.reserve(READ_CHUNK);
        }
        tokio::select! {
            () = h.shared.shutdown.cancelled(), if end.is_none() => {
                h.shared.retire(&h.key, h.id);
                end = Some(Ending::Settled);
            }
            progress = async {
                if wbuf.is_empty() {
                    wr.flush().await.map(|()| None)
                } else {
                    wr.write(&wbuf).await.map(Some)
                }
            }, if !wbuf.is_empty() || unflushed => match progress {
                Ok(Some(0)) => {
                    end = Some(Ending::Io(std::io::ErrorKind::WriteZero.into()));
                    break;
                }
                Ok(Some(n)) => {
                    wbuf.advance(n);
                    unflushed = true;
                }
                Ok(None) => unflushed = false,
                Err(e) => {
                    end = Some(Ending::Io(e));
                    break;
                }
            },
            read = rd.read_buf(&mut rbuf), if end.is_none() => match read {
                Ok(0) => {
                    end = Some(Ending::PeerClosed);
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    end = Some(Ending::Io(e));
                    break;
                }
            },
            () = h.kick.notified(), if end.is_none() => {}
            () = tokio::time::sleep_until(wake_at) => {
                if flush_by.is_some() {
                    break;
                }
                if drain_by.is_some_and(|at| tokio::time::Instant::now() >= at) {
                    end = Some(Ending::Settled);
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    h.ended(end.unwrap_or(Ending::Settled));
}

/// Cuts the read buffer into messages (outside the lock), into `messages` (empty). Counts
/// updates per table and heartbeats as they pass.
fn decode(
    frames: &mut FrameCodec,
    rx: &mut RxState,
    rbuf: &mut BytesMut,
    h: &Handle,
    messages: Vec<Message>,
) -> Input {
    let mut input = Input {
        messages,
        ..Input::default()
    };
    let mut per_table: Vec<(u64, u64)> = Vec::new();
    loop {
        if input.messages.len() >= MAX_BATCH {
            input.more = true;
            break;
        }
        let frame = match frames.decode(rbuf) {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(e) => {
                input.error = Some(InputError::Frame(e));
                break;
            }
        };
        match rx.decode(&frame) {
            Ok(msg) => {
                match &msg {
                    Message::Update(u) => {
                        match per_table.iter_mut().find(|(t, _)| *t == u.table_id) {
                            Some((_, n)) => *n = n.saturating_add(1),
                            None => per_table.push((u.table_id, 1)),
                        }
                    }
                    Message::Control(Control::Heartbeat) => {
                        input.heartbeats = input.heartbeats.saturating_add(1);
                    }
                    _ => {}
                }
                input.messages.push(msg);
            }
            Err(e) => {
                input.error = Some(InputError::Message(e));
                break;
            }
        }
    }
    for (table_id, n) in per_table {
        let table = rx.definition(table_id).map_or_else(
            || "?".to_owned(),
            |d| String::from_utf8_lossy(&d.name).into_owned(),
        );
        h.shared.metrics.updates_in(&h.name, &table, n);
    }
    input
}

impl Handle {
    /// One turn under the lock: feed the messages, poll for output, handle events.
    fn step(&self, mut input: Input, budget: usize) -> Stepped {
        let shared = &self.shared;
        let metrics = &*shared.metrics;
        let now = shared.clock.now();
        let mut guard = shared.lock();
        let core = &mut *guard;
        let mark = core.replica_mark();
        let gone = Stepped {
            sends: Vec::new(),
            spare: Vec::new(),
            done: true,
            draining: false,
            deadline: u64::MAX,
            silent_at: u64::MAX,
            kicked: false,
        };
        if let Some(live) = core.local_draining.as_mut().filter(|l| l.id == self.id) {
            // Replaced by a new call: the entries the old process sent before it closed still
            // count (a reload's old worker pushes its last changes, then closes). Its controls
            // do not: lessons and confirms are the new process's business now. Nothing is sent.
            for msg in input.messages {
                if matches!(msg, Message::Definition(_) | Message::Update(_)) {
                    live.session.on_message(msg, &mut core.replica, now);
                }
            }
            let kicked = core.replica_mark() != mark;
            if kicked {
                core.kick_others(self.id);
            }
            return Stepped {
                draining: true,
                done: false,
                kicked,
                ..gone
            };
        }
        let Some(Parts { replica, peer, rng }) = core.parts(&self.key) else {
            return gone;
        };
        let Some(live) = peer.live_mut(self.id) else {
            return gone;
        };
        let mut outs = Vec::new();
        for msg in input.messages.drain(..) {
            outs.extend(live.session.on_message(msg, replica, now));
        }
        match &input.error {
            Some(InputError::Frame(e)) => outs.extend(live.session.on_frame_error(e)),
            Some(InputError::Message(e)) => outs.extend(live.session.on_decode_error(e)),
            None => {}
        }
        outs.extend(live.session.poll(replica, now, budget));
        let deadline = live.session.next_deadline();
        let silent_at = live
            .session
            .last_received()
            .saturating_add(shared.settings.timers.liveness_ms);
        let teaching = outs
            .iter()
            .any(|o| matches!(o, Output::Event(SessionEvent::TeachingStarted { .. })));
        let entries = if teaching {
            replica.summary().entries as u64
        } else {
            0
        };
        if input.heartbeats > 0 {
            peer.heartbeats_rx = peer.heartbeats_rx.saturating_add(input.heartbeats);
            for _ in 0..input.heartbeats {
                metrics.heartbeat(&self.name, crate::admin::views::Direction::Inbound);
            }
        }
        let mut sends = Vec::new();
        let mut closed = false;
        let mut rethink = false;
        for out in outs {
            match out {
                Output::Send(bytes) => sends.push(bytes),
                Output::Event(e) => rethink |= on_event(peer, e, now, entries, metrics),
                Output::Close(reason) => {
                    on_close(peer, &reason, metrics);
                    closed = true;
                }
            }
        }
        peer.fold_stats(metrics);
        if closed {
            peer.retire(now, metrics);
            peer.next_dial_at = now.saturating_add(rng.collision_delay());
        }
        if rethink || closed {
            core.coordinate(now);
        }
        let kicked = core.replica_mark() != mark;
        if kicked {
            core.kick_others(self.id);
        }
        Stepped {
            sends,
            spare: input.messages,
            done: closed,
            draining: false,
            deadline,
            silent_at,
            kicked,
        }
    }

    /// The connection is over: if the session is still the current one, retire it and log why.
    fn ended(&self, how: Ending) {
        let shared = &self.shared;
        let now = shared.clock.now();
        let mut guard = shared.lock();
        let core = &mut *guard;
        if core
            .local_draining
            .as_ref()
            .is_some_and(|l| l.id == self.id)
        {
            core.local_draining = None;
            tracing::debug!(peer = %self.name, "the replaced HAProxy session ended ({how:?})");
            return;
        }
        let Some(Parts { peer, rng, .. }) = core.parts(&self.key) else {
            return;
        };
        if peer.live.as_ref().is_none_or(|l| l.id != self.id) {
            return;
        }
        let name = &self.name;
        let who = match (
            &self.key,
            peer.live.as_ref().and_then(|l| l.session.remote_pid()),
        ) {
            (PeerKey::Local, Some(pid)) => format!("HAProxy (pid {pid})"),
            (PeerKey::Local, None) => "HAProxy".to_owned(),
            (PeerKey::Member(_), _) => name.clone(),
        };
        match &how {
            Ending::PeerClosed => tracing::info!(peer = %name, "{who} closed the session"),
            Ending::Io(e) => {
                tracing::warn!(peer = %name, "connection with {who} failed: {e}; closed");
                shared.metrics.error("io");
                peer.last_error = Some(format!("connection failed: {e}"));
            }
            Ending::Settled => {}
        }
        peer.retire(now, &shared.metrics);
        peer.next_dial_at = now.saturating_add(rng.collision_delay());
        core.coordinate(now);
    }
}
