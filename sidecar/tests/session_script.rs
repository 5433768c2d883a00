//! Sessions driven through real bytes, no sockets: two sidecars against each other (encoded by
//! each session's `TxState`, decoded by a `FrameCodec` + `RxState` on the other side), and a
//! sidecar against HAProxy 2.6.12 byte sequences from `shared/fixtures/haproxy-2.6`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use haproxy_peers_sidecar::codec::{
    decode_hello, decode_status, Control, DataType, DataTypeSet, FrameCodec, Key, KeyType, Message,
    ParamBlock, RxState, TableDefinition, Update, Value,
};
use haproxy_peers_sidecar::session::{
    CloseKind, CloseReason, Direction, Output, Role, Session, SessionConfig, SessionEvent, Timers,
};
use haproxy_peers_sidecar::store::{Link, Replica, ReplicaConfig};
use tokio_util::codec::Decoder;

const BUDGET: usize = 200;

// ---------------------------------------------------------------------------------------------
// Harness

struct Side {
    store: Replica,
    session: Session,
    frames: FrameCodec,
    rx: RxState,
    inbox: BytesMut,
    events: Vec<SessionEvent>,
    closed: Option<CloseReason>,
    /// Every message this side received, in order.
    received: Vec<Message>,
}

impl Side {
    fn new(mut store: Replica, role: Role, remote: &str, pid: Option<u32>, now: u64) -> Side {
        let session = Session::new(
            SessionConfig {
                role,
                direction: Direction::Incoming,
                remote_name: remote.to_owned(),
                remote_pid: pid,
                timers: Timers::default(),
            },
            &mut store,
            now,
        )
        .unwrap();
        Side {
            store,
            session,
            frames: FrameCodec::new(),
            rx: RxState::new(),
            inbox: BytesMut::new(),
            events: Vec::new(),
            closed: None,
            received: Vec::new(),
        }
    }

    /// A new session on the same replica (a reconnect).
    fn reconnect(&mut self, role: Role, remote: &str, now: u64) {
        let old = std::mem::replace(self, Side::new(Replica::default(), role, remote, None, now));
        *self = Side::new(old.store, role, remote, None, now);
    }

    fn take(&mut self, outputs: Vec<Output>) -> Vec<u8> {
        let mut bytes = Vec::new();
        for o in outputs {
            match o {
                Output::Send(b) => bytes.extend_from_slice(&b),
                Output::Close(r) => self.closed = Some(r),
                Output::Event(e) => self.events.push(e),
            }
        }
        bytes
    }

    fn poll(&mut self, now: u64, budget: usize) -> Vec<u8> {
        let out = self.session.poll(&mut self.store, now, budget);
        self.take(out)
    }

    fn feed(&mut self, bytes: &[u8], now: u64) {
        self.inbox.extend_from_slice(bytes);
        while let Some(frame) = self.frames.decode(&mut self.inbox).unwrap() {
            let msg = self.rx.decode(&frame).unwrap();
            self.received.push(msg.clone());
            let out = self.session.on_message(msg, &mut self.store, now);
            self.take(out);
        }
    }

    fn has_event(&self, f: impl Fn(&SessionEvent) -> bool) -> bool {
        self.events.iter().any(f)
    }
}

/// Polls both sides and delivers what each sends until nothing flows.
fn exchange(a: &mut Side, b: &mut Side, now: u64, budget: usize) {
    for _ in 0..10_000 {
        let x = a.poll(now, budget);
        b.feed(&x, now);
        let y = b.poll(now, budget);
        a.feed(&y, now);
        if x.is_empty() && y.is_empty() {
            return;
        }
    }
    panic!("the two sessions never went quiet");
}

fn updates(msgs: &[Message]) -> Vec<&Update> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn controls(msgs: &[Message]) -> Vec<Control> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Control(c) if *c != Control::Heartbeat => Some(*c),
            _ => None,
        })
        .collect()
}

fn def(name: &str, types: &[DataType]) -> TableDefinition {
    let set = DataTypeSet::of(types);
    TableDefinition {
        table_id: 1,
        name: Bytes::copy_from_slice(name.as_bytes()),
        key_type: KeyType::Ipv4,
        key_len: 4,
        data_types: set,
        expire_ms: Some(60_000),
        params: set
            .known()
            .filter(|t| t.has_param_block())
            .map(|t| ParamBlock {
                data_type: t,
                count: None,
                period_ms: Some(10_000),
            })
            .collect(),
        trailing: Bytes::new(),
    }
}

