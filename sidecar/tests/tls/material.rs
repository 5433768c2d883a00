//! Loading and validating one pod's files: every error names the file and what to check.

use std::path::Path;
use std::time::Duration;

use haproxy_peers_sidecar::tls::{MaterialError, TlsMaterial, TlsReloader};
use rustls::pki_types::UnixTime;

use crate::net::within;
use crate::pki::{secret, Ca, EXPIRED, NOT_YET_VALID};
use crate::volume::SecretVolume;

fn validate(dir: &Path, pod: &str) -> MaterialError {
    TlsMaterial::load(dir, pod)
        .and_then(|material| material.validate(UnixTime::now()))
        .expect_err("this material must be rejected")
}

/// `error` has `label`, and its message starts with `prefix` where `{dir}` is the volume.
fn assert_error(error: &MaterialError, label: &str, dir: &Path, prefix: &str) {
    assert_eq!(error.metric_label(), label, "{error}");
    let expected = prefix.replace("{dir}", &dir.display().to_string());
    assert!(
        error.to_string().starts_with(&expected),
        "{error}\nshould start with: {expected}"
    );
}

fn with_file(files: &mut [(String, Vec<u8>)], name: &str, bytes: Vec<u8>) {
    let slot = files
        .iter_mut()
        .find(|(file, _)| file == name)
        .expect("file present");
    slot.1 = bytes;
}

#[test]
fn a_missing_leaf_names_the_file_and_the_member() {
    let ca = Ca::new("edge CA 1");
    let volume = SecretVolume::new(&secret(&[&ca], &[("edge-0", &ca.leaf("edge-0"))]));
    let err = TlsMaterial::load(volume.path(), "edge-3").unwrap_err();
    let expected =
        "{dir}/edge-3.crt is missing: is the pod name 'edge-3' a member of the PeerGroup? \
                The operator issues one certificate per selected pod (a new pod's files appear \
                once the kubelet refreshes the Secret volume)";
    assert_eq!(err.metric_label(), "missing_file");
    let dir = volume.path().display().to_string();
    assert_eq!(err.to_string(), expected.replace("{dir}", &dir));
}

#[test]
fn a_missing_bundle_names_the_mount() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = TlsMaterial::load(dir.path(), "edge-0").unwrap_err();
    let prefix = "{dir}/ca.crt is missing: is the group's peer-tls Secret mounted at {dir}?";
    assert_error(&err, "missing_file", dir.path(), prefix);
}

#[test]
fn a_key_of_another_member_is_a_mismatch() {
    let ca = Ca::new("edge CA 1");
    let (edge1, edge2) = (ca.leaf("edge-1"), ca.leaf("edge-2"));
    let mut files = secret(&[&ca], &[("edge-1", &edge1)]);
    with_file(&mut files, "edge-1.key", edge2.key_pem.into_bytes());
    let volume = SecretVolume::new(&files);
    let err = validate(volume.path(), "edge-1");
    let prefix = "{dir}/edge-1.key does not belong to the certificate in {dir}/edge-1.crt";
    assert_error(&err, "key_mismatch", volume.path(), prefix);
}

#[test]
fn garbage_key_names_the_file_and_the_member() {
    let ca = Ca::new("edge CA 1");
    let mut files = secret(&[&ca], &[("edge-1", &ca.leaf("edge-1"))]);
    with_file(
        &mut files,
        "edge-1.key",
        b"-----BEGIN NONSENSE-----\n".to_vec(),
    );
    let volume = SecretVolume::new(&files);
    let err = TlsMaterial::load(volume.path(), "edge-1").unwrap_err();
    let prefix = "{dir}/edge-1.key holds no usable private key for 'edge-1'";
    assert_error(&err, "bad_key", volume.path(), prefix);
}

#[test]
fn expired_and_not_yet_valid_leaves_are_dated() {
    let ca = Ca::new("edge CA 1");
    let volume = SecretVolume::new(&secret(
        &[&ca],
        &[
            ("edge-0", &ca.leaf_valid("edge-0", EXPIRED)),
            ("edge-1", &ca.leaf_valid("edge-1", NOT_YET_VALID)),
        ],
    ));
    let expired = validate(volume.path(), "edge-0");
    let prefix = "{dir}/edge-0.crt expired on Jan  1 00:00:00 2021 +00:00 (now ";
    assert_error(&expired, "expired", volume.path(), prefix);
    let early = validate(volume.path(), "edge-1");
    let prefix = "{dir}/edge-1.crt is not valid before Jan  1 00:00:00 2090 +00:00 (now ";
    assert_error(&early, "not_yet_valid", volume.path(), prefix);
}

