//! The one clock of the data path: monotonic milliseconds since the runtime started. Sessions
//! and the replica take `now` in these units; the shell turns their deadlines back into
//! [`Instant`]s for its timers.

use std::time::{Duration, Instant};

/// Deadlines this far out (or `u64::MAX`, "never") are treated as a day away.
const FAR: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    /// Milliseconds since start. Starts at 1 so that 0 can never be mistaken for a reading.
    pub(crate) fn now(&self) -> u64 {
        let ms = self.start.elapsed().as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX).saturating_add(1)
    }

    /// The instant of reading `ms` (capped a day ahead, so "never" stays representable).
    pub(crate) fn instant(&self, ms: u64) -> tokio::time::Instant {
        let now = Instant::now();
        let at = self
            .start
            .checked_add(Duration::from_millis(ms.saturating_sub(1)))
            .unwrap_or(now + FAR)
            .min(now + FAR);
        tokio::time::Instant::from_std(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_and_instants_agree() {
        let c = Clock::new();
        let a = c.now();
        assert!(a >= 1);
        let at = c.instant(a + 50);
        let left = at.duration_since(tokio::time::Instant::now());
        assert!(left <= Duration::from_millis(50), "{left:?}");
        assert!(c.instant(u64::MAX) > tokio::time::Instant::now() + Duration::from_secs(3600));
    }
}
