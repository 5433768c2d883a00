use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::certs::inventory::CA_NEXT_KEY_KEY;
use crate::certs::mint::mint;
use crate::certs::plan::{plan, CaReason, CertAction, LeafReason};
use crate::certs::policy::CertPolicy;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_924_992_000)
}

fn desired(members: &[&str]) -> BTreeMap<String, Vec<String>> {
    members
        .iter()
        .map(|m| {
            let names = vec![
                format!("{m}.g-peers.ns.svc"),
                format!("{m}.g-peers.ns.svc.cluster.local"),
            ];
            (m.to_string(), names)
        })
        .collect()
}

/// A group in the middle of a CA rotation (two CAs, a pending key), minted for real.
fn rotating_group() -> CertInventory {
    let policy = CertPolicy::default();
    let want = desired(&["edge-0", "edge-1", "edge-2"]);
    let inv = mint(
        &CertInventory::default(),
        &plan(&CertInventory::default(), &want, &policy, t0()),
        "g",
    )
    .expect("mint");
    let start = inv.cas[0].not_after - policy.ca_renew_before;
    let p = plan(&inv, &want, &policy, start);
    let inv = mint(&inv, &p, "g").expect("mint");
    assert_eq!(inv.cas.len(), 2);
    assert!(inv.pending_ca.is_some());
    inv
}

fn parse<V: AsRef<[u8]>>(tls: &BTreeMap<String, V>, ca: &BTreeMap<String, V>) -> ParsedInventory {
    CertInventory::from_secrets(
        Some(SecretData::new("g-peer-tls", tls)),
        Some(SecretData::new("g-ca", ca)),
    )
}

#[test]
fn minted_inventory_survives_its_secrets() {
    let inv = rotating_group();
    let parsed = parse(&inv.tls_secret_data(), &inv.ca_secret_data());
    assert_eq!(parsed.problems, []);
    assert_eq!(parsed.inventory, inv);

    // Secret data arrives as bytes from the API.
    let bytes = |m: BTreeMap<String, String>| -> BTreeMap<String, Vec<u8>> {
        m.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()
    };
    let (tls, ca) = (bytes(inv.tls_secret_data()), bytes(inv.ca_secret_data()));
    let parsed = parse(&tls, &ca);
    assert_eq!(parsed.inventory, inv);
}

#[test]
fn no_secrets_yet_is_an_empty_inventory() {
    let parsed = CertInventory::from_secrets::<Vec<u8>>(None, None);
    assert_eq!(parsed.inventory, CertInventory::default());
    assert_eq!(parsed.problems, []);
}

fn common_name(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

#[test]
fn minted_certificates_have_the_promised_fields() {
    let inv = rotating_group();
    let der = |pem: &str| {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .expect("one")
            .expect("pem")
    };
    let ca_der = der(&inv.cas[0].cert_pem);
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).expect("x509");
    let cn = common_name(&ca);
    assert_eq!(
        cn.as_deref(),
        Some("haproxy-peers g CA 2031-01-01T00:00:00Z")
    );
    assert!(ca.is_ca());
    let ku = ca.key_usage().expect("ok").expect("key usage").value;
    assert!(ku.key_cert_sign() && ku.crl_sign() && !ku.digital_signature());
    assert_eq!(
        ca.signature_algorithm.algorithm,
        x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
    );

    let leaf = &inv.leaves["edge-1"];
    let leaf_der = der(&leaf.cert_pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf_der).expect("x509");
    let cn = common_name(&cert);
    assert_eq!(cn.as_deref(), Some("edge-1"));
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().expect("ok").expect("eku").value;
    assert!(eku.server_auth && eku.client_auth);
    let ku = cert.key_usage().expect("ok").expect("ku").value;
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert_eq!(
        leaf.dns_names,
        [
            "edge-1.g-peers.ns.svc",
            "edge-1.g-peers.ns.svc.cluster.local"
        ]
    );
    assert!(
        leaf.key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "PKCS#8"
    );
    // Serials are random, not derived from anything the test controls.
    let other = der(&inv.leaves["edge-2"].cert_pem);
    let (_, other) = x509_parser::parse_x509_certificate(&other).expect("x509");
    assert_ne!(cert.raw_serial(), other.raw_serial());
    assert_eq!(cert.raw_serial().len(), 16);
}

