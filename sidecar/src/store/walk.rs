//! Walks over a table's relay log: normal pushes after a peer's pointer, lesson steps, and the
//! pointers themselves (sent, acknowledged, confirmed by a lesson).

use bytes::Bytes;

use crate::codec::Update;

use super::dict::Interner;
use super::expiry::NEVER;
use super::link::Link;
use super::relay::{map_ack, wire_id, Pointers};
use super::table::{deadline_of, origin_word, seq_of, Table};
use super::values;

/// An update to send, with the sequence number it stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub seq: u64,
    pub update: Update,
    /// Who wrote the entry's current values.
    pub writer: Link,
}

/// One step of a walk over the relay log.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub updates: Vec<Outgoing>,
    /// Last sequence examined (the walk resumes after it).
    pub last: u64,
    /// Records remain after `last`.
    pub more: bool,
}

/// Examine at most this many log records per requested update in one walk, so that one call
/// stays short when most records are not for this peer.
const SCAN_FACTOR: usize = 64;

impl Table {
    fn build(&self, rec: &[u32], seq: u64, timed: bool, now: u64, dict: &Interner) -> Update {
        let expire_ms = timed.then(|| match deadline_of(rec) {
            NEVER => 0,
            d => u32::try_from(d.saturating_sub(now)).unwrap_or(u32::MAX),
        });
        Update {
            table_id: self.schema.def.table_id,
            update_id: wire_id(seq),
            id_on_wire: true,
            expire_ms,
            key: self.schema.decode_key(self.key_of(rec)),
            values: values::read(&self.schema, rec, now, dict),
            trailing: Bytes::new(),
        }
    }

    /// Walks the log after `after`: live, unexpired entries accepted by `want(origin word)`,
    /// as updates (timed: with remaining lifetime), at most `budget` of them.
    fn walk(
        &self,
        after: u64,
        budget: usize,
        timed: bool,
        now: u64,
        dict: &Interner,
        want: impl Fn(u32) -> bool,
    ) -> Batch {
        let mut batch = Batch {
            last: after,
            ..Batch::default()
        };
        let max_scan = budget
            .saturating_mul(SCAN_FACTOR)
            .saturating_add(SCAN_FACTOR);
        for (scanned, (seq, slot)) in self.log.after(after).enumerate() {
            if batch.updates.len() >= budget || scanned >= max_scan {
                batch.more = true;
                break;
            }
            batch.last = seq;
            let Some(rec) = self.arena.get(slot) else {
                continue;
            };
            if seq_of(rec) != seq || !want(origin_word(rec)) || deadline_of(rec) <= now {
                continue;
            }
            batch.updates.push(Outgoing {
                seq,
                update: self.build(rec, seq, timed, now, dict),
                writer: Link::from_word(origin_word(rec)),
            });
        }
        batch
    }

    /// Normal pushes to `to`: entries changed since its pointer that the relay rules send
    /// there; advances the pointer over everything examined. Pushes to a member are timed when
    /// the table has an expire: the remaining lifetime tells it when the entry was written
    /// (conflicts are decided on write times). The local HAProxy gets them untimed, as always.
    pub(crate) fn push_batch(
        &mut self,
        to: Link,
        budget: usize,
        now: u64,
        dict: &Interner,
    ) -> Batch {
        let after = self.pointer(to).pushed;
        let timed = matches!(to, Link::Peer(_)) && self.schema.expire_ms > 0;
        let batch = self.walk(after, budget, timed, now, dict, |word| {
            Link::relays_word(word, to)
        });
        let p = self.pointer_mut(to);
        p.pushed = batch.last;
        if let Some(last) = batch.updates.last() {
            p.sent = last.seq;
        }
        if p.acked >= p.sent {
            // Nothing in flight: what was skipped is as good as acknowledged.
            p.acked = p.pushed;
        }
        batch
    }

    /// A lesson step: every entry after `after`, whatever its origin (but the local HAProxy's
    /// own writes when `skip_local`), as timed updates.
    pub(crate) fn lesson_batch(
        &self,
        after: u64,
        budget: usize,
        now: u64,
        dict: &Interner,
        skip_local: bool,
    ) -> Batch {
        // Word 0 is a plain write of the local HAProxy; a re-queued entry carries a marker bit
        // and must still reach it.
        self.walk(after, budget, true, now, dict, |word| {
            !(skip_local && word == Link::Local.word())
        })
    }

    pub(crate) fn pointer(&self, link: Link) -> Pointers {
        self.pointers.get(&link).copied().unwrap_or_default()
    }

    pub(crate) fn pointers(&self) -> impl Iterator<Item = (Link, Pointers)> + '_ {
        self.pointers.iter().map(|(l, p)| (*l, *p))
    }

    fn pointer_mut(&mut self, link: Link) -> &mut Pointers {
        self.pointers.entry(link).or_default()
    }

    /// A new session with `link`: push again everything it did not acknowledge.
    pub(crate) fn rewind(&mut self, link: Link) {
        let p = self.pointer_mut(link);
        p.pushed = p.acked;
        p.sent = p.sent.min(p.acked);
    }

    pub(crate) fn ack(&mut self, link: Link, wire: u32) -> Option<u64> {
        let p = self.pointer_mut(link);
        let seq = map_ack(wire, p.pushed, p.acked)?;
        p.acked = if seq >= p.sent { p.pushed } else { seq };
        Some(seq)
    }

    /// The peer confirmed a lesson that went up to `upto`: it holds everything before.
    pub(crate) fn taught(&mut self, link: Link, upto: u64) {
        let p = self.pointer_mut(link);
        p.pushed = p.pushed.max(upto);
        p.acked = p.acked.max(upto);
        p.sent = p.sent.max(upto);
    }

    pub(crate) fn build_view_update(&self, rec: &[u32], now: u64, dict: &Interner) -> Update {
        self.build(rec, seq_of(rec), true, now, dict)
    }
}
