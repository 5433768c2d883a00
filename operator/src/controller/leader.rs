//! Leader election over a `coordination.k8s.io/v1` Lease, so that two operator replicas can run
//! and exactly one reconciles. The decision is a pure function of the Lease as read and `now`;
//! the glue only reads and writes the Lease with optimistic concurrency (a write that raced
//! another replica fails with 409 Conflict and simply means "not leader this round").

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};

/// What a replica should do with the Lease at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No lease, or the holder's lease ran out: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a live lease until `expires`.
    Follow { holder: String, expires: SystemTime },
}

/// The part of a Lease the decision depends on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseView {
    pub holder: Option<String>,
    pub renewed: Option<SystemTime>,
    pub duration: Option<Duration>,
}

impl LeaseView {
    pub fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaseView {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renewed: spec
                .renew_time
                .or(spec.acquire_time)
                .map(|t| SystemTime::from(t.0)),
            duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
        }
    }
}

/// Pure: whether `me` acquires, renews or follows. A lease with no renew time or duration is
/// treated as expired, so a half-written Lease can never lock every replica out.
pub fn decide(current: Option<&LeaseView>, me: &str, now: SystemTime) -> LeaseDecision {
    let Some(view) = current else {
        return LeaseDecision::Acquire;
    };
    let Some(holder) = view.holder.as_deref() else {
        return LeaseDecision::Acquire;
    };
    if holder == me {
        return LeaseDecision::Renew;
    }
    match (view.renewed, view.duration) {
        (Some(renewed), Some(duration)) if renewed + duration > now => LeaseDecision::Follow {
            holder: holder.to_string(),
            expires: renewed + duration,
        },
        _ => LeaseDecision::Acquire,
    }
}

/// One replica's side of the election.
pub struct LeaderElector {
    api: Api<Lease>,
    lease_name: String,
    identity: String,
    duration: Duration,
}

/// The outcome of one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    Leader,
    Follower {
        holder: String,
    },
    /// Another replica wrote the Lease between our read and our write.
    LostRace,
}

impl LeaderElector {
    pub fn new(api: Api<Lease>, lease_name: &str, identity: &str, duration: Duration) -> Self {
        LeaderElector {
            api,
            lease_name: lease_name.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Reads the Lease, decides, and writes it when acquiring or renewing.
    pub async fn round(&self, now: SystemTime) -> Result<Round, kube::Error> {
        let current = self.api.get_opt(&self.lease_name).await?;
        let view = current.as_ref().map(LeaseView::of);
        match decide(view.as_ref(), &self.identity, now) {
            LeaseDecision::Follow { holder, .. } => Ok(Round::Follower { holder }),
            decision => {
                let transitions = current
                    .as_ref()
                    .and_then(|l| l.spec.as_ref())
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0);
                let acquire_time = match (&decision, &current) {
                    (LeaseDecision::Renew, Some(l)) => {
                        l.spec.as_ref().and_then(|s| s.acquire_time.clone())
                    }
                    _ => None,
                }
                .or_else(|| micro(now));
                let spec = LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: i32::try_from(self.duration.as_secs()).ok(),
                    acquire_time,
                    renew_time: micro(now),
                    lease_transitions: Some(match decision {
                        LeaseDecision::Acquire if current.is_some() => {
                            transitions.saturating_add(1)
                        }
                        _ => transitions,
                    }),
                    ..LeaseSpec::default()
                };
                let result = match current {
                    None => {
                        let lease = Lease {
                            metadata: ObjectMeta {
                                name: Some(self.lease_name.clone()),
                                ..ObjectMeta::default()
                            },
                            spec: Some(spec),
                        };
                        self.api.create(&PostParams::default(), &lease).await
                    }
                    Some(mut lease) => {
                        // resourceVersion stays set: the write fails with 409 if someone else wrote.
                        lease.spec = Some(spec);
                        self.api
                            .replace(&self.lease_name, &PostParams::default(), &lease)
                            .await
                    }
                };
                match result {
                    Ok(_) => Ok(Round::Leader),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::LostRace),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Gives the lease up, if this replica still holds it, so that a follower takes over at its
    /// next retry instead of when the lease runs out. Returns whether it released anything; a
    /// race with another writer (409) means someone else holds it already.
    pub async fn release(&self, now: SystemTime) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.lease_name).await? else {
            return Ok(false);
        };
        let Some(spec) = lease.spec.take() else {
            return Ok(false);
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        lease.spec = Some(released(spec, now));
        match self
            .api
            .replace(&self.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Pure: the Lease as a leader leaves it, the way client-go's leader election releases it: no
/// holder (so [`decide`] says `Acquire` to everyone), a 1 s duration, the history kept.
pub fn released(spec: LeaseSpec, now: SystemTime) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        renew_time: micro(now),
        ..spec
    }
}

fn micro(t: SystemTime) -> Option<MicroTime> {
    k8s_openapi::jiff::Timestamp::try_from(t)
        .ok()
        .map(MicroTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn held(by: &str, renewed: u64) -> LeaseView {
        LeaseView {
            holder: Some(by.into()),
            renewed: Some(at(renewed)),
            duration: Some(Duration::from_secs(15)),
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, "a", at(0)), LeaseDecision::Acquire);
        assert_eq!(
            decide(Some(&held("a", 0)), "a", at(100)),
            LeaseDecision::Renew
        );
        assert_eq!(
            decide(Some(&held("b", 0)), "a", at(14)),
            LeaseDecision::Follow {
                holder: "b".into(),
                expires: at(15)
            }
        );
        assert_eq!(
            decide(Some(&held("b", 0)), "a", at(15)),
            LeaseDecision::Acquire,
            "expired lease"
        );
        let half_written = LeaseView {
            holder: Some("b".into()),
            renewed: None,
            duration: None,
        };
        assert_eq!(
            decide(Some(&half_written), "a", at(0)),
            LeaseDecision::Acquire
        );
        let released = LeaseView {
            holder: None,
            ..held("b", 0)
        };
        assert_eq!(decide(Some(&released), "a", at(1)), LeaseDecision::Acquire);
    }

    #[test]
    fn a_released_lease_is_free_at_once_and_keeps_its_history() {
        let spec = LeaseSpec {
            holder_identity: Some("b".into()),
            lease_duration_seconds: Some(15),
            acquire_time: micro(at(0)),
            renew_time: micro(at(10)),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        };
        let out = released(spec.clone(), at(11));
        assert_eq!(out.holder_identity, None);
        assert_eq!(out.lease_duration_seconds, Some(1));
        assert_eq!(out.renew_time, micro(at(11)));
        assert_eq!(out.acquire_time, spec.acquire_time);
        assert_eq!(out.lease_transitions, Some(3));
        let lease = Lease {
            spec: Some(out),
            ..Lease::default()
        };
        assert_eq!(
            decide(Some(&LeaseView::of(&lease)), "a", at(11)),
            LeaseDecision::Acquire,
            "b's lease would have run until 25"
        );
    }
}
