//! 4. Peers that must not get in: a certificate for another name than the one claimed, an
//!    expired certificate, one from another CA, a claimed name not in the group. Each is
//!    refused, logged with what was expected and what was found, and counted (the `errors`
//!    metric by kind; `/peers` for a member whose name was claimed); the group keeps
//!    replicating.

use std::time::{Duration, Instant};

use haproxy_peers_sidecar::admin::views::SessionState;
use haproxy_peers_testkit::cluster::Cluster;
use haproxy_peers_testkit::pki::{Ca, EXPIRED};
use haproxy_peers_testkit::wait_until;

use crate::admin::{self, metric_sum};
use crate::expect::{log_tails, Expected};
use crate::intruder::{block_on, call, hello, Identity, Outcome, Pace};
use crate::lab::{self, T_STR};
use crate::replicate::CONVERGE;
use crate::writes::{set_write, tag};

const ERRORS: &str = "haproxy_peers_sidecar_errors_total";
/// The pod every impostor calls.
const TARGET: usize = 0;

struct Case {
    what: &'static str,
    /// Name in the certificate presented.
    cert_name: &'static str,
    /// Name claimed in the hello.
    claimed: &'static str,
    /// `errors{kind=…}` that must grow by one.
    kind: &'static str,
    /// Every fragment must appear in one log line that also names the impostor's address.
    log: &'static [&'static str],
    /// The status line the impostor reads, if any.
    status: Option<&'static str>,
    /// What ends the impostor's connection: the TLS alert it receives, if any.
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
        what: "an expired certificate",
        cert_name: "edge-1",
        claimed: "edge-1",
        kind: "peer_certificate_expired",
        log: &["TLS handshake", "certificate expired on", "2021"],
        status: None,
        alert: Some("CertificateExpired"),
    },
    Case {
        what: "a certificate from another CA",
        cert_name: "edge-1",
        claimed: "edge-1",
        kind: "peer_certificate_unknown_issuer",
        log: &["TLS handshake", "unknown issuer"],
        status: None,
        alert: Some("UnknownCA"),
    },
    Case {
        what: "a name not in the group",
        cert_name: "edge-7",
        claimed: "edge-7",
        kind: "mesh_unknown_peer",
        log: &["'edge-7'", "not a member", "504"],
        status: Some("504\n"),
        alert: None,
    },
];

fn identity(cluster: &Cluster, case: &Case, intruder_ca: &Ca) -> Identity {
    let group_ca = cluster.ca().expect("a TLS cluster");
    let leaf = match case.kind {
        "peer_certificate_expired" => group_ca.leaf_valid(case.cert_name, EXPIRED),
        "peer_certificate_unknown_issuer" => intruder_ca.leaf(case.cert_name),
        _ => group_ca.leaf(case.cert_name),
    };
    // The impostor trusts the group's CA, so that it accepts the sidecar it calls.
    Identity::new(&[group_ca], case.cert_name, &leaf)
}

#[test]
fn impostors_are_refused_logged_and_counted() {
    let cluster = lab::start(lab::three(true));
    let node = cluster.node(TARGET);
    let intruder_ca = Ca::new("intruder CA");
    let sessions_before = admin::peers(node);

    for case in &CASES {
        let before = admin::metrics(node);
        let who = identity(&cluster, case, &intruder_ca);
        let outcome: Outcome = block_on(call(
            node.addrs.mesh,
            Some((&who.configs, node.name())),
            &hello(node.name(), case.claimed),
            Pace::AtOnce,
        ));
        let context = format!("{}: {outcome:?}\n{}", case.what, log_tails(&cluster));
        // Refused: never a session, at most the status line that says why.
        let text = outcome.received_text();
        assert!(!text.starts_with("200"), "{context}");
        assert_eq!(text, case.status.unwrap_or(""), "{context}");
        if let Some(alert) = case.alert {
            let ended_by = outcome.ended_by.as_deref().unwrap_or_default();
            assert!(ended_by.contains(alert), "{context}");
        } else {
            assert_eq!(outcome.tls, Ok(()), "{context}");
        }

        // Logged, naming the impostor's address and what was wrong.
        let mut needles = vec![outcome.local.to_string()];
        needles.extend(case.log.iter().map(|s| s.to_string()));
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        if let Err(e) = node.sidecar.wait_log(&needles, Duration::from_secs(5)) {
            panic!("{}: {e}", case.what);
        }
        // Counted.
        wait_until(
            &format!("errors{{kind={}}} to count {}", case.kind, case.what),
            Duration::from_secs(5),
            || {
                let now = admin::metrics(node);
                let grew = metric_sum(&now, ERRORS, &[("kind", case.kind)])
                    - metric_sum(&before, ERRORS, &[("kind", case.kind)]);
                Ok((grew == 1.0).then_some(()))
            },
        )
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n{}",
                node.sidecar.get_ok("/metrics").unwrap_or_default()
            )
        });
    }

    // /peers: the member whose name was claimed shows the refusal, expected and found names.
    let edge2 = admin::peer(node, "edge-2");
    let last_error = edge2.last_error.clone().unwrap_or_default();
    assert!(
        last_error.contains("expected edge-1") && last_error.contains("found 'edge-2'"),
        "{edge2:#?}"
    );
    // The real sessions were never replaced.
    for name in ["edge-1", "edge-2"] {
        let before = sessions_before
            .peers
            .iter()
            .find(|p| p.name == name)
            .unwrap();
        let now = admin::peer(node, name);
        assert_eq!(now.state, SessionState::Established, "{now:#?}");
        assert_eq!(
            (now.pid, now.collisions, now.remote_addr.clone()),
            (before.pid, before.collisions, before.remote_addr.clone()),
            "{name} was disturbed: {now:#?}"
        );
    }
    // And the group still replicates.
    let since = Instant::now();
    let fresh = set_write(node, T_STR, tag(9, TARGET, 1), 9);
    let mut expected = Expected::new();
    expected.capture(node, &[fresh], since);
    expected.wait_on(&cluster, &[0, 1, 2], CONVERGE);
}
