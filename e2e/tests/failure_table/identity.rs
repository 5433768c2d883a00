//! A peer presenting a wrong or expired certificate, or an unknown name: rejected, logged,
//! visible in status.
//!
//! An intruder in a namespace of its own on the fleet's switch calls edge-0's mesh port, under
//! traffic, with:
//! (a) another member's certificate: edge-1's own pair, claiming to be edge-2;
//! (b) an expired certificate from the group's CA;
//! (c) a valid certificate from the group's CA for a name outside the group (edge-7);
//! (d) a certificate from another CA.
//!
//! Each time the connection is refused (a TLS alert, a `504`, or a close without a status),
//! edge-0 logs a line naming the intruder's address and what it expected and found, and counts
//! the refusal under its kind in `/metrics` (once, and nothing else); for (a) edge-0's `/peers`
//! also shows the refusal on the claimed member. The fleet stays Ready, no mesh session is
//! replaced, the traffic flows, and nothing is lost.
//!
//! Then the other direction, with the traffic stopped: edge-0 is cut off from edge-2 and its DNS
//! leads to the intruder, which answers edge-0's call with edge-1's certificate; edge-0 refuses
//! it, logs and counts it, and shows it on edge-2 in `/peers`. Once the DNS and the link are
//! back, the fleet is whole and still holds everything.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use haproxy_peers_e2e::intruder::{validity, CallOutcome, Credentials, Held, Intruder};
use haproxy_peers_e2e::metrics::{self, ERRORS};
use haproxy_peers_e2e::sessions::Sessions;
use haproxy_peers_e2e::workload::{assert_nothing_lost, WorkloadOptions};
use haproxy_peers_e2e::Fleet;

use crate::support::{act, check, flowing, ready, serial, start, traffic, until, CONVERGE};

/// The pod every impostor calls.
const TARGET: &str = "edge-0";
/// 2020-01-01 and 2021-01-01, 00:00 UTC: an expiry the log shows recognisably.
const EXPIRED_FROM: u64 = 1_577_836_800;
const EXPIRED_UNTIL: u64 = 1_609_459_200;

struct Case {
    what: &'static str,
    /// Name in the certificate presented.
    cert_name: &'static str,
    /// Name claimed in the hello.
    claimed: &'static str,
    /// `errors{kind=…}` that must grow by one.
    kind: &'static str,
    /// Every fragment must appear in one log line that also names the intruder's address.
    log: &'static [&'static str],
    /// The status line the intruder reads, if any.
    status: Option<&'static str>,
    /// The TLS alert that ends the intruder's connection, if any.
    alert: Option<&'static str>,
}

const CASES: [Case; 4] = [
    Case {
        what: "another member's certificate",
        cert_name: "edge-1",
        claimed: "edge-2",
        kind: "name_mismatch",
        log: &["refused", "expected edge-1", "found 'edge-2'"],
        status: None,
        alert: None,
    },
    Case {
        what: "an expired certificate from the group's CA",
        cert_name: "edge-1",
        claimed: "edge-1",
        kind: "peer_certificate_expired",
        log: &[
            "TLS handshake",
            "certificate expired on Jan  1 00:00:00 2021",
            "(now ",
        ],
        status: None,
        alert: Some("CertificateExpired"),
    },
    Case {
        what: "a certificate from the group's CA for a name outside the group",
        cert_name: "edge-7",
        claimed: "edge-7",
        kind: "mesh_unknown_peer",
        log: &["'edge-7'", "not a member", "504"],
        status: Some("504\n"),
        alert: None,
    },
    Case {
        what: "a certificate from another CA",
        cert_name: "edge-1",
        claimed: "edge-1",
        kind: "peer_certificate_unknown_issuer",
        log: &[
            "TLS handshake",
            "unknown issuer",
            "not signed by a CA in our ca.crt",
        ],
        status: None,
        alert: Some("UnknownCA"),
    },
];

