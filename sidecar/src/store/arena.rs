//! Fixed-size records of `u32` words in chunks of about 64 KiB (at most 512 records): no
//! per-entry heap, no large reallocation when a table grows, slots reused through a free list.
//! A table with huge keys gets small chunks, so one entry never costs a large allocation.

/// Most records per chunk.
const CHUNK_RECORDS: usize = 512;
/// Words per chunk aimed at (64 KiB).
const CHUNK_WORDS: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct Arena {
    stride: usize,
    per_chunk: usize,
    chunks: Vec<Box<[u32]>>,
    /// Slots handed out so far (used or free).
    high: usize,
    free: Vec<u32>,
}

impl Arena {
    pub(crate) fn new(stride: usize) -> Arena {
        let stride = stride.max(1);
        Arena {
            stride,
            per_chunk: (CHUNK_WORDS / stride).clamp(1, CHUNK_RECORDS),
            chunks: Vec::new(),
            high: 0,
            free: Vec::new(),
        }
    }

    fn range(&self, slot: u32) -> Option<(usize, std::ops::Range<usize>)> {
        let slot = usize::try_from(slot).ok().filter(|&s| s < self.high)?;
        let chunk = slot / self.per_chunk;
        let start = (slot % self.per_chunk).checked_mul(self.stride)?;
        Some((chunk, start..start.checked_add(self.stride)?))
    }

    /// Slots handed out so far: every used slot is below.
    pub(crate) fn high(&self) -> u32 {
        u32::try_from(self.high).unwrap_or(u32::MAX)
    }

    /// A zeroed record; `None` if the slot space (u32) is exhausted.
    pub(crate) fn alloc(&mut self) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.high).ok()?;
                if self.high.is_multiple_of(self.per_chunk) {
                    let words = self.per_chunk.checked_mul(self.stride)?;
                    self.chunks.push(vec![0u32; words].into_boxed_slice());
                }
                self.high = self.high.checked_add(1)?;
                slot
            }
        };
        if let Some(rec) = self.get_mut(slot) {
            rec.fill(0);
        }
        Some(slot)
    }

    pub(crate) fn release(&mut self, slot: u32) {
        if let Some(rec) = self.get_mut(slot) {
            rec.fill(0);
            self.free.push(slot);
        }
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&[u32]> {
        let (chunk, range) = self.range(slot)?;
        self.chunks.get(chunk)?.get(range)
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut [u32]> {
        let (chunk, range) = self.range(slot)?;
        self.chunks.get_mut(chunk)?.get_mut(range)
    }

    /// The same slots with another record size; `convert(old, new)` fills each used record.
    /// `used` says which slots hold entries (free ones stay free and zeroed).
    pub(crate) fn restride(
        &self,
        stride: usize,
        used: impl Fn(&[u32]) -> bool,
        mut convert: impl FnMut(&[u32], &mut [u32]),
    ) -> Arena {
        let mut out = Arena::new(stride);
        for _ in 0..self.high {
            // Cannot fail: `out` has as many slots as `self`, which fit in u32.
            let _ = out.alloc();
        }
        for slot in 0..u32::try_from(self.high).unwrap_or(u32::MAX) {
            let Some(old) = self.get(slot) else { continue };
            if !used(old) {
                out.free.push(slot);
                continue;
            }
            if let Some(new) = out.get_mut(slot) {
                convert(old, new);
            }
        }
        out.free.reverse();
        out
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        let words = self.chunks.len() * self.per_chunk * self.stride;
        words * 4
            + self.chunks.capacity() * std::mem::size_of::<Box<[u32]>>()
            + self.free.capacity() * 4
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_zeroed_and_restrided() {
        let mut a = Arena::new(3);
        let slots: Vec<u32> = (0..1000).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(slots[999], 999);
        a.get_mut(700).unwrap().copy_from_slice(&[7, 8, 9]);
        a.get_mut(5).unwrap().copy_from_slice(&[1, 2, 3]);
        a.release(5);
        assert_eq!(a.alloc(), Some(5));
        assert_eq!(a.get(5).unwrap(), &[0, 0, 0]);
        a.release(5);
        let b = a.restride(
            4,
            |r| r.iter().any(|w| *w != 0),
            |old, new| {
                new[..3].copy_from_slice(old);
                new[3] = 42;
            },
        );
        assert_eq!(b.get(700).unwrap(), &[7, 8, 9, 42]);
        assert_eq!(b.get(1).unwrap(), &[0, 0, 0, 0]);
        assert!(b.get(1000).is_none());
        // Huge records: one per chunk.
        let mut big = Arena::new(20_000);
        let s0 = big.alloc().unwrap();
        let s1 = big.alloc().unwrap();
        big.get_mut(s1).unwrap()[19_999] = 1;
        assert_eq!(big.get(s0).unwrap()[19_999], 0);
        assert_eq!(big.chunks.len(), 2);
        // Every unused slot is free again in the new arena.
        assert_eq!(b.free.len(), 999);
    }
}
