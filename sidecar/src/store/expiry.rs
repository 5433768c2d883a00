//! Expiry order: slots bucketed by deadline.
//!
//! A bucket holds the slots whose deadline fell into it when it was set; a slot whose deadline
//! moves is added to its new bucket and its old reference goes stale. Stale references cost four
//! bytes each, are skipped by checking the record (which always holds the true deadline) and
//! are swept when they outnumber the live ones. Compared with an ordered set of
//! `(deadline, slot)` this keeps the index at ~4–8 bytes per entry instead of ~30, at the price of
//! choosing eviction victims at bucket granularity (purges stay exact: each candidate's own
//! deadline is checked).

use std::collections::BTreeMap;

/// Deadline of an entry that never expires.
pub(crate) const NEVER: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub(crate) struct Expiry {
    granularity: u64,
    buckets: BTreeMap<u64, Vec<u32>>,
    refs: usize,
}

impl Expiry {
    /// Buckets of about 1/64 of the table's expire, at least 100 ms.
    pub(crate) fn new(expire_ms: u64) -> Expiry {
        Expiry {
            granularity: (expire_ms / 64).max(100),
            buckets: BTreeMap::new(),
            refs: 0,
        }
    }

    pub(crate) fn granularity(&self) -> u64 {
        self.granularity
    }

    /// Start of the earliest bucket: no entry expires before it.
    pub(crate) fn first_start(&self) -> Option<u64> {
        let (&bucket, _) = self.buckets.first_key_value()?;
        Some(bucket.saturating_mul(self.granularity))
    }

    pub(crate) fn bucket_of(&self, deadline: u64) -> u64 {
        deadline / self.granularity
    }

    pub(crate) fn add(&mut self, slot: u32, deadline: u64) {
        if deadline == NEVER {
            return;
        }
        self.buckets
            .entry(self.bucket_of(deadline))
            .or_default()
            .push(slot);
        self.refs = self.refs.saturating_add(1);
    }

    pub(crate) fn refs(&self) -> usize {
        self.refs
    }

    /// Takes the earliest bucket if it starts at or before `now`.
    pub(crate) fn take_due(&mut self, now: u64) -> Option<(u64, Vec<u32>)> {
        let (&bucket, _) = self.buckets.first_key_value()?;
        if bucket.saturating_mul(self.granularity) > now {
            return None;
        }
        let slots = self.buckets.remove(&bucket)?;
        self.refs = self.refs.saturating_sub(slots.len());
        Some((bucket, slots))
    }

    /// Puts back slots taken with [`Expiry::take_due`] that are not due yet.
    pub(crate) fn put_back(&mut self, bucket: u64, slots: Vec<u32>) {
        if slots.is_empty() {
            return;
        }
        self.refs = self.refs.saturating_add(slots.len());
        self.buckets.entry(bucket).or_default().extend(slots);
    }

    /// Pops references from the earliest buckets until `is_current(slot, bucket)` accepts one
    /// (an eviction victim); stale references met on the way are dropped.
    pub(crate) fn pop_earliest(&mut self, is_current: impl Fn(u32, u64) -> bool) -> Option<u32> {
        loop {
            let mut first = self.buckets.first_entry()?;
            let bucket = *first.key();
            match first.get_mut().pop() {
                Some(slot) => {
                    self.refs = self.refs.saturating_sub(1);
                    if is_current(slot, bucket) {
                        return Some(slot);
                    }
                }
                None => {
                    first.remove();
                }
            }
        }
    }

    /// Rebuilds from the live `(slot, deadline)` pairs.
    pub(crate) fn rebuild(&mut self, live: impl Iterator<Item = (u32, u64)>) {
        self.buckets.clear();
        self.refs = 0;
        for (slot, deadline) in live {
            self.add(slot, deadline);
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        // Vec buffers plus ~48 bytes of tree node share per bucket.
        self.buckets.values().map(|v| v.capacity() * 4 + 48).sum()
    }
}
