//! Replica behaviour: writes, no-op detection, relay rules, pointers, expiry, eviction, drift.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::net::Ipv4Addr;

use bytes::Bytes;

use super::*;
use crate::codec::{
    DataType, DataTypeSet, DictValue, FreqCounter, Key, KeyType, ParamBlock, TableDefinition,
    Update, Value,
};

pub(crate) fn def(
    name: &str,
    key_type: KeyType,
    key_len: u64,
    types: &[DataType],
) -> TableDefinition {
    let set = DataTypeSet::of(types);
    TableDefinition {
        table_id: 42,
        name: Bytes::copy_from_slice(name.as_bytes()),
        key_type,
        key_len,
        data_types: set,
        expire_ms: Some(60_000),
        params: set
            .known()
            .filter(|t| t.has_param_block())
            .map(|t| ParamBlock {
                data_type: t,
                count: t.is_array().then_some(2),
                period_ms: t.is_freq().then_some(10_000),
            })
            .collect(),
        trailing: Bytes::new(),
    }
}

pub(super) fn ip(n: u8) -> Key {
    Key::Ipv4(Ipv4Addr::new(10, 0, 0, n))
}

pub(super) fn upd(key: Key, values: Vec<(DataType, Value)>) -> Update {
    Update {
        table_id: 42,
        update_id: 1,
        id_on_wire: true,
        expire_ms: None,
        key,
        values,
        trailing: Bytes::new(),
    }
}

fn rate(elapsed: u32, curr: u32, prev: u32) -> Value {
    Value::Freq(FreqCounter {
        elapsed,
        curr,
        prev,
    })
}

pub(super) const T: &[DataType] = &[DataType::Gpc0, DataType::HttpReqRate];

fn setup() -> (Replica, TableIdx, Link, Link) {
    let mut r = Replica::new(ReplicaConfig::default());
    let t = r
        .define(&def("t", KeyType::Ipv4, 4, T), Link::Local)
        .unwrap()
        .table;
    let x = r.peer("x").unwrap();
    let y = r.peer("y").unwrap();
    (r, t, x, y)
}

fn gpc0(r: &Replica, key: &Key, now: u64) -> Option<u32> {
    let e = r.lookup(b"t", key, now)?;
    e.values.iter().find_map(|f| match (f.data_type, &f.value) {
        (DataType::Gpc0, Value::Uint(u)) => Some(*u),
        _ => None,
    })
}

fn pushed_keys(r: &mut Replica, to: Link, t: TableIdx, now: u64) -> Vec<Key> {
    r.updates_for(to, t, 1000, now)
        .updates
        .into_iter()
        .map(|o| o.update.key)
        .collect()
}

#[test]
fn write_and_read_back() {
    let (mut r, t, _, _) = setup();
    let a = r
        .apply(
            t,
            &upd(
                ip(1),
                vec![
                    (DataType::Gpc0, Value::Uint(7)),
                    (DataType::HttpReqRate, rate(2_000, 5, 10)),
                ],
            ),
            Link::Local,
            100_000,
        )
        .unwrap();
    assert!(a.changed && a.created);
    assert_eq!(a.seq, Some(1));
    let e = r.lookup(b"t", &ip(1), 103_300).unwrap();
    assert_eq!(e.origin, LOCAL_LABEL);
    assert_eq!(e.expires_in_ms, Some(60_000 - 3_300));
    let f = &e.values[1];
    assert_eq!(f.value, rate(5_300, 5, 10));
    // §6.3: 10·4700 + 5·10000 = 97000 → 9.
    assert_eq!(f.rates, [9]);
    assert_eq!(f.period_ms, Some(10_000));
    assert_eq!(r.len(t), 1);
}

