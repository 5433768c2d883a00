//! What to do with a group's certificates at `now`: a pure function of the inventory, the
//! desired members and their DNS names, the policy and the clock. Its output is data
//! ([`CertPlan`]); [`super::mint`] carries it out.
//!
//! A CA rotation has three phases, each read off certificate fields, so no state is kept
//! besides the certificates themselves:
//! 1. the signing CA is within `ca_renew_before` of expiry: a new CA joins the bundle (pending);
//! 2. the pending CA was published `propagation_delay` ago, so every pod trusts it: it signs,
//!    and every leaf is reissued;
//! 3. the oldest leaf of the new CA was published `propagation_delay` ago, so no pod presents
//!    a leaf of the old CA any more: the old CA leaves the bundle.
//!
//! "Published at" is the certificate's `not_before` plus [`NOT_BEFORE_BACKDATE`]. That holds
//! as long as the controller writes what was minted promptly (`G-ca` first, then `G-peer-tls`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::encoding::{floor_secs, short};
use super::events::EventLog;
use super::inventory::{CertInventory, CA_BUNDLE_KEY};
use super::policy::CertPolicy;

use super::events::CertEvent;

/// Certificates start this long before they are minted, so that a pod whose clock is a little
/// behind the operator's does not reject a certificate as not yet valid.
pub const NOT_BEFORE_BACKDATE: Duration = Duration::from_secs(60);

/// The validity a certificate is minted with (whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// Why a CA is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaReason {
    /// The group has no CA yet.
    Initial,
    /// Phase 1 of a rotation: the signing CA is near expiry.
    Rotation,
    /// The signing CA expired before it could be rotated.
    SigningCaExpired,
    /// No usable signing key (missing from `G-ca`, unreadable, or of no CA in the bundle).
    SigningKeyUnavailable,
}

/// Why a leaf is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeafReason {
    New,
    Renew,
    SanChange,
    CaChange,
}

/// Why a CA leaves the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCaReason {
    /// Phase 3 of a rotation: nothing it signed is in use any more.
    Retired,
    Expired,
}

/// One step, executed in order by `mint`. Leaves are always signed by the CA that signs at
/// that point of the sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertAction {
    /// Mint a CA and add it to the bundle; it signs from now on if `signing`, otherwise it
    /// becomes the pending CA.
    IssueCa {
        validity: Validity,
        signing: bool,
        reason: CaReason,
    },
    /// The pending CA (in the bundle, with its key) becomes the signing CA.
    SwitchSigningCa {
        fingerprint: String,
    },
    IssueLeaf {
        member: String,
        /// Sorted, deduplicated.
        dns_names: Vec<String>,
        validity: Validity,
        reason: LeafReason,
    },
    DropLeaf {
        member: String,
    },
    DropCa {
        fingerprint: String,
        reason: DropCaReason,
    },
}

/// The outcome of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPlan {
    pub actions: Vec<CertAction>,
    /// Once the actions are applied, the earliest time after `now` at which planning again
    /// would act: the controller requeues for then. `None`: nothing is ever due.
    pub next_check: Option<SystemTime>,
    /// Kubernetes Events describing the actions (and problems planning cannot fix).
    pub events: Vec<CertEvent>,
}

impl CertPlan {
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }
}

/// Plans the certificate work for `desired` (member name -> DNS SANs) at `now`.
///
/// Assumes `policy` passed [`CertPolicy::validate`]; with an invalid policy the plan still
/// terminates but may not be idempotent.
pub fn plan(
    inventory: &CertInventory,
    desired: &BTreeMap<String, Vec<String>>,
    policy: &CertPolicy,
    now: SystemTime,
) -> CertPlan {
    let mut planner = Planner::new(inventory, policy, now);
    planner.ensure_signing_ca(inventory);
    planner.drop_expired_cas();
    // A switch can make the new signing CA due for rotation (the controller was down), and
    // with no propagation delay a CA issued for rotation signs at once: run both to a fixpoint.
    for _ in 0..3 {
        let switched = planner.switch_to_pending();
        let started = planner.start_rotation();
        if !switched && !started {
            break;
        }
    }
    let desired = planner.sanitize(desired);
    planner.issue_leaves(&desired);
    planner.drop_departed(&desired);
    planner.retire_old_cas();
    planner.finish()
}

/// Identifies a CA inside one planning pass: one that exists, or one this plan issues (the
/// index of its `IssueCa` action).
#[derive(Debug, Clone, PartialEq, Eq)]
enum CaId {
    Existing(String),
    Planned(usize),
}

