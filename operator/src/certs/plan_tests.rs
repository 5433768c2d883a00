//! Table tests of the planner: synthetic inventories (the planner reads only fields), and real
//! minted ones where the result of a plan has to be planned again.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::certs::events::EventType;
use crate::certs::inventory::{CaCert, LeafCert};
use crate::certs::mint::mint;

const DAY: Duration = Duration::from_secs(24 * 3600);
const MIN: Duration = Duration::from_secs(60);
const SEC: Duration = Duration::from_secs(1);

/// 2031-01-01T00:00:00Z.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_924_992_000)
}

fn policy() -> CertPolicy {
    // The documented defaults: 30 d / 10 d leaves, 365 d / 60 d CA, 5 min propagation.
    CertPolicy::default()
}

fn ca(fp: &str, issued: SystemTime, lifetime: Duration) -> CaCert {
    CaCert {
        cert_pem: format!("(CA {fp})"),
        not_before: issued - NOT_BEFORE_BACKDATE,
        not_after: issued + lifetime,
        fingerprint: fp.to_string(),
    }
}

fn leaf(issuer: &str, issued: SystemTime, lifetime: Duration, names: &[&str]) -> LeafCert {
    LeafCert {
        cert_pem: "(leaf)".to_string(),
        key_pem: "(key)".to_string(),
        not_before: issued - NOT_BEFORE_BACKDATE,
        not_after: issued + lifetime,
        dns_names: names.iter().map(|n| n.to_string()).collect(),
        issuer_fingerprint: issuer.to_string(),
    }
}

fn sans(member: &str) -> Vec<String> {
    vec![format!("{member}.g-peers.ns.svc")]
}

fn desired(members: &[&str]) -> BTreeMap<String, Vec<String>> {
    members.iter().map(|m| (m.to_string(), sans(m))).collect()
}

/// CA "S" issued at `t0`, signing, and leaves a, b, c issued by it at `leaves_at`.
fn steady(leaves_at: SystemTime) -> CertInventory {
    let mut inv = CertInventory {
        cas: vec![ca("S", t0(), 365 * DAY)],
        signing_ca: Some("S".to_string()),
        signing_ca_key_pem: Some("(S key)".to_string()),
        ..CertInventory::default()
    };
    for m in ["a", "b", "c"] {
        let names = sans(m);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        inv.leaves
            .insert(m.to_string(), leaf("S", leaves_at, 30 * DAY, &names));
    }
    inv
}

fn validity(from: SystemTime, lifetime: Duration) -> Validity {
    Validity {
        not_before: from - NOT_BEFORE_BACKDATE,
        not_after: from + lifetime,
    }
}

fn issue_leaf(
    member: &str,
    at: SystemTime,
    not_after: SystemTime,
    reason: LeafReason,
) -> CertAction {
    CertAction::IssueLeaf {
        member: member.to_string(),
        dns_names: sans(member),
        validity: Validity {
            not_before: at - NOT_BEFORE_BACKDATE,
            not_after,
        },
        reason,
    }
}

fn leaf_reasons(plan: &CertPlan) -> Vec<(String, LeafReason)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            CertAction::IssueLeaf { member, reason, .. } => Some((member.clone(), *reason)),
            _ => None,
        })
        .collect()
}

/// Why the plan's first action issues a CA that signs at once, if it does.
fn signing_ca_issued(plan: &CertPlan) -> Option<CaReason> {
    match plan.actions.first()? {
        CertAction::IssueCa {
            signing: true,
            reason,
            ..
        } => Some(*reason),
        _ => None,
    }
}

fn event_reasons(plan: &CertPlan) -> Vec<&'static str> {
    plan.events.iter().map(|e| e.reason).collect()
}

