//! One reconcile of one PeerGroup, as a thin sequence of single calls:
//! read -> certificate inventory -> member identities -> plan -> mint -> render -> apply ->
//! status -> events -> requeue. Every decision is made by the pure functions in `render` and
//! `certs`; this file only moves their inputs and outputs to and from the API server.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use kube::runtime::controller::Action;

use super::context::{backoff, Context};
use super::events::{self, Note};
use super::{apply, observe};
use crate::api::PeerGroup;
use crate::certs::{self, CertInventory, CertPlan};
use crate::error::{Error, Result};
use crate::render::names::GroupRef;
use crate::render::{self, checks, MemberIdentity};

/// Requeues never come sooner than this, even when a certificate is due right now.
pub const MIN_REQUEUE: Duration = Duration::from_secs(1);

/// What one reconcile did and when the group wants the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The earliest of the certificate plan's next check and the periodic resync.
    pub requeue_after: Duration,
    /// When the certificate plan next has something to do (`None`: TLS off, or no plan).
    pub cert_next_check: Option<SystemTime>,
    /// One line per object written or deleted, for the log.
    pub wrote: Vec<String>,
    pub status_written: bool,
    pub events_published: usize,
}

/// The controller's reconciler: [`reconcile_at`] at the context's clock, with metrics, and a
/// Warning event on the group when it fails.
pub async fn reconcile(pg: Arc<PeerGroup>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_at(&pg, &ctx, ctx.now()).await;
    let took = started.elapsed();
    let ns = pg.metadata.namespace.as_deref().unwrap_or_default();
    let name = pg.metadata.name.as_deref().unwrap_or_default();
    match result {
        Ok(outcome) => {
            ctx.metrics.reconciled(took);
            ctx.clear_failures(ns, name);
            tracing::debug!(
                namespace = ns,
                group = name,
                wrote = ?outcome.wrote,
                status_written = outcome.status_written,
                requeue_after = ?outcome.requeue_after,
                "reconciled"
            );
            Ok(Action::requeue(outcome.requeue_after))
        }
        Err(e) => {
            ctx.metrics.failed(took, &e);
            events::publish(&ctx, &pg, &[events::failure_note(&e)]).await;
            Err(e)
        }
    }
}

/// After a failed reconcile: retry with a backoff that doubles per failure of this group in a
/// row (reset by a success), and log the error, which says what to do.
pub fn error_policy(pg: Arc<PeerGroup>, error: &Error, ctx: Arc<Context>) -> Action {
    let ns = pg.metadata.namespace.as_deref().unwrap_or_default();
    let name = pg.metadata.name.as_deref().unwrap_or_default();
    let failures = ctx.record_failure(ns, name);
    let retry_in = backoff(failures);
    tracing::warn!(
        namespace = ns,
        group = name,
        error = %error,
        failures,
        retry_in = ?retry_in,
        "reconcile failed"
    );
    Action::requeue(retry_in)
}

/// Reconciles the PeerGroup named by `pg` (re-read from the API) as of `now`.
pub async fn reconcile_at(pg: &PeerGroup, ctx: &Context, now: SystemTime) -> Result<Outcome> {
    let group = GroupRef::of(pg)?;
    let Some(pg) = observe::peer_group(&ctx.client, &group).await? else {
        // Deleted: the garbage collector removes what it owned.
        return Ok(Outcome::idle(ctx.resync));
    };
    let uid = pg.metadata.uid.clone().ok_or(Error::MissingMetadata {
        field: "metadata.uid",
    })?;
    let seen = observe::observe(&ctx.client, &pg, &group).await?;
    let parsed = seen.owned.inventory(&group, &uid);
    for problem in &parsed.problems {
        tracing::warn!(namespace = %group.namespace, group = %group.name, %problem, "certificate data");
    }
    let identities = render::member_identities(&pg, &seen.pods)?;
    let (inventory, plan) = certificates(&pg, &group, parsed.inventory, &identities, now)?;
    let desired = render::render(&pg, &seen.pods, &seen.others, &inventory, now)?;
    let wrote = match &desired.objects {
        Some(objects) => {
            apply::apply_objects(&ctx.client, &pg, &group, &seen.owned, objects).await?
        }
        // Invalid spec: what is applied stays as it is; the status says what to fix.
        None => Vec::new(),
    };
    let status_written = apply::patch_status(&ctx.client, &pg, &group, &desired.status).await?;
    let notes: Vec<Note> = events::inventory_note(&parsed.problems)
        .into_iter()
        .chain(plan.iter().flat_map(|p| p.events.iter().map(Note::from)))
        .chain(desired.events.iter().map(Note::from))
        .collect();
    let events_published = events::publish(ctx, &pg, &notes).await;
    let cert_next_check = plan.and_then(|p| p.next_check);
    Ok(Outcome {
        requeue_after: requeue_after(cert_next_check, now, ctx.resync),
        cert_next_check,
        wrote,
        status_written,
        events_published,
    })
}

/// Plans the group's certificates and mints what the plan asks for. No plan when TLS is off or
/// the spec is invalid: nothing would be applied, so nothing is minted.
fn certificates(
    pg: &PeerGroup,
    group: &GroupRef,
    inventory: CertInventory,
    members: &[MemberIdentity],
    now: SystemTime,
) -> Result<(CertInventory, Option<CertPlan>)> {
    if !pg.spec.tls.enabled || !checks::spec_mistakes(group, &pg.spec).is_empty() {
        return Ok((inventory, None));
    }
    let Ok(policy) = pg.spec.tls.cert_policy() else {
        return Ok((inventory, None));
    };
    let desired = members
        .iter()
        .map(|m| (m.name.clone(), m.dns_names.clone()))
        .collect();
    let plan = certs::plan(&inventory, &desired, &policy, now);
    if plan.is_empty() {
        return Ok((inventory, Some(plan)));
    }
    let minted = certs::mint(&inventory, &plan, &group.name).map_err(|source| Error::Mint {
        group: format!("{}/{}", group.namespace, group.name),
        source,
    })?;
    Ok((minted, Some(plan)))
}

/// Pure: the wait until the next reconcile, at most `resync`, at least [`MIN_REQUEUE`].
pub fn requeue_after(
    next_check: Option<SystemTime>,
    now: SystemTime,
    resync: Duration,
) -> Duration {
    let until_check = next_check
        .map(|t| t.duration_since(now).unwrap_or_default())
        .unwrap_or(resync);
    until_check.min(resync).max(MIN_REQUEUE)
}

impl Outcome {
    fn idle(resync: Duration) -> Self {
        Outcome {
            requeue_after: resync,
            cert_next_check: None,
            wrote: Vec::new(),
            status_written: false,
            events_published: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeue_is_the_sooner_of_check_and_resync() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let resync = Duration::from_secs(300);
        let soon = now + Duration::from_secs(42);
        assert_eq!(
            requeue_after(Some(soon), now, resync),
            Duration::from_secs(42)
        );
        let late = now + Duration::from_secs(86_400);
        assert_eq!(requeue_after(Some(late), now, resync), resync);
        assert_eq!(requeue_after(None, now, resync), resync);
        let past = now - Duration::from_secs(5);
        assert_eq!(requeue_after(Some(past), now, resync), MIN_REQUEUE);
    }
}
