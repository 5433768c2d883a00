//! What HAProxy displays for a frequency counter (peers-protocol.md §6.3), and the range a
//! replicated counter may display when its period start is only known within a window.

/// The rate `show table` prints for a counter holding `curr` events in the current period and
/// `prev` in the previous one, `age_ms` after the current period started.
pub fn displayed_rate(curr: u64, prev: u64, period_ms: u64, age_ms: u64) -> u64 {
    let period = i128::from(period_ms.max(1));
    let mut remain = period - i128::from(age_ms);
    let (mut curr, mut prev) = (i128::from(curr), i128::from(prev));
    if remain < 0 {
        prev = if remain + period >= 0 { curr } else { 0 };
        curr = 0;
        remain += period;
    }
    // The anti-flap rule for low rates.
    if curr == 0 && prev <= 1 {
        return u64::try_from(prev).unwrap_or(0);
    }
    u64::try_from((prev * remain.max(0) + curr * period) / period).unwrap_or(u64::MAX)
}

/// The lowest and highest rate a counter `(curr, prev)` can display when read at an age
/// between `min_age_ms` and `max_age_ms`: the displayed rate never grows with age.
pub fn rate_bounds(
    curr: u64,
    prev: u64,
    period_ms: u64,
    min_age_ms: u64,
    max_age_ms: u64,
) -> (u64, u64) {
    (
        displayed_rate(curr, prev, period_ms, max_age_ms),
        displayed_rate(curr, prev, period_ms, min_age_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_reading() {
        // §6.3 check: {elapsed 2000, curr 5, prev 10}, period 10000, read 3.3 s later.
        assert_eq!(displayed_rate(5, 10, 10_000, 5_300), 9);
    }

    #[test]
    fn a_fresh_counter_shows_curr_for_one_period_then_decays() {
        assert_eq!(displayed_rate(4, 0, 10_000, 0), 4);
        assert_eq!(displayed_rate(4, 0, 10_000, 9_999), 4);
        assert_eq!(displayed_rate(4, 0, 10_000, 10_000), 4);
        assert_eq!(displayed_rate(4, 0, 10_000, 15_000), 2);
        assert_eq!(displayed_rate(4, 0, 10_000, 20_000), 0);
        // Anti-flap: a single event stays visible for two periods.
        assert_eq!(displayed_rate(1, 0, 10_000, 19_999), 1);
        assert_eq!(displayed_rate(1, 0, 10_000, 20_001), 0);
    }

    #[test]
    fn never_grows_with_age() {
        for (curr, prev) in [(0, 0), (1, 0), (0, 1), (7, 3), (1000, 5)] {
            let mut last = u64::MAX;
            for age in (0..30_000).step_by(97) {
                let rate = displayed_rate(curr, prev, 10_000, age);
                assert!(rate <= last, "({curr},{prev}) grew at {age}");
                last = rate;
            }
        }
        assert_eq!(rate_bounds(4, 0, 10_000, 100, 15_000), (2, 4));
    }
}
