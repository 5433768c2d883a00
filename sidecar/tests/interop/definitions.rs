//! b. Definitions.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn resync_request_returns_one_definition_per_table() {
    let (lab, mut peer) = Lab::connected().await;

    let lesson = peer.request_lesson().await;
    let (defs, taught) = tables_and_updates(&lesson);
    assert!(taught.is_empty(), "empty tables, yet: {lesson:#?}");
    assert_eq!(defs.len(), TABLES.len(), "{defs:#?}");
    let mut ids: Vec<u64> = defs.iter().map(|d| d.table_id).collect();
    for spec in TABLES {
        let got = defs
            .iter()
            .find(|d| d.name.as_ref() == spec.wire.as_bytes())
            .unwrap_or_else(|| panic!("no definition for {}", spec.wire));
        assert_eq!(
            *got,
            spec.definition(got.table_id),
            "definition of {}",
            spec.wire
        );
    }
    // HAProxy numbers the tables of a section 1..N.
    ids.sort_unstable();
    assert_eq!(ids, (1..=TABLES.len() as u64).collect::<Vec<_>>());

    // The session survives the lesson: one heartbeat each way.
    peer.send_control(Control::Heartbeat).await;
    let next = peer.try_recv(Duration::from_secs(5)).await;
    assert_eq!(next, Some(Message::Control(Control::Heartbeat)));
    lab.assert_established();
}