#[test]
fn no_op_writes_keep_their_sequence_and_are_not_relayed() {
    let (mut r, t, x, _) = setup();
    let v = |e| {
        vec![
            (DataType::Gpc0, Value::Uint(3)),
            (DataType::HttpReqRate, rate(e, 1, 2)),
        ]
    };
    r.apply(t, &upd(ip(1), v(1_000)), x, 10_000).unwrap();
    assert_eq!(pushed_keys(&mut r, Link::Local, t, 10_000), [ip(1)]);
    // HAProxy re-teaches what it got from us 200 ms later: age + 200, expiry 200 ms later.
    let mut again = upd(ip(1), v(1_200));
    again.expire_ms = Some(59_800);
    let a = r.apply(t, &again, Link::Local, 10_200).unwrap();
    assert!(!a.changed);
    assert_eq!(r.head(t), 1);
    // Origin unchanged: still not for x, still nothing new for the local side.
    assert!(pushed_keys(&mut r, x, t, 10_200).is_empty());
    assert!(pushed_keys(&mut r, Link::Local, t, 10_200).is_empty());
    assert_eq!(r.lookup(b"t", &ip(1), 10_200).unwrap().origin, "x");
    // A counter whose start moved beyond the tolerance is a change.
    let a = r
        .apply(t, &upd(ip(1), v(5_000)), Link::Local, 10_300)
        .unwrap();
    assert!(a.changed);
    // A pure refresh beyond the expiry tolerance is a change (sticky entries live on it).
    let now = 10_300 + 2 * r.config().expiry_tolerance_ms;
    let cur = r.lookup(b"t", &ip(1), now).unwrap();
    let same: Vec<(DataType, Value)> = cur
        .values
        .into_iter()
        .map(|f| (f.data_type, f.value))
        .collect();
    assert!(
        r.apply(t, &upd(ip(1), same), Link::Local, now)
            .unwrap()
            .changed
    );
}

#[test]
fn relay_rules_and_last_writer_wins() {
    let (mut r, t, x, y) = setup();
    let g = |n| vec![(DataType::Gpc0, Value::Uint(n))];
    r.apply(t, &upd(ip(1), g(1)), Link::Local, 1).unwrap();
    r.apply(t, &upd(ip(2), g(2)), x, 1).unwrap();
    r.apply(t, &upd(ip(3), g(3)), y, 1).unwrap();
    // Local → every remote; remote → local only; never back, never remote to remote.
    assert_eq!(pushed_keys(&mut r, x, t, 2), [ip(1)]);
    assert_eq!(pushed_keys(&mut r, y, t, 2), [ip(1)]);
    assert_eq!(pushed_keys(&mut r, Link::Local, t, 2), [ip(2), ip(3)]);
    // Conflict: x then the local HAProxy write the same key; the later write wins and the
    // entry moves to the end of the relay order with its new origin.
    r.apply(t, &upd(ip(2), g(20)), Link::Local, 3).unwrap();
    assert_eq!(gpc0(&r, &ip(2), 3), Some(20));
    assert_eq!(pushed_keys(&mut r, x, t, 3), [ip(2)]);
    assert_eq!(pushed_keys(&mut r, y, t, 3), [ip(2)]);
    assert!(pushed_keys(&mut r, Link::Local, t, 3).is_empty());
    r.apply(t, &upd(ip(2), g(21)), y, 4).unwrap();
    assert_eq!(gpc0(&r, &ip(2), 4), Some(21));
    assert_eq!(pushed_keys(&mut r, Link::Local, t, 4), [ip(2)]);
    assert!(pushed_keys(&mut r, x, t, 4).is_empty());
    // Lessons carry everything whatever the origin, as timed updates.
    let lesson = r.lesson_batch(t, 0, 100, 5);
    assert_eq!(lesson.updates.len(), 3);
    assert!(lesson.updates.iter().all(|o| o.update.expire_ms.is_some()));
    assert!(!lesson.more);
}

