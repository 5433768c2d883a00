//! Incoming messages.

use crate::codec::{Ack, Control, FrameError, Message, MessageError, TableDefinition, Update};
use crate::store::{Compat, Replica};

use super::events::{CloseKind, CloseReason, Output, SessionEvent};
use super::fresh::Claim;
use super::teach::Teach;
use super::{Learn, Role, RxTable, Session};

impl Session {
    /// Handles one decoded message at `now`. Replies are queued for [`Session::poll`]; the
    /// outputs here are events (and a close, never for a valid message).
    pub fn on_message(&mut self, msg: Message, store: &mut Replica, now: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.closed {
            return out;
        }
        self.last_received = now;
        self.stats.messages_received = self.stats.messages_received.saturating_add(1);
        let lesson_content = matches!(msg, Message::Definition(_) | Message::Update(_));
        if lesson_content
            && self.role == Role::LocalHaproxy
            && matches!(self.learn, Learn::Waiting { .. })
        {
            self.local_lesson_seen = now;
        }
        match msg {
            Message::Control(c) => self.on_control(c, store, &mut out),
            Message::Definition(def) => self.on_definition(&def, store, &mut out),
            Message::Update(u) => self.on_update(&u, store, now, &mut out),
            Message::Ack(a) => self.on_ack(a, store),
            // The decoder keeps the selected table; updates carry its id.
            Message::Switch { .. } => {}
            Message::Error(e) => out.push(Output::Event(SessionEvent::PeerError(e))),
            Message::Ignored(i) => {
                self.stats.ignored = self.stats.ignored.saturating_add(1);
                out.push(Output::Event(SessionEvent::Ignored {
                    what: format!(
                        "message {:02x} {:02x} from {}: {:?}",
                        i.frame.class, i.frame.kind, self.remote, i.reason
                    ),
                }));
            }
        }
        out
    }

    /// The frame could not be decoded: send `01 00` and close (§3.4).
    pub fn on_decode_error(&mut self, err: &MessageError) -> Vec<Output> {
        let message = format!(
            "malformed message from peer {}: {err}; sent a protocol error and closed",
            self.remote
        );
        self.fail(err.reply(), CloseKind::ProtocolError, message)
    }

    /// The stream could not be framed: send what the error calls for (`01 01` for a message
    /// over our limit, `01 00` for a bad length) and close.
    pub fn on_frame_error(&mut self, err: &FrameError) -> Vec<Output> {
        let kind = match err {
            FrameError::TooLong { .. } => CloseKind::SizeLimit,
            _ => CloseKind::ProtocolError,
        };
        let message = format!(
            "peer {} sent an unreadable stream: {err}; closed",
            self.remote
        );
        match err.reply() {
            Some(reply) => self.fail(reply, kind, message),
            None => {
                self.closed = true;
                vec![Output::Close(CloseReason { kind, message })]
            }
        }
    }

    fn fail(&mut self, reply: [u8; 2], kind: CloseKind, message: String) -> Vec<Output> {
        if self.closed {
            return Vec::new();
        }
        self.closed = true;
        vec![
            Output::Send(bytes::Bytes::copy_from_slice(&reply)),
            Output::Close(CloseReason { kind, message }),
        ]
    }

    fn on_control(&mut self, c: Control, store: &mut Replica, out: &mut Vec<Output>) {
        match c {
            Control::ResyncRequest => {
                if self.role == Role::LocalHaproxy {
                    self.asked_for_lesson(store);
                }
                match self.teach {
                    Teach::Idle => self.teach = Teach::Pending { asked: true },
                    Teach::Pending { .. } => self.teach = Teach::Pending { asked: true },
                    Teach::Sending(_) | Teach::AwaitingConfirm { .. } => self.reteach = true,
                }
            }
            Control::ResyncFinished | Control::ResyncPartial => {
                // §7.4: the learner always confirms.
                self.controls.push(Control::ResyncConfirm);
                let complete = c == Control::ResyncFinished;
                match self.learn {
                    Learn::Waiting { entries } => {
                        self.learn = Learn::Done { complete, entries };
                        self.stats.lessons_learned = self.stats.lessons_learned.saturating_add(1);
                        match self.role {
                            // HAProxy's lesson tells us its definitions and entries, not
                            // whether the group's data is complete.
                            Role::LocalHaproxy => {
                                self.local_lesson_in = true;
                                self.lesson_in();
                            }
                            Role::Mesh if complete => store.set_complete(true),
                            Role::Mesh => {}
                        }
                        out.push(Output::Event(SessionEvent::LessonLearned {
                            complete,
                            entries,
                        }));
                    }
                    _ => out.push(Output::Event(SessionEvent::UnsolicitedLessonEnd)),
                }
            }
            Control::ResyncConfirm => {
                if let Teach::AwaitingConfirm { upto, complete } = &self.teach {
                    for &(t, seq) in upto {
                        store.taught(self.link, t, seq);
                    }
                    let complete = *complete;
                    self.taught = true;
                    self.teach = if std::mem::take(&mut self.reteach) {
                        Teach::Pending { asked: true }
                    } else {
                        Teach::Idle
                    };
                    out.push(Output::Event(SessionEvent::LessonConfirmed {
                        pid: self.pid,
                        complete,
                    }));
                    // A lesson asked for during this one is still to come: stay fresh until
                    // that one is confirmed too.
                    if self.role == Role::LocalHaproxy && matches!(self.teach, Teach::Idle) {
                        self.fresh_taught(store, out);
                    }
                }
            }
            Control::Heartbeat => {}
        }
    }

