//! One replicated table: its schema, its entries (records in an [`Arena`], found through a hash
//! index of slot numbers), relay order, expiry order, per-peer pointers and counters. Walks over
//! the relay order (pushes, lessons, acks) are in `walk.rs`.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use bytes::Bytes;
use hashbrown::HashTable;

use crate::codec::hashing::SeededState;
use crate::codec::{TableDefinition, Update};

use super::arena::Arena;
use super::dict::Interner;
use super::drift::Difference;
use super::expiry::{Expiry, NEVER};
use super::link::{Link, LOCAL_HAS_IT, TO_EVERY_LINK};
use super::relay::{Pointers, RelayLog};
use super::schema::{Schema, DEADLINE_AT, ORIGIN_AT, SEQ_AT};
use super::values::{self, WriteRules};
use super::{Applied, ApplyError, ReplicaConfig};

/// Counters of one table, for metrics and `/tables`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Updates applied (whether or not they changed anything).
    pub writes: u64,
    /// Writes that changed the entry (and were queued for relaying).
    pub changes: u64,
    /// Entries removed to respect the memory bound.
    pub evictions: u64,
    /// Entries removed because their lifetime ended.
    pub expired: u64,
    /// Entries dropped because a new authoritative definition changed the key.
    pub dropped_on_redefine: u64,
    /// Updates from members refused because the entry here was written later (the entry was
    /// sent back to every member instead).
    pub stale_rejected: u64,
    /// Updates from a new HAProxy process not applied because it had not confirmed our lesson
    /// yet: values it may have counted from zero (docs/sidecar.md "A new HAProxy process").
    pub untaught_ignored: u64,
}

fn u64_at(rec: &[u32], at: usize) -> u64 {
    let lo = rec.get(at).copied().unwrap_or(0);
    let hi = rec.get(at.saturating_add(1)).copied().unwrap_or(0);
    u64::from(lo) | (u64::from(hi) << 32)
}

fn set_u64(rec: &mut [u32], at: usize, v: u64) {
    if let Some(w) = rec.get_mut(at..at.saturating_add(2)) {
        w.copy_from_slice(&[(v & u64::from(u32::MAX)) as u32, (v >> 32) as u32]);
    }
}

pub(crate) fn seq_of(rec: &[u32]) -> u64 {
    u64_at(rec, SEQ_AT)
}

pub(crate) fn deadline_of(rec: &[u32]) -> u64 {
    u64_at(rec, DEADLINE_AT)
}

pub(crate) fn origin_word(rec: &[u32]) -> u32 {
    rec.get(ORIGIN_AT).copied().unwrap_or(0)
}

pub(crate) fn origin_of(rec: &[u32]) -> Link {
    Link::from_word(origin_word(rec))
}

#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) name: Bytes,
    pub(crate) schema: Schema,
    /// Whose definition the schema is.
    pub(crate) authority: Link,
    /// The last definition received from each source.
    pub(crate) sources: Vec<(Link, TableDefinition)>,
    /// Differences of each source's definition from the schema (only non-empty ones).
    pub(crate) drift: Vec<(Link, Vec<Difference>)>,
    pub(super) arena: Arena,
    index: HashTable<u32>,
    hasher: SeededState,
    pub(super) log: RelayLog,
    expiry: Expiry,
    next_seq: u64,
    live: usize,
    pub(super) pointers: BTreeMap<Link, Pointers>,
    pub(crate) stats: TableStats,
    scratch: Vec<u32>,
    /// A record copy: a stale update is written here to learn whether its values differ.
    probe: Vec<u32>,
}

impl Table {
    pub(crate) fn new(name: Bytes, schema: Schema, authority: Link) -> Table {
        Table {
            name,
            arena: Arena::new(schema.stride),
            expiry: Expiry::new(schema.expire_ms),
            schema,
            authority,
            sources: Vec::new(),
            drift: Vec::new(),
            index: HashTable::new(),
            hasher: Default::default(),
            log: RelayLog::default(),
            next_seq: 1,
            live: 0,
            pointers: BTreeMap::new(),
            stats: TableStats::default(),
            scratch: Vec::new(),
            probe: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Last sequence number given out (0: none yet).
    pub(crate) fn head(&self) -> u64 {
        self.next_seq.saturating_sub(1)
    }

    fn hash(&self, key: &[u32]) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn key_of<'a>(&self, rec: &'a [u32]) -> &'a [u32] {
        rec.get(self.schema.key_range()).unwrap_or_default()
    }