#[test]
fn tables_the_group_ignores_stay_between_a_sidecar_and_its_haproxy() {
    let (mut r, t, x, _) = setup();
    let u = r
        .define(&def("u", KeyType::Ipv4, 4, T), Link::Local)
        .unwrap()
        .table;
    let g = |n| vec![(DataType::Gpc0, Value::Uint(n))];
    let policy = |default, tables: &[(&str, bool)]| MeshPolicy {
        ignore_by_default: default,
        tables: tables
            .iter()
            .map(|(n, i)| (Bytes::copy_from_slice(n.as_bytes()), *i))
            .collect(),
    };
    r.set_mesh_policy(policy(false, &[("t", true)]));
    assert!(r.is_ignored(t) && !r.is_ignored(u));
    assert_eq!(
        r.relay_tables(x),
        [u],
        "an ignored table is never pushed or taught to a member"
    );
    assert_eq!(
        r.relay_tables(Link::Local),
        [t, u],
        "HAProxy still gets its own tables"
    );
    r.apply(t, &upd(ip(1), g(1)), Link::Local, 1).unwrap();
    assert_eq!(
        gpc0(&r, &ip(1), 1),
        Some(1),
        "the local HAProxy's writes are kept"
    );
    assert_eq!(
        r.apply(t, &upd(ip(2), g(2)), x, 1),
        Err(ApplyError::PolicyIgnored),
        "a member that still replicates it is refused"
    );
    assert_eq!(gpc0(&r, &ip(2), 1), None);
    r.apply(u, &upd(ip(2), g(2)), x, 1).unwrap();
    // `defaultPolicy: ignore` with one table listed as replicated.
    r.set_mesh_policy(policy(true, &[("u", false)]));
    assert_eq!(r.relay_tables(x), [u]);
    r.set_mesh_policy(MeshPolicy::default());
    assert_eq!(r.relay_tables(x), [t, u]);
}

#[test]
fn conn_cur_is_never_taken_from_a_remote() {
    let mut r = Replica::new(ReplicaConfig::default());
    let t = r
        .define(
            &def("t", KeyType::Ipv4, 4, &[DataType::Gpc0, DataType::ConnCur]),
            Link::Local,
        )
        .unwrap()
        .table;
    let x = r.peer("x").unwrap();
    let v = |c, g| {
        vec![
            (DataType::Gpc0, Value::Uint(g)),
            (DataType::ConnCur, Value::Uint(c)),
        ]
    };
    r.apply(t, &upd(ip(1), v(4, 1)), Link::Local, 1).unwrap();
    let a = r.apply(t, &upd(ip(1), v(9, 1)), x, 2).unwrap();
    assert!(!a.changed);
    let conn_cur = |r: &Replica| r.lookup(b"t", &ip(1), 3).unwrap().values[1].value.clone();
    assert_eq!(conn_cur(&r), Value::Uint(4));
    // The local HAProxy's own conn_cur is stored, but alone it is not worth relaying.
    let a = r.apply(t, &upd(ip(1), v(5, 1)), Link::Local, 3).unwrap();
    assert!(!a.changed);
    assert_eq!(conn_cur(&r), Value::Uint(5));
}

#[test]
fn sender_types_outside_the_schema_are_dropped_and_missing_ones_untouched() {
    let (mut r, t, x, _) = setup();
    r.apply(
        t,
        &upd(
            ip(1),
            vec![
                (DataType::Gpc0, Value::Uint(5)),
                (DataType::HttpReqRate, rate(0, 3, 0)),
            ],
        ),
        Link::Local,
        1_000,
    )
    .unwrap();
    // x's table stores gpt0 and gpc0 only.
    let a = r
        .apply(
            t,
            &upd(
                ip(1),
                vec![
                    (DataType::Gpt0, Value::Uint(99)),
                    (DataType::Gpc0, Value::Uint(6)),
                ],
            ),
            x,
            1_000,
        )
        .unwrap();
    assert!(a.changed);
    let e = r.lookup(b"t", &ip(1), 1_000).unwrap();
    assert_eq!(e.values.len(), 2);
    assert_eq!(e.values[0].value, Value::Uint(6));
    assert_eq!(e.values[1].value, rate(0, 3, 0));
}

#[test]
fn frequency_counters_are_rebased_on_the_local_clock() {
    let (mut r, t, x, _) = setup();
    let received = rate(2_000, 5, 10);
    r.apply(
        t,
        &upd(ip(1), vec![(DataType::HttpReqRate, received)]),
        x,
        50_000,
    )
    .unwrap();
    // Relayed 1234 ms later: the age grew by exactly the time that passed here.
    let out = r.updates_for(Link::Local, t, 10, 51_234).updates;
    assert_eq!(
        out[0].update.value(DataType::HttpReqRate),
        Some(&rate(3_234, 5, 10))
    );
}

