//! Housekeeping on a short timer: the learning decision (its timeout needs a clock), expiry
//! of entries, and the readiness metric and its log line when it changes.

use std::sync::Arc;
use std::time::Duration;

use crate::admin::views::BlockerKind;
use crate::admin::AdminSource;
use crate::mesh::Shared;

use super::source::Source;

const EVERY: Duration = Duration::from_millis(250);

pub(crate) async fn run(shared: Arc<Shared>, source: Arc<Source>) {
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Vec<BlockerKind>> = None;
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let now = shared.clock.now();
        {
            let mut core = shared.lock();
            core.coordinate(now);
            if core.replica.next_expiry().is_some_and(|at| at <= now) {
                let purged = core.replica.purge(now);
                if purged > 0 {
                    tracing::debug!(purged, "expired entries removed");
                }
            }
        }
        let readiness = source.readiness();
        shared.metrics.ready(readiness.ready);
        let kinds: Vec<BlockerKind> = readiness.blockers.iter().map(|b| b.kind).collect();
        if last.as_ref() != Some(&kinds) {
            if readiness.ready {
                tracing::info!("ready: the replica is complete and HAProxy holds it");
            } else {
                for b in &readiness.blockers {
                    tracing::info!(blocker = b.kind.as_str(), "not ready: {}", b.message);
                }
            }
            last = Some(kinds);
        }
    }
}