/// What the planner makes of a parsed inventory.
fn plan_next_day(inv: &CertInventory) -> crate::certs::plan::CertPlan {
    let want = desired(&["edge-0", "edge-1", "edge-2"]);
    plan(inv, &want, &CertPolicy::default(), t0() + DAY)
}

fn problem_keys(parsed: &ParsedInventory) -> Vec<(String, String, Remedy)> {
    parsed
        .problems
        .iter()
        .map(|p| (p.secret.clone(), p.key.clone(), p.remedy.clone()))
        .collect()
}

#[test]
fn a_garbage_leaf_is_reported_and_reissued() {
    let inv = rotating_group();
    let mut tls = inv.tls_secret_data();
    tls.insert("edge-1.crt".to_string(), "hello".to_string());
    let parsed = parse(&tls, &inv.ca_secret_data());
    let reissue = Remedy::ReissueLeaf {
        member: "edge-1".to_string(),
    };
    assert_eq!(
        problem_keys(&parsed),
        [("g-peer-tls".to_string(), "edge-1.crt".to_string(), reissue)]
    );
    let text = parsed.problems[0].to_string();
    assert_eq!(
        text,
        "Secret g-peer-tls key edge-1.crt: expected exactly one certificate; the operator will \
         reissue the certificate of edge-1"
    );
    assert!(!parsed.inventory.leaves.contains_key("edge-1"));
    let p = plan_next_day(&parsed.inventory);
    assert!(matches!(
        p.actions.as_slice(),
        [CertAction::IssueLeaf { member, reason: LeafReason::New, .. }] if member == "edge-1"
    ));
}

#[test]
fn swapped_keys_and_foreign_certificates_are_caught() {
    let inv = rotating_group();
    let mut tls = inv.tls_secret_data();
    let k0 = tls["edge-0.key"].clone();
    tls.insert("edge-0.key".to_string(), tls["edge-1.key"].clone());
    tls.insert("edge-1.key".to_string(), k0);
    // A leaf of another group's CA.
    let foreign = rotating_group();
    tls.insert(
        "edge-2.crt".to_string(),
        foreign.leaves["edge-2"].cert_pem.clone(),
    );
    tls.insert(
        "edge-2.key".to_string(),
        foreign.leaves["edge-2"].key_pem.clone(),
    );
    tls.insert(
        "edge-9.key".to_string(),
        foreign.leaves["edge-2"].key_pem.clone(),
    );
    let parsed = parse(&tls, &inv.ca_secret_data());
    let texts: Vec<String> = parsed.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "Secret g-peer-tls key edge-0.key: does not belong to the certificate edge-0.crt; \
             the operator will reissue the certificate of edge-0",
            "Secret g-peer-tls key edge-1.key: does not belong to the certificate edge-1.crt; \
             the operator will reissue the certificate of edge-1",
            "Secret g-peer-tls key edge-2.crt: not signed by any CA in the trust bundle; the \
             operator will reissue the certificate of edge-2",
            "Secret g-peer-tls key edge-9.key: a key without a certificate; the operator will \
             ignore it",
        ]
    );
    assert!(parsed.inventory.leaves.is_empty());
    assert_eq!(parsed.inventory.cas, inv.cas, "the bundle itself is fine");
}

#[test]
fn an_unusable_ca_key_leads_to_a_new_ca() {
    let inv = rotating_group();
    let mut ca = inv.ca_secret_data();
    ca.insert(
        CA_KEY_KEY.to_string(),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_string(),
    );
    // The pending key of another group: of no CA here.
    ca.insert(
        CA_NEXT_KEY_KEY.to_string(),
        rotating_group().pending_ca_key_pem.expect("key"),
    );
    let parsed = parse(&inv.tls_secret_data(), &ca);
    assert_eq!(
        problem_keys(&parsed)
            .into_iter()
            .map(|(s, k, r)| (s, k, r.to_string()))
            .collect::<Vec<_>>(),
        [
            (
                "g-ca".to_string(),
                "ca.key".to_string(),
                "issue a new CA and reissue every leaf".to_string()
            ),
            (
                "g-ca".to_string(),
                "ca-next.key".to_string(),
                "start the CA rotation again".to_string()
            ),
        ]
    );
    assert_eq!(parsed.inventory.signing_ca, None);
    assert_eq!(parsed.inventory.pending_ca, None);
    let p = plan_next_day(&parsed.inventory);
    assert!(matches!(
        p.actions[0],
        CertAction::IssueCa {
            signing: true,
            reason: CaReason::SigningKeyUnavailable,
            ..
        }
    ));
}