#[test]
fn fresh_group_gets_a_ca_then_every_leaf() {
    let now = t0() + Duration::from_millis(700);
    let p = plan(
        &CertInventory::default(),
        &desired(&["a", "b", "c"]),
        &policy(),
        now,
    );
    let mut expected = vec![CertAction::IssueCa {
        validity: validity(t0(), 365 * DAY),
        signing: true,
        reason: CaReason::Initial,
    }];
    for m in ["a", "b", "c"] {
        expected.push(issue_leaf(m, t0(), t0() + 30 * DAY, LeafReason::New));
    }
    assert_eq!(p.actions, expected, "validity is in whole seconds");
    assert_eq!(event_reasons(&p), ["CaIssued", "CertificatesIssued"]);
    assert!(p.events.iter().all(|e| e.event_type == EventType::Normal));
    // The first thing due: the leaves' renewal, 30 d - 10 d after issue.
    assert_eq!(p.next_check, Some(t0() + 20 * DAY));
}

#[test]
fn steady_state_waits_for_the_renewal_time() {
    let inv = steady(t0());
    let before = plan(
        &inv,
        &desired(&["a", "b", "c"]),
        &policy(),
        t0() + 20 * DAY - SEC,
    );
    assert!(before.is_empty(), "{before:#?}");
    assert!(before.events.is_empty());
    assert_eq!(before.next_check, Some(t0() + 20 * DAY));

    let at = t0() + 20 * DAY;
    let renew = plan(&inv, &desired(&["a", "b", "c"]), &policy(), at);
    assert_eq!(
        renew.actions,
        ["a", "b", "c"].map(|m| issue_leaf(m, at, at + 30 * DAY, LeafReason::Renew))
    );
    assert_eq!(renew.next_check, Some(at + 20 * DAY));
}

/// Member d joins at `now`: only d gets a leaf, a full-length one.
fn d_joins(inv: &CertInventory, now: SystemTime) -> CertPlan {
    let p = plan(inv, &desired(&["a", "b", "c", "d"]), &policy(), now);
    let full = issue_leaf("d", now, now + 30 * DAY, LeafReason::New);
    assert_eq!(p.actions, [full]);
    p
}

#[test]
fn scale_up_issues_only_the_new_member() {
    let now = t0() + DAY;
    let p = d_joins(&steady(t0()), now);
    assert!(
        p.events[0].message.contains("new member: d"),
        "{:?}",
        p.events
    );
    // a, b and c still renew first.
    assert_eq!(p.next_check, Some(t0() + 20 * DAY));
}

#[test]
fn scale_down_drops_the_departed_leaf() {
    let p = plan(&steady(t0()), &desired(&["a", "b"]), &policy(), t0() + DAY);
    assert_eq!(
        p.actions,
        [CertAction::DropLeaf {
            member: "c".to_string()
        }]
    );
    assert_eq!(event_reasons(&p), ["CertificatesRemoved"]);
}

#[test]
fn san_change_reissues_that_member_only() {
    let now = t0() + DAY;
    let mut want = desired(&["a", "b", "c"]);
    want.insert(
        "b".to_string(),
        vec!["b.other".to_string(), "b.g-peers.ns.svc".to_string()],
    );
    let p = plan(&steady(t0()), &want, &policy(), now);
    assert_eq!(leaf_reasons(&p), [("b".to_string(), LeafReason::SanChange)]);
    let CertAction::IssueLeaf { dns_names, .. } = &p.actions[0] else {
        panic!("{p:#?}");
    };
    assert_eq!(dns_names, &["b.g-peers.ns.svc", "b.other"], "sorted");

    // Order and duplicates in the desired list are not a change.
    let mut same = desired(&["a", "b", "c"]);
    let a = same.get_mut("a").expect("a");
    a.push(a[0].clone());
    assert!(plan(&steady(t0()), &same, &policy(), now).is_empty());
}

#[test]
fn leaf_past_its_expiry_is_renewed() {
    let now = t0() + 31 * DAY;
    let p = plan(&steady(t0()), &desired(&["a", "b", "c"]), &policy(), now);
    assert_eq!(leaf_reasons(&p).len(), 3);
}