    fn find(&self, key: &[u32]) -> Option<u32> {
        self.find_hashed(self.hash(key), key)
    }

    /// [`Table::find`] with the key's hash already computed (a write hashes its key once).
    fn find_hashed(&self, hash: u64, key: &[u32]) -> Option<u32> {
        let range = self.schema.key_range();
        let arena = &self.arena;
        self.index
            .find(hash, |&s| {
                arena.get(s).and_then(|r| r.get(range.clone())) == Some(key)
            })
            .copied()
    }

    fn is_live(arena: &Arena, seq: u64, slot: u32) -> bool {
        arena.get(slot).is_some_and(|r| seq_of(r) == seq)
    }

    /// The table's expire in `source`'s last definition (ours if it sent none).
    fn expire_of(&self, source: Link) -> u64 {
        self.sources
            .iter()
            .find(|(l, _)| *l == source)
            .map_or(self.schema.expire_ms, |(_, d)| d.expire_ms.unwrap_or(0))
    }

    /// The deadline of an update from `origin` at `now`: its write time plus our expire, so that
    /// every record's deadline minus the table's expire is the time of its last write on our
    /// clock, and comparing deadlines compares write times (docs/sidecar.md "Conflicts").
    fn deadline_for(&self, expire: Option<u32>, origin: Link, now: u64) -> u64 {
        let ours = self.schema.expire_ms;
        if ours == 0 {
            // §7.10: a table without expire keeps entries whatever is received.
            return NEVER;
        }
        let written_now = now.saturating_add(ours);
        match expire {
            // 0x85/0x86: written `theirs - remaining` ago (not capped, like 2.6, when the
            // remaining exceeds the sender's expire). A lifetime of 0 comes from a table
            // without expire on the sender: no write time, written now.
            Some(ms) if ms > 0 => match self.expire_of(origin) {
                0 => written_now,
                theirs => written_now
                    .saturating_add(u64::from(ms))
                    .saturating_sub(theirs),
            },
            // 0x80/0x81: written now.
            _ => written_now,
        }
    }

    /// Writes `update` (already checked to be for this table) as `origin` at `now`.
    pub(crate) fn apply(
        &mut self,
        update: &Update,
        origin: Link,
        now: u64,
        config: &ReplicaConfig,
        dict: &mut Interner,
    ) -> Result<Applied, ApplyError> {
        let mut key = std::mem::take(&mut self.scratch);
        let result = self.apply_keyed(&mut key, update, origin, now, config, dict);
        self.scratch = key;
        result
    }

