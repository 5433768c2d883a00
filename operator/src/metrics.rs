//! The operator's Prometheus metrics, registered once in one [`Metrics`] value that the
//! controller updates and the admin server encodes on `/metrics`. Label values are bounded:
//! outcomes and `Error::metric_label()` strings only, never object names.

use std::time::Duration;

use prometheus_client::encoding::{text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::api::PeerGroup;

/// The prefix of every family name.
pub const PREFIX: &str = "haproxy_peers_operator";
/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error: &'static str,
}

/// Every metric of the operator.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<OutcomeLabel, Counter>,
    errors: Family<ErrorLabel, Counter>,
    duration: Histogram,
    groups: Gauge,
    members: Gauge,
    leader: Gauge,
    events_failed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reconciles = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reconciles",
            "PeerGroup reconciles by outcome (ok, error)",
            reconciles.clone(),
        );
        let errors = Family::<ErrorLabel, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed PeerGroup reconciles by kind of error",
            errors.clone(),
        );
        // 1 ms .. ~16 s: a reconcile is a handful of API requests, minting adds milliseconds.
        let duration = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "reconcile_duration_seconds",
            "Time one PeerGroup reconcile took, API requests included",
            duration.clone(),
        );
        let groups = Gauge::default();
        registry.register(
            "managed_groups",
            "PeerGroups this operator manages",
            groups.clone(),
        );
        let members = Gauge::default();
        registry.register(
            "members",
            "Members of all managed PeerGroups, as in their status",
            members.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "Whether this replica holds the leader Lease and reconciles (1) or follows (0)",
            leader.clone(),
        );
        let events_failed = Counter::default();
        registry.register(
            "events_failed",
            "Kubernetes Events that could not be published",
            events_failed.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            groups,
            members,
            leader,
            events_failed,
        }
    }

    pub fn reconciled(&self, took: Duration) {
        self.reconciles
            .get_or_create(&OutcomeLabel { outcome: "ok" })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn failed(&self, took: Duration, error: &crate::Error) {
        self.reconciles
            .get_or_create(&OutcomeLabel { outcome: "error" })
            .inc();
        self.errors
            .get_or_create(&ErrorLabel {
                error: error.metric_label(),
            })
            .inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn event_failed(&self) {
        self.events_failed.inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Sets the group and member gauges from the PeerGroups known now.
    pub fn observe_groups<'a>(&self, groups: impl IntoIterator<Item = &'a PeerGroup>) {
        let (mut count, mut members) = (0i64, 0i64);
        for pg in groups {
            count += 1;
            let n = pg.status.as_ref().map_or(0, |s| s.members.len());
            members = members.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.groups.set(count);
        self.members.set(members);
    }

    /// The OpenMetrics text exposition of every family.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_outcome_and_error_kind() {
        let m = Metrics::new();
        m.reconciled(Duration::from_millis(3));
        let err = crate::Error::MissingMetadata { field: "uid" };
        m.failed(Duration::from_millis(1), &err);
        m.set_leader(true);
        let text = m.encode().expect("encode");
        for line in [
            "haproxy_peers_operator_reconciles_total{outcome=\"ok\"} 1",
            "haproxy_peers_operator_reconciles_total{outcome=\"error\"} 1",
            "haproxy_peers_operator_reconcile_errors_total{error=\"missing_metadata\"} 1",
            "haproxy_peers_operator_reconcile_duration_seconds_count 2",
            "haproxy_peers_operator_leader 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