#[test]
fn expiry_follows_7_10_and_purge_removes() {
    let (mut r, t, x, _) = setup();
    let g = vec![(DataType::Gpc0, Value::Uint(1))];
    // 0x80: now + our expire (60 s).
    r.apply(t, &upd(ip(1), g.clone()), x, 1_000).unwrap();
    // 0x85: now + received remaining, not capped (2.6 behaviour).
    let mut timed = upd(ip(2), g.clone());
    timed.expire_ms = Some(5_000);
    r.apply(t, &timed, x, 1_000).unwrap();
    timed.key = ip(3);
    timed.expire_ms = Some(200_000);
    r.apply(t, &timed, x, 1_000).unwrap();
    let lesson = r.lesson_batch(t, 0, 10, 2_000).updates;
    let remaining: Vec<Option<u32>> = lesson.iter().map(|o| o.update.expire_ms).collect();
    assert_eq!(remaining, [Some(59_000), Some(4_000), Some(199_000)]);
    assert_eq!(r.purge(5_999), 0);
    assert!(r.next_expiry().unwrap() <= 6_000);
    assert_eq!(r.purge(6_000), 1);
    assert!(r.lookup(b"t", &ip(2), 6_000).is_none());
    assert_eq!(r.purge(61_000), 1);
    assert_eq!(r.len(t), 1);
    assert_eq!(r.purge(201_000), 1);
    assert_eq!(r.len(t), 0);
    assert_eq!(r.tables_view()[0].stats.expired, 3);
    // An expired-but-not-purged entry is not sent.
    r.apply(t, &upd(ip(4), g), x, 300_000).unwrap();
    assert!(r
        .updates_for(Link::Local, t, 10, 360_000)
        .updates
        .is_empty());
}

#[test]
fn tables_without_expire_keep_entries() {
    let mut r = Replica::new(ReplicaConfig::default());
    let mut d = def("n", KeyType::Integer, 4, &[DataType::Gpc0]);
    d.expire_ms = Some(0);
    let t = r.define(&d, Link::Local).unwrap().table;
    let mut u = upd(Key::Integer(1), vec![(DataType::Gpc0, Value::Uint(1))]);
    u.expire_ms = Some(10);
    r.apply(t, &u, Link::Local, 0).unwrap();
    assert_eq!(r.purge(u64::MAX - 1), 0);
    assert_eq!(
        r.lesson_batch(t, 0, 1, 5).updates[0].update.expire_ms,
        Some(0)
    );
    assert_eq!(
        r.lookup(b"n", &Key::Integer(1), 1 << 40)
            .unwrap()
            .expires_in_ms,
        None
    );
}

#[test]
fn memory_bound_evicts_the_soonest_expiring_first() {
    let mut r = Replica::new(ReplicaConfig {
        max_entries_per_table: 3,
        ..ReplicaConfig::default()
    });
    let t = r
        .define(&def("t", KeyType::Ipv4, 4, T), Link::Local)
        .unwrap()
        .table;
    let g = vec![(DataType::Gpc0, Value::Uint(1))];
    for (n, life) in [(1u8, 30_000u32), (2, 10_000), (3, 50_000)] {
        let mut u = upd(ip(n), g.clone());
        u.expire_ms = Some(life);
        r.apply(t, &u, Link::Local, 0).unwrap();
    }
    let a = r.apply(t, &upd(ip(4), g.clone()), Link::Local, 0).unwrap();
    assert!(a.evicted && a.created);
    assert!(
        r.lookup(b"t", &ip(2), 0).is_none(),
        "10 s entry is the victim"
    );
    let a = r.apply(t, &upd(ip(5), g), Link::Local, 0).unwrap();
    assert!(a.evicted);
    assert!(r.lookup(b"t", &ip(1), 0).is_none(), "then the 30 s one");
    for n in [3, 4, 5] {
        assert!(r.lookup(b"t", &ip(n), 0).is_some());
    }
    assert_eq!(r.len(t), 3);
    assert_eq!(r.tables_view()[0].stats.evictions, 2);
}

