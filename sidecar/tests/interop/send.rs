//! d. Updates we send: every key type and every data type, read back through `show table`.

use super::*;

pub(crate) struct Sent {
    pub(crate) spec: TableSpec,
    pub(crate) def: TableDefinition,
    pub(crate) update: Update,
    /// The update as it went out (decoded by a receiver).
    pub(crate) wire: Update,
    pub(crate) at: Instant,
}

pub(crate) fn make_update(
    def: &TableDefinition,
    update_id: u32,
    key: Key,
    seed: u32,
    expire_ms: Option<u32>,
) -> Update {
    Update {
        table_id: def.table_id,
        update_id,
        id_on_wire: true,
        expire_ms,
        key,
        values: def
            .data_types
            .known()
            .map(|t| (t, sample_value(def, t, seed)))
            .collect(),
        trailing: Bytes::new(),
    }
}

/// Our definition of a table: HAProxy's, with our own table id (its acks must carry ours).
pub(crate) fn sent_def(spec: &TableSpec) -> TableDefinition {
    spec.definition(100 + TABLES.iter().position(|s| s.wire == spec.wire).unwrap() as u64)
}

pub(crate) fn string_key(s: &str) -> Key {
    Key::String(Bytes::copy_from_slice(s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
pub(crate) async fn every_key_and_data_type_we_send_reads_back() {
    let (lab, mut peer) = Lab::connected().await;

    let binary_key: Vec<u8> = (1..=16).collect();
    let plan: Vec<(TableSpec, Key, Option<u32>, IdForm)> = vec![
        // 0x80 (explicit id, no lifetime): the receiver's own expire applies.
        (
            T_IP,
            Key::Ipv4(Ipv4Addr::new(10, 9, 0, 1)),
            None,
            IdForm::Explicit,
        ),
        // 0x85 with a lifetime shorter than the table's.
        (
            T_IPV6,
            Key::Ipv6("2001:db8::9".parse().unwrap()),
            Some(30_000),
            IdForm::Explicit,
        ),
        // 0x80 then 0x81 (id = previous + 1).
        (T_INT, Key::Integer(7), None, IdForm::Explicit),
        (T_INT, Key::Integer(8), None, IdForm::IncrementalWhenNext),
        // 0x85 with a lifetime longer than the table's expire: 2.6 does not cap it.
        (
            T_STR,
            string_key("sent-str"),
            Some(120_000),
            IdForm::Explicit,
        ),
        (
            T_BIN,
            Key::Binary(Bytes::from(binary_key.clone())),
            None,
            IdForm::Explicit,
        ),
        (T_ARR, string_key("sent-arr"), None, IdForm::Explicit),
        // server_key: first use defines dictionary slot 1, the second entry only references it.
        (T_ALL, string_key("sent-all-1"), None, IdForm::Explicit),
        (
            T_ALL,
            string_key("sent-all-2"),
            Some(45_000),
            IdForm::Explicit,
        ),
        (T_NOEXP, string_key("sent-noexp"), None, IdForm::Explicit),
        (
            T_NOEXP,
            string_key("sent-noexp-timed"),
            Some(20_000),
            IdForm::Explicit,
        ),
        (T_PDECL, Key::Integer(99), Some(20_000), IdForm::Explicit),
    ];
    let mut next_id: BTreeMap<u64, u32> = BTreeMap::new();
    let mut sent = Vec::new();
    for (seed, (spec, key, lifetime, form)) in plan.into_iter().enumerate() {
        let def = sent_def(&spec);
        let id = next_id
            .entry(def.table_id)
            .or_insert(1000 * seed as u32 + 1);
        let update = make_update(&def, *id, key, seed as u32, lifetime);
        *id += 1;
        let at = Instant::now();
        let wire = peer.send_update(&def, &update, form).await;
        sent.push(Sent {
            spec,
            def,
            update,
            wire,
            at,
        });
    }
    let forms = |table: &str| -> Vec<u8> {
        sent.iter()
            .filter(|s| s.spec.runtime == table)
            .map(|s| s.wire.wire_type())
            .collect()
    };
    assert_eq!(forms("t_ip"), [0x80]);
    assert_eq!(forms("t_ipv6"), [0x85]);
    assert_eq!(forms("t_int"), [0x80, 0x81]);
    assert_eq!(forms("t_all"), [0x80, 0x85]);

    // HAProxy acks each table with our id and the last id we sent.
    let expected_acks: BTreeMap<u64, u32> = sent
        .iter()
        .map(|s| (s.def.table_id, s.update.update_id))
        .collect();
    let mut acks = BTreeMap::new();
    while acks != expected_acks {
        let ack = peer.recv_ack().await;
        acks.insert(ack.table_id, ack.update_id);
    }

    for s in &sent {
        let key = key_text(&s.update.key);
        let entry = lab.entry(&s.spec, &key);
        let elapsed_ms = s.at.elapsed().as_millis() as u64;
        assert_shows(&entry, &s.def, &s.update, elapsed_ms);
        // 2.6 applies a received lifetime as is: longer than the table's expire, and even in
        // a table without expire. Without one, the receiver's own expire (none: `exp=0`).
        let (lifetime, ctx) = match s.update.expire_ms {
            Some(ms) => (u64::from(ms), "sent lifetime"),
            None => (s.spec.expire_ms, "table expire"),
        };
        if lifetime == 0 {
            assert_eq!(entry.exp, 0, "{} {key}", s.spec.runtime);
        } else {
            assert!(
                entry.exp <= lifetime && entry.exp + elapsed_ms + 2 >= lifetime,
                "{} {key}: exp={} for {ctx} {lifetime} ms, {elapsed_ms} ms after sending",
                s.spec.runtime,
                entry.exp
            );
        }
    }
    // In a table without expire the lifetime runs out but nothing purges the entry.
    let noexp = sent_def(&T_NOEXP);
    let short = make_update(&noexp, 9003, string_key("short-lived"), 0, Some(1000));
    peer.send_update(&noexp, &short, IdForm::Explicit).await;
    let expected = Ack {
        table_id: noexp.table_id,
        update_id: 9003,
    };
    assert_eq!(peer.recv_ack().await, expected);
    let run_out = Instant::now();
    haproxy_peers_testkit::wait_until("the lifetime to run out", Duration::from_secs(3), || {
        Ok((lab.entry(&T_NOEXP, "short-lived").exp == 0).then_some(()))
    })
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // `entry` fails if the entry is gone.
    let entry = lab.entry(&T_NOEXP, "short-lived");
    assert_eq!(
        entry.exp,
        0,
        "{:?} after the lifetime ran out",
        run_out.elapsed()
    );

    // server_key: the first entry defined dictionary slot 1, the second only referenced it.
    let dict = |key: &str| {
        let s = sent
            .iter()
            .find(|s| s.update.key == string_key(key))
            .unwrap();
        s.wire.value(DataType::ServerKey).cloned()
    };
    let s2 = Bytes::from_static(b"s2");
    let define = DictValue::Define {
        id: 1,
        value: s2.clone(),
    };
    let reference = DictValue::Ref {
        id: 1,
        value: Some(s2),
    };
    assert_eq!(dict("sent-all-1"), Some(Value::Dict(define)));
    assert_eq!(dict("sent-all-2"), Some(Value::Dict(reference)));
    for key in ["sent-all-1", "sent-all-2"] {
        assert_eq!(lab.entry(&T_ALL, key).str("server_key"), Some("s2"));
    }
    assert_eq!(lab.entry(&T_ALL, "sent-all-1").i64("server_id"), Some(-1));
    assert_eq!(lab.entry(&T_ALL, "sent-all-2").i64("server_id"), Some(2));
    // Learned entries are not pushed back to the peer they came from.
    assert_eq!(
        peer.drain(Duration::from_millis(500)).await,
        Vec::<Message>::new()
    );
}
