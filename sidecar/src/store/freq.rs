//! Frequency counters on the sidecar's own clock (§6.3).
//!
//! On the wire a counter is `{elapsed, curr, prev}`: the age of its current period on the
//! sender's clock. The replica stores `period_start = now − elapsed` (u32, wrapping) instead, so
//! that what it sends later is `elapsed = now − period_start`: the age keeps growing by exactly
//! the time that passed here, whatever clock the sender had.

use crate::codec::FreqCounter;

/// Low 32 bits of the monotonic millisecond clock: HAProxy's tick arithmetic is u32 wrapping.
pub(crate) fn clock32(now: u64) -> u32 {
    (now & u64::from(u32::MAX)) as u32
}

/// `[period_start, curr, prev]` as stored.
pub(crate) fn rebase(fc: &FreqCounter, now: u64) -> [u32; 3] {
    [clock32(now).wrapping_sub(fc.elapsed), fc.curr, fc.prev]
}

/// The wire form of stored words at `now`.
pub(crate) fn to_wire(words: [u32; 3], now: u64) -> FreqCounter {
    let [start, curr, prev] = words;
    FreqCounter {
        elapsed: clock32(now).wrapping_sub(start),
        curr,
        prev,
    }
}

/// Whether two stored counters are the same up to `tolerance_ms` on the period start: a
/// counter re-sent by its owner comes back with the transit time added to its age.
pub(crate) fn same(a: [u32; 3], b: [u32; 3], tolerance_ms: u32) -> bool {
    let [sa, ca, pa] = a;
    let [sb, cb, pb] = b;
    ca == cb && pa == pb && (sa.wrapping_sub(sb) as i32).unsigned_abs() <= tolerance_ms
}

/// The rate HAProxy shows for a counter over `period_ms` at `now` (freq_ctr.c
/// `_freq_ctr_total_from_values()` followed by `read_freq_ctr_period()`, §6.3).
pub fn read_rate(fc: FreqCounter, period_ms: u64) -> u32 {
    let period = i64::try_from(period_ms.min(u64::from(u32::MAX))).unwrap_or(0);
    if period == 0 {
        return fc.curr;
    }
    let (mut curr, mut prev) = (u64::from(fc.curr), u64::from(fc.prev));
    // remain = curr_tick + period − now, as a signed 32-bit value.
    let mut remain = i64::from((period as u32).wrapping_sub(fc.elapsed) as i32);
    if remain < 0 {
        if remain + period >= 0 {
            prev = curr;
        } else {
            prev = 0;
        }
        curr = 0;
        remain += period;
    }
    if curr == 0 && prev <= 1 {
        return prev as u32;
    }
    let remain = u64::try_from(remain.max(0)).unwrap_or(0);
    let period = period as u64;
    let total = prev
        .saturating_mul(remain)
        .saturating_add(curr.saturating_mul(period));
    u32::try_from(total / period).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_grows_by_exactly_the_time_passed() {
        let fc = FreqCounter {
            elapsed: 2_000,
            curr: 5,
            prev: 10,
        };
        // Around the u32 wrap of the local clock too.
        for now in [1_000u64, 100_000, (1u64 << 32) - 500, 7 << 40] {
            let stored = rebase(&fc, now);
            for later in [0u64, 1, 3_300, 4_000_000] {
                let sent = to_wire(stored, now + later);
                assert_eq!(u64::from(sent.elapsed), 2_000 + later);
                assert_eq!((sent.curr, sent.prev), (5, 10));
            }
        }
    }

    #[test]
    fn rate_formula_matches_the_2_6_12_check() {
        // §6.3: {elapsed 2000, curr 5, prev 10}, period 10 s, read ~3.3 s later: 9.
        let read = FreqCounter {
            elapsed: 5_300,
            curr: 5,
            prev: 10,
        };
        assert_eq!(read_rate(read, 10_000), 9);
        // One period over: curr becomes prev.
        let rolled = FreqCounter {
            elapsed: 12_000,
            curr: 5,
            prev: 10,
        };
        assert_eq!(read_rate(rolled, 10_000), (5 * 8_000) / 10_000);
        // Two periods over: nothing recent.
        let old = FreqCounter {
            elapsed: 25_000,
            curr: 5,
            prev: 10,
        };
        assert_eq!(read_rate(old, 10_000), 0);
        // Low-rate anti-flap rule.
        let low = FreqCounter {
            elapsed: 100,
            curr: 0,
            prev: 1,
        };
        assert_eq!(read_rate(low, 10_000), 1);
    }

    #[test]
    fn tolerance_on_the_period_start_only() {
        let a = [1_000, 3, 4];
        assert!(same(a, [1_400, 3, 4], 500));
        assert!(same(a, [600, 3, 4], 500));
        assert!(!same(a, [1_600, 3, 4], 500));
        assert!(!same(a, [1_000, 3, 5], 500));
        assert!(same([5, 0, 0], [u32::MAX - 5, 0, 0], 20));
    }
}