#[test]
fn pointers_resume_from_acks_and_map_wire_ids_across_the_wrap() {
    let (mut r, t, x, _) = setup();
    let g = |n| vec![(DataType::Gpc0, Value::Uint(n))];
    for n in 1..=6u8 {
        r.apply(t, &upd(ip(n), g(u32::from(n))), Link::Local, 1)
            .unwrap();
    }
    let sent = r.updates_for(x, t, 4, 1);
    assert_eq!(sent.updates.len(), 4);
    assert!(sent.more);
    assert_eq!(r.ack(x, t, sent.updates[2].update.update_id), Some(3));
    // Stale and unknown acks do not move anything.
    assert_eq!(r.ack(x, t, 2), None);
    assert_eq!(r.ack(x, t, 9), None);
    assert_eq!(
        r.pointer(x, t),
        Pointers {
            pushed: 4,
            acked: 3,
            sent: 4,
        }
    );
    // A new session: everything after the ack again, nothing before.
    r.begin_session(x);
    let again: Vec<Key> = pushed_keys(&mut r, x, t, 1);
    assert_eq!(again, [ip(4), ip(5), ip(6)]);
    // Confirmed lesson: the peer holds everything up to where it went.
    r.taught(x, t, 6);
    r.begin_session(x);
    assert!(pushed_keys(&mut r, x, t, 1).is_empty());
}

#[test]
fn wire_ids_wrap_and_acks_still_map() {
    let (mut r, t, x, _) = setup();
    let g = |n| vec![(DataType::Gpc0, Value::Uint(n))];
    // Bring the sequence to just below 2^32 with changes of one entry.
    let tb = r.tables.get_mut(0).unwrap();
    tb.set_next_seq_for_test((1u64 << 32) - 2);
    for n in 1..=4u8 {
        r.apply(t, &upd(ip(n), g(1)), Link::Local, 1).unwrap();
    }
    let out = r.updates_for(x, t, 10, 1).updates;
    let ids: Vec<u32> = out.iter().map(|o| o.update.update_id).collect();
    assert_eq!(ids, [u32::MAX - 1, u32::MAX, 0, 1]);
    assert_eq!(r.ack(x, t, u32::MAX), Some((1u64 << 32) - 1));
    assert_eq!(r.ack(x, t, 1), Some((1u64 << 32) + 1));
    r.begin_session(x);
    assert!(pushed_keys(&mut r, x, t, 1).is_empty());
}

#[test]
fn definitions_drift_and_the_local_schema_wins() {
    let mut r = Replica::new(ReplicaConfig::default());
    let x = r.peer("x").unwrap();
    let y = r.peer("y").unwrap();
    // First seen from x: x's schema (gpc0 + http_req_rate).
    let d = r.define(&def("t", KeyType::Ipv4, 4, T), x).unwrap();
    assert_eq!(d.compat, Compat::Same);
    let t = d.table;
    r.apply(
        t,
        &upd(
            ip(1),
            vec![
                (DataType::Gpc0, Value::Uint(3)),
                (DataType::HttpReqRate, rate(0, 4, 0)),
            ],
        ),
        x,
        0,
    )
    .unwrap();
    // The local HAProxy stores gpc0 and gpt0, with another expire: it becomes the schema; the
    // entry keeps its gpc0, gains a default gpt0, loses the rate.
    let mut local = def("t", KeyType::Ipv4, 4, &[DataType::Gpt0, DataType::Gpc0]);
    local.expire_ms = Some(30_000);
    let d = r.define(&local, Link::Local).unwrap();
    assert!(d.schema_changed);
    assert_eq!(d.dropped, 0);
    assert_eq!(d.compat, Compat::Same);
    let e = r.lookup(b"t", &ip(1), 1).unwrap();
    assert_eq!(
        e.values.iter().map(|f| f.value.clone()).collect::<Vec<_>>(),
        [Value::Uint(0), Value::Uint(3)]
    );
    assert_eq!(
        r.definition(t).unwrap().data_types,
        DataTypeSet::of(&[DataType::Gpt0, DataType::Gpc0])
    );
    // x now drifts (types, expire) but stays relayable.
    let reports = r.drift_reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].source, "x");
    assert_eq!(reports[0].compat(), Compat::Differs);
    assert!(reports[0]
        .differences
        .contains(&Difference::OnlyOurs(vec![DataType::Gpt0])));
    assert!(reports[0]
        .differences
        .contains(&Difference::OnlyTheirs(vec![DataType::HttpReqRate])));
    assert!(reports[0].differences.contains(&Difference::Expire {
        ours: 30_000,
        theirs: 60_000
    }));
    // y: another period of a type both store, and then a string key: not relayable.
    let mut yd = local.clone();
    yd.key_type = KeyType::String;
    yd.key_len = 33;
    let d = r.define(&yd, y).unwrap();
    assert_eq!(d.compat, Compat::KeyMismatch);
    assert!(d.drift_changed);
    assert!(d.drift.unwrap().to_string().contains("not replicated"));
    assert_eq!(r.relay_tables(y), []);
    assert_eq!(r.relay_tables(x), [t]);
    assert_eq!(r.relay_tables(Link::Local), [t]);
    // The same definition again is not news.
    assert!(!r.define(&yd, y).unwrap().drift_changed);
    // A period difference.
    let mut p1 = def("p", KeyType::Integer, 4, &[DataType::HttpReqRate]);
    r.define(&p1, Link::Local).unwrap();
    p1.params[0].period_ms = Some(1_000);
    let d = r.define(&p1, x).unwrap();
    assert_eq!(
        d.drift.unwrap().differences,
        [Difference::Period {
            data_type: DataType::HttpReqRate,
            ours: 10_000,
            theirs: 1_000
        }]
    );
}