const TYPES: &[DataType] = &[DataType::Gpc0, DataType::HttpReqRate];

/// A replica whose local HAProxy defined table `t`.
fn replica() -> Replica {
    let mut r = Replica::new(ReplicaConfig::default());
    r.define(&def("t", TYPES), Link::Local).unwrap();
    r
}

fn ip(n: u32) -> Key {
    Key::Ipv4(Ipv4Addr::from(0x0a00_0000 + n))
}

fn write(store: &mut Replica, origin: Link, n: u32, gpc0: u32, now: u64) {
    let t = store.table(b"t").unwrap();
    let u = Update {
        table_id: 1,
        update_id: 0,
        id_on_wire: true,
        expire_ms: None,
        key: ip(n),
        values: vec![(DataType::Gpc0, Value::Uint(gpc0))],
        trailing: Bytes::new(),
    };
    assert!(store.apply(t, &u, origin, now).unwrap().changed);
}

fn gpc0(store: &Replica, n: u32, now: u64) -> Option<u32> {
    let e = store.lookup(b"t", &ip(n), now)?;
    match e.values[0].value {
        Value::Uint(v) => Some(v),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Two sidecars

#[test]
fn local_changes_reach_the_other_member_and_nothing_comes_back() {
    let mut a = Side::new(replica(), Role::Mesh, "b", None, 0);
    let mut b = Side::new(replica(), Role::Mesh, "a", None, 0);
    for n in 1..=10 {
        write(&mut a.store, Link::Local, n, n * 10, 0);
    }
    // b also has an entry learned from a third member c: it goes to b's HAProxy only.
    let c = b.store.peer("c").unwrap();
    write(&mut b.store, c, 99, 1, 0);
    exchange(&mut a, &mut b, 10, BUDGET);

    for n in 1..=10 {
        assert_eq!(gpc0(&b.store, n, 10), Some(n * 10));
        assert_eq!(b.store.lookup(b"t", &ip(n), 10).unwrap().origin, "a");
    }
    // Nothing went back to a, and c's entry did not travel between members.
    assert!(updates(&a.received).is_empty());
    assert!(a.store.lookup(b"t", &ip(99), 10).is_none());
    // On the wire: a definition, then 0x80 for the first update and 0x81 after it.
    let first_update = b
        .received
        .iter()
        .position(|m| matches!(m, Message::Update(_)))
        .unwrap();
    assert!(matches!(
        b.received[first_update - 1],
        Message::Definition(_)
    ));
    let forms: Vec<bool> = updates(&b.received).iter().map(|u| u.id_on_wire).collect();
    assert!(forms[0]);
    assert!(forms[1..].iter().all(|explicit| !explicit));
    // b acked; a's pointer for b is at the end.
    let t = a.store.table(b"t").unwrap();
    let pb = a.store.known_peer("b").unwrap();
    assert_eq!(a.store.pointer(pb, t).acked, 10);
    // b relays a's entries to its own HAProxy, plus c's; never to another member.
    let tb = b.store.table(b"t").unwrap();
    assert_eq!(
        b.store.updates_for(Link::Local, tb, 100, 10).updates.len(),
        11
    );
    let pa = b.store.known_peer("a").unwrap();
    assert!(b.store.updates_for(pa, tb, 100, 10).updates.is_empty());
    assert!(a.closed.is_none() && b.closed.is_none());
}

#[test]
fn a_reconnect_resumes_after_the_last_ack() {
    let mut a = Side::new(replica(), Role::Mesh, "b", None, 0);
    let mut b = Side::new(replica(), Role::Mesh, "a", None, 0);
    for n in 1..=10 {
        write(&mut a.store, Link::Local, n, 1, 0);
    }
    exchange(&mut a, &mut b, 1, BUDGET);
    assert_eq!(updates(&b.received).len(), 10);
    // Five more changes; a pushes three of them, b receives them but its acks are lost with
    // the connection.
    for n in 11..=15 {
        write(&mut a.store, Link::Local, n, 2, 2);
    }
    write(&mut a.store, Link::Local, 1, 3, 2); // an acked entry changed again
    let x = a.poll(3, 3);
    b.feed(&x, 3);
    assert_eq!(updates(&b.received).len(), 13);
    let _lost = b.poll(3, BUDGET);

    a.reconnect(Role::Mesh, "b", 100);
    b.reconnect(Role::Mesh, "a", 100);
    exchange(&mut a, &mut b, 100, BUDGET);
    // Only what was not acknowledged: 11..15 and 1 (changed again), nothing older.
    let mut keys: Vec<Key> = updates(&b.received).iter().map(|u| u.key.clone()).collect();
    keys.sort_by_key(|k| format!("{k:?}"));
    let mut expected: Vec<Key> = [1, 11, 12, 13, 14, 15].into_iter().map(ip).collect();
    expected.sort_by_key(|k| format!("{k:?}"));
    assert_eq!(keys, expected);
    // No lesson was needed.
    assert!(controls(&a.received).is_empty() && controls(&b.received).is_empty());
    for n in 1..=15 {
        assert!(gpc0(&b.store, n, 100).is_some(), "entry {n} lost");
    }
    assert_eq!(gpc0(&b.store, 1, 100), Some(3));
}

#[test]
fn lesson_is_taught_confirmed_and_pushes_wait_for_the_confirm() {
    let mut a_store = replica();
    for n in 1..=20 {
        write(&mut a_store, Link::Local, n, n, 0);
    }
    // Also an entry a learned from another member: lessons carry everything.
    let c = a_store.peer("c").unwrap();
    write(&mut a_store, c, 500, 5, 0);
    a_store.set_complete(true);
    let mut a = Side::new(a_store, Role::Mesh, "b", None, 0);
    let mut b = Side::new(replica(), Role::Mesh, "a", None, 0);
    // Normal pushes first (a has local entries b never acked), like HAProxy.
    exchange(&mut a, &mut b, 1, BUDGET);
    let pushed = updates(&b.received).len();
    assert_eq!(pushed, 20);

    b.session.request_lesson();
    // Small budget: the lesson spans several polls.
    let mut to_b = Vec::new();
    let req = b.poll(2, 5);
    a.feed(&req, 2);
    for _ in 0..20 {
        let x = a.poll(2, 5);
        if x.is_empty() {
            break;
        }
        to_b.extend_from_slice(&x);
    }
    b.feed(&to_b, 2);
    let lesson = &b.received[pushed + 1..];
    let timed = updates(lesson);
    assert_eq!(timed.len(), 21);
    assert!(timed.iter().all(|u| u.expire_ms == Some(59_998)));
    assert_eq!(controls(lesson), [Control::ResyncFinished]);
    assert!(b.store.is_complete());
    assert!(b.has_event(|e| *e
        == SessionEvent::LessonLearned {
            complete: true,
            entries: 21
        }));
    assert_eq!(b.store.lookup(b"t", &ip(500), 2).unwrap().origin, "a");

    // A local change after the lesson ended but before b's confirm arrived: not pushed yet.
    write(&mut a.store, Link::Local, 7, 700, 3);
    assert!(a.session.teaching());
    let nothing = a.poll(3, BUDGET);
    assert!(nothing.is_empty());
    // b's confirm (with acks a ignores while teaching) arrives: the push follows.
    let confirm = b.poll(3, BUDGET);
    a.feed(&confirm, 3);
    assert!(a.has_event(|e| matches!(e, SessionEvent::LessonConfirmed { complete: true, .. })));
    assert!(a.session.taught());
    let before = b.received.len();
    exchange(&mut a, &mut b, 4, BUDGET);
    let after: Vec<&Update> = updates(&b.received[before..]);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].key, ip(7));
    // A normal push to a member carries its write time: written at 3, sent at 4.
    assert_eq!(after[0].expire_ms, Some(59_999));
    assert_eq!(gpc0(&b.store, 7, 4), Some(700));
    // The confirm moved a's pointer over the lesson: a reconnect does not resend it.
    a.reconnect(Role::Mesh, "b", 10);
    b.reconnect(Role::Mesh, "a", 10);
    exchange(&mut a, &mut b, 10, BUDGET);
    assert!(updates(&b.received).is_empty());
}