/// What the planner needs of a CA.
#[derive(Debug, Clone)]
struct CaView {
    id: CaId,
    published: SystemTime,
    not_after: SystemTime,
}

/// What the planner needs of a leaf.
#[derive(Debug, Clone)]
struct LeafView {
    published: SystemTime,
    not_after: SystemTime,
    dns_names: Vec<String>,
    issuer: CaId,
}

/// The inventory as it will be once the actions so far are applied.
struct Planner<'p> {
    policy: &'p CertPolicy,
    now: SystemTime,
    /// `now` in whole seconds: what goes into certificates.
    now_s: SystemTime,
    cas: Vec<CaView>,
    signing: Option<CaId>,
    pending: Option<CaId>,
    leaves: BTreeMap<String, LeafView>,
    actions: Vec<CertAction>,
    events: EventLog,
}

fn published(not_before: SystemTime) -> SystemTime {
    add(not_before, NOT_BEFORE_BACKDATE).unwrap_or(not_before)
}

fn add(t: SystemTime, d: Duration) -> Option<SystemTime> {
    t.checked_add(d)
}

/// `t - d`, or `None` when that is before any representable time (then it has passed).
fn sub(t: SystemTime, d: Duration) -> Option<SystemTime> {
    t.checked_sub(d)
}

/// Has `t - d` been reached at `now`?
fn reached(now: SystemTime, t: SystemTime, d: Duration) -> bool {
    sub(t, d).is_none_or(|at| now >= at)
}

impl<'p> Planner<'p> {
    fn new(inv: &CertInventory, policy: &'p CertPolicy, now: SystemTime) -> Self {
        let cas = inv
            .cas
            .iter()
            .map(|c| CaView {
                id: CaId::Existing(c.fingerprint.clone()),
                published: published(c.not_before),
                not_after: c.not_after,
            })
            .collect::<Vec<_>>();
        let in_bundle = |fp: &Option<String>| {
            fp.as_ref()
                .filter(|fp| inv.ca(fp).is_some())
                .map(|fp| CaId::Existing(fp.clone()))
        };
        // A CA without its key cannot sign: it only counts as trusted.
        let signing = in_bundle(&inv.signing_ca).filter(|_| inv.signing_ca_key_pem.is_some());
        let pending = in_bundle(&inv.pending_ca)
            .filter(|_| inv.pending_ca_key_pem.is_some())
            .filter(|p| Some(p) != signing.as_ref());
        let leaves = inv
            .leaves
            .iter()
            .map(|(member, l)| {
                let mut dns_names = l.dns_names.clone();
                dns_names.sort();
                dns_names.dedup();
                let view = LeafView {
                    published: published(l.not_before),
                    not_after: l.not_after,
                    dns_names,
                    issuer: CaId::Existing(l.issuer_fingerprint.clone()),
                };
                (member.clone(), view)
            })
            .collect();
        Self {
            policy,
            now,
            now_s: floor_secs(now),
            cas,
            signing,
            pending,
            leaves,
            actions: Vec::new(),
            events: EventLog::default(),
        }
    }

    fn ca(&self, id: &CaId) -> Option<&CaView> {
        self.cas.iter().find(|c| &c.id == id)
    }

    fn label(&self, id: &CaId) -> String {
        match id {
            CaId::Existing(fp) => format!("CA {}", short(fp)),
            CaId::Planned(_) => "the new CA".to_string(),
        }
    }

    /// The signing CA, usable at `now`.
    fn signing_ca(&self) -> Option<&CaView> {
        self.signing
            .as_ref()
            .and_then(|id| self.ca(id))
            .filter(|c| c.not_after > self.now)
    }

    fn issue_ca(&mut self, signing: bool, reason: CaReason) {
        let validity = Validity {
            not_before: sub(self.now_s, NOT_BEFORE_BACKDATE).unwrap_or(self.now_s),
            not_after: add(self.now_s, self.policy.ca_lifetime).unwrap_or(self.now_s),
        };
        let id = CaId::Planned(self.actions.len());
        self.actions.push(CertAction::IssueCa {
            validity,
            signing,
            reason,
        });
        self.cas.push(CaView {
            id: id.clone(),
            published: self.now_s,
            not_after: validity.not_after,
        });
        if signing {
            self.signing = Some(id);
        } else {
            self.pending = Some(id);
        }
    }