/// S near the end of its life, so that the rotation has started (P pending since `p_at`).
fn rotating(p_at: SystemTime) -> CertInventory {
    let mut inv = steady(t0() + 300 * DAY);
    inv.cas.push(ca("P", p_at, 365 * DAY));
    inv.pending_ca = Some("P".to_string());
    inv.pending_ca_key_pem = Some("(P key)".to_string());
    inv
}

#[test]
fn rotation_phase_1_adds_a_ca_that_does_not_sign_yet() {
    let start = t0() + 365 * DAY - 60 * DAY;
    let inv = steady(start - DAY);
    let before = plan(&inv, &desired(&["a", "b", "c"]), &policy(), start - SEC);
    assert!(before.is_empty());
    assert_eq!(before.next_check, Some(start));

    let p = plan(&inv, &desired(&["a", "b", "c"]), &policy(), start);
    assert_eq!(
        p.actions,
        [CertAction::IssueCa {
            validity: validity(start, 365 * DAY),
            signing: false,
            reason: CaReason::Rotation,
        }]
    );
    assert_eq!(event_reasons(&p), ["CaRotationStarted"]);
    assert_eq!(p.next_check, Some(start + 5 * MIN), "the switch");
}

#[test]
fn rotation_phase_2_switches_after_the_propagation_delay_and_reissues_every_leaf() {
    let p_at = t0() + 305 * DAY;
    let inv = rotating(p_at);
    let want = desired(&["a", "b", "c"]);
    let early = plan(&inv, &want, &policy(), p_at + 5 * MIN - SEC);
    assert!(early.is_empty(), "{early:#?}");
    assert_eq!(early.next_check, Some(p_at + 5 * MIN));

    let at = p_at + 5 * MIN;
    let p = plan(&inv, &want, &policy(), at);
    let mut expected = vec![CertAction::SwitchSigningCa {
        fingerprint: "P".to_string(),
    }];
    expected
        .extend(["a", "b", "c"].map(|m| issue_leaf(m, at, at + 30 * DAY, LeafReason::CaChange)));
    assert_eq!(p.actions, expected);
    assert_eq!(event_reasons(&p), ["CaSwitched", "CertificatesIssued"]);
    assert_eq!(p.next_check, Some(at + 5 * MIN), "the old CA's retirement");
}

/// Phase 2 done at `switched`: P signs, and signed every leaf then; S is still trusted.
fn switched_to_p(switched: SystemTime) -> CertInventory {
    let mut inv = steady(switched);
    inv.cas.push(ca("P", t0() + 305 * DAY, 365 * DAY));
    inv.signing_ca = Some("P".to_string());
    for l in inv.leaves.values_mut() {
        l.issuer_fingerprint = "P".to_string();
    }
    inv
}

#[test]
fn rotation_phase_3_drops_the_old_ca_once_the_new_leaves_reached_every_pod() {
    let switched = t0() + 305 * DAY + 5 * MIN;
    let inv = switched_to_p(switched);
    let want = desired(&["a", "b", "c"]);
    let early = plan(&inv, &want, &policy(), switched + 5 * MIN - SEC);
    assert!(early.is_empty(), "{early:#?}");
    assert_eq!(early.next_check, Some(switched + 5 * MIN));

    let p = plan(&inv, &want, &policy(), switched + 5 * MIN);
    assert_eq!(
        p.actions,
        [CertAction::DropCa {
            fingerprint: "S".to_string(),
            reason: DropCaReason::Retired
        }]
    );
    assert_eq!(event_reasons(&p), ["CaRetired"]);
    assert_eq!(p.next_check, Some(switched + 20 * DAY), "leaf renewal");
}

