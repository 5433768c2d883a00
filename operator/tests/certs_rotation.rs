//! Certificates over simulated months: at every reconcile `plan` -> `mint` -> publish, and at
//! every instant where anything can change, every member's certificate is checked by every
//! other member with rustls' own WebPKI verifiers, under kubelet propagation lag: a pod may
//! still see any version of Secret `G-peer-tls` that was current within the last `lag`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use haproxy_peers_operator::certs::{
    self, CertAction, CertInventory, CertPlan, CertPolicy, LeafReason, SecretData,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

const SEC: Duration = Duration::from_secs(1);
const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// 2031-01-01T00:00:00.250Z: a start off the whole second exercises the planner's rounding.
fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_924_992_000_250)
}

/// The name a peer dials: stable across the SAN change below, which only adds an alias.
fn dial_name(member: &str) -> String {
    format!("{member}.g-peers.ns.svc")
}

/// Who is in the group, and with which names, over time.
#[derive(Clone)]
struct Schedule {
    /// (from, members) sorted by time.
    members: Vec<(SystemTime, Vec<&'static str>)>,
    /// From then on every member also has `<member>.peers.example`.
    alias_from: SystemTime,
}

impl Schedule {
    fn standard(start: SystemTime) -> Self {
        Self {
            members: vec![
                (start, vec!["m-0", "m-1", "m-2"]),
                (
                    start + 90 * DAY + 7 * HOUR,
                    vec!["m-0", "m-1", "m-2", "m-3"],
                ),
                (start + 180 * DAY + 13 * HOUR, vec!["m-0", "m-1"]),
                (start + 270 * DAY + 3 * HOUR, vec!["m-0", "m-1", "m-2"]),
            ],
            alias_from: start + 200 * DAY + 11 * HOUR,
        }
    }

    fn present(&self, t: SystemTime) -> &[&'static str] {
        self.members
            .iter()
            .rev()
            .find(|(from, _)| *from <= t)
            .map(|(_, m)| m.as_slice())
            .unwrap_or_default()
    }

    fn desired(&self, t: SystemTime) -> BTreeMap<String, Vec<String>> {
        self.present(t)
            .iter()
            .map(|m| {
                let mut names = vec![dial_name(m), format!("{m}.g-peers.ns.svc.cluster.local")];
                if t >= self.alias_from {
                    names.push(format!("{m}.peers.example"));
                }
                names.sort();
                (m.to_string(), names)
            })
            .collect()
    }

