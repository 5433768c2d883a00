//! Dial delays: exponential backoff with jitter after failures, and HAProxy's random
//! 50–2049 ms pause after a collision or a lost session (§2.5, §7.6). Pure apart from the
//! random seed.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// First delay after a failed dial.
pub(crate) const BASE_MS: u64 = 250;
/// Longest delay between two dials.
pub(crate) const CAP_MS: u64 = 5_000;

/// A small xorshift generator for jitter (not for anything secret). Seeded from the random
/// keys std gives every `RandomState`.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Jitter {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        Jitter::seeded(h.finish())
    }

    pub(crate) fn seeded(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.checked_rem(n).unwrap_or(0)
    }

    /// HAProxy's reconnect delay after a collision or a dead session: 50 + random(0..2000) ms.
    pub(crate) fn collision_delay(&mut self) -> u64 {
        50 + self.below(2_000)
    }
}

/// Consecutive failures of one dialer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The delay before the next attempt after one more failure: doubling from [`BASE_MS`]
    /// up to [`CAP_MS`], each drawn from the upper half of its range so that dialers that
    /// failed together spread out.
    pub(crate) fn failed(&mut self, rng: &mut Jitter) -> u64 {
        let exp = BASE_MS
            .checked_shl(self.failures.min(16))
            .unwrap_or(CAP_MS)
            .min(CAP_MS);
        self.failures = self.failures.saturating_add(1);
        exp / 2 + rng.below(exp / 2 + 1)
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    #[cfg(test)]
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut rng = Jitter::seeded(42);
        let mut b = Backoff::default();
        let bounds = [250, 500, 1_000, 2_000, 4_000, 5_000, 5_000, 5_000];
        for upper in bounds {
            let d = b.failed(&mut rng);
            assert!(
                d >= upper / 2 && d <= upper,
                "{d} not in {}..={upper}",
                upper / 2
            );
        }
        assert_eq!(b.failures(), 8);
        b.reset();
        assert!(b.failed(&mut rng) <= BASE_MS);
    }

    #[test]
    fn collision_delays_stay_in_haproxys_range() {
        let mut rng = Jitter::new();
        let delays: Vec<u64> = (0..2_000).map(|_| rng.collision_delay()).collect();
        assert!(delays.iter().all(|d| (50..2_050).contains(d)));
        // Spread, not a constant: both halves of the range occur.
        assert!(delays.iter().any(|&d| d < 1_000) && delays.iter().any(|&d| d >= 1_050));
        assert_eq!(Jitter::seeded(7).below(0), 0);
    }
}