#[test]
fn a_renewal_does_not_hold_back_the_retirement() {
    // Leaves of the new CA issued at different times: the oldest one bounds the switch.
    let switched = t0() + 305 * DAY + 5 * MIN;
    let mut inv = switched_to_p(switched);
    inv.leaves.insert(
        "b".to_string(),
        leaf("P", switched + 2 * MIN, 30 * DAY, &["b.g-peers.ns.svc"]),
    );
    let p = plan(
        &inv,
        &desired(&["a", "b", "c"]),
        &policy(),
        switched + 5 * MIN,
    );
    assert_eq!(p.actions.len(), 1, "{p:#?}");
}

#[test]
fn a_leaf_is_not_issued_beyond_its_ca_and_not_renewed_when_that_cannot_extend_it() {
    // Phase 1 (P pending since `now`), S expires at t0 + 365 d; a, b and c already end with
    // S and their renew time (t0 + 355 d) has passed.
    let now = t0() + 356 * DAY;
    let mut inv = rotating(now);
    for l in inv.leaves.values_mut() {
        l.not_after = t0() + 365 * DAY;
    }
    let p = plan(&inv, &desired(&["a", "b", "c", "d"]), &policy(), now);
    // The new member's leaf ends with S too; a, b and c wait for the switch, which alone can
    // give them a longer life.
    assert_eq!(
        p.actions,
        [issue_leaf("d", now, t0() + 365 * DAY, LeafReason::New)]
    );
    assert_eq!(p.next_check, Some(now + 5 * MIN), "only the switch is due");
}

#[test]
fn scale_up_during_phase_1_signs_with_the_current_ca() {
    let p_at = t0() + 305 * DAY;
    let now = p_at + MIN;
    d_joins(&rotating(p_at), now);
}

#[test]
fn expired_ca_is_replaced_at_once_with_a_warning() {
    let now = t0() + 366 * DAY;
    let inv = steady(t0() + 340 * DAY);
    let p = plan(&inv, &desired(&["a", "b", "c"]), &policy(), now);
    let mut expected = vec![
        CertAction::IssueCa {
            validity: validity(now, 365 * DAY),
            signing: true,
            reason: CaReason::SigningCaExpired,
        },
        CertAction::DropCa {
            fingerprint: "S".to_string(),
            reason: DropCaReason::Expired,
        },
    ];
    expected
        .extend(["a", "b", "c"].map(|m| issue_leaf(m, now, now + 30 * DAY, LeafReason::CaChange)));
    assert_eq!(p.actions, expected);
    let warning = &p.events[0];
    assert_eq!(
        (warning.event_type, warning.reason),
        (EventType::Warning, "CaReplacedInEmergency")
    );
    assert!(
        warning.message.contains("will fail until every pod"),
        "{}",
        warning.message
    );
}

#[test]
fn expired_ca_with_a_pending_successor_switches_to_it() {
    let p_at = t0() + 305 * DAY;
    let now = t0() + 366 * DAY;
    let p = plan(&rotating(p_at), &desired(&["a", "b", "c"]), &policy(), now);
    assert_eq!(
        p.actions[..2],
        [
            CertAction::SwitchSigningCa {
                fingerprint: "P".to_string()
            },
            CertAction::DropCa {
                fingerprint: "S".to_string(),
                reason: DropCaReason::Expired
            },
        ]
    );
    assert_eq!(leaf_reasons(&p).len(), 3);
    assert_eq!(p.events[0].reason, "CaSwitchedEarly");
}

#[test]
fn lost_ca_key_means_a_new_ca_but_the_old_one_stays_trusted_meanwhile() {
    let mut inv = steady(t0());
    inv.signing_ca_key_pem = None;
    let now = t0() + DAY;
    let p = plan(&inv, &desired(&["a", "b", "c"]), &policy(), now);
    assert_eq!(signing_ca_issued(&p), Some(CaReason::SigningKeyUnavailable));
    assert_eq!(leaf_reasons(&p).len(), 3);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, CertAction::DropCa { .. })),
        "old leaves are still in use: {p:#?}"
    );
    assert_eq!(
        p.next_check,
        Some(now + 5 * MIN),
        "retirement of the old CA"
    );
}

