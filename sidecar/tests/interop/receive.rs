//! c. Updates HAProxy pushes: from HTTP traffic and from `set table`.

use super::*;

/// Receives pushed updates until HAProxy is quiet, checks every one against `show table`, acks
/// them, and returns the last update per (table, key).
pub(crate) async fn receive_pushes(
    lab: &Lab,
    peer: &mut Peer,
) -> BTreeMap<(String, String), Update> {
    let messages = peer.drain(Duration::from_millis(600)).await;
    let (_, pushed) = tables_and_updates(&messages);
    assert!(!pushed.is_empty(), "no update pushed");
    for u in &pushed {
        assert_eq!(u.expire_ms, None, "live pushes are untimed: {u:?}");
    }
    // The first update after each definition carries its id (0x80).
    for pair in messages.windows(2) {
        if let [Message::Definition(_), Message::Update(u)] = pair {
            assert!(u.id_on_wire, "{u:?}");
        }
    }
    let mut latest = BTreeMap::new();
    for u in pushed.iter() {
        latest.insert(
            (spec_of(&peer.rx, u).runtime.to_owned(), key_text(&u.key)),
            u.clone(),
        );
    }
    for ((table, key), u) in &latest {
        let spec = TABLES.iter().find(|s| s.runtime == table).unwrap();
        let entry = lab.entry(spec, key);
        let def = peer.rx.definition(u.table_id).unwrap();
        // Counters must match exactly; rates are recomputed at display time, and `conn_cur` is
        // checked by `assert_shows` as a learned (never applied) value.
        let counters = Update {
            values: u
                .values
                .iter()
                .filter(|(t, v)| {
                    *t != DataType::ConnCur && !matches!(v, Value::Freq(_) | Value::FreqArray(_))
                })
                .cloned()
                .collect(),
            ..u.clone()
        };
        assert_shows(&entry, def, &counters, 0);
    }
    let acked = peer.ack(&pushed).await;
    // HAProxy stores our ack as its resume point for us (`update=` of each shared table).
    haproxy_peers_testkit::wait_until("HAProxy to take our acks", Duration::from_secs(5), || {
        let state = lab.tester_state();
        Ok(acked
            .iter()
            .all(|(table_id, update_id)| {
                state.tables.iter().any(|t| {
                    t.local_id == *table_id && t.counter("update") == Some(u64::from(*update_id))
                })
            })
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}; acked {acked:?}; {:#?}", lab.tester_state().tables));
    latest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn updates_from_http_traffic_and_runtime_api() {
    let (lab, mut peer) = Lab::connected().await;

    // Real traffic: tracked by header in t_ip / t_str / t_arr, and a sticky request through t_all.
    let tracked = [
        ("x-ip", "10.1.1.1"),
        ("x-key", "client-a"),
        ("x-arr", "arr-1"),
    ];
    for _ in 0..2 {
        assert_eq!(http_get(lab.http, "/", &tracked).unwrap().status, 200);
    }
    assert_eq!(
        http_get(lab.http, "/", &[("x-sticky", "sticky-1")])
            .unwrap()
            .status,
        200
    );

    let got = receive_pushes(&lab, &mut peer).await;
    let get = |table: &str, key: &str| {
        got.get(&(table.to_owned(), key.to_owned()))
            .unwrap_or_else(|| {
                panic!(
                    "no update for {table} {key}; got {:?}",
                    got.keys().collect::<Vec<_>>()
                )
            })
    };
    let ip = get("t_ip", "10.1.1.1");
    assert_eq!(ip.key, Key::Ipv4(Ipv4Addr::new(10, 1, 1, 1)));
    assert_eq!(ip.value(DataType::Gpc0), Some(&Value::Uint(2)));
    assert_eq!(ip.value(DataType::HttpReqCnt), Some(&Value::Uint(2)));
    assert!(
        matches!(ip.value(DataType::HttpReqRate), Some(Value::Freq(f)) if f.curr == 2),
        "{ip:?}"
    );
    assert_eq!(
        get("t_str", "client-a").value(DataType::Gpt0),
        Some(&Value::Uint(7))
    );
    let arr = get("t_arr", "arr-1");
    assert_eq!(
        arr.value(DataType::Gpt),
        Some(&Value::UintArray(vec![5, 0]))
    );
    assert_eq!(
        arr.value(DataType::Gpc),
        Some(&Value::UintArray(vec![0, 2]))
    );
    let sticky = get("t_all", "sticky-1");
    assert_eq!(sticky.value(DataType::ServerId), Some(&Value::Sint(1)));
    assert_eq!(
        sticky.value(DataType::ServerKey).and_then(|v| match v {
            Value::Dict(d) => d.value().cloned(),
            _ => None,
        }),
        Some(Bytes::from_static(b"s1"))
    );

    // The runtime API: one entry per key type it accepts (not binary), plus the peers-section
    // table and the table without expire.
    let api = lab.api();
    api.set_table(
        "t_ipv6",
        "2001:db8::7",
        &[("gpc0", 42), ("http_req_cnt", 5)],
    )
    .unwrap();
    api.set_table(
        "t_int",
        "4294967291",
        &[("gpc1", 9), ("bytes_in_cnt", 1_099_511_627_776u64)],
    )
    .unwrap();
    api.set_table("t_str", "cli-key", &[("server_id", 3), ("gpt0", 1)])
        .unwrap();
    api.set_table("pg/t_pdecl", "77", &[("gpc0", 3), ("http_req_rate", 4)])
        .unwrap();
    api.set_table("t_noexp", "forever", &[("gpc0", 11)])
        .unwrap();
    let got = receive_pushes(&lab, &mut peer).await;
    let get = |table: &str, key: &str| {
        got.get(&(table.to_owned(), key.to_owned()))
            .unwrap()
            .clone()
    };
    assert_eq!(
        get("t_ipv6", "2001:db8::7").key,
        Key::Ipv6("2001:db8::7".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(
        get("t_ipv6", "2001:db8::7").value(DataType::Gpc0),
        Some(&Value::Uint(42))
    );
    let int = get("t_int", "4294967291");
    assert_eq!(int.key, Key::Integer(4_294_967_291));
    assert_eq!(int.value(DataType::BytesInCnt), Some(&Value::Ull(1 << 40)));
    assert_eq!(
        get("t_str", "cli-key").value(DataType::ServerId),
        Some(&Value::Sint(3))
    );
    let pdecl = get("pg/t_pdecl", "77");
    // `set table` sets a rate's current period: curr = 4, prev = 0.
    assert!(
        matches!(pdecl.value(DataType::HttpReqRate), Some(Value::Freq(f)) if (f.curr, f.prev) == (4, 0))
    );
    assert_eq!(
        get("t_noexp", "forever").value(DataType::Gpc0),
        Some(&Value::Uint(11))
    );
}
