//! The leader-election loops around [`LeaderElector`]: follow until this replica leads, then
//! renew until it no longer can. Losing the lease ends the process (see [`super::run`]): a
//! replica that might have missed a renewal must not keep writing next to the new leader.

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::context::Clock;
use super::leader::{LeaderElector, Round};
use crate::admin::AdminState;
use crate::error::Error;

/// The Lease and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's name in the Lease (its pod name).
    pub identity: String,
    /// How long a lease lasts without renewal: the longest a crashed leader blocks a takeover.
    pub duration: Duration,
    /// How often the leader renews and a follower retries.
    pub retry: Duration,
    /// A leader that could not renew for this long stops: before the lease runs out, so that
    /// two replicas never reconcile at once.
    pub renew_deadline: Duration,
}

impl LeaseConfig {
    /// 15 s leases renewed every 5 s; a leader gives up after 10 s without renewal.
    pub fn new(namespace: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: namespace.to_string(),
            name: crate::render::names::MANAGER.to_string(),
            identity: identity.to_string(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
        }
    }
}

/// Returns once this replica holds the lease. While another replica leads, this one is ready
/// (it can take over) as long as it reaches the API server.
pub async fn acquire(
    elector: &LeaderElector,
    cfg: &LeaseConfig,
    clock: &Clock,
    admin: &AdminState,
) {
    let mut last_holder: Option<String> = None;
    loop {
        match elector.round(clock()).await {
            Ok(Round::Leader) => return,
            Ok(Round::Follower { holder }) => {
                admin.set_ready();
                if last_holder.as_deref() != Some(holder.as_str()) {
                    info!(leader = %holder, lease = %cfg.name, "following; this replica takes over if the leader stops renewing");
                    last_holder = Some(holder);
                }
            }
            Ok(Round::LostRace) => {}
            Err(e) => {
                admin.set_not_ready(format!(
                    "cannot read or write Lease {}/{}: {e}",
                    cfg.namespace, cfg.name
                ));
                warn!(error = %e, lease = %cfg.name, namespace = %cfg.namespace,
                    "leader election failed; check that the operator may get, create and update Leases in this namespace");
            }
        }
        tokio::time::sleep(cfg.retry).await;
    }
}

/// Renews the lease every `retry`; returns why leadership is lost.
pub async fn keep(elector: &LeaderElector, cfg: &LeaseConfig, clock: &Clock) -> Error {
    let mut renewed = Instant::now();
    let lost = |why: String| Error::LeadershipLost {
        namespace: cfg.namespace.clone(),
        name: cfg.name.clone(),
        why,
    };
    loop {
        tokio::time::sleep(cfg.retry).await;
        match elector.round(clock()).await {
            Ok(Round::Leader) => renewed = Instant::now(),
            Ok(Round::Follower { holder }) => return lost(format!("{holder} holds it now")),
            Ok(Round::LostRace) => return lost("another replica wrote it first".into()),
            Err(e) if renewed.elapsed() >= cfg.renew_deadline => {
                return lost(format!(
                    "not renewed for {}s, the last attempt failed: {e}",
                    renewed.elapsed().as_secs()
                ))
            }
            Err(e) => {
                warn!(error = %e, lease = %cfg.name, "cannot renew the leader lease; retrying")
            }
        }
    }
}

/// Releases the lease after a graceful stop, within a bound: the process is exiting, and a
/// lease left behind only delays the takeover to its expiry.
pub async fn release(elector: &LeaderElector, cfg: &LeaseConfig, clock: &Clock) {
    match tokio::time::timeout(RELEASE_TIMEOUT, elector.release(clock())).await {
        Ok(Ok(true)) => {
            info!(lease = %cfg.name, namespace = %cfg.namespace, "released the leader lease; a follower takes over at its next retry")
        }
        Ok(Ok(false)) => {}
        Ok(Err(e)) => {
            warn!(error = %e, lease = %cfg.name, "could not release the leader lease; a follower takes over when it runs out")
        }
        Err(_) => {
            warn!(lease = %cfg.name, "releasing the leader lease timed out; a follower takes over when it runs out")
        }
    }
}

const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);
