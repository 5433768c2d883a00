//! Certificate and CA rotation under traffic: no connection failure, no lost update.
//!
//! The sidecars check certificates against the real clock, so the fleet starts with the
//! operator's clock 26 days in the past, with a 45-day CA that rotates 20 days before it
//! expires (30-day leaves renewed 10 days before expiry, the CRD's defaults), and steps it
//! forward, always to the time the certificate plan itself names as its next check and never
//! ahead of the real clock:
//! 1. leaf renewal (day 20): every leaf reissued by the same CA;
//! 2. CA rotation, phase 1 (day 25): a new CA joins the trust bundle, nothing else changes;
//! 3. phase 2, one propagation delay later: the new CA signs, every leaf is reissued by it;
//! 4. phase 3, one more propagation delay: the old CA leaves the bundle.
//!
//! Each step is swapped into every pod's Secret volume in place, as the kubelet does, while
//! every lane writes. At every step: the plan did what the step is for, the files changed as
//! they must and no more, every sidecar published the new material once and rejected none, no
//! mesh session was replaced (same connection, same handshake, no reconnect or collision) and
//! no error of any kind was counted. Then the traffic stops and nothing was lost; a sidecar
//! restarted after the rotation gets a session with every member on the new material alone
//! (the bundle holds nothing else), the sessions it is not part of are still the ones from
//! before the rotation, and still nothing was lost. The restart comes after the traffic: a
//! sidecar restarted under traffic is the crash row's subject (`crashes.rs`), not this one's.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use haproxy_peers_e2e::metrics::{self, ERRORS, TLS_RELOADS};
use haproxy_peers_e2e::projection::current;
use haproxy_peers_e2e::sessions::Sessions;
use haproxy_peers_e2e::workload::{assert_nothing_lost, Workload, WorkloadOptions};
use haproxy_peers_e2e::Fleet;
use haproxy_peers_operator::certs::{rfc3339, CertAction, CertInventory, CertPolicy};

use crate::support::{
    act, check, flowing, options, ready, serial, start_with, traffic, until, CONVERGE,
};

/// How far in the past the operator's clock starts: the CA rotation (day 25) and both of its
/// propagation delays fit before the real clock, and the first leaves (30 days) are still
/// valid by it.
const START_AGO: Duration = Duration::from_secs(26 * 86_400);
const BEGIN_CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----";

type Files = BTreeMap<String, Vec<u8>>;