#[test]
fn impostors_are_refused_logged_and_visible_in_status_while_the_fleet_serves() {
    let _serial = serial();
    let now = SystemTime::now();
    let mut fleet = start(3, now);
    let mut intruder = act(&mut fleet, |f| Intruder::join(f, "intruder"));
    let held: Vec<Held> = CASES
        .iter()
        .map(|case| {
            let credentials = credentials(&fleet, case, now);
            check(&fleet, intruder.hold(case.kind, &credentials))
        })
        .collect();
    let mesh = fleet.control().peer_group().spec.ports.mesh;
    let target = SocketAddr::from((check(&fleet, fleet.pod(TARGET)).ip(), mesh));

    let workload = traffic(&fleet, WorkloadOptions::default());
    let sessions = check(&fleet, Sessions::settled(&fleet, CONVERGE));

    for (case, held) in CASES.iter().zip(&held) {
        let before = errors(&fleet, TARGET);
        let outcome = check(
            &fleet,
            intruder.call(target, held, TARGET, TARGET, case.claimed),
        );
        let context = format!("{}: {outcome:#?}", case.what);
        assert_refused(case, &outcome, &context);

        // Logged, naming the intruder's address and what was wrong.
        let mut needles = vec![outcome.local.clone()];
        needles.extend(case.log.iter().map(|s| s.to_string()));
        until(&fleet, &format!("{}: edge-0 to log it", case.what), || {
            let log = fleet.pod(TARGET)?.sidecar.log();
            Ok(log
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n.as_str())))
                .then_some(()))
        });
        // Counted once, under its kind, and nothing else.
        let mut expected = before.clone();
        *expected.entry(case.kind.to_string()).or_insert(0.0) += 1.0;
        until(
            &fleet,
            &format!("{}: counted as {}", case.what, case.kind),
            || Ok((errors(&fleet, TARGET) == expected).then_some(())),
        );

        // The fleet did not notice: every pod Ready, every session the same, traffic flowing.
        for pod in fleet.pod_names() {
            let snap = check(&fleet, fleet.admin(&pod));
            assert!(
                snap.is_ready(),
                "{}: {pod} is not ready: {:?}",
                case.what,
                snap.blockers()
            );
        }
        let now = check(&fleet, Sessions::read(&fleet));
        let changes = sessions.changes(&now, |_, _| true);
        assert!(changes.is_empty(), "{}: {changes:#?}", case.what);
        flowing(&fleet, &workload);
    }

    // /peers: the member whose name was claimed shows the refusal, expected and found names.
    let edge2 = member_view(&fleet, TARGET, "edge-2");
    let last_error = edge2.last_error.clone().unwrap_or_default();
    assert!(
        last_error.contains("expected edge-1") && last_error.contains("found 'edge-2'"),
        "{edge2:#?}"
    );

    ready(&fleet);
    let ledger = workload.stop();
    assert_nothing_lost(&fleet, &ledger, CONVERGE);

    // The other direction: edge-0 dials edge-2 and reaches the intruder, which presents
    // edge-1's certificate.
    let listener = check(
        &fleet,
        intruder.hold("listener", &member_pair(&fleet, "edge-1")),
    );
    act(&mut fleet, |_| intruder.listen(mesh, &listener));
    let redirected = hosts(&fleet, Some(("edge-2", intruder.ip())));
    act(&mut fleet, |f| {
        f.network().set_hosts_of(TARGET, &redirected)
    });
    let before = errors(&fleet, TARGET);
    act(&mut fleet, |f| f.partition(TARGET, "edge-2"));
    let wrong = format!("member edge-2 at {}:{mesh}", intruder.ip());
    let shown = until(&fleet, "edge-0 to refuse the intruder's listener", || {
        let view = member_view(&fleet, TARGET, "edge-2");
        Ok(view
            .last_error
            .filter(|e| e.contains(&wrong) && e.contains("not the member that was dialed")))
    });
    assert!(shown.contains("TLS handshake"), "{shown}");
    let target_ip = check(&fleet, fleet.pod(TARGET)).ip().to_string();
    let calls = intruder.accepted();
    let refusal = calls
        .iter()
        .find(|a| a.peer.starts_with(&format!("{target_ip}:")))
        .unwrap_or_else(|| panic!("the intruder saw no call from edge-0: {calls:#?}"));
    assert!(
        refusal
            .tls_error
            .as_deref()
            .is_some_and(|e| e.contains("BadCertificate")),
        "edge-0 did not end the handshake with an alert: {refusal:#?}"
    );
    assert!(
        refusal.received.is_empty(),
        "edge-0 sent its hello: {refusal:#?}"
    );
    let log = check(&fleet, fleet.pod(TARGET)).sidecar.log();
    assert!(
        log.lines()
            .any(|l| l.contains(&wrong) && l.contains("kind=\"peer_certificate_wrong_name\"")),
        "edge-0 did not log the refusal"
    );
    let counted = errors(&fleet, TARGET);
    let grew = |kind: &str| {
        counted.get(kind).copied().unwrap_or(0.0) > before.get(kind).copied().unwrap_or(0.0)
    };
    assert!(
        grew("peer_certificate_wrong_name"),
        "{before:?} -> {counted:?}"
    );

    // DNS and link back: the fleet is whole and holds everything.
    act(&mut fleet, |f| {
        f.network().set_hosts_of(TARGET, &hosts(f, None))
    });
    act(&mut fleet, |f| f.unpartition(TARGET, "edge-2"));
    act(&mut fleet, |_| intruder.stop_listening());
    until(
        &fleet,
        "edge-0 and edge-2 to have their session back",
        || {
            let now = Sessions::read(&fleet)?;
            Ok((now.pairs() == sessions.pairs()).then_some(()))
        },
    );
    ready(&fleet);
    assert_nothing_lost(&fleet, &ledger, CONVERGE);
}

