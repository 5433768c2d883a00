//! g. Bad hellos are refused with the right status.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn bad_hellos_are_refused_with_the_right_status() {
    let lab = Lab::start(free_addr().unwrap());
    let pid = std::process::id();
    let cases: Vec<(&str, String, StatusCode)> = vec![
        (
            "unknown peer name",
            format!("HAProxyS 2.1\n{HAP}\nstranger {pid} 1\n"),
            StatusCode::UnknownPeer,
        ),
        (
            "wrong local name",
            format!("HAProxyS 2.1\nnot-{HAP}\n{TESTER} {pid} 1\n"),
            StatusCode::LocalNameMismatch,
        ),
        (
            "version 3.0",
            format!("HAProxyS 3.0\n{HAP}\n{TESTER} {pid} 1\n"),
            StatusCode::BadVersion,
        ),
        (
            "version 2.2",
            format!("HAProxyS 2.2\n{HAP}\n{TESTER} {pid} 1\n"),
            StatusCode::BadVersion,
        ),
        (
            "bad protocol id",
            format!("HAProxyX 2.1\n{HAP}\n{TESTER} {pid} 1\n"),
            StatusCode::ProtocolError,
        ),
        (
            "line 3 without a space",
            format!("HAProxyS 2.1\n{HAP}\n{TESTER}\n"),
            StatusCode::ProtocolError,
        ),
    ];
    for (what, hello, expected) in cases {
        let (status, mut stream, rest) = Peer::dial_raw(lab.peers, hello.as_bytes()).await;
        assert_eq!(status, expected, "{what}");
        assert!(rest.is_empty(), "{what}: bytes after the status: {rest:?}");
        // HAProxy closes after a refusal.
        let mut tail = Vec::new();
        let read = tokio::time::timeout(READ_TIMEOUT, stream.read_to_end(&mut tail)).await;
        assert!(
            matches!(read, Ok(Ok(0))),
            "{what}: connection not closed ({read:?}, {tail:?})"
        );
        // The codec's own verdict on the same bytes agrees with HAProxy's.
        let (lines, _) = decode_hello(hello.as_bytes()).unwrap().unwrap();
        let verdict = check_hello(&lines, HAP, |name| [HAP, TESTER].contains(&name));
        assert_eq!(verdict.err(), Some(expected), "codec vs HAProxy on {what}");
    }
    // A correct hello still works afterwards.
    let mut peer = Peer::dial(lab.peers).await;
    peer.answer_startup_resync().await;
    lab.assert_established();
}