#[test]
fn a_ca_without_a_key_and_no_leaf_is_dropped_once_leaves_settled() {
    let mut inv = steady(t0());
    inv.cas.push(ca("orphan", t0() + DAY, 365 * DAY));
    let p = plan(&inv, &desired(&["a", "b", "c"]), &policy(), t0() + 2 * DAY);
    assert_eq!(
        p.actions,
        [CertAction::DropCa {
            fingerprint: "orphan".to_string(),
            reason: DropCaReason::Retired
        }]
    );
}

#[test]
fn a_member_called_ca_gets_a_warning_not_a_certificate() {
    let p = plan(
        &steady(t0()),
        &desired(&["a", "b", "c", "ca"]),
        &policy(),
        t0() + DAY,
    );
    assert!(p.is_empty());
    assert_eq!(p.events[0].reason, "MemberNameReserved");
    assert_eq!(p.events[0].event_type, EventType::Warning);
}

// ---- plans applied with the real minter ----

fn apply(
    inv: &CertInventory,
    want: &BTreeMap<String, Vec<String>>,
    policy: &CertPolicy,
    now: SystemTime,
) -> (CertPlan, CertInventory) {
    let p = plan(inv, want, policy, now);
    let next = mint(inv, &p, "g").expect("mint");
    let again = plan(&next, want, policy, now);
    assert!(again.is_empty(), "not idempotent at {now:?}: {again:#?}");
    assert_eq!(again.next_check, p.next_check);
    (p, next)
}

#[test]
fn planning_the_minted_result_again_does_nothing() {
    let want = desired(&["a", "b", "c"]);
    let policy = policy();
    let start = t0() + Duration::from_millis(250);
    let (_, inv) = apply(&CertInventory::default(), &want, &policy, start);
    // Renewal, rotation start, switch, retirement, an emergency: each applied, then planned
    // again at the same instant.
    let mut now = start;
    let mut inv = inv;
    let mut kinds = Vec::new();
    for _ in 0..40 {
        let Some(next) = plan(&inv, &want, &policy, now).next_check else {
            break;
        };
        now = next;
        let (p, out) = apply(&inv, &want, &policy, now);
        kinds.extend(event_reasons(&p));
        inv = out;
    }
    for k in [
        "CertificatesIssued",
        "CaRotationStarted",
        "CaSwitched",
        "CaRetired",
    ] {
        assert!(kinds.contains(&k), "{k} never happened: {kinds:?}");
    }
    // The operator was down past the CA's expiry.
    let late = inv.signing().expect("signing CA").not_after + DAY;
    let (p, _) = apply(&inv, &want, &policy, late);
    assert!(
        p.events.iter().any(|e| e.event_type == EventType::Warning),
        "{p:#?}"
    );
}

#[test]
fn without_propagation_delay_a_rotation_happens_in_one_plan() {
    let want = desired(&["a", "b"]);
    let policy = CertPolicy {
        propagation_delay: Duration::ZERO,
        ..policy()
    };
    let (_, inv) = apply(&CertInventory::default(), &want, &policy, t0());
    let start = inv.cas[0].not_after - policy.ca_renew_before;
    let (p, out) = apply(&inv, &want, &policy, start);
    assert_eq!(signing_ca_issued(&p), Some(CaReason::Rotation));
    assert_eq!(leaf_reasons(&p).len(), 2);
    assert!(matches!(
        p.actions.last(),
        Some(CertAction::DropCa {
            reason: DropCaReason::Retired,
            ..
        })
    ));
    assert_eq!(out.cas.len(), 1);
    assert_ne!(out.cas[0].fingerprint, inv.cas[0].fingerprint);
}