#[test]
fn certificate_and_ca_rotation_under_traffic_fail_no_connection_and_lose_nothing() {
    let _serial = serial();
    let real_start = SystemTime::now();
    let mut fleet_options = options(3);
    fleet_options.now = real_start - START_AGO;
    fleet_options.group.tls_policy = vec![
        ("caLifetime".into(), "45d".into()),
        ("caRenewBefore".into(), "20d".into()),
    ];
    let mut fleet = start_with(fleet_options);
    let pods = fleet.pod_names();
    let workload = traffic(&fleet, WorkloadOptions::default());
    let quiet = Quiet::now(&fleet);
    let propagation = CertPolicy::default().propagation_delay;
    let ca0 = signing_ca(fleet.control().inventory());

    // 1. Leaf renewal.
    let renewal = step(&mut fleet, &workload, &quiet, "leaf renewal");
    assert_eq!(
        renewal.actions,
        pods.iter()
            .map(|p| format!("issue leaf {p} (Renew)"))
            .collect::<Vec<_>>()
    );
    assert_eq!(renewal.before["ca.crt"], renewal.after["ca.crt"]);
    assert_every_leaf(&pods, &renewal, true);

    // 2. Phase 1: the new CA is trusted, not used.
    let phase1 = step(&mut fleet, &workload, &quiet, "CA rotation phase 1");
    assert_eq!(phase1.actions, ["issue CA signing=false (Rotation)"]);
    let inventory = fleet.control().inventory();
    let ca1 = inventory
        .pending_ca
        .clone()
        .expect("phase 1 leaves a pending CA");
    assert_eq!(signing_ca(inventory), ca0);
    let both = text(&phase1.after["ca.crt"]);
    assert!(
        both.starts_with(&text(&phase1.before["ca.crt"])),
        "the old CA must stay first in the bundle: {both}"
    );
    assert_eq!(both.matches(BEGIN_CERTIFICATE).count(), 2, "{both}");
    assert_every_leaf(&pods, &phase1, false);

    // 3. Phase 2, once every pod has trusted the new CA for the propagation delay: it signs
    //    every leaf.
    let phase2 = step(&mut fleet, &workload, &quiet, "CA rotation phase 2");
    assert_eq!(phase2.at.duration_since(phase1.at).ok(), Some(propagation));
    let mut expected = vec!["switch signing CA".to_string()];
    expected.extend(pods.iter().map(|p| format!("issue leaf {p} (CaChange)")));
    assert_eq!(phase2.actions, expected);
    let inventory = fleet.control().inventory();
    assert_eq!(signing_ca(inventory), ca1);
    for pod in &pods {
        assert_eq!(inventory.leaves[pod].issuer_fingerprint, ca1, "{pod}");
    }
    assert_eq!(phase2.before["ca.crt"], phase2.after["ca.crt"]);
    assert_every_leaf(&pods, &phase2, true);

    // 4. Phase 3, once no pod presents a leaf of the old CA any more: it leaves the bundle.
    let phase3 = step(&mut fleet, &workload, &quiet, "CA rotation phase 3");
    assert_eq!(phase3.at.duration_since(phase2.at).ok(), Some(propagation));
    assert_eq!(phase3.actions, ["drop CA (Retired)"]);
    let inventory = fleet.control().inventory();
    let fingerprints: Vec<&str> = inventory
        .cas
        .iter()
        .map(|c| c.fingerprint.as_str())
        .collect();
    assert_eq!(fingerprints, [ca1.as_str()]);
    let only_new = text(&phase3.after["ca.crt"]);
    assert_eq!(only_new.matches(BEGIN_CERTIFICATE).count(), 1, "{only_new}");
    assert!(
        both.ends_with(&only_new),
        "the bundle kept the old CA: {only_new}"
    );
    assert_every_leaf(&pods, &phase3, false);
    // Nothing else is due before the real clock.
    let next = fleet.rendered().and_then(|r| r.plan.as_ref()?.next_check);
    assert!(
        next.is_some_and(|t| t > SystemTime::now()),
        "the plan still has work due: {next:?}"
    );

    ready(&fleet);
    let ledger = workload.stop();
    assert_nothing_lost(&fleet, &ledger, CONVERGE);

    // New handshakes on the new material only (the bundle holds nothing else): a sidecar
    // restarted now gets a session with every member again.
    let restarted = "edge-1";
    let before_restart = check(&fleet, Sessions::read(&fleet));
    act(&mut fleet, |f| f.restart_sidecar(restarted));
    ready(&fleet);
    let after = until(&fleet, "every session after the restart", || {
        let now = Sessions::read(&fleet)?;
        Ok((now.pairs() == quiet.sessions.pairs()).then_some(now))
    });
    for (pod, member) in after.pairs() {
        if pod == restarted || member == restarted {
            assert!(
                before_restart.replaced(&after, &pod, &member).is_some(),
                "{pod}: the session with {member} is not new"
            );
        }
    }
    let untouched = quiet.sessions.changes(&after, |pod, member| {
        pod != restarted && member != restarted
    });
    assert!(untouched.is_empty(), "{untouched:#?}\n{}", fleet.logs());
    // What the restarted sidecar loaded: a leaf of the CA minted at phase 1.
    let log = fleet.pod(restarted).unwrap().sidecar.log();
    let since_restart = log
        .rsplit_once("--- haproxy-peers-e2e: start 2")
        .map(|(_, after)| after)
        .unwrap_or_default();
    let published = since_restart
        .lines()
        .find(|l| l.contains("TLS material published"))
        .unwrap_or_else(|| panic!("{restarted} published no material:\n{since_restart}"));
    assert!(
        published.contains(&format!("CA {}", rfc3339(phase1.at))),
        "{restarted} did not load a leaf of the new CA: {published}"
    );
    // And it relearned everything.
    assert_nothing_lost(&fleet, &ledger, CONVERGE);
}

/// The moment before the rotation: every session and every error count, per pod.
struct Quiet {
    sessions: Sessions,
    errors: BTreeMap<String, BTreeMap<String, f64>>,
}

impl Quiet {
    fn now(fleet: &Fleet) -> Quiet {
        let sessions = check(fleet, Sessions::settled(fleet, CONVERGE));
        Quiet {
            sessions,
            errors: errors(fleet),
        }
    }