    fn changes(&self) -> Vec<SystemTime> {
        let mut at: Vec<SystemTime> = self.members.iter().map(|(t, _)| *t).collect();
        at.push(self.alias_from);
        at.sort();
        at
    }
}

/// One version of Secret `G-peer-tls` as pods see it.
struct Version {
    published: SystemTime,
    inventory: CertInventory,
    client: Arc<dyn ClientCertVerifier>,
    server: Arc<WebPkiServerVerifier>,
    leaves: BTreeMap<String, CertificateDer<'static>>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn der(pem: &str) -> CertificateDer<'static> {
    let mut certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM written by the operator");
    assert_eq!(certs.len(), 1);
    certs.remove(0)
}

impl Version {
    /// Built from the Secret's bytes, as a sidecar would: `ca.crt` into a root store,
    /// `<member>.crt` as the certificate it presents.
    fn new(published: SystemTime, inventory: CertInventory) -> Self {
        let data = inventory.tls_secret_data();
        let mut roots = RootCertStore::empty();
        for ca in rustls_pemfile::certs(&mut data["ca.crt"].as_bytes()) {
            roots
                .add(ca.expect("bundle PEM"))
                .expect("a usable trust anchor");
        }
        let roots = Arc::new(roots);
        let client = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .expect("client verifier");
        let server = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .expect("server verifier");
        let leaves = data
            .iter()
            .filter_map(|(k, v)| Some((k.strip_suffix(".crt")?, v)))
            .filter(|(m, _)| *m != "ca")
            .map(|(m, pem)| (m.to_string(), der(pem)))
            .collect();
        Self {
            published,
            inventory,
            client,
            server,
            leaves,
        }
    }
}

#[derive(Debug)]
struct Failure {
    at: SystemTime,
    presenter: String,
    presented_version: usize,
    verifier: String,
    trusted_version: usize,
    what: String,
}

/// What happened over a run.
#[derive(Default, Debug)]
struct Tally {
    reconciles: usize,
    leaves: BTreeMap<LeafReason, usize>,
    ca_issued: usize,
    ca_switched: usize,
    ca_dropped: usize,
    leaves_dropped: usize,
    /// Leaves cut short to end with their CA.
    clamped: usize,
    instants_checked: usize,
    verifications: usize,
}

struct Run {
    versions: Vec<Version>,
    tally: Tally,
}

/// Reconciles at every `next_check`, every `grid` and every schedule change, from `from` to
/// `until`, checking at each reconcile what can be checked right there.
fn simulate(
    policy: &CertPolicy,
    schedule: &Schedule,
    from: SystemTime,
    until: SystemTime,
    grid: Duration,
) -> Run {
    let mut inv = CertInventory::default();
    let mut versions: Vec<Version> = Vec::new();
    let mut tally = Tally::default();
    let changes = schedule.changes();
    let mut now = from;
    let mut next_grid = from;
    while now <= until {
        tally.reconciles += 1;
        let want = schedule.desired(now);
        let plan = certs::plan(&inv, &want, policy, now);
        if !plan.is_empty() {
            check_renewals_on_time(&plan, &inv, policy, now);
            inv = certs::mint(&inv, &plan, "g").expect("mint");
            count(&plan, policy, &mut tally);
            // Idempotent: the same instant, planned again on the result, does nothing.
            let again = certs::plan(&inv, &want, policy, now);
            assert!(again.is_empty(), "at {now:?}: {again:#?}");
            // What is read back from the Secrets is what was minted.
            let (tls, ca) = (inv.tls_secret_data(), inv.ca_secret_data());
            let parsed = CertInventory::from_secrets(
                Some(SecretData::new("g-peer-tls", &tls)),
                Some(SecretData::new("g-ca", &ca)),
            );
            assert_eq!(parsed.problems, []);
            assert_eq!(parsed.inventory, inv);
            versions.push(Version::new(now, inv.clone()));
        }
        // Every member holds a leaf for its current names, valid now.
        for (member, names) in &want {
            let leaf = &inv.leaves[member];
            assert_eq!(&leaf.dns_names, names, "{member} at {now:?}");
            assert!(
                leaf.not_before <= now && now <= leaf.not_after,
                "{member} at {now:?}"
            );
        }
        next_grid = next_grid.max(now);
        while next_grid <= now {
            next_grid += grid;
        }
        let next_change = changes.iter().copied().find(|t| *t > now);
        if let Some(due) = plan.next_check {
            check_next_check_is_exact(&inv, schedule, policy, now, due, next_change);
        }
        now = [Some(next_grid), next_change, plan.next_check]
            .into_iter()
            .flatten()
            .min()
            .expect("the grid always has a next point");
    }
    Run { versions, tally }
}

/// Nothing is due before `next_check`, and something is due at it (unless the members change
/// first, which moves the question).
fn check_next_check_is_exact(
    inv: &CertInventory,
    schedule: &Schedule,
    policy: &CertPolicy,
    now: SystemTime,
    due: SystemTime,
    next_change: Option<SystemTime>,
) {
    assert!(due > now);
    if next_change.is_some_and(|c| c <= due) {
        return;
    }
    let want = schedule.desired(due);
    let just_before = (due - SEC).max(now);
    let early = certs::plan(inv, &want, policy, just_before);
    assert!(
        early.is_empty(),
        "acted before next_check {due:?}: {early:#?}"
    );
    let on_time = certs::plan(inv, &want, policy, due);
    assert!(
        !on_time.is_empty(),
        "next_check {due:?} came and nothing was due"
    );
}

/// A leaf is replaced for renewal no later than `leaf_renew_before` ahead of its expiry.
fn check_renewals_on_time(
    plan: &CertPlan,
    before: &CertInventory,
    policy: &CertPolicy,
    now: SystemTime,
) {
    for action in &plan.actions {
        if let CertAction::IssueLeaf {
            member,
            reason: LeafReason::Renew,
            ..
        } = action
        {
            let old = &before.leaves[member];
            let left = old.not_after.duration_since(now).unwrap_or_default();
            assert!(
                left >= policy.leaf_renew_before,
                "{member} renewed late: {left:?} left"
            );
        }
    }
}

fn count(plan: &CertPlan, policy: &CertPolicy, tally: &mut Tally) {
    for action in &plan.actions {
        match action {
            CertAction::IssueLeaf {
                reason, validity, ..
            } => {
                *tally.leaves.entry(*reason).or_default() += 1;
                let life = validity.not_after.duration_since(validity.not_before);
                let full = policy.leaf_lifetime + certs::NOT_BEFORE_BACKDATE;
                tally.clamped += usize::from(life.is_ok_and(|l| l < full));
            }
            CertAction::IssueCa { signing, .. } => {
                tally.ca_issued += 1;
                // A CA that signs at once: its own switch.
                tally.ca_switched += usize::from(*signing && tally.ca_issued > 1);
            }
            CertAction::SwitchSigningCa { .. } => tally.ca_switched += 1,
            CertAction::DropCa { .. } => tally.ca_dropped += 1,
            CertAction::DropLeaf { .. } => tally.leaves_dropped += 1,
        }
    }
}

fn unix(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(UNIX_EPOCH).expect("after 1970"))
}

/// Versions a pod may be looking at, at `t`: any that was current at some moment of
/// `[t - lag, t]`.
fn visible(versions: &[Version], t: SystemTime, lag: Duration) -> Vec<usize> {
    (0..versions.len())
        .filter(|&i| {
            versions[i].published <= t
                && versions
                    .get(i + 1)
                    .is_none_or(|next| next.published + lag > t)
        })
        .collect()
}

/// Every instant at which a verification outcome can change: a version appears or stops
/// being visible, a certificate starts or stops being valid, a member comes or goes.
fn instants(
    versions: &[Version],
    schedule: &Schedule,
    lag: Duration,
    until: SystemTime,
) -> BTreeSet<SystemTime> {
    let mut at = BTreeSet::new();
    for (i, v) in versions.iter().enumerate() {
        at.insert(v.published);
        if let Some(next) = versions.get(i + 1) {
            at.insert(next.published + lag);
        }
        for ca in &v.inventory.cas {
            at.insert(ca.not_before);
            at.insert(ca.not_after + SEC);
        }
        for leaf in v.inventory.leaves.values() {
            at.insert(leaf.not_before);
            at.insert(leaf.not_after + SEC);
        }
    }
    at.extend(schedule.changes());
    let first = versions.first().map(|v| v.published).unwrap_or(until);
    at.into_iter()
        .filter(|t| *t >= first && *t <= until)
        .collect()
}

/// Every pair of members, every version each of them may see: does B accept A's leaf, as a
/// TLS client certificate and as the server certificate for A's name?
fn check_propagation(
    run: &mut Run,
    schedule: &Schedule,
    lag: Duration,
    until: SystemTime,
) -> Vec<Failure> {
    let mut failures = Vec::new();
    for t in instants(&run.versions, schedule, lag, until) {
        run.tally.instants_checked += 1;
        let seen = visible(&run.versions, t, lag);
        let present = schedule.present(t);
        let newest = &run.versions[*seen.last().expect("a version is always visible")];
        for member in present {
            assert!(
                newest.leaves.contains_key(*member),
                "{member} has no certificate at {t:?}"
            );
        }
        for a in present {
            let name = ServerName::try_from(dial_name(a)).expect("DNS name");
            for &va in &seen {
                let Some(leaf) = run.versions[va].leaves.get(*a) else {
                    continue; // A joined after this version: it never presents it.
                };
                // rustls does not check a trust anchor's own validity; an OpenSSL peer would.
                let issuer = &run.versions[va].inventory.leaves[*a].issuer_fingerprint;
                let issuer_ok = run.versions[va]
                    .inventory
                    .ca(issuer)
                    .is_some_and(|ca| ca.not_before <= t && t <= ca.not_after);
                for b in present.iter().filter(|b| *b != a) {
                    for &vb in &seen {
                        let trusted = &run.versions[vb];
                        run.tally.verifications += 2;
                        let as_client = trusted.client.verify_client_cert(leaf, &[], unix(t));
                        let as_server =
                            trusted
                                .server
                                .verify_server_cert(leaf, &[], &name, &[], unix(t));
                        let errors = [
                            as_client.err().map(|e| format!("as client: {e:?}")),
                            as_server.err().map(|e| format!("as server: {e:?}")),
                            (!issuer_ok).then(|| "issuing CA not valid".to_string()),
                        ];
                        for what in errors.into_iter().flatten() {
                            failures.push(Failure {
                                at: t,
                                presenter: a.to_string(),
                                presented_version: va,
                                verifier: b.to_string(),
                                trusted_version: vb,
                                what,
                            });
                        }
                    }
                }
            }
        }
    }
    failures
}

/// Short lifetimes, so that 15 months hold many renewals and CA rotations; the CA's renewal
/// margin is shorter than a leaf's life, so leaves issued late in a CA's life end with it.
fn fast_policy() -> CertPolicy {
    CertPolicy {
        leaf_lifetime: 7 * DAY,
        leaf_renew_before: 2 * DAY,
        ca_lifetime: 30 * DAY,
        ca_renew_before: 3 * DAY,
        propagation_delay: 10 * MIN,
    }
}

#[test]
fn fifteen_months_of_renewals_rotations_and_scaling_never_break_a_connection() {
    let policy = fast_policy();
    policy.validate().expect("valid policy");
    let from = start();
    let until = from + 456 * DAY;
    let schedule = Schedule::standard(from);
    // Pods may lag up to the planner's propagation delay, minus a minute of margin.
    let lag = policy.propagation_delay - MIN;
    let mut run = simulate(&policy, &schedule, from, until, 6 * HOUR);
    let failures = check_propagation(&mut run, &schedule, lag, until);
    let t = &run.tally;
    println!("{} versions; {t:#?}", run.versions.len());
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );

