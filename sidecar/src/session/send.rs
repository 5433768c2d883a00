//! What a session sends: controls, acks, lessons, pushes, heartbeats.

use bytes::BytesMut;

use crate::codec::{Ack, Control, IdForm, Message, TableDefinition};
use crate::store::{Outgoing, Replica};

use super::events::{CloseKind, CloseReason, Output, SessionEvent};
use super::teach::{Lesson, Teach};
use super::{Learn, Role, Session};

/// Encoding state of one poll.
struct Out {
    buf: BytesMut,
    events: Vec<Output>,
    /// Updates still allowed in this poll.
    left: usize,
    /// The next update starts a batch (explicit id, like HAProxy after a pause or definition).
    first: bool,
}

impl Session {
    /// Everything to send at `now`: queued controls and acks, lesson parts, pushes (at most
    /// `budget` updates in all), a heartbeat if nothing else went out for 3 s. Closes a peer
    /// silent for the liveness timeout. When the budget ran out, [`Session::next_deadline`]
    /// asks to be polled again at once.
    pub fn poll(&mut self, store: &mut Replica, now: u64, budget: usize) -> Vec<Output> {
        if self.closed {
            return Vec::new();
        }
        let silent = now.saturating_sub(self.last_received);
        if silent >= self.timers.liveness_ms {
            self.closed = true;
            return vec![Output::Close(CloseReason {
                kind: CloseKind::Silent,
                message: format!(
                    "no message from {} for {} s (its heartbeats stopped): closed; it will be \
                     reconnected",
                    self.remote,
                    silent / 1_000
                ),
            })];
        }
        self.busy = false;
        let mut o = Out {
            buf: BytesMut::new(),
            events: Vec::new(),
            left: budget,
            first: true,
        };
        if std::mem::take(&mut self.fresh.announce) {
            if let Some(why) = self.fresh.why {
                o.events.push(Output::Event(SessionEvent::FreshProcess {
                    pid: self.pid,
                    why,
                }));
            }
        }
        for c in std::mem::take(&mut self.controls) {
            self.put(&Message::Control(c), &mut o);
        }
        if self.learn == Learn::Want {
            self.put(&Message::Control(Control::ResyncRequest), &mut o);
            self.learn = Learn::Waiting { entries: 0 };
            o.events.push(Output::Event(SessionEvent::LessonRequested));
        }
        self.put_acks(&mut o);
        if let Teach::Pending { asked } = self.teach {
            if self.may_start_teaching(now) {
                let tables = self.relay_tables(store);
                o.events.push(Output::Event(SessionEvent::TeachingStarted {
                    asked,
                    tables: tables.len(),
                }));
                let heads = tables.iter().map(|&t| store.head(t)).collect();
                self.teach = Teach::Sending(Lesson::new(tables, heads));
            }
        }
        if matches!(self.teach, Teach::Sending(_)) {
            if let Teach::Sending(lesson) = std::mem::replace(&mut self.teach, Teach::Idle) {
                self.teach = self.teach_step(lesson, store, now, &mut o);
            }
        }
        let may_push = match self.role {
            Role::Mesh => true,
            // Everything before the lesson goes in the lesson.
            Role::LocalHaproxy => self.taught,
        };
        if may_push && matches!(self.teach, Teach::Idle) {
            self.push_step(store, now, &mut o);
        }
        if o.buf.is_empty() && now.saturating_sub(self.last_sent) >= self.timers.heartbeat_ms {
            self.put(&Message::Control(Control::Heartbeat), &mut o);
            self.stats.heartbeats_sent = self.stats.heartbeats_sent.saturating_add(1);
        }
        let mut out = o.events;
        if !o.buf.is_empty() {
            self.last_sent = now;
            self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(o.buf.len() as u64);
            out.push(Output::Send(o.buf.freeze()));
        }
        out
    }

    fn put(&mut self, msg: &Message, o: &mut Out) {
        if let Err(e) = self.tx.encode(msg, &mut o.buf) {
            o.events.push(Output::Event(SessionEvent::EncodeFailed {
                table: String::new(),
                error: e.to_string(),
            }));
        }
    }