#[test]
fn a_leaf_of_another_ca_is_untrusted() {
    let ca = Ca::new("edge CA 1");
    let foreign = Ca::new("other group CA");
    let volume = SecretVolume::new(&secret(&[&ca], &[("edge-1", &foreign.leaf("edge-1"))]));
    let err = validate(volume.path(), "edge-1");
    let prefix = "{dir}/edge-1.crt is not issued by a CA in {dir}/ca.crt (unknown issuer)";
    assert_error(&err, "unknown_issuer", volume.path(), prefix);
}

#[test]
fn another_members_pair_under_our_name_is_the_wrong_name() {
    let ca = Ca::new("edge CA 1");
    let volume = SecretVolume::new(&secret(&[&ca], &[("edge-1", &ca.leaf("edge-2"))]));
    let err = validate(volume.path(), "edge-1");
    let prefix = "{dir}/edge-1.crt is not issued for the name 'edge-1' (its DNS names: edge-2, ";
    assert_error(&err, "wrong_name", volume.path(), prefix);
}

#[test]
fn a_garbage_bundle_names_the_file() {
    let ca = Ca::new("edge CA 1");
    let mut files = secret(&[&ca], &[("edge-1", &ca.leaf("edge-1"))]);
    with_file(&mut files, "ca.crt", b"garbage".to_vec());
    let volume = SecretVolume::new(&files);
    let err = TlsMaterial::load(volume.path(), "edge-1").unwrap_err();
    let prefix = "{dir}/ca.crt holds no usable PEM certificate";
    assert_error(&err, "bad_certificate", volume.path(), prefix);
}

/// A new pod can start before the kubelet has refreshed the Secret with its leaf.
#[tokio::test]
async fn the_reloader_waits_for_a_new_members_files() {
    let ca = Ca::new("edge CA 1");
    let edge0 = ca.leaf("edge-0");
    let mut volume = SecretVolume::new(&secret(&[&ca], &[("edge-0", &edge0)]));
    let (reloader, mut watch) =
        TlsReloader::spawn(volume.path(), "edge-3", Duration::from_millis(20))
            .await
            .expect("a valid pod name");
    assert!(watch.current().is_none(), "no material yet");
    let why = reloader
        .last_error()
        .expect("the reason is kept")
        .to_string();
    assert!(why.contains("edge-3.crt is missing"), "{why}");
    assert_eq!(reloader.counters().rejected(), 1);

    let edge3 = ca.leaf("edge-3");
    volume.update(&secret(&[&ca], &[("edge-0", &edge0), ("edge-3", &edge3)]));
    let configs = within("first publication", watch.ready())
        .await
        .expect("reloader runs");
    assert_eq!(configs.own.pod_name(), Some("edge-3"));
    assert_eq!(reloader.counters().published(), 1);
    assert_eq!(
        reloader.counters().rejected(),
        1,
        "a missing file counts once, not per poll"
    );
    assert!(reloader.last_error().is_none());
}

/// What `validate` checks also holds for updates: each of these keeps the previous configs.
#[tokio::test]
async fn the_reloader_refuses_updates_that_do_not_validate() {
    let ca = Ca::new("edge CA 1");
    let foreign = Ca::new("other group CA");
    let good = ca.leaf("edge-1");
    let mut volume = SecretVolume::new(&secret(&[&ca], &[("edge-1", &good)]));
    let (reloader, watch) = TlsReloader::spawn(volume.path(), "edge-1", Duration::from_millis(20))
        .await
        .expect("a valid pod name");
    let published = watch.current().expect("the initial set is valid");
    let counters = reloader.counters();

    let updates = [
        (ca.leaf_valid("edge-1", EXPIRED), "expired"),
        (ca.leaf_valid("edge-1", NOT_YET_VALID), "not_yet_valid"),
        (foreign.leaf("edge-1"), "unknown_issuer"),
        (ca.leaf("edge-2"), "wrong_name"),
    ];
    for (rejections, (leaf, label)) in (1..).zip(&updates) {
        volume.update(&secret(&[&ca], &[("edge-1", leaf)]));
        within(label, async {
            while counters.rejected() < rejections {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let why = reloader.last_error().expect("the rejection is kept");
        assert_error(&why, label, volume.path(), "{dir}/edge-1.crt ");
        assert!(!watch.has_changed(), "{label}: nothing published");
        assert_eq!(watch.current().expect("kept").own, published.own);
    }
    assert_eq!(counters.published(), 1);
}