    // The run went through what it claims to test.
    assert!(t.ca_switched >= 15, "CA rotations: {}", t.ca_switched);
    assert!(t.clamped > 0, "no leaf ever ended with its CA: {t:?}");
    assert_eq!(t.ca_dropped, t.ca_switched, "every old CA retired");
    assert!(t.leaves[&LeafReason::Renew] >= 100, "{t:?}");
    assert!(t.leaves[&LeafReason::CaChange] >= 15 * 2, "{t:?}");
    assert_eq!(
        t.leaves[&LeafReason::SanChange],
        2,
        "the alias added to m-0 and m-1"
    );
    assert_eq!(
        t.leaves[&LeafReason::New],
        3 + 1 + 1,
        "initial, m-3, m-2 again"
    );
    assert_eq!(t.leaves_dropped, 2, "m-2 and m-3 left");
    assert!(t.verifications > 10_000, "{t:?}");
}

#[test]
fn a_pod_lagging_beyond_the_propagation_delay_is_caught() {
    // Same plan, but a pod that takes longer than the operator waits: the checker must see
    // the consequence.
    let policy = fast_policy();
    let from = start();
    let until = from + 100 * DAY;
    let schedule = Schedule::standard(from);
    let mut run = simulate(&policy, &schedule, from, until, 6 * HOUR);
    let lag = policy.propagation_delay + MIN;
    let failures = check_propagation(&mut run, &schedule, lag, until);
    println!("{} failures, e.g. {:?}", failures.len(), failures.first());
    assert!(!failures.is_empty());
    assert!(
        failures.iter().all(|f| f.what.contains("UnknownIssuer")),
        "{:#?}",
        &failures[..failures.len().min(5)]
    );
}