#[test]
fn the_bundle_is_the_union_of_both_secrets() {
    // G-ca was written with the new CA, G-peer-tls not yet.
    let before = mint(
        &CertInventory::default(),
        &plan(
            &CertInventory::default(),
            &desired(&["a"]),
            &CertPolicy::default(),
            t0(),
        ),
        "g",
    )
    .expect("mint");
    let after = rotating_group();
    let mut ca = after.ca_secret_data();
    ca.insert(CA_BUNDLE_KEY.to_string(), after.ca_bundle_pem());
    let mut tls = before.tls_secret_data();
    // A leaf is not a CA: left out of the bundle, reported.
    tls.insert(
        CA_BUNDLE_KEY.to_string(),
        format!("{}{}", before.ca_bundle_pem(), before.leaves["a"].cert_pem),
    );
    let parsed = parse(&tls, &ca);
    let fps: Vec<&str> = parsed
        .inventory
        .cas
        .iter()
        .map(|c| c.fingerprint.as_str())
        .collect();
    let mut want: Vec<&str> = before
        .cas
        .iter()
        .chain(&after.cas)
        .map(|c| c.fingerprint.as_str())
        .collect();
    // Oldest first; CAs minted in the same second in fingerprint order.
    want.sort_by_key(|fp| {
        let ca = parsed.inventory.ca(fp).expect("every CA kept");
        (ca.not_before, ca.fingerprint.clone())
    });
    want.dedup();
    assert_eq!(fps, want);
    assert_eq!(
        parsed
            .problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "Secret g-peer-tls key ca.crt: certificate 2: not a CA certificate; the operator will \
          leave it out of the trust bundle"
        ]
    );
}

#[test]
fn a_missing_bundle_key_is_reported() {
    let inv = rotating_group();
    let mut tls = inv.tls_secret_data();
    tls.remove(CA_BUNDLE_KEY);
    let parsed = parse(&tls, &inv.ca_secret_data());
    assert_eq!(parsed.problems.len(), 1);
    assert_eq!(parsed.problems[0].remedy, Remedy::Rewrite);
    assert_eq!(parsed.inventory, inv, "G-ca still holds the bundle");
}

/// Deterministic xorshift, so a failure reproduces.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn corrupted_secrets_never_panic_and_never_yield_a_changed_certificate() {
    let inv = rotating_group();
    let tls: BTreeMap<String, Vec<u8>> = inv
        .tls_secret_data()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    let ca: BTreeMap<String, Vec<u8>> = inv
        .ca_secret_data()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    let keys: Vec<String> = tls.keys().cloned().collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut reported = 0;
    for round in 0..400 {
        let mut tls = tls.clone();
        let key = &keys[round % keys.len()];
        let value = tls.get_mut(key).expect("key");
        match xorshift(&mut rng) % 3 {
            0 => {
                let at = (xorshift(&mut rng) as usize) % value.len();
                value[at] ^= 1 << (xorshift(&mut rng) % 8);
            }
            1 => {
                let len = (xorshift(&mut rng) as usize) % value.len();
                value.truncate(len);
            }
            _ => {
                let at = (xorshift(&mut rng) as usize) % value.len();
                value.insert(at, (xorshift(&mut rng) % 256) as u8);
            }
        }
        let parsed = parse(&tls, &ca);
        if !parsed.problems.is_empty() {
            reported += 1;
        }
        // Whatever survived parsing is exactly what was minted (PEM is canonicalised, so a
        // flipped line ending or padding may survive; a changed certificate may not).
        for (member, leaf) in &parsed.inventory.leaves {
            assert_eq!(leaf, &inv.leaves[member], "round {round} key {key}");
        }
        for c in &parsed.inventory.cas {
            assert_eq!(Some(c), inv.ca(&c.fingerprint), "round {round} key {key}");
        }
    }
    assert!(
        reported > 300,
        "most corruptions must be noticed: {reported}/400"
    );
}