    /// No session replaced or disturbed, no error counted since [`Quiet::now`].
    fn assert_kept(&self, fleet: &Fleet, what: &str) {
        let now = check(fleet, Sessions::read(fleet));
        let changes = self.sessions.changes(&now, |_, _| true);
        assert!(changes.is_empty(), "{what}: {changes:#?}\n{}", fleet.logs());
        assert_eq!(
            errors(fleet),
            self.errors,
            "{what}: errors were counted\n{}",
            fleet.logs()
        );
    }
}

fn errors(fleet: &Fleet) -> BTreeMap<String, BTreeMap<String, f64>> {
    fleet
        .pod_names()
        .into_iter()
        .map(|pod| {
            let m = check(fleet, metrics::read(fleet, &pod));
            (pod, m.by(ERRORS, "kind"))
        })
        .collect()
}

/// What one step of the operator's clock did.
struct Step {
    at: SystemTime,
    /// The plan's actions, one line each.
    actions: Vec<String>,
    /// The Secret's files before and after.
    before: Files,
    after: Files,
}

/// Moves the operator's clock to the plan's next check and reconciles, under traffic; checks
/// that every pod's volume holds the new Secret, that every sidecar published it once and
/// rejected nothing, and that no session or error changed.
fn step(fleet: &mut Fleet, workload: &Workload, quiet: &Quiet, what: &str) -> Step {
    let at = fleet
        .rendered()
        .and_then(|r| r.plan.as_ref()?.next_check)
        .unwrap_or_else(|| panic!("{what}: the plan has nothing due"));
    assert!(
        at <= SystemTime::now(),
        "{what} is due at {}, after the real clock: the sidecars would refuse what it mints",
        rfc3339(at)
    );
    let before = secret(fleet, "edge-0");
    let reloads_before = reloads(fleet);
    let rendered = act(fleet, |f| f.advance(at).cloned());
    let after = rendered.tls.clone().expect("TLS is on");
    for pod in fleet.pod_names() {
        assert_eq!(secret(fleet, &pod), after, "{what}: {pod}'s Secret volume");
    }
    until(fleet, &format!("{what}: every sidecar to publish"), || {
        let now = reloads(fleet);
        let published = now.iter().all(|(pod, (ok, rejected))| {
            let (ok_before, _) = reloads_before[pod];
            *ok == ok_before + 1.0 && *rejected == 0.0
        });
        Ok(published.then_some(()))
    });
    flowing(fleet, workload);
    quiet.assert_kept(fleet, what);
    let actions = rendered
        .plan
        .as_ref()
        .map(|p| p.actions.iter().map(describe).collect())
        .unwrap_or_default();
    Step {
        at,
        actions,
        before,
        after,
    }
}

/// Per pod: TLS material published and rejected.
fn reloads(fleet: &Fleet) -> BTreeMap<String, (f64, f64)> {
    fleet
        .pod_names()
        .into_iter()
        .map(|pod| {
            let m = check(fleet, metrics::read(fleet, &pod));
            let ok = m.sum(TLS_RELOADS, &[("outcome", "ok")]);
            let rejected = m.sum(TLS_RELOADS, &[("outcome", "rejected")]);
            (pod, (ok, rejected))
        })
        .collect()
}

fn secret(fleet: &Fleet, pod: &str) -> Files {
    let dir = check(fleet, fleet.pod(pod)).tls_dir();
    check(fleet, current(&dir)).unwrap_or_else(|| panic!("{pod} has no Secret volume"))
}

/// Every member's pair changed (`changed`) or none did.
fn assert_every_leaf(pods: &[String], step: &Step, changed: bool) {
    for pod in pods {
        for file in [format!("{pod}.crt"), format!("{pod}.key")] {
            assert_eq!(
                step.before[&file] != step.after[&file],
                changed,
                "{file}: changed must be {changed}"
            );
        }
    }
}

fn signing_ca(inventory: &CertInventory) -> String {
    inventory.signing_ca.clone().expect("a signing CA")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn describe(action: &CertAction) -> String {
    match action {
        CertAction::IssueCa {
            signing, reason, ..
        } => format!("issue CA signing={signing} ({reason:?})"),
        CertAction::SwitchSigningCa { .. } => "switch signing CA".into(),
        CertAction::IssueLeaf { member, reason, .. } => format!("issue leaf {member} ({reason:?})"),
        CertAction::DropLeaf { member } => format!("drop leaf {member}"),
        CertAction::DropCa { reason, .. } => format!("drop CA ({reason:?})"),
    }
}