#[test]
fn dropping_the_old_ca_without_waiting_fails_lagging_members() {
    // The operator believes Secrets propagate instantly; pods take up to five minutes.
    let policy = CertPolicy {
        propagation_delay: Duration::ZERO,
        ..fast_policy()
    };
    policy.validate().expect("a policy that looks valid");
    let from = start();
    let until = from + 100 * DAY;
    let schedule = Schedule::standard(from);
    let mut run = simulate(&policy, &schedule, from, until, 6 * HOUR);
    let lag = 5 * MIN;
    let failures = check_propagation(&mut run, &schedule, lag, until);
    println!("{} failures, e.g. {:?}", failures.len(), failures.first());
    assert!(run.tally.ca_switched >= 1, "{:?}", run.tally);
    assert!(
        !failures.is_empty(),
        "the checker missed a too-early CA switch"
    );
    // Both directions fail: a new leaf against a bundle without the new CA, and an old leaf
    // against a bundle without the old CA.
    let new_leaf_old_bundle = failures
        .iter()
        .any(|f| f.presented_version > f.trusted_version && f.what.contains("UnknownIssuer"));
    let old_leaf_new_bundle = failures
        .iter()
        .any(|f| f.presented_version < f.trusted_version && f.what.contains("UnknownIssuer"));
    assert!(
        new_leaf_old_bundle && old_leaf_new_bundle,
        "{:#?}",
        &failures[..failures.len().min(5)]
    );
    // And only within the lag after a rotation.
    for f in &failures {
        let published = run.versions[f.presented_version.max(f.trusted_version)].published;
        assert!(
            f.at >= published && f.at < published + lag,
            "{f:?} ({} {})",
            f.presenter,
            f.verifier
        );
    }
}