#[test]
fn a_lesson_does_not_echo_what_the_learner_wrote_while_it_ran() {
    let mut a_store = replica();
    for n in 1..=20 {
        write(&mut a_store, Link::Local, n, n, 0);
    }
    a_store.set_complete(true);
    let mut a = Side::new(a_store, Role::Mesh, "b", None, 0);
    let mut b = Side::new(replica(), Role::Mesh, "a", None, 0);
    // b's HAProxy wrote key 800 before the lesson: a restarted b would need it back.
    write(&mut b.store, Link::Local, 800, 8, 0);
    exchange(&mut a, &mut b, 1, BUDGET);
    assert_eq!(gpc0(&a.store, 800, 1), Some(8));
    let before = b.received.len();

    b.session.request_lesson();
    let req = b.poll(2, 5);
    a.feed(&req, 2);
    let mut to_b = a.poll(2, 5);
    // While the lesson runs, b's HAProxy writes key 900 and b pushes it to a.
    write(&mut b.store, Link::Local, 900, 9, 2);
    let push = b.poll(2, BUDGET);
    a.feed(&push, 2);
    assert_eq!(gpc0(&a.store, 900, 2), Some(9), "a took b's push");
    for _ in 0..20 {
        let x = a.poll(3, 5);
        if x.is_empty() {
            break;
        }
        to_b.extend_from_slice(&x);
    }
    b.feed(&to_b, 3);
    let lesson = &b.received[before..];
    assert_eq!(controls(lesson), [Control::ResyncFinished]);
    let keys: Vec<Key> = updates(lesson).iter().map(|u| u.key.clone()).collect();
    assert!(
        keys.contains(&ip(800)),
        "b's earlier write is taught: {keys:?}"
    );
    assert!((1..=20).all(|n| keys.contains(&ip(n))), "{keys:?}");
    // Its echo would carry a write time inflated by the transits and could beat a newer
    // write of b's HAProxy.
    assert!(
        !keys.contains(&ip(900)),
        "b's own write during the lesson came back: {keys:?}"
    );
    assert_eq!(keys.len(), 21);
}

