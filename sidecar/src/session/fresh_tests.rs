//! A new HAProxy process on the local link (`fresh.rs`): when a session is fresh, what of
//! HAProxy's updates is applied before and after it confirmed our lesson, what the lesson
//! carries, and the counters.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::*;
use crate::codec::{
    DataType, DataTypeSet, FrameCodec, Key, KeyType, Message, RxState, TableDefinition, Update,
    Value,
};

const BUDGET: usize = 200;

/// HAProxy's definition of table `t` (its table id 3).
fn def() -> TableDefinition {
    TableDefinition {
        table_id: 3,
        name: Bytes::from_static(b"t"),
        key_type: KeyType::Ipv4,
        key_len: 4,
        data_types: DataTypeSet::of(&[DataType::Gpc0]),
        expire_ms: Some(60_000),
        params: Vec::new(),
        trailing: Bytes::new(),
    }
}

fn ip(n: u8) -> Key {
    Key::Ipv4(Ipv4Addr::new(10, 0, 0, n))
}

/// HAProxy's update `id` of key `n` in its table 3: `gpc0 = value`.
fn update(id: u32, n: u8, value: u32) -> Message {
    Message::Update(Update {
        table_id: 3,
        update_id: id,
        id_on_wire: true,
        expire_ms: None,
        key: ip(n),
        values: vec![(DataType::Gpc0, Value::Uint(value))],
        trailing: Bytes::new(),
    })
}

/// HAProxy's lesson: its definition, updates `(id, key, gpc0)`, `00 01`.
fn lesson(entries: &[(u32, u8, u32)]) -> Vec<Message> {
    std::iter::once(Message::Definition(def()))
        .chain(entries.iter().map(|&(id, n, value)| update(id, n, value)))
        .chain(std::iter::once(Message::Control(Control::ResyncFinished)))
        .collect()
}

fn gpc0(store: &Replica, n: u8, now: u64) -> Option<u32> {
    let e = store.lookup(b"t", &ip(n), now)?;
    match e.values[0].value {
        Value::Uint(v) => Some(v),
        _ => None,
    }
}

/// A sidecar's replica: table `t` as HAProxy defined it, `10.0.0.1 = 100` written by HAProxy,
/// `10.0.0.2 = 50` learned from member `x`.
fn replica() -> Replica {
    let mut store = Replica::new(crate::store::ReplicaConfig::default());
    let t = store.define(&def(), Link::Local).unwrap().table;
    let x = store.peer("x").unwrap();
    let put = |store: &mut Replica, origin, n, value| {
        let Message::Update(u) = update(1, n, value) else {
            unreachable!()
        };
        store.apply(t, &u, origin, 0).unwrap();
    };
    put(&mut store, Link::Local, 1, 100);
    put(&mut store, x, 2, 50);
    store.set_complete(true);
    store
}

fn local(store: &mut Replica, pid: Option<u32>, now: u64) -> Session {
    Session::new(
        SessionConfig {
            role: Role::LocalHaproxy,
            direction: Direction::Incoming,
            remote_name: "edge-0".into(),
            remote_pid: pid,
            timers: Timers::default(),
        },
        store,
        now,
    )
    .unwrap()
}

/// What HAProxy reads of a session's output, and the events.
#[derive(Default)]
struct Haproxy {
    frames: FrameCodec,
    rx: RxState,
    events: Vec<SessionEvent>,
}

impl Haproxy {
    fn read(&mut self, outputs: Vec<Output>) -> Vec<Message> {
        let mut buf = BytesMut::new();
        for o in outputs {
            match o {
                Output::Send(b) => buf.extend_from_slice(&b),
                Output::Event(e) => self.events.push(e),
                Output::Close(r) => panic!("closed: {r}"),
            }
        }
        let mut msgs = Vec::new();
        while let Some(frame) = self.frames.decode(&mut buf).unwrap() {
            msgs.push(self.rx.decode(&frame).unwrap());
        }
        msgs
    }

    fn send(&mut self, s: &mut Session, store: &mut Replica, msgs: Vec<Message>, now: u64) {
        for m in msgs {
            let out = s.on_message(m, store, now);
            assert!(self.read(out).is_empty());
        }
    }
}

