//! a. Handshakes both ways.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn haproxy_dials_us_and_we_answer_200() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lab = Lab::start(listener.local_addr().unwrap());
    let (mut peer, hello) = Peer::accept(&listener).await;

    assert_eq!(hello.version, Version { major: 2, minor: 1 });
    assert_eq!(hello.remote_name, TESTER);
    assert_eq!(hello.local_name, HAP);
    assert_eq!(hello.pid(), Some(lab.haproxy.worker_pid().unwrap()));
    assert_eq!(hello.rest.split(' ').nth(1), Some("1"), "relative pid");

    peer.answer_startup_resync().await;
    lab.assert_established();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn we_dial_haproxy_and_it_answers_200() {
    let lab = Lab::start(free_addr().unwrap());
    let mut peer = Peer::dial(lab.peers).await;
    // The acceptor asks for a lesson too when its start-up resync is not done.
    peer.answer_startup_resync().await;
    lab.assert_established();
    assert!(lab.api().show_peers().unwrap()[0].resync_finished());
}