#[test]
fn a_second_request_during_a_lesson_gets_a_second_lesson() {
    let mut store = replica();
    for n in 1..=3 {
        write(&mut store, Link::Local, n, n, 0);
    }
    let mut a = Side::new(store, Role::Mesh, "b", None, 0);
    let mut b_wire = Wire::default();
    // a pushes its entries first (b never acked them); b's HAProxy-less view ignores that.
    let _ = b_wire.decode(&a.poll(0, BUDGET));
    a.feed(&[0x00, 0x00], 1);
    let mut first = b_wire.decode(&a.poll(1, 1));
    a.feed(&[0x00, 0x00], 1); // asked again while the lesson runs
    for _ in 0..10 {
        let more = a.poll(1, 1);
        if more.is_empty() {
            break;
        }
        first.extend(b_wire.decode(&more));
    }
    assert_eq!(updates(&first).len(), 3);
    assert_eq!(controls(&first), [Control::ResyncPartial]);
    assert!(a.poll(1, BUDGET).is_empty(), "nothing until the confirm");
    a.feed(&[0x00, 0x03], 2);
    let second = b_wire.decode(&a.poll(2, BUDGET));
    assert_eq!(definitions(&second).len(), 1);
    assert_eq!(updates(&second).len(), 3);
    assert!(updates(&second).iter().all(|u| u.expire_ms.is_some()));
    assert_eq!(controls(&second), [Control::ResyncPartial]);
}