    /// Emergency and first start: without a signing CA that is valid now, nothing can be
    /// issued, so one is made to sign at once.
    fn ensure_signing_ca(&mut self, inv: &CertInventory) {
        if self.signing_ca().is_some() {
            return;
        }
        let reason = if inv.cas.is_empty() {
            CaReason::Initial
        } else if inv.signing_ca_key_pem.is_some() && inv.signing().is_some() {
            CaReason::SigningCaExpired
        } else {
            CaReason::SigningKeyUnavailable
        };
        let old = inv.signing().map(|c| (short(&c.fingerprint), c.not_after));
        let pending = self
            .pending
            .as_ref()
            .and_then(|id| self.ca(id))
            .filter(|p| p.not_after > self.now)
            .and_then(|p| match &p.id {
                CaId::Existing(fp) => Some((fp.clone(), p.published)),
                CaId::Planned(_) => None,
            });
        if let Some((fp, published)) = pending {
            // The pending CA has been in the bundle since it was published: better than a
            // CA nobody trusts yet.
            self.events.ca_emergency_switch(reason, old, &fp, published);
            self.actions
                .push(CertAction::SwitchSigningCa { fingerprint: fp });
            self.signing = self.pending.take();
            return;
        }
        self.issue_ca(true, reason);
        self.events.ca_emergency_issue(reason, old);
    }

    fn drop_expired_cas(&mut self) {
        let now = self.now;
        let expired: Vec<String> = self
            .cas
            .iter()
            .filter(|c| Some(&c.id) != self.signing.as_ref() && c.not_after <= now)
            .filter_map(|c| match &c.id {
                CaId::Existing(fp) => Some(fp.clone()),
                CaId::Planned(_) => None,
            })
            .collect();
        for fp in expired {
            let id = CaId::Existing(fp.clone());
            if self.pending.as_ref() == Some(&id) {
                self.pending = None;
            }
            self.cas.retain(|c| c.id != id);
            self.events.ca_dropped(&fp, DropCaReason::Expired);
            self.actions.push(CertAction::DropCa {
                fingerprint: fp,
                reason: DropCaReason::Expired,
            });
        }
    }

    /// Phase 1.
    fn start_rotation(&mut self) -> bool {
        if self.pending.is_some() {
            return false;
        }
        let Some(s) = self.signing_ca() else {
            return false;
        };
        if !reached(self.now, s.not_after, self.policy.ca_renew_before) {
            return false;
        }
        let (old, expires) = (self.label(&s.id), s.not_after);
        self.issue_ca(false, CaReason::Rotation);
        let signs_from = add(self.now_s, self.policy.propagation_delay).unwrap_or(self.now_s);
        self.events.rotation_started(&old, expires, signs_from);
        true
    }

    /// Phase 2.
    fn switch_to_pending(&mut self) -> bool {
        let Some(p) = self.pending.as_ref().and_then(|id| self.ca(id)) else {
            return false;
        };
        let Some(ready_at) = add(p.published, self.policy.propagation_delay) else {
            return false;
        };
        if self.now < ready_at {
            return false;
        }
        let id = p.id.clone();
        match &id {
            CaId::Existing(fp) => self.actions.push(CertAction::SwitchSigningCa {
                fingerprint: fp.clone(),
            }),
            // Issued by this very plan (no propagation delay): it signs from the start.
            CaId::Planned(i) => {
                if let Some(CertAction::IssueCa { signing, .. }) = self.actions.get_mut(*i) {
                    *signing = true;
                }
            }
        }
        let old = self.signing.as_ref().map(|s| self.label(s));
        self.events.ca_switched(&self.label(&id), old.as_deref());
        self.signing = self.pending.take();
        true
    }

    /// Desired members that can hold a certificate, with normalised names; warns about others.
    fn sanitize(
        &mut self,
        desired: &BTreeMap<String, Vec<String>>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (member, names) in desired {
            // `<member>.crt` would overwrite the trust bundle.
            if format!("{member}.crt") == CA_BUNDLE_KEY {
                self.events.reserved_member(member);
                continue;
            }
            let mut names = names.clone();
            names.sort();
            names.dedup();
            out.insert(member.clone(), names);
        }
        out
    }

