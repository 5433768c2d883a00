//! Certificates over simulated time through the real reconcile: the test jumps from one
//! requeue to the next for over a year. Leaves are renewed before they get close to expiry,
//! the CA rotates in three phases (publish, switch, retire) a propagation delay apart, and the
//! requeue the reconcile asks for is exactly when the certificate plan has work again.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use haproxy_peers_operator::api::TlsSpec;
use haproxy_peers_operator::certs::{self, CertPolicy};
use haproxy_peers_operator::render::names::GroupRef;
use serde_json::json;
use support::fixtures::*;

/// The bundle and the signing CA after one reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    at: SystemTime,
    bundle: Vec<String>,
    signing: String,
    leaf_issuers: Vec<String>,
}

fn desired() -> BTreeMap<String, Vec<String>> {
    let g = GroupRef {
        namespace: NS.into(),
        name: GROUP.into(),
    };
    (0..3)
        .map(|i| {
            let name = format!("edge-{i}");
            let mut dns = g.member_dns_names(&name, "cluster.local");
            dns.sort();
            (name, dns)
        })
        .collect()
}

#[tokio::test]
async fn leaves_renew_and_the_ca_rotates_in_phases_over_a_year() {
    let mut b = Bench::new();
    // The periodic resync is pushed out of the way: each requeue is the plan's own.
    b.ctx = context(&b.api, &b.clock).with_resync(1000 * DAY);
    seed_group(&b.api, GROUP, json!({}));
    seed_pods(&b.api, 0..3);
    let policy: CertPolicy = TlsSpec::default().cert_policy().expect("default policy");
    let end = start() + 400 * DAY;

    let mut t = start();
    let mut steps: Vec<Step> = Vec::new();
    let mut leaf_pems: Vec<String> = Vec::new();
    while t < end {
        let out = b.reconcile(t).await;
        let parsed = inventory(&b.api);
        assert!(
            parsed.problems.is_empty(),
            "at {t:?}: {:#?}",
            parsed.problems
        );
        let inv = parsed.inventory;

        // Planning again on what was written finds nothing to do, and the same next check.
        let again = certs::plan(&inv, &desired(), &policy, t);
        assert!(again.actions.is_empty(), "at {t:?}: {:#?}", again.actions);
        let next = out.cert_next_check.expect("TLS on: always a next check");
        assert_eq!(again.next_check, Some(next), "at {t:?}");
        assert!(next > t);
        assert_eq!(
            out.requeue_after,
            next.duration_since(t)
                .expect("later")
                .max(Duration::from_secs(1)),
            "the requeue is the plan's next check"
        );

        // Every leaf is valid, trusted, and far enough from expiry.
        b.assert_condition("CertificatesReady", "True", "CertificatesValid", &[]);
        for (name, leaf) in &inv.leaves {
            assert!(
                leaf.not_after.duration_since(t).expect("not expired") > policy.leaf_renew_before,
                "{name} at {t:?} expires at {:?}",
                leaf.not_after
            );
            assert!(
                inv.ca(&leaf.issuer_fingerprint).is_some(),
                "{name}'s issuer is trusted"
            );
        }
        let edge0 = inv.leaves["edge-0"].cert_pem.clone();
        if leaf_pems.last() != Some(&edge0) {
            leaf_pems.push(edge0);
        }
        steps.push(Step {
            at: t,
            bundle: inv.cas.iter().map(|c| c.fingerprint.clone()).collect(),
            signing: inv.signing_ca.clone().expect("signing CA"),
            leaf_issuers: inv
                .leaves
                .values()
                .map(|l| l.issuer_fingerprint.clone())
                .collect(),
        });
        t = next;
    }

    // Leaves: 30 days, renewed 10 days before expiry: about every 20 days.
    assert!(
        (19..=22).contains(&leaf_pems.len()),
        "{} distinct leaves for edge-0 in 400 days",
        leaf_pems.len()
    );

    // The CA: one, then old + new (old signs), then old + new (new signs), then new only.
    let first_ca = steps[0].signing.clone();
    let published = steps
        .iter()
        .position(|s| s.bundle.len() == 2)
        .expect("a second CA is published");
    let new_ca = steps[published]
        .bundle
        .iter()
        .find(|f| **f != first_ca)
        .expect("new CA")
        .clone();
    assert_eq!(
        steps[published].signing, first_ca,
        "phase 1: the old CA still signs"
    );
    let switched = steps
        .iter()
        .position(|s| s.signing == new_ca)
        .expect("the new CA signs");
    assert_eq!(steps[switched].bundle.len(), 2, "phase 2: both trusted");
    assert!(
        steps[switched].leaf_issuers.iter().all(|i| *i == new_ca),
        "every leaf is reissued by the new CA at the switch"
    );
    let retired = steps
        .iter()
        .position(|s| s.bundle == [new_ca.clone()])
        .expect("the old CA is retired");
    assert!(published < switched && switched < retired);
    let delay = policy.propagation_delay;
    assert!(
        steps[switched]
            .at
            .duration_since(steps[published].at)
            .expect("later")
            >= delay
    );
    assert!(
        steps[retired]
            .at
            .duration_since(steps[switched].at)
            .expect("later")
            >= delay
    );
    // The rotation starts when the first CA has caRenewBefore left.
    let rotation_start = steps[published].at.duration_since(start()).expect("later");
    assert!(
        rotation_start >= 305 * DAY - Duration::from_secs(3600) && rotation_start <= 306 * DAY,
        "{rotation_start:?}"
    );

    let got = reasons(&b.api);
    for reason in [
        "CaRotationStarted",
        "CaSwitched",
        "CaRetired",
        "CertificatesIssued",
    ] {
        assert!(
            got.iter().any(|r| r == reason),
            "no {reason} event in {got:?}"
        );
    }
}
