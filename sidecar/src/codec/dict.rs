//! The per-session `server_key` dictionaries (§6.5): 128 slots in each direction, cleared when
//! the session ends.

use std::collections::HashMap;

use bytes::Bytes;

use super::entry::{DictValue, DICT_SLOTS};

/// Receiving side: slot id → string.
#[derive(Debug, Clone)]
pub(crate) struct RxDict {
    slots: Vec<Option<Bytes>>,
}

impl Default for RxDict {
    fn default() -> Self {
        RxDict {
            slots: vec![None; DICT_SLOTS],
        }
    }
}

impl RxDict {
    /// Slot index of a wire id (1..=128).
    fn index(id: u64) -> Option<usize> {
        let i = usize::try_from(id).ok()?.checked_sub(1)?;
        (i < DICT_SLOTS).then_some(i)
    }

    pub(crate) fn get(&self, id: u64) -> Option<Option<Bytes>> {
        Some(self.slots.get(Self::index(id)?)?.clone())
    }

    pub(crate) fn set(&mut self, id: u64, value: Bytes) -> bool {
        match Self::index(id).and_then(|i| self.slots.get_mut(i)) {
            Some(slot) => {
                *slot = Some(value);
                true
            }
            None => false,
        }
    }
}

/// Sending side: slots, an index by string, and the round-robin eviction pointer.
#[derive(Debug, Clone)]
pub(crate) struct TxDict {
    slots: Vec<Option<Bytes>>,
    by_value: HashMap<Bytes, u8>,
    next: usize,
    /// Changes of the message being encoded: (slot id, previous string, previous `next`).
    journal: Vec<(u8, Option<Bytes>, usize)>,
}

impl Default for TxDict {
    fn default() -> Self {
        TxDict {
            slots: vec![None; DICT_SLOTS],
            by_value: HashMap::new(),
            next: 0,
            journal: Vec::new(),
        }
    }
}

impl TxDict {
    fn index(id: u8) -> Option<usize> {
        let i = usize::from(id).checked_sub(1)?;
        (i < DICT_SLOTS).then_some(i)
    }

    /// The wire form for `value`: a reference if the receiver already holds it, otherwise a
    /// definition into the next slot (round-robin, like HAProxy's `dcache_tx_insert()`).
    pub(crate) fn choose(&mut self, value: Option<&Bytes>) -> DictValue {
        let Some(value) = value else {
            return DictValue::Absent;
        };
        if let Some(&id) = self.by_value.get(value) {
            return DictValue::Ref {
                id,
                value: Some(value.clone()),
            };
        }
        let slot = self.next;
        let id = u8::try_from(slot.saturating_add(1)).unwrap_or(u8::MAX);
        self.store(id, value.clone());
        self.next = slot.saturating_add(1) % DICT_SLOTS;
        DictValue::Define {
            id,
            value: value.clone(),
        }
    }

    /// Records that `value` is sent into slot `id`; false if the id is not 1..=128.
    pub(crate) fn store(&mut self, id: u8, value: Bytes) -> bool {
        let Some(slot) = Self::index(id).and_then(|i| self.slots.get_mut(i)) else {
            return false;
        };
        self.journal.push((id, slot.clone(), self.next));
        if let Some(old) = slot.take() {
            if self.by_value.get(&old) == Some(&id) {
                self.by_value.remove(&old);
            }
        }
        self.by_value.insert(value.clone(), id);
        *slot = Some(value);
        true
    }

    /// Starts a message: later [`TxDict::rollback`] undoes only its changes.
    pub(crate) fn begin(&mut self) {
        self.journal.clear();
    }

    /// Undoes the changes since [`TxDict::begin`] (the message was not sent).
    pub(crate) fn rollback(&mut self) {
        while let Some((id, previous, next)) = self.journal.pop() {
            if let Some(slot) = Self::index(id).and_then(|i| self.slots.get_mut(i)) {
                if let Some(current) = slot.take() {
                    if self.by_value.get(&current) == Some(&id) {
                        self.by_value.remove(&current);
                    }
                }
                if let Some(prev) = &previous {
                    self.by_value.insert(prev.clone(), id);
                }
                *slot = previous;
            }
            self.next = next;
        }
    }

    /// Whether a reference to `id` would resolve to `value` at the receiver.
    pub(crate) fn holds(&self, id: u8, value: Option<&Bytes>) -> bool {
        Self::index(id)
            .and_then(|i| self.slots.get(i))
            .is_some_and(|slot| slot.as_ref() == value)
    }
}
