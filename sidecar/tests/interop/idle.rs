//! f. Idle sessions stay up on heartbeats.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn heartbeats_keep_an_idle_session_up() {
    let (lab, mut peer) = Lab::connected().await;

    let start = Instant::now();
    let idle = Duration::from_secs(12);
    let mut next_beat = start;
    let mut theirs = Vec::new();
    while start.elapsed() < idle {
        if Instant::now() >= next_beat {
            peer.send_control(Control::Heartbeat).await;
            next_beat += Duration::from_secs(3);
        }
        let wait = next_beat
            .saturating_duration_since(Instant::now())
            .min(idle.saturating_sub(start.elapsed()));
        match peer.try_recv(wait.max(Duration::from_millis(1))).await {
            Some(Message::Control(Control::Heartbeat)) => theirs.push(start.elapsed()),
            Some(other) => panic!("idle session, yet HAProxy sent {other:?}"),
            None => {}
        }
    }
    assert!(theirs.len() >= 3, "HAProxy heartbeats at {theirs:?}");
    for pair in theirs.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(2500) && gap <= Duration::from_millis(4500),
            "HAProxy heartbeats should be ~3 s apart: {theirs:?}"
        );
    }
    let state = lab.assert_established();
    assert!(
        state.counter("rx_hbt").unwrap() >= 4,
        "our heartbeats: {state:?}"
    );
    assert!(
        state.counter("tx_hbt").unwrap() >= theirs.len() as u64,
        "{state:?}"
    );
    assert_eq!(
        state.counter("no_hbt"),
        Some(0),
        "no session closed for silence"
    );

    // Still a working session: one update each way.
    lab.api()
        .set_table("t_str", "after-idle", &[("gpc0", 12)])
        .unwrap();
    let got = receive_pushes(&lab, &mut peer).await;
    assert!(got.contains_key(&("t_str".to_owned(), "after-idle".to_owned())));
    let def = T_STR.definition(50);
    let update = make_update(&def, 1, string_key("from-tester"), 0, None);
    let at = Instant::now();
    peer.send_update(&def, &update, IdForm::Explicit).await;
    let expected = Ack {
        table_id: 50,
        update_id: 1,
    };
    assert_eq!(peer.recv_ack().await, expected);
    assert_shows(
        &lab.entry(&T_STR, "from-tester"),
        &def,
        &update,
        at.elapsed().as_millis() as u64,
    );
}