    fn apply_keyed(
        &mut self,
        key: &mut Vec<u32>,
        update: &Update,
        origin: Link,
        now: u64,
        config: &ReplicaConfig,
        dict: &mut Interner,
    ) -> Result<Applied, ApplyError> {
        self.schema
            .encode_key(&update.key, key)
            .map_err(ApplyError::Key)?;
        self.stats.writes = self.stats.writes.saturating_add(1);
        let deadline = self.deadline_for(update.expire_ms, origin, now);
        let mut rules = WriteRules {
            origin,
            now,
            freq_tolerance_ms: config.freq_tolerance_ms,
            dict,
        };
        let hash = self.hash(key);
        if let Some(slot) = self.find_hashed(hash, key) {
            let schema = &self.schema;
            let Some(rec) = self.arena.get_mut(slot) else {
                return Err(ApplyError::Full);
            };
            let old = deadline_of(rec);
            // Last writer wins by write time: a member's update written before the entry's
            // last write here is stale. The local HAProxy's pushes (untimed) are writes it has
            // already applied, so they always are taken; but its table sent as a lesson (timed)
            // is what it holds, and an entry it did not hear about while the sidecar was away
            // is older than the replica's: taking it would undo newer writes fleet-wide, and
            // the repair traffic can race the writes that follow. A member's updates come in
            // the order it made them: one that follows its own earlier one is newer, whatever
            // transit jitter did to the write times. Without expire there is no write time:
            // arrival order.
            let compared = match origin {
                Link::Peer(_) => true,
                Link::Local => update.expire_ms.is_some_and(|ms| ms > 0),
            };
            let stale = compared
                && Link::from_word(origin_word(rec)) != origin
                && old != NEVER
                && deadline < old;
            if stale {
                self.probe.clear();
                self.probe.extend_from_slice(rec);
                if !values::write(schema, &mut self.probe, &update.values, &mut rules) {
                    return Ok(Applied::default());
                }
                return Ok(self.resend(slot, origin));
            }
            let changed = values::write(schema, rec, &update.values, &mut rules);
            let moved = if old == NEVER || deadline == NEVER {
                old != deadline
            } else {
                old.abs_diff(deadline) > config.expiry_tolerance_ms
            };
            if !changed && !moved {
                return Ok(Applied::default());
            }
            // A new value always takes its write time; a pure refresh only beyond the tolerance.
            let seq = self.bump(slot, origin.word(), Some(deadline));
            return Ok(Applied {
                changed: true,
                seq: Some(seq),
                ..Applied::default()
            });
        }
        if deadline <= now {
            // Written longer ago than our expire (a member with a longer one): already expired.
            return Ok(Applied::default());
        }
        let evicted = self.live >= config.max_entries_per_table.max(1) && self.evict_one();
        let slot = self.arena.alloc().ok_or(ApplyError::Full)?;
        let schema = &self.schema;
        if let Some(rec) = self.arena.get_mut(slot) {
            if let Some(k) = rec.get_mut(schema.key_range()) {
                k.copy_from_slice(key);
            }
            values::write(schema, rec, &update.values, &mut rules);
        }
        let (arena, hasher, range) = (&self.arena, &self.hasher, schema.key_range());
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(
                arena
                    .get(s)
                    .and_then(|r| r.get(range.clone()))
                    .unwrap_or_default(),
            )
        });
        self.live = self.live.saturating_add(1);
        let seq = self.bump(slot, origin.word(), Some(deadline));
        Ok(Applied {
            changed: true,
            created: true,
            seq: Some(seq),
            evicted,
            rejected: false,
        })
    }

    /// `from` sent a stale value for the entry in `slot`: refuse it (the caller still acks it)
    /// and queue the entry again so that the sender, and every other member, get the newer
    /// value with its write time. They take it and do not send it back (it is not stale there;
    /// a member holding a still newer write re-sends that one, so re-sends only climb towards
    /// the latest write and end). The record keeps its writer and is marked [`TO_EVERY_LINK`]:
    /// every member but the writer gets it (the writer holds it or a newer write, and an echo
    /// could undo that). The local HAProxy is skipped when it was already sent this value (its
    /// own write, or its pointer is past the entry's last change, [`LOCAL_HAS_IT`]), unless it
    /// is the stale sender itself.
    fn resend(&mut self, slot: u32, from: Link) -> Applied {
        self.stats.stale_rejected = self.stats.stale_rejected.saturating_add(1);
        let Some(rec) = self.arena.get(slot) else {
            return Applied::default();
        };
        let (word, last) = (origin_word(rec), seq_of(rec));
        // HAProxy itself sent the stale value: whatever it was pushed before, it needs this one.
        let haproxy_has_it = from != Link::Local
            && (word == Link::Local.word() || self.pointer(Link::Local).pushed >= last);
        let word = match (Link::from_word(word), haproxy_has_it) {
            // HAProxy's own write: the plain relay rule (every member) says it all, and a
            // lesson to the same process still leaves it out.
            (Link::Local, true) => Link::Local.word(),
            (writer, true) => writer.word() | TO_EVERY_LINK | LOCAL_HAS_IT,
            (writer, false) => writer.word() | TO_EVERY_LINK,
        };
        let seq = self.bump(slot, word, None);
        Applied {
            seq: Some(seq),
            rejected: true,
            ..Applied::default()
        }
    }

    /// Gives the entry the next sequence number (moving it to the end of the relay order),
    /// records its origin word and, if given, its new deadline.
    fn bump(&mut self, slot: u32, origin: u32, deadline: Option<u64>) -> u64 {
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        self.stats.changes = self.stats.changes.saturating_add(1);
        let Some(rec) = self.arena.get_mut(slot) else {
            return seq;
        };
        let old = seq_of(rec);
        set_u64(rec, SEQ_AT, seq);
        if let Some(w) = rec.get_mut(ORIGIN_AT) {
            *w = origin;
        }
        if let Some(d) = deadline {
            let before = deadline_of(rec);
            set_u64(rec, DEADLINE_AT, d);
            // The slot's reference in its bucket stays good while the deadline stays there.
            if old == 0
                || before == NEVER
                || self.expiry.bucket_of(before) != self.expiry.bucket_of(d)
            {
                self.expiry.add(slot, d);
            }
        }
        if old != 0 {
            self.log.stale_one();
        }
        self.log.push(seq, slot);
        self.tidy();
        seq
    }

    fn tidy(&mut self) {
        let arena = &self.arena;
        self.log.tidy(|seq, slot| Self::is_live(arena, seq, slot));
        if self.expiry.refs() > self.live.saturating_mul(2).saturating_add(64) {
            let live: Vec<(u32, u64)> = self.live_slots().collect();
            self.expiry.rebuild(live.into_iter());
        }
    }

    fn live_slots(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        (0..self.arena.high()).filter_map(|s| {
            let rec = self.arena.get(s)?;
            (seq_of(rec) != 0).then(|| (s, deadline_of(rec)))
        })
    }

    fn remove(&mut self, slot: u32) {
        let Some(rec) = self.arena.get(slot) else {
            return;
        };
        if seq_of(rec) == 0 {
            return;
        }
        let hash = self.hash(self.key_of(rec));
        if let Ok(entry) = self.index.find_entry(hash, |&s| s == slot) {
            entry.remove();
        }
        self.arena.release(slot);
        self.log.stale_one();
        self.live = self.live.saturating_sub(1);
    }

    /// Removes the entry expiring soonest (at bucket granularity); entries without expiry go
    /// last, oldest change first. False if the table is empty.
    fn evict_one(&mut self) -> bool {
        let arena = &self.arena;
        let granularity = self.expiry.granularity();
        let victim = self
            .expiry
            .pop_earliest(|slot, bucket| {
                arena.get(slot).is_some_and(|r| {
                    seq_of(r) != 0
                        && deadline_of(r) != NEVER
                        && deadline_of(r) / granularity == bucket
                })
            })
            .or_else(|| {
                self.log
                    .after(0)
                    .find(|&(seq, slot)| Self::is_live(arena, seq, slot))
                    .map(|(_, slot)| slot)
            });
        let Some(slot) = victim else {
            return false;
        };
        self.remove(slot);
        self.stats.evictions = self.stats.evictions.saturating_add(1);
        self.tidy();
        true
    }

    /// Removes entries whose deadline is at or before `now`; returns how many.
    pub(crate) fn purge(&mut self, now: u64) -> usize {
        let mut removed = 0usize;
        while let Some((bucket, slots)) = self.expiry.take_due(now) {
            let mut keep = Vec::new();
            for slot in slots {
                let Some(rec) = self.arena.get(slot) else {
                    continue;
                };
                let (seq, deadline) = (seq_of(rec), deadline_of(rec));
                if seq == 0 || self.expiry.bucket_of(deadline) != bucket || deadline == NEVER {
                    continue; // stale reference
                }
                if deadline <= now {
                    self.remove(slot);
                    removed = removed.saturating_add(1);
                } else {
                    keep.push(slot);
                }
            }
            if !keep.is_empty() {
                // Only the bucket holding `now` can have entries still alive.
                self.expiry.put_back(bucket, keep);
                break;
            }
        }
        if removed > 0 {
            self.stats.expired = self.stats.expired.saturating_add(removed as u64);
            self.tidy();
        }
        removed
    }

    /// When the next entry may expire (bucket start; `None`: nothing expires).
    pub(crate) fn next_expiry(&self) -> Option<u64> {
        self.expiry.first_start()
    }

    /// Switches to a new schema (a new authoritative definition). Entries keep their values
    /// for the data types both store when the key is the same; otherwise they cannot be
    /// converted and are dropped (returned count). A new expire moves every deadline by the
    /// difference, so that deadlines stay write time + expire.
    pub(crate) fn redefine(&mut self, schema: Schema) -> usize {
        let (old_expire, new_expire) = (self.schema.expire_ms, schema.expire_ms);
        if old_expire > 0 && new_expire > 0 && old_expire != new_expire {
            for slot in 0..self.arena.high() {
                if let Some(rec) = self.arena.get_mut(slot) {
                    let d = deadline_of(rec);
                    if seq_of(rec) != 0 && d != NEVER {
                        let d = d.saturating_add(new_expire).saturating_sub(old_expire);
                        set_u64(rec, DEADLINE_AT, d);
                    }
                }
            }
        }
        let same_key = self.schema.same_key(&schema.def);
        let dropped = if same_key {
            let old = &self.schema;
            self.arena = self.arena.restride(
                schema.stride,
                |r| seq_of(r) != 0,
                |o, n| values::convert(old, &schema, o, n),
            );
            0
        } else {
            let n = self.live;
            self.arena = Arena::new(schema.stride);
            self.index.clear();
            self.log.clear();
            self.live = 0;
            self.stats.dropped_on_redefine =
                self.stats.dropped_on_redefine.saturating_add(n as u64);
            n
        };
        self.expiry = Expiry::new(schema.expire_ms);
        self.schema = schema;
        let live: Vec<(u32, u64)> = self.live_slots().collect();
        self.expiry.rebuild(live.into_iter());
        dropped
    }

    /// The sequence number of the entry with this key, if it is live at `now`.
    pub(crate) fn held(&self, key: &crate::codec::Key, now: u64) -> Option<u64> {
        self.lookup(key)
            .filter(|rec| deadline_of(rec) > now)
            .map(seq_of)
    }

    /// An update of a new local HAProxy process for an entry it was not taught yet: not
    /// applied. Counted when it would have changed the entry's values (it may carry counts
    /// restarted from zero); returns whether it would have.
    pub(crate) fn ignore_untaught(
        &mut self,
        update: &Update,
        now: u64,
        config: &ReplicaConfig,
        dict: &mut Interner,
    ) -> bool {
        let mut key = std::mem::take(&mut self.scratch);
        let differs = self.schema.encode_key(&update.key, &mut key).is_ok()
            && self.find(&key).is_some_and(|slot| {
                let Some(rec) = self.arena.get(slot) else {
                    return false;
                };
                self.probe.clear();
                self.probe.extend_from_slice(rec);
                let mut rules = WriteRules {
                    origin: Link::Local,
                    now,
                    freq_tolerance_ms: config.freq_tolerance_ms,
                    dict,
                };
                values::write(&self.schema, &mut self.probe, &update.values, &mut rules)
            });
        self.scratch = key;
        if differs {
            self.stats.untaught_ignored = self.stats.untaught_ignored.saturating_add(1);
        }
        differs
    }

    /// The live entry with this key.
    pub(crate) fn lookup(&self, key: &crate::codec::Key) -> Option<&[u32]> {
        let mut words = Vec::new();
        self.schema.encode_key(key, &mut words).ok()?;
        self.arena.get(self.find(&words)?)
    }

    #[cfg(test)]
    pub(crate) fn set_next_seq_for_test(&mut self, seq: u64) {
        self.next_seq = seq;
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.arena.heap_bytes()
            + self.index.allocation_size()
            + self.log.heap_bytes()
            + self.expiry.heap_bytes()
    }
}