    fn on_definition(&mut self, def: &TableDefinition, store: &mut Replica, out: &mut Vec<Output>) {
        let name = String::from_utf8_lossy(&def.name).into_owned();
        let mut rx = RxTable {
            name: name.clone(),
            ..RxTable::default()
        };
        if let Some(old) = self.rx_tables.get(&def.table_id) {
            // A repeated definition keeps the ack state of the id.
            rx.last_id = old.last_id;
            rx.ack_pending = old.ack_pending;
        }
        match store.define(def, self.link) {
            Ok(d) => {
                if d.dropped > 0 {
                    out.push(Output::Event(SessionEvent::EntriesDropped {
                        table: name,
                        count: d.dropped,
                    }));
                }
                if d.drift_changed {
                    if let Some(report) = d.drift {
                        out.push(Output::Event(SessionEvent::Drift(report)));
                    }
                }
                if d.compat != Compat::KeyMismatch {
                    rx.table = Some(d.table);
                    self.defined_here.insert(d.table);
                } else {
                    self.defined_here.remove(&d.table);
                }
            }
            Err(e) => out.push(Output::Event(SessionEvent::DefinitionRefused {
                table: name,
                error: e.to_string(),
            })),
        }
        self.rx_tables.insert(def.table_id, rx);
    }

    fn on_update(&mut self, u: &Update, store: &mut Replica, now: u64, out: &mut Vec<Output>) {
        self.stats.updates_received = self.stats.updates_received.saturating_add(1);
        if let Learn::Waiting { entries } = &mut self.learn {
            *entries = entries.saturating_add(1);
        }
        let Some(rx) = self.rx_tables.get_mut(&u.table_id) else {
            self.stats.updates_dropped = self.stats.updates_dropped.saturating_add(1);
            return;
        };
        let Some(table) = rx.table else {
            // Like HAProxy for a table it does not share: dropped, not acked (§7.7).
            self.stats.updates_dropped = self.stats.updates_dropped.saturating_add(1);
            return;
        };
        rx.last_id = u.update_id;
        rx.ack_pending = true;
        let claim = self.claim(table, u, store, now);
        if matches!(claim, Claim::HeldBack) {
            // Acknowledged all the same: HAProxy must not send it again.
            return;
        }
        match store.apply(table, u, self.link, now) {
            Ok(a) => {
                if a.changed {
                    self.stats.updates_changed = self.stats.updates_changed.saturating_add(1);
                }
                // A refused (stale) entry is not the process's own write: its lesson needs it.
                self.applied(table, &claim, a.seq.filter(|_| !a.rejected));
            }
            Err(e) => {
                self.stats.updates_dropped = self.stats.updates_dropped.saturating_add(1);
                let Some(rx) = self.rx_tables.get_mut(&u.table_id) else {
                    return;
                };
                if !rx.refused_reported {
                    rx.refused_reported = true;
                    out.push(Output::Event(SessionEvent::UpdateRefused {
                        table: rx.name.clone(),
                        error: e.to_string(),
                    }));
                }
            }
        }
    }

    fn on_ack(&mut self, a: Ack, store: &mut Replica) {
        self.stats.acks_received = self.stats.acks_received.saturating_add(1);
        // §7.4: the teacher ignores acks while teaching. HAProxy's acks are advisory anyway:
        // one that names nothing we pushed is ignored by the mapping.
        if self.teaching() {
            return;
        }
        if let Some(t) = store.table_by_wire_id(a.table_id) {
            store.ack(self.link, t, a.update_id);
        }
    }
}