    /// One ack per table that received updates since the last poll: the sender's table id and
    /// the last id received (§4.4).
    fn put_acks(&mut self, o: &mut Out) {
        let acks: Vec<Ack> = self
            .rx_tables
            .iter_mut()
            .filter(|(_, rx)| rx.ack_pending)
            .map(|(&table_id, rx)| {
                rx.ack_pending = false;
                Ack {
                    table_id,
                    update_id: rx.last_id,
                }
            })
            .collect();
        for ack in acks {
            self.put(&Message::Ack(ack), o);
            self.stats.acks_sent = self.stats.acks_sent.saturating_add(1);
        }
    }

    fn put_update(&mut self, def: &TableDefinition, item: &Outgoing, o: &mut Out) {
        // Towards HAProxy only explicit ids (§4.4: 3.3+ acks incremental ones wrongly); on the
        // mesh the first update of a batch or after a table switch carries its id, the next
        // ones are incremental when they follow.
        let form = if self.role == Role::LocalHaproxy
            || o.first
            || self.tx.selected_table() != Some(def.table_id)
        {
            IdForm::Explicit
        } else {
            IdForm::IncrementalWhenNext
        };
        o.left = o.left.saturating_sub(1);
        match self.tx.encode_update(def, &item.update, form, &mut o.buf) {
            Ok(()) => {
                o.first = false;
                self.stats.updates_sent = self.stats.updates_sent.saturating_add(1);
            }
            Err(e) => o.events.push(Output::Event(SessionEvent::EncodeFailed {
                table: String::from_utf8_lossy(&def.name).into_owned(),
                error: e.to_string(),
            })),
        }
    }

    fn teach_step(&mut self, mut lesson: Lesson, store: &Replica, now: u64, o: &mut Out) -> Teach {
        while let Some(t) = lesson.current() {
            let Some(def) = store.definition(t).cloned() else {
                lesson.finish_table(t, 0);
                continue;
            };
            if !lesson.defined {
                // Even for empty tables (§7.4).
                self.put(&Message::Definition(def.clone()), o);
                lesson.defined = true;
                o.first = true;
            }
            // The same HAProxy process as before (a restarted sidecar, a reconnect): what it
            // wrote itself it holds, with whatever it counted since; only a new process needs it.
            let batch = if self.role == Role::LocalHaproxy && self.fresh.why.is_none() {
                store.lesson_batch_without_local(t, lesson.after, o.left, now)
            } else {
                store.lesson_batch(t, lesson.after, o.left, now)
            };
            // A new HAProxy process has what it wrote itself; teaching it back could only
            // undo what it counted since.
            for item in &batch.updates {
                // Towards a member: not what it wrote itself while the lesson ran. Towards
                // HAProxy `fresh` decides: "written by the local HAProxy" may be the replaced
                // old worker, whose last writes the new process must be taught.
                let echo =
                    self.role == Role::Mesh && lesson.echoes(item.seq, item.writer, self.link);
                if self.fresh.is_own(t, item.seq) || echo {
                    continue;
                }
                self.put_update(&def, item, o);
                lesson.entries = lesson.entries.saturating_add(1);
            }
            lesson.after = batch.last;
            if batch.more {
                self.busy = true;
                return Teach::Sending(lesson);
            }
            lesson.finish_table(t, store.head(t));
        }
        let complete = store.is_complete();
        let end = if complete {
            Control::ResyncFinished
        } else {
            Control::ResyncPartial
        };
        self.put(&Message::Control(end), o);
        self.stats.lessons_sent = self.stats.lessons_sent.saturating_add(1);
        o.events.push(Output::Event(SessionEvent::LessonSent {
            complete,
            entries: lesson.entries,
        }));
        Teach::AwaitingConfirm {
            upto: lesson.upto,
            complete,
        }
    }

    fn push_step(&mut self, store: &mut Replica, now: u64, o: &mut Out) {
        let tables = self.relay_tables(store);
        let n = tables.len();
        if n == 0 {
            return;
        }
        let start = self.push_from % n;
        for k in 0..n {
            let i = (start + k) % n;
            let Some(&t) = tables.get(i) else { continue };
            if o.left == 0 {
                self.busy = true;
                self.push_from = i;
                return;
            }
            let batch = store.updates_for(self.link, t, o.left, now);
            if !batch.updates.is_empty() {
                if let Some(def) = store.definition(t).cloned() {
                    for item in &batch.updates {
                        self.put_update(&def, item, o);
                    }
                }
            }
            if batch.more {
                self.busy = true;
                self.push_from = i;
                return;
            }
        }
        self.push_from = start.saturating_add(1);
    }
}