#[test]
fn a_local_definition_with_another_key_drops_what_cannot_be_converted() {
    let mut r = Replica::new(ReplicaConfig::default());
    let x = r.peer("x").unwrap();
    let t = r.define(&def("t", KeyType::Ipv4, 4, T), x).unwrap().table;
    r.apply(t, &upd(ip(1), vec![(DataType::Gpc0, Value::Uint(3))]), x, 0)
        .unwrap();
    let d = r
        .define(&def("t", KeyType::Integer, 4, T), Link::Local)
        .unwrap();
    assert_eq!(d.dropped, 1);
    assert_eq!(r.len(t), 0);
    // x's updates no longer fit.
    assert!(matches!(
        r.apply(t, &upd(ip(1), vec![]), x, 0),
        Err(ApplyError::Key(KeyError::Type { .. }))
    ));
}

#[test]
fn server_keys_are_interned_and_round_trip() {
    let mut r = Replica::new(ReplicaConfig::default());
    let t = r
        .define(
            &def(
                "be",
                KeyType::Ipv4,
                4,
                &[DataType::ServerId, DataType::ServerKey],
            ),
            Link::Local,
        )
        .unwrap()
        .table;
    let sk = |s: &'static [u8]| {
        Value::Dict(DictValue::Define {
            id: 1,
            value: Bytes::from_static(s),
        })
    };
    for n in 1..=3 {
        r.apply(
            t,
            &upd(
                ip(n),
                vec![
                    (DataType::ServerId, Value::Sint(-1)),
                    (DataType::ServerKey, sk(b"s1")),
                ],
            ),
            Link::Local,
            0,
        )
        .unwrap();
    }
    assert_eq!(r.summary().dict_strings, 1);
    // An absent value leaves the stored one alone.
    let a = r
        .apply(
            t,
            &upd(
                ip(1),
                vec![
                    (DataType::ServerId, Value::Sint(-1)),
                    (DataType::ServerKey, Value::Dict(DictValue::Absent)),
                ],
            ),
            Link::Local,
            0,
        )
        .unwrap();
    assert!(!a.changed);
    let out = r.lesson_batch(t, 0, 10, 0).updates;
    assert_eq!(
        out[0].update.value(DataType::ServerId),
        Some(&Value::Sint(-1))
    );
    let v = out[0].update.value(DataType::ServerKey).unwrap();
    assert!(matches!(v, Value::Dict(d) if d.value().map(|b| &b[..]) == Some(&b"s1"[..])));
}

