//! Relay order and per-peer positions in it.
//!
//! Every change of an entry takes the table's next sequence number and appends `(seq, slot)` to
//! the log; the entry's previous record goes stale (the record in the arena holds the entry's
//! current seq, so a log record is live iff both agree). Pushing to a peer is "walk the log after
//! my pointer" (HAProxy's update tree works the same way, §4.3). Stale records are dropped from
//! the front as they come and swept when they outnumber live ones.

use std::collections::VecDeque;

/// What one peer has been sent and has acknowledged, per table (sequence numbers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pointers {
    /// Last sequence examined for this peer (sent, or skipped by the relay rules).
    pub pushed: u64,
    /// Last sequence the peer acknowledged, or skipped after everything sent was
    /// acknowledged; a new session resumes after it.
    pub acked: u64,
    /// Last sequence actually sent. Records after it that the relay rules skipped need no
    /// ack: once the peer acknowledges `sent`, `acked` moves to `pushed` (otherwise a table
    /// whose newest changes came from that peer would show a lag that never ends).
    pub sent: u64,
}

/// Wire update ids are the low 32 bits of the sequence number.
pub fn wire_id(seq: u64) -> u32 {
    (seq & u64::from(u32::MAX)) as u32
}

/// The sequence an ack names: the highest sequence `<= pushed` whose low 32 bits are `wire`.
/// `None` if it does not move the acknowledged point forward (stale, duplicate, or naming
/// something never pushed).
pub fn map_ack(wire: u32, pushed: u64, acked: u64) -> Option<u64> {
    let mut seq = (pushed & !u64::from(u32::MAX)) | u64::from(wire);
    if seq > pushed {
        seq = seq.checked_sub(1u64 << 32)?;
    }
    (seq > acked).then_some(seq)
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RelayLog {
    recs: VecDeque<(u64, u32)>,
    stale: usize,
}

impl RelayLog {
    pub(crate) fn push(&mut self, seq: u64, slot: u32) {
        self.recs.push_back((seq, slot));
    }

    /// One earlier record no longer describes its entry.
    pub(crate) fn stale_one(&mut self) {
        self.stale = self.stale.saturating_add(1);
    }

    pub(crate) fn clear(&mut self) {
        self.recs.clear();
        self.stale = 0;
    }

    /// Records with a sequence number above `seq`, in order.
    pub(crate) fn after(&self, seq: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        let start = self.recs.partition_point(|(s, _)| *s <= seq);
        self.recs.range(start..).copied()
    }

    /// Drops stale records from the front, and sweeps all of them once they outnumber the live
    /// ones (amortised O(1) per change).
    pub(crate) fn tidy(&mut self, is_live: impl Fn(u64, u32) -> bool) {
        while let Some(&(seq, slot)) = self.recs.front() {
            if is_live(seq, slot) {
                break;
            }
            self.recs.pop_front();
            self.stale = self.stale.saturating_sub(1);
        }
        let live = self.recs.len().saturating_sub(self.stale);
        if self.stale > live.max(64) {
            self.recs.retain(|&(seq, slot)| is_live(seq, slot));
            self.stale = 0;
            if self.recs.capacity() > self.recs.len().saturating_mul(2).max(1024) {
                self.recs.shrink_to_fit();
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.recs.len()
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.recs.capacity() * std::mem::size_of::<(u64, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_map_back_across_the_32_bit_wrap() {
        let base = 5u64 << 32;
        // Pushed up to just after a wrap: an ack for an id sent before the wrap.
        let pushed = base + 3;
        assert_eq!(
            map_ack(u32::MAX - 1, pushed, 0),
            Some(base - 2),
            "id before the wrap maps to the previous 2^32 window"
        );
        assert_eq!(map_ack(2, pushed, 0), Some(base + 2));
        assert_eq!(map_ack(3, pushed, 0), Some(pushed));
        // Nothing beyond what was pushed, nothing at or below the acked point.
        assert_eq!(map_ack(4, 3, 0), None);
        assert_eq!(map_ack(2, pushed, base + 2), None);
        assert_eq!(wire_id(base + 7), 7);
    }

    #[test]
    fn stale_records_are_swept() {
        let mut log = RelayLog::default();
        // 200 changes of 2 entries: slot 0 and 1 alternate, only the last two are live.
        for seq in 1..=200u64 {
            log.push(seq, (seq % 2) as u32);
            if seq > 2 {
                log.stale_one();
            }
            log.tidy(|s, _| s + 2 > seq);
        }
        assert!(log.len() <= 2 + 65, "log kept {} records", log.len());
        let after: Vec<u64> = log.after(198).map(|(s, _)| s).collect();
        assert_eq!(after, [199, 200]);
    }
}