/// What the intruder presents in `case`.
fn credentials(fleet: &Fleet, case: &Case, now: SystemTime) -> Credentials {
    let control = fleet.control();
    let group = control.group().name.clone();
    let names = control.dns_names(case.cert_name);
    let minted = match case.kind {
        "name_mismatch" => return member_pair(fleet, case.cert_name),
        "peer_certificate_expired" => Credentials::group_leaf(
            control.inventory(),
            &group,
            case.cert_name,
            &names,
            validity(
                UNIX_EPOCH + Duration::from_secs(EXPIRED_FROM),
                UNIX_EPOCH + Duration::from_secs(EXPIRED_UNTIL),
            ),
        ),
        "mesh_unknown_peer" => Credentials::group_leaf(
            control.inventory(),
            &group,
            case.cert_name,
            &names,
            validity(
                now - Duration::from_secs(3_600),
                now + Duration::from_secs(86_400),
            ),
        ),
        // Trusting the group's CA, so that it accepts the sidecar it calls.
        _ => Credentials::foreign(
            case.cert_name,
            &names,
            now,
            &control.inventory().ca_bundle_pem(),
        ),
    };
    check(fleet, minted)
}

/// A member's own pair, from the group's Secret as mounted in its pod.
fn member_pair(fleet: &Fleet, member: &str) -> Credentials {
    let dir = check(fleet, fleet.pod(member)).tls_dir();
    check(fleet, Credentials::from_secret(&dir, member))
}

fn assert_refused(case: &Case, outcome: &CallOutcome, context: &str) {
    assert!(!outcome.timed_out, "kept open: {context}");
    assert!(
        !outcome.received.starts_with("200"),
        "a session was granted: {context}"
    );
    assert_eq!(outcome.received, case.status.unwrap_or(""), "{context}");
    match case.alert {
        Some(alert) => {
            let ended_by = outcome.ended_by.as_deref().unwrap_or_default();
            assert!(ended_by.contains(alert), "{context}");
        }
        None => assert_eq!(outcome.tls_error, None, "{context}"),
    }
}

/// The pod's errors by kind.
fn errors(fleet: &Fleet, pod: &str) -> BTreeMap<String, f64> {
    check(fleet, metrics::read(fleet, pod)).by(ERRORS, "kind")
}

fn member_view(
    fleet: &Fleet,
    pod: &str,
    member: &str,
) -> haproxy_peers_sidecar::admin::views::PeerView {
    let snap = check(fleet, fleet.admin(pod));
    snap.peers
        .iter()
        .flat_map(|p| &p.peers)
        .find(|p| p.name == member)
        .cloned()
        .unwrap_or_else(|| panic!("{pod} does not list {member}: {snap:#?}"))
}

/// Every pod's names and address, as the fleet's DNS has them; `redirect` sends one pod's
/// names to another address.
fn hosts(
    fleet: &Fleet,
    redirect: Option<(&str, std::net::Ipv4Addr)>,
) -> Vec<(std::net::Ipv4Addr, Vec<String>)> {
    fleet
        .pods()
        .map(|p| {
            let ip = match redirect {
                Some((name, to)) if name == p.name => to,
                _ => p.ip(),
            };
            (ip, fleet.control().dns_names(&p.name))
        })
        .collect()
}