#[test]
fn pointer_views_show_lag() {
    let (mut r, t, x, _) = setup();
    for n in 1..=3u8 {
        r.apply(t, &upd(ip(n), vec![]), Link::Local, 0).unwrap();
    }
    r.updates_for(x, t, 10, 0);
    r.ack(x, t, 1);
    let v = r.pointers_view();
    assert_eq!(v.len(), 1);
    assert_eq!(
        (v[0].peer.as_str(), v[0].pushed, v[0].acked, v[0].lag),
        ("x", 3, 1, 2)
    );
}

#[test]
fn changes_the_relay_rules_skip_need_no_ack() {
    let (mut r, t, x, _) = setup();
    // Two local changes, then two that came from x itself: x is sent the first two only.
    for n in 1..=2u8 {
        r.apply(t, &upd(ip(n), vec![]), Link::Local, 0).unwrap();
    }
    for n in 3..=4u8 {
        r.apply(t, &upd(ip(n), vec![]), x, 0).unwrap();
    }
    let sent = r.updates_for(x, t, 10, 0);
    assert_eq!(sent.updates.len(), 2);
    assert_eq!(r.pointers_view()[0].lag, 4);
    // The ack of the last update sent covers the skipped tail: no lag is left.
    r.ack(x, t, sent.updates[1].update.update_id);
    let p = r.pointer(x, t);
    assert_eq!((p.pushed, p.acked, p.sent), (4, 4, 2));
    assert_eq!(r.pointers_view()[0].lag, 0);
    // More changes from x while nothing is in flight: skipped and acknowledged at once.
    r.apply(t, &upd(ip(5), vec![]), x, 0).unwrap();
    assert!(r.updates_for(x, t, 10, 0).updates.is_empty());
    assert_eq!(r.pointer(x, t).acked, 5);
    // A local change is in flight until acked; a new session resends it, nothing else.
    r.apply(t, &upd(ip(6), vec![]), Link::Local, 0).unwrap();
    r.apply(t, &upd(ip(7), vec![]), x, 0).unwrap();
    assert_eq!(r.updates_for(x, t, 10, 0).updates.len(), 1);
    assert_eq!(r.pointer(x, t).acked, 5);
    r.begin_session(x);
    assert_eq!(pushed_keys(&mut r, x, t, 0), [ip(6)]);
}

#[test]
fn haproxy_taught_before_completion_catches_up_only_once_it_acknowledged_the_rest() {
    let (mut r, t, x, _) = setup();
    let g = |n| vec![(DataType::Gpc0, Value::Uint(n))];
    // HAProxy was taught an empty replica (the lesson covered nothing).
    r.taught(Link::Local, t, r.head(t));
    assert!(r.caught_up(Link::Local), "trivially while not complete");
    // Then the replica learns from member x and becomes complete.
    r.apply(t, &upd(ip(1), g(1)), x, 1).unwrap();
    r.apply(t, &upd(ip(2), g(2)), x, 1).unwrap();
    r.set_complete(true);
    assert!(!r.caught_up(Link::Local), "HAProxy holds none of it yet");
    let batch = r.updates_for(Link::Local, t, 100, 2);
    assert_eq!(batch.updates.len(), 2);
    assert!(!r.caught_up(Link::Local), "sent is not held");
    let last = batch.updates.last().unwrap().update.update_id;
    r.ack(Link::Local, t, last);
    assert!(r.caught_up(Link::Local));
    // Later changes are ordinary pushes: they do not make the pod unready again.
    r.apply(t, &upd(ip(3), g(3)), x, 3).unwrap();
    assert!(r.caught_up(Link::Local));
}

#[test]
fn a_lesson_for_the_same_haproxy_process_leaves_out_its_own_writes() {
    let (mut r, t, x, _) = setup();
    let g = |n| vec![(DataType::Gpc0, Value::Uint(n))];
    r.apply(t, &upd(ip(1), g(1)), Link::Local, 1).unwrap();
    r.apply(t, &upd(ip(2), g(2)), x, 1).unwrap();
    let keys = |b: Batch| {
        b.updates
            .into_iter()
            .map(|o| o.update.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(r.lesson_batch(t, 0, 10, 2)), [ip(1), ip(2)]);
    assert_eq!(keys(r.lesson_batch_without_local(t, 0, 10, 2)), [ip(2)]);
}
