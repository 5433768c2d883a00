//! What every reconcile receives: the client, the clock, the event reporter, the metrics, and
//! the per-group failure counts that drive the retry backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kube::runtime::events::Reporter;
use kube::Client;

use crate::metrics::Metrics;
use crate::render::names::MANAGER;

/// Where reconciles read the time: the system clock in the binary, a settable one in tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// How often a group is reconciled when nothing happens, at the latest: a missed watch event or
/// a change made behind the operator's back is repaired within this time.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(5 * 60);

/// The first retry after a failed reconcile comes this soon; each further failure doubles it.
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// Retries never wait longer than this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5 * 60);

/// Pure: how long to wait before retrying after the `failures`-th failure in a row (1-based).
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX)
}

/// Shared by every reconcile of one controller.
pub struct Context {
    pub client: Client,
    /// Names this replica in the Events it publishes.
    pub reporter: Reporter,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// The longest a group waits for its next reconcile ([`DEFAULT_RESYNC`]).
    pub resync: Duration,
    /// Failures in a row by (namespace, name); cleared by a successful reconcile.
    failures: Mutex<HashMap<(String, String), u32>>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, clock: Clock, instance: &str) -> Self {
        Context {
            client,
            reporter: Reporter {
                controller: MANAGER.to_string(),
                instance: Some(instance.to_string()),
            },
            metrics,
            clock,
            resync: DEFAULT_RESYNC,
            failures: Mutex::default(),
        }
    }

    pub fn with_resync(mut self, resync: Duration) -> Self {
        self.resync = resync;
        self
    }

    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), u32>> {
        // Only counters inside: a panic elsewhere cannot leave them inconsistent.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more failure of the group and returns how many in a row.
    pub fn record_failure(&self, namespace: &str, name: &str) -> u32 {
        let mut failures = self.failures();
        let n = failures
            .entry((namespace.to_string(), name.to_string()))
            .or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub fn clear_failures(&self, namespace: &str, name: &str) {
        self.failures()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(0), BACKOFF_BASE);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