#[test]
fn frequency_counters_travel_with_their_age() {
    let mut a = Side::new(replica(), Role::Mesh, "b", None, 1_000_000);
    let mut b = Side::new(replica(), Role::Mesh, "a", None, 1_000_000);
    let t = a.store.table(b"t").unwrap();
    let u = Update {
        table_id: 1,
        update_id: 0,
        id_on_wire: true,
        expire_ms: None,
        key: ip(1),
        values: vec![(
            DataType::HttpReqRate,
            Value::Freq(haproxy_peers_sidecar::codec::FreqCounter {
                elapsed: 2_000,
                curr: 5,
                prev: 10,
            }),
        )],
        trailing: Bytes::new(),
    };
    a.store.apply(t, &u, Link::Local, 1_000_000).unwrap();
    // Sent 700 ms after a received it, read by b's HAProxy 2600 ms after that.
    exchange(&mut a, &mut b, 1_000_700, BUDGET);
    let got = updates(&b.received)[0]
        .value(DataType::HttpReqRate)
        .cloned();
    let Some(Value::Freq(f)) = got else {
        panic!("no rate")
    };
    assert_eq!((f.elapsed, f.curr, f.prev), (2_700, 5, 10));
    let tb = b.store.table(b"t").unwrap();
    let relayed = b.store.updates_for(Link::Local, tb, 10, 1_003_300).updates;
    let Some(Value::Freq(f)) = relayed[0].update.value(DataType::HttpReqRate).cloned() else {
        panic!()
    };
    assert_eq!(f.elapsed, 5_300);
    // §6.3's check: rate 9 over 10 s.
    let view = b.store.lookup(b"t", &ip(1), 1_003_300).unwrap();
    assert_eq!(view.values[1].rates, [9]);
}

#[test]
fn heartbeat_and_liveness_deadlines() {
    let mut a = Side::new(replica(), Role::Mesh, "b", None, 0);
    assert!(a.poll(0, BUDGET).is_empty());
    assert_eq!(a.session.next_deadline(), 3_000);
    assert!(a.poll(2_999, BUDGET).is_empty());
    assert_eq!(a.poll(3_000, BUDGET), [0x00, 0x04]);
    assert_eq!(a.session.next_deadline(), 6_000);
    // A message from the peer (any) keeps it alive.
    a.feed(&[0x00, 0x04], 5_000);
    assert_eq!(a.poll(6_000, BUDGET), [0x00, 0x04]);
    assert_eq!(a.poll(9_000, BUDGET), [0x00, 0x04]);
    assert_eq!(a.session.next_deadline(), 12_000);
    assert_eq!(a.poll(12_000, BUDGET), [0x00, 0x04]);
    assert_eq!(a.session.next_deadline(), 15_000);
    assert!(a.poll(14_999, BUDGET).is_empty());
    assert_eq!(a.poll(15_000, BUDGET), Vec::<u8>::new());
    let reason = a.closed.clone().unwrap();
    assert_eq!(reason.kind, CloseKind::Silent);
    assert!(
        reason.message.contains("no message from b for 10 s"),
        "{reason}"
    );
    assert!(a.session.is_closed());
    assert_eq!(a.session.next_deadline(), u64::MAX);
}

