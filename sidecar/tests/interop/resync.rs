//! e. Full resync.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn full_resync_teaches_every_entry_with_its_lifetime() {
    let (lab, mut peer) = Lab::connected().await;

    let api = lab.api();
    let created = Instant::now();
    api.set_table("t_ip", "10.2.0.1", &[("gpc0", 1)]).unwrap();
    api.set_table("t_ip", "10.2.0.2", &[("gpc0", 2)]).unwrap();
    api.set_table("t_ipv6", "::2", &[("gpc1", 3)]).unwrap();
    api.set_table("t_int", "12", &[("http_req_cnt", 4)])
        .unwrap();
    api.set_table("t_str", "lesson", &[("gpt0", 5)]).unwrap();
    api.set_table("t_noexp", "kept", &[("gpc0", 6)]).unwrap();
    api.set_table("pg/t_pdecl", "13", &[("gpc0", 7)]).unwrap();
    let pushed = receive_pushes(&lab, &mut peer).await;
    assert_eq!(pushed.len(), 7, "{:?}", pushed.keys().collect::<Vec<_>>());

    let lesson = peer.request_lesson().await;
    let since_creation = created.elapsed().as_millis() as u64;

    let (defs, taught) = tables_and_updates(&lesson);
    assert_eq!(defs.len(), TABLES.len());
    assert_eq!(taught.len(), pushed.len(), "{taught:#?}");
    for u in &taught {
        let spec = spec_of(&peer.rx, u);
        let key = (spec.runtime.to_owned(), key_text(&u.key));
        let live = pushed
            .get(&key)
            .unwrap_or_else(|| panic!("taught {key:?} that was never pushed"));
        // Timed forms only (the session is not downgraded).
        let lifetime = u
            .expire_ms
            .unwrap_or_else(|| panic!("untimed update in a lesson: {u:?}"));
        if spec.expire_ms == 0 {
            assert_eq!(lifetime, 0, "{key:?}");
        } else {
            let lifetime = u64::from(lifetime);
            assert!(
                lifetime <= spec.expire_ms && lifetime + since_creation + 2 >= spec.expire_ms,
                "{key:?}: {lifetime} ms left, {since_creation} ms after creation"
            );
        }
        assert_eq!(u.key, live.key);
        let counters = |u: &Update| -> Vec<(DataType, Value)> {
            u.values
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Freq(_) | Value::FreqArray(_)))
                .cloned()
                .collect()
        };
        assert_eq!(counters(u), counters(live), "{key:?}");
    }
    // The first entry of a table carries its id (85), the next consecutive one does not (86).
    let ip_forms: Vec<u8> = taught
        .iter()
        .filter(|u| spec_of(&peer.rx, u).wire == "t_ip")
        .map(Update::wire_type)
        .collect();
    assert_eq!(ip_forms, [0x85, 0x86]);
}