    fn issue_leaves(&mut self, desired: &BTreeMap<String, Vec<String>>) {
        let Some(s) = self.signing_ca().cloned() else {
            return;
        };
        let not_after = add(self.now_s, self.policy.leaf_lifetime)
            .unwrap_or(s.not_after)
            .min(s.not_after);
        let validity = Validity {
            not_before: sub(self.now_s, NOT_BEFORE_BACKDATE).unwrap_or(self.now_s),
            not_after,
        };
        let mut issued: BTreeMap<LeafReason, Vec<String>> = BTreeMap::new();
        for (member, names) in desired {
            let reason = match self.leaves.get(member) {
                None => LeafReason::New,
                Some(l) if l.issuer != s.id => LeafReason::CaChange,
                Some(l) if &l.dns_names != names => LeafReason::SanChange,
                // Near expiry, unless the signing CA cannot give it a longer life: then the
                // CA rotation replaces it.
                Some(l)
                    if reached(self.now, l.not_after, self.policy.leaf_renew_before)
                        && not_after > l.not_after =>
                {
                    LeafReason::Renew
                }
                Some(_) => continue,
            };
            self.actions.push(CertAction::IssueLeaf {
                member: member.clone(),
                dns_names: names.clone(),
                validity,
                reason,
            });
            self.leaves.insert(
                member.clone(),
                LeafView {
                    published: self.now_s,
                    not_after,
                    dns_names: names.clone(),
                    issuer: s.id.clone(),
                },
            );
            issued.entry(reason).or_default().push(member.clone());
        }
        self.events.leaves_issued(&issued, not_after);
    }

    fn drop_departed(&mut self, desired: &BTreeMap<String, Vec<String>>) {
        let departed: Vec<String> = self
            .leaves
            .keys()
            .filter(|m| !desired.contains_key(*m))
            .cloned()
            .collect();
        for member in &departed {
            self.leaves.remove(member);
            self.actions.push(CertAction::DropLeaf {
                member: member.clone(),
            });
        }
        self.events.leaves_dropped(&departed);
    }

    /// When every leaf in use is signed by the signing CA and has been out for the
    /// propagation delay, or `None` while some leaf is signed by another CA.
    fn leaves_settled_at(&self) -> Option<SystemTime> {
        let s = self.signing.as_ref()?;
        if self.leaves.values().any(|l| &l.issuer != s) {
            return None;
        }
        // Every leaf of the signing CA was issued after it began to sign, so the oldest one
        // bounds when the last leaf of an older CA was replaced.
        let oldest = self.leaves.values().map(|l| l.published).min();
        match oldest {
            Some(t) => add(t, self.policy.propagation_delay),
            None => Some(self.now),
        }
    }

    fn retired(&self) -> Vec<&CaView> {
        self.cas
            .iter()
            .filter(|c| {
                Some(&c.id) != self.signing.as_ref() && Some(&c.id) != self.pending.as_ref()
            })
            .collect()
    }

    /// Phase 3 (and CAs of no use: orphans without a key).
    fn retire_old_cas(&mut self) {
        if self.leaves_settled_at().is_none_or(|at| at > self.now) {
            return;
        }
        let retired: Vec<String> = self
            .retired()
            .into_iter()
            .filter_map(|c| match &c.id {
                CaId::Existing(fp) => Some(fp.clone()),
                CaId::Planned(_) => None,
            })
            .collect();
        for fp in retired {
            self.cas.retain(|c| c.id != CaId::Existing(fp.clone()));
            self.events.ca_dropped(&fp, DropCaReason::Retired);
            self.actions.push(CertAction::DropCa {
                fingerprint: fp,
                reason: DropCaReason::Retired,
            });
        }
    }

    /// The earliest future time at which some rule above fires, given the state after the
    /// actions.
    fn next_check(&self) -> Option<SystemTime> {
        let mut due: Vec<Option<SystemTime>> = Vec::new();
        // Expiry of any CA: dropped, or (the signing one) replaced in an emergency.
        due.extend(self.cas.iter().map(|c| Some(c.not_after)));
        let signing = self.signing.as_ref().and_then(|id| self.ca(id));
        if let Some(s) = signing {
            match self.pending.as_ref().and_then(|id| self.ca(id)) {
                None => due.push(sub(s.not_after, self.policy.ca_renew_before)),
                Some(p) => due.push(add(p.published, self.policy.propagation_delay)),
            }
            // A leaf the signing CA cannot extend waits for the rotation instead.
            due.extend(
                self.leaves
                    .values()
                    .filter(|l| l.not_after < s.not_after)
                    .map(|l| sub(l.not_after, self.policy.leaf_renew_before)),
            );
        }
        if !self.retired().is_empty() {
            due.push(self.leaves_settled_at());
        }
        due.into_iter().flatten().filter(|t| *t > self.now).min()
    }

    fn finish(self) -> CertPlan {
        let next_check = self.next_check();
        CertPlan {
            actions: self.actions,
            next_check,
            events: self.events.into_events(),
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