/// `(key, gpc0)` of the updates in `msgs`.
fn taught(msgs: &[Message]) -> Vec<(Key, u32)> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) => match u.values[..] {
                [(DataType::Gpc0, Value::Uint(v))] => Some((u.key.clone(), v)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn has(msgs: &[Message], c: Control) -> bool {
    msgs.contains(&Message::Control(c))
}

#[test]
fn a_new_pid_is_a_new_process_the_same_pid_and_the_first_session_are_not() {
    let mut store = replica();
    assert_eq!(
        local(&mut store, Some(10), 0).fresh(),
        None,
        "first session"
    );
    assert_eq!(
        local(&mut store, Some(10), 1).fresh(),
        None,
        "the same process reconnecting"
    );
    let s = local(&mut store, Some(11), 2);
    assert_eq!(s.fresh(), Some(Fresh::NewPid { previous: Some(10) }));
    let mut hap = Haproxy::default();
    let mut s = s;
    hap.read(s.poll(&mut store, 2, BUDGET));
    assert!(hap.events.contains(&SessionEvent::FreshProcess {
        pid: Some(11),
        why: Fresh::NewPid { previous: Some(10) }
    }));
    // That session ended before the process confirmed our lesson: it still is to be taught,
    // whoever calls next.
    assert_eq!(
        local(&mut store, Some(11), 3).fresh(),
        Some(Fresh::Untaught)
    );
    assert_eq!(local(&mut store, None, 3).fresh(), Some(Fresh::Untaught));
    // Once taught (as `00 03` records it), a session the sidecar dialed has no pid to compare;
    // the next pid cannot be compared with it either, so that one counts as another process.
    store.local_taught();
    assert_eq!(local(&mut store, None, 4).fresh(), None);
    assert_eq!(
        local(&mut store, Some(11), 4).fresh(),
        Some(Fresh::NewPid { previous: None })
    );
    // Members are never fresh.
    let member = Session::new(
        SessionConfig {
            role: Role::Mesh,
            direction: Direction::Incoming,
            remote_name: "x".into(),
            remote_pid: Some(99),
            timers: Timers::default(),
        },
        &mut store,
        5,
    )
    .unwrap();
    assert_eq!(member.fresh(), None);
}

#[test]
fn asking_for_a_lesson_makes_a_process_fresh_unless_it_was_taught_already() {
    let mut store = replica();
    let mut s = local(&mut store, Some(10), 0);
    assert_eq!(s.fresh(), None);
    let mut hap = Haproxy::default();
    hap.send(
        &mut s,
        &mut store,
        vec![Message::Control(Control::ResyncRequest)],
        1,
    );
    assert_eq!(s.fresh(), Some(Fresh::AskedForLesson));

    // Taught, then asking again (not something HAProxy does after its first 5 s): its values
    // already grew from ours.
    let mut store = replica();
    let mut s = local(&mut store, Some(10), 0);
    let mut hap = Haproxy::default();
    hap.read(s.poll(&mut store, 0, BUDGET));
    hap.send(&mut s, &mut store, lesson(&[]), 1);
    let ours = hap.read(s.poll(&mut store, 1, BUDGET));
    assert!(has(&ours, Control::ResyncPartial) || has(&ours, Control::ResyncFinished));
    hap.send(
        &mut s,
        &mut store,
        vec![Message::Control(Control::ResyncConfirm)],
        2,
    );
    assert!(s.taught());
    hap.send(
        &mut s,
        &mut store,
        vec![Message::Control(Control::ResyncRequest)],
        3,
    );
    assert_eq!(s.fresh(), None);
}

#[test]
fn a_fresh_process_is_held_back_on_held_entries_until_it_confirmed_our_lesson() {
    let mut store = replica();
    drop(local(&mut store, Some(10), 0)); // the old worker
    let mut s = local(&mut store, Some(11), 10); // the new one: fresh by pid
    let mut hap = Haproxy::default();
    assert!(has(
        &hap.read(s.poll(&mut store, 10, BUDGET)),
        Control::ResyncRequest
    ));

    // Its lesson: 10.0.0.1 counted from zero (held back), 10.0.0.3 new (applied), 10.0.0.2
    // as the replica has it (held back, but nothing to count).
    let theirs = lesson(&[(1, 1, 3), (2, 3, 1), (3, 2, 50)]);
    hap.send(&mut s, &mut store, theirs, 11);
    assert_eq!(gpc0(&store, 1, 11), Some(100));
    assert_eq!(gpc0(&store, 3, 11), Some(1));
    assert_eq!(s.stats().untaught_ignored, 1);
    // Its pushes: the new entry is its own (applied), the held one still waits.
    hap.send(
        &mut s,
        &mut store,
        vec![update(4, 3, 2), update(5, 1, 4)],
        12,
    );
    assert_eq!(gpc0(&store, 3, 12), Some(2));
    assert_eq!(gpc0(&store, 1, 12), Some(100));

    // Confirm of its lesson, acks of everything (held back or not), then our lesson: the
    // replica's values, without the entry it wrote itself.
    let ours = hap.read(s.poll(&mut store, 12, BUDGET));
    assert!(has(&ours, Control::ResyncConfirm));
    assert!(ours.contains(&Message::Ack(crate::codec::Ack {
        table_id: 3,
        update_id: 5
    })));
    let mut carried = taught(&ours);
    carried.sort_by_key(|(k, _)| format!("{k:?}"));
    assert_eq!(carried, vec![(ip(1), 100), (ip(2), 50)]);
    assert!(has(&ours, Control::ResyncFinished));

    // Sent before it read our lesson (crossing it): held back.
    hap.send(&mut s, &mut store, vec![update(6, 1, 5)], 13);
    assert_eq!(gpc0(&store, 1, 13), Some(100));
    assert_eq!(s.stats().untaught_ignored, 3);
    assert_eq!(s.fresh(), Some(Fresh::NewPid { previous: Some(10) }));

    // Its confirm: from now on its updates are the authority again, and since some were held
    // back, its table is asked for again.
    hap.send(
        &mut s,
        &mut store,
        vec![Message::Control(Control::ResyncConfirm)],
        14,
    );
    assert_eq!(s.fresh(), None);
    assert!(hap
        .events
        .contains(&SessionEvent::FreshTaught { ignored: 3 }));
    hap.send(&mut s, &mut store, vec![update(7, 1, 101)], 15);
    assert_eq!(gpc0(&store, 1, 15), Some(101));
    assert!(has(
        &hap.read(s.poll(&mut store, 15, BUDGET)),
        Control::ResyncRequest
    ));
    let again = lesson(&[(8, 1, 102), (9, 2, 50), (10, 3, 2)]);
    hap.send(&mut s, &mut store, again, 16);
    assert_eq!(gpc0(&store, 1, 16), Some(102));
    assert_eq!(s.stats().untaught_ignored, 3);

    // The counter is the table's too (`/tables`, metrics).
    let view = store.tables_view();
    assert_eq!(view[0].name, "t");
    assert_eq!(view[0].stats.untaught_ignored, 3);
    // The process is taught: its next session (a reconnect) is not fresh.
    drop(s);
    assert_eq!(local(&mut store, Some(11), 20).fresh(), None);
}

#[test]
fn nothing_held_back_no_second_lesson() {
    let mut store = replica();
    drop(local(&mut store, Some(10), 0));
    let mut s = local(&mut store, Some(11), 10);
    let mut hap = Haproxy::default();
    hap.read(s.poll(&mut store, 10, BUDGET));
    // Its table is the replica's (the old worker had handed it over).
    hap.send(&mut s, &mut store, lesson(&[(1, 1, 100), (2, 2, 50)]), 11);
    hap.read(s.poll(&mut store, 11, BUDGET));
    hap.send(
        &mut s,
        &mut store,
        vec![Message::Control(Control::ResyncConfirm)],
        12,
    );
    assert!(hap
        .events
        .contains(&SessionEvent::FreshTaught { ignored: 0 }));
    assert!(!has(
        &hap.read(s.poll(&mut store, 12, BUDGET)),
        Control::ResyncRequest
    ));
    assert_eq!(store.tables_view()[0].stats.untaught_ignored, 0);
}

#[test]
fn a_restarted_sidecar_takes_haproxys_values_and_teaches_only_what_it_lacks() {
    // A restarted sidecar learned 10.0.0.2 = 50 from a member; its HAProxy kept counting
    // (7 is its value) and does not ask for a lesson.
    let mut store = replica();
    let mut s = local(&mut store, Some(42), 0);
    assert_eq!(s.fresh(), None);
    let mut hap = Haproxy::default();
    assert!(has(
        &hap.read(s.poll(&mut store, 0, BUDGET)),
        Control::ResyncRequest
    ));
    // Its lesson is slow: each part resets the wait for it, so our lesson waits too.
    hap.send(&mut s, &mut store, vec![Message::Definition(def())], 900);
    assert!(taught(&hap.read(s.poll(&mut store, 1_000, BUDGET))).is_empty());
    assert_eq!(s.next_deadline(), 1_900);
    hap.send(&mut s, &mut store, vec![update(1, 2, 7)], 1_800);
    assert!(!s.teaching());
    hap.send(
        &mut s,
        &mut store,
        vec![Message::Control(Control::ResyncFinished)],
        1_850,
    );
    assert_eq!(gpc0(&store, 2, 1_850), Some(7));
    // A member's write that HAProxy has not seen.
    let x = store.peer("x").unwrap();
    let t = store.table(b"t").unwrap();
    let Message::Update(u) = update(1, 3, 9) else {
        unreachable!()
    };
    store.apply(t, &u, x, 1_850).unwrap();
    // Our lesson carries what HAProxy lacks, and none of its own writes: it holds those, and
    // anything it counted while this lesson ran would be undone by teaching them back.
    let ours = taught(&hap.read(s.poll(&mut store, 1_850, BUDGET)));
    assert_eq!(ours, [(ip(3), 9)]);
}

#[test]
fn the_wait_for_haproxys_lesson_has_a_bound_however_it_flows() {
    let mut store = replica();
    let mut s = local(&mut store, Some(42), 0);
    let mut hap = Haproxy::default();
    hap.read(s.poll(&mut store, 0, BUDGET));
    hap.send(&mut s, &mut store, vec![Message::Definition(def())], 10);
    let mut now = 10;
    while !s.teaching() {
        assert!(now < 30_000, "still not teaching at {now}");
        now += 500;
        hap.send(&mut s, &mut store, vec![update(1, 9, 1)], now);
        hap.read(s.poll(&mut store, now, BUDGET));
    }
    assert!(now >= 29_500, "taught at {now}");
}

#[test]
fn the_old_worker_s_last_pushes_during_the_lesson_are_taught_to_the_new_one() {
    let mut store = replica();
    let t = store.table(b"t").unwrap();
    drop(local(&mut store, Some(10), 0)); // the old worker
    let mut s = local(&mut store, Some(11), 10); // the new one: fresh by pid
    let mut hap = Haproxy::default();
    assert!(has(
        &hap.read(s.poll(&mut store, 10, BUDGET)),
        Control::ResyncRequest
    ));
    hap.send(&mut s, &mut store, lesson(&[]), 11);
    // Our lesson starts, one entry per step.
    let mut ours = hap.read(s.poll(&mut store, 11, 1));
    assert!(!has(&ours, Control::ResyncFinished), "still teaching");
    // Meanwhile the replaced old worker, still read, pushes its last change: written by "the
    // local HAProxy" too, but not by the process being taught.
    let Message::Update(late) = update(9, 4, 7) else {
        unreachable!()
    };
    store.apply(t, &late, Link::Local, 12).unwrap();
    for _ in 0..10 {
        ours.extend(hap.read(s.poll(&mut store, 12, 1)));
    }
    assert!(has(&ours, Control::ResyncFinished));
    assert!(
        taught(&ours).contains(&(ip(4), 7)),
        "the new worker was not taught the old one's last write: {:?}",
        taught(&ours)
    );
}