#[test]
fn ignored_messages_keep_the_session_and_errors_close_it() {
    let mut a = Side::new(replica(), Role::Mesh, "b", None, 0);
    // Unknown class, unknown control type, an update with no table selected.
    a.feed(
        &[0x05, 0x01, 0x00, 0x09, 0x0a, 0x80, 0x05, 0, 0, 0, 1, 0],
        1,
    );
    assert_eq!(a.session.stats().ignored, 3);
    assert!(a.closed.is_none());
    // A definition with another key type: reported, its updates dropped and not acked.
    let mut other = def("t", TYPES);
    other.key_type = KeyType::Integer;
    let mut tx = haproxy_peers_sidecar::codec::TxState::new();
    let mut buf = BytesMut::new();
    tx.encode(&Message::Definition(other.clone()), &mut buf)
        .unwrap();
    let u = Update {
        table_id: 1,
        update_id: 1,
        id_on_wire: true,
        expire_ms: None,
        key: Key::Integer(5),
        values: vec![
            (DataType::Gpc0, Value::Uint(1)),
            (DataType::HttpReqRate, Value::Freq(Default::default())),
        ],
        trailing: Bytes::new(),
    };
    tx.encode(&Message::Update(u), &mut buf).unwrap();
    a.feed(&buf, 2);
    assert!(a.has_event(|e| matches!(e, SessionEvent::Drift(r) if r.source == "b")));
    assert_eq!(a.session.stats().updates_dropped, 1);
    assert!(
        a.poll(2, BUDGET).is_empty(),
        "no ack for a table not shared"
    );
    assert_eq!(a.store.len(a.store.table(b"t").unwrap()), 0);
    // A malformed message: 01 00, then close naming the peer.
    let err = haproxy_peers_sidecar::codec::MessageError::EmptyTableName;
    let out = a.session.on_decode_error(&err);
    assert_eq!(out[0], Output::Send(Bytes::from_static(&[0x01, 0x00])));
    let Output::Close(r) = &out[1] else { panic!() };
    assert_eq!(r.kind, CloseKind::ProtocolError);
    assert!(r.message.contains("peer b"));
    assert!(a.poll(3, BUDGET).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The local HAProxy, scripted with HAProxy 2.6.12 bytes

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/fixtures/haproxy-2.6")
        .join(name);
    let text = std::fs::read_to_string(path).unwrap();
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.trim().chars())
        .collect();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The binary part of an acceptor's stream (after its status line).
fn after_status(bytes: &[u8]) -> &[u8] {
    let (_, used) = decode_status(bytes).unwrap().unwrap();
    &bytes[used..]
}

/// The binary part of a caller's stream (after its hello) and the pid of its hello.
fn after_hello(bytes: &[u8]) -> (&[u8], u32) {
    let (lines, used) = decode_hello(bytes).unwrap().unwrap();
    let line3 = String::from_utf8(lines.peer).unwrap();
    let pid = line3.split(' ').nth(1).unwrap().parse().unwrap();
    (&bytes[used..], pid)
}

/// A receiving direction that lives as long as the session.
#[derive(Default)]
struct Wire {
    frames: FrameCodec,
    rx: RxState,
}

impl Wire {
    fn decode(&mut self, bytes: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(f) = self.frames.decode(&mut buf).unwrap() {
            out.push(self.rx.decode(&f).unwrap());
        }
        assert!(buf.is_empty());
        out
    }
}

/// Messages of a byte stream, decoded on their own.
fn decode_all(bytes: &[u8]) -> Vec<Message> {
    Wire::default().decode(bytes)
}

fn definitions(msgs: &[Message]) -> Vec<&TableDefinition> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Definition(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[test]
fn a_handshake_haproxy_asks_and_we_teach_after_learning_its_definitions() {
    // HAProxy B called the sidecar; its binary stream is 00 00, 00 03, 00 04.
    let b_to_a = fixture("a_handshake.c3.B-to-A.hex");
    let (haproxy_sends, pid) = after_hello(&b_to_a);
    assert_eq!(haproxy_sends, [0x00, 0x00, 0x00, 0x03, 0x00, 0x04]);
    // What HAProxy answers a 00 00 with: its 9 definitions and 00 01 (A's lesson in the same
    // scenario; the same configuration).
    let a_to_b = fixture("a_handshake.c3.A-to-B.hex");
    let haproxy_lesson = after_status(&a_to_b);
    let haproxy_lesson = &haproxy_lesson[..haproxy_lesson.len() - 2]; // without the heartbeat
    let haproxy_defs: Vec<TableDefinition> = definitions(&decode_all(haproxy_lesson))
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(haproxy_defs.len(), 9);

    let mut store = Replica::new(ReplicaConfig::default());
    store.set_complete(true); // no other member: nothing to learn
    let mut s = Side::new(store, Role::LocalHaproxy, "B", Some(pid), 0);
    // We ask HAProxy for its definitions first.
    assert_eq!(s.poll(0, BUDGET), [0x00, 0x00]);
    // HAProxy asks too; we wait for its lesson before answering.
    s.feed(&haproxy_sends[..2], 1);
    assert!(s.poll(1, BUDGET).is_empty());
    assert_eq!(s.session.next_deadline(), 1_000);
    s.feed(haproxy_lesson, 5);
    assert!(s.has_event(|e| matches!(
        e,
        SessionEvent::LessonLearned {
            complete: true,
            entries: 0
        }
    )));
    assert!(!s.session.taught());
    let answer = decode_all(&s.poll(5, BUDGET));
    // 00 03 for HAProxy's lesson, then our lesson: every definition HAProxy gave, with its
    // exact name, key type and key length, and 00 01.
    assert_eq!(answer[0], Message::Control(Control::ResyncConfirm));
    assert_eq!(
        answer.last(),
        Some(&Message::Control(Control::ResyncFinished))
    );
    let ours = definitions(&answer);
    assert_eq!(ours.len(), 9);
    for theirs in &haproxy_defs {
        let mine = ours.iter().find(|d| d.name == theirs.name).unwrap();
        assert_eq!(
            (mine.key_type, mine.key_len),
            (theirs.key_type, theirs.key_len)
        );
        assert_eq!(mine.data_types, theirs.data_types);
        assert_eq!(mine.params, theirs.params);
    }
    assert!(updates(&answer).is_empty());
    // HAProxy confirms: the current process is taught.
    s.feed(&haproxy_sends[2..4], 6);
    assert!(s.has_event(|e| *e
        == SessionEvent::LessonConfirmed {
            pid: Some(pid),
            complete: true
        }));
    assert!(s.session.taught());
    s.feed(&haproxy_sends[4..], 3_000);
    assert!(s.closed.is_none());
}

#[test]
fn local_haproxy_is_taught_after_a_short_bound_if_its_lesson_does_not_come() {
    let mut store = Replica::new(ReplicaConfig::default());
    // Known from an earlier HAProxy process.
    store.define(&def("t", TYPES), Link::Local).unwrap();
    let x = store.peer("x").unwrap();
    write(&mut store, x, 1, 11, 0);
    let mut s = Side::new(store, Role::LocalHaproxy, "hap", Some(42), 0);
    assert_eq!(s.poll(0, BUDGET), [0x00, 0x00]);
    s.feed(&[0x00, 0x00], 10);
    assert!(s.poll(999, BUDGET).is_empty());
    // What HAProxy decodes, with one decoder for the whole session.
    let mut haproxy = Wire::default();
    let lesson = haproxy.decode(&s.poll(1_000, BUDGET));
    assert_eq!(definitions(&lesson).len(), 1);
    let u = updates(&lesson);
    assert_eq!(u.len(), 1);
    assert!(
        u[0].id_on_wire && u[0].expire_ms.is_some(),
        "0x85 towards HAProxy"
    );
    assert_eq!(controls(&lesson), [Control::ResyncPartial]);
    // HAProxy's acks during the lesson are ignored; its confirm opens normal pushes.
    s.feed(
        &[0x0a, 0x84, 0x05, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x03],
        1_001,
    );
    assert!(s.session.taught());
    let t = s.store.table(b"t").unwrap();
    assert_eq!(
        s.store.pointer(Link::Local, t).acked,
        1,
        "the confirm covers the lesson"
    );
    write(&mut s.store, x, 2, 22, 1_002);
    write(&mut s.store, x, 3, 33, 1_002);
    write(&mut s.store, Link::Local, 4, 44, 1_002); // HAProxy's own: not sent back
    let pushed = haproxy.decode(&s.poll(1_002, BUDGET));
    let u = updates(&pushed);
    assert_eq!(
        u.iter().map(|u| u.key.clone()).collect::<Vec<_>>(),
        [ip(2), ip(3)]
    );
    assert!(
        u.iter().all(|u| u.id_on_wire && u.expire_ms.is_none()),
        "0x80 only"
    );
    // HAProxy's ack for the last one sent moves the pointer over it and over HAProxy's own
    // change after it, which is never sent there (advisory, never past what was examined).
    s.feed(&[0x0a, 0x84, 0x05, 0x01, 0x00, 0x00, 0x00, 0x03], 1_003);
    assert_eq!(s.store.pointer(Link::Local, t).acked, 4);
    s.feed(&[0x0a, 0x84, 0x05, 0x01, 0x00, 0x00, 0x00, 0x63], 1_003);
    assert_eq!(s.store.pointer(Link::Local, t).acked, 4);
}

#[test]
fn e_full_resync_haproxy_lesson_fills_the_replica_and_none_of_it_is_taught_back() {
    let a_to_b = fixture("e_full_resync.c3.A-to-B.hex");
    let stream = after_status(&a_to_b);
    // The reference: the same bytes decoded on their own; last update per (table, key).
    let reference = decode_all(stream);
    let mut names: HashMap<u64, Bytes> = HashMap::new();
    let mut expected: HashMap<(Bytes, Key), Update> = HashMap::new();
    for m in &reference {
        match m {
            Message::Definition(d) => {
                names.insert(d.table_id, d.name.clone());
            }
            Message::Update(u) => {
                expected.insert((names[&u.table_id].clone(), u.key.clone()), u.clone());
            }
            _ => {}
        }
    }
    assert_eq!(expected.len(), 52);

    let mut s = Side::new(
        Replica::new(ReplicaConfig::default()),
        Role::LocalHaproxy,
        "A",
        Some(1),
        0,
    );
    assert_eq!(s.poll(0, BUDGET), [0x00, 0x00]);
    // Fed in uneven pieces, as a socket would deliver them.
    let t0 = 1_000_000;
    for chunk in stream.chunks(777) {
        s.feed(chunk, t0);
    }
    assert!(s.has_event(|e| matches!(e, SessionEvent::LessonLearned { complete: true, .. })));
    assert!(
        !s.store.is_complete(),
        "HAProxy's lesson says nothing about the group"
    );
    let read_at = t0 + 500;
    let tolerance = i64::from(s.store.config().freq_tolerance_ms);
    for ((table, key), u) in &expected {
        let e = s
            .store
            .lookup(table, key, read_at)
            .unwrap_or_else(|| panic!("{table:?} {key:?} missing"));
        assert_eq!(e.origin, "local haproxy");
        for (t, v) in &u.values {
            let got = &e.values.iter().find(|f| f.data_type == *t).unwrap().value;
            match (v, got) {
                (Value::Freq(w), Value::Freq(g)) => {
                    assert_eq!((g.curr, g.prev), (w.curr, w.prev));
                    let drift = i64::from(g.elapsed) - i64::from(w.elapsed) - 500;
                    assert!(drift.abs() <= tolerance, "{t:?} age off by {drift} ms");
                }
                (Value::FreqArray(w), Value::FreqArray(g)) => {
                    let pairs = |a: &Vec<haproxy_peers_sidecar::codec::FreqCounter>| {
                        a.iter().map(|f| (f.curr, f.prev)).collect::<Vec<_>>()
                    };
                    assert_eq!(pairs(g), pairs(w));
                }
                (Value::Dict(w), Value::Dict(g)) => assert_eq!(g.value(), w.value()),
                _ => assert_eq!(got, v, "{table:?} {key:?} {t:?}"),
            }
        }
    }
    // Facts of e_full_resync.md: t_str key-0003 has gpc0 3 and conn_rate curr 3; t_arr's
    // entry gpt [0, 5].
    let k3 = s
        .store
        .lookup(
            b"t_str",
            &Key::String(Bytes::from_static(b"key-0003")),
            read_at,
        )
        .unwrap();
    assert_eq!(
        k3.values
            .iter()
            .find(|f| f.data_type == DataType::Gpc0)
            .unwrap()
            .value,
        Value::Uint(3)
    );
    let arr = s
        .store
        .lookup(b"t_arr", &Key::String(Bytes::from_static(b"arr")), read_at)
        .unwrap();
    assert_eq!(
        arr.values
            .iter()
            .find(|f| f.data_type == DataType::Gpt)
            .unwrap()
            .value,
        Value::UintArray(vec![0, 5])
    );

    // Our answer: confirm, acks with HAProxy's table ids and last ids, then our lesson back.
    let answer = decode_all(&s.poll(t0, 1_000));
    assert_eq!(answer[0], Message::Control(Control::ResyncConfirm));
    let acks: Vec<_> = answer
        .iter()
        .filter_map(|m| match m {
            Message::Ack(a) => Some((a.table_id, a.update_id)),
            _ => None,
        })
        .collect();
    // Last ids HAProxy sent per table (pass 3 ends on the same ids as pass 1).
    assert!(
        acks.contains(&(8, 10)) && acks.contains(&(7, 3)) && acks.contains(&(2, 10)),
        "{acks:?}"
    );
    // Every entry of the replica is this HAProxy process's own (it did not ask for a lesson:
    // the same process, not a new one), so our lesson carries none back: it holds them, and
    // anything it counted meanwhile would be undone. The definitions and the end still go.
    let taught = updates(&answer);
    assert_eq!(taught.len(), 0, "{taught:?}");
    assert_eq!(definitions(&answer).len(), 9);
    assert_eq!(controls(&answer).last(), Some(&Control::ResyncPartial));
    // HAProxy's re-teaching of the same data is a no-op: no relay storm.
    let heads: Vec<u64> = s.store.tables().map(|t| s.store.head(t)).collect();
    for chunk in stream.chunks(4096) {
        s.feed(chunk, t0 + 200);
    }
    let heads_after: Vec<u64> = s.store.tables().map(|t| s.store.head(t)).collect();
    assert_eq!(heads, heads_after);
}
