//! Two sidecars on clocks of their own, talking real bytes (each session's encoder, the other
//! side's `FrameCodec` + `RxState`): a partition cuts their session, both HAProxies write the
//! same key, and after the reconnect the crossing pushes converge on the later write.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::Ipv4Addr;

use bytes::{Bytes, BytesMut};
use haproxy_peers_sidecar::codec::{
    DataType, DataTypeSet, FrameCodec, Key, KeyType, Message, RxState, TableDefinition, Update,
    Value,
};
use haproxy_peers_sidecar::session::{
    Direction, Output, Role, Session, SessionConfig, SessionEvent, Timers,
};
use haproxy_peers_sidecar::store::{Link, Replica, ReplicaConfig};
use tokio_util::codec::Decoder;

/// A sidecar: its replica, its clock (`offset` ahead of the world's) and its session with the
/// other member, if connected.
struct Member {
    name: &'static str,
    store: Replica,
    offset: u64,
    session: Option<Session>,
    frames: FrameCodec,
    rx: RxState,
    /// Updates received from the other member, in order.
    received: Vec<Update>,
}

impl Member {
    fn new(name: &'static str, offset: u64) -> Member {
        let mut store = Replica::new(ReplicaConfig::default());
        let types = DataTypeSet::of(&[DataType::Gpc0]);
        let def = TableDefinition {
            table_id: 1,
            name: Bytes::from_static(b"t"),
            key_type: KeyType::Ipv4,
            key_len: 4,
            data_types: types,
            expire_ms: Some(60_000),
            params: Vec::new(),
            trailing: Bytes::new(),
        };
        store.define(&def, Link::Local).unwrap();
        Member {
            name,
            store,
            offset,
            session: None,
            frames: FrameCodec::new(),
            rx: RxState::new(),
            received: Vec::new(),
        }
    }

    fn now(&self, world: u64) -> u64 {
        world + self.offset
    }

    /// A new session with `other` (after the handshake), on the same replica.
    fn connect(&mut self, other: &str, world: u64) {
        let config = SessionConfig {
            role: Role::Mesh,
            direction: Direction::Outgoing,
            remote_name: other.to_owned(),
            remote_pid: None,
            timers: Timers::default(),
        };
        let now = self.now(world);
        self.session = Session::new(config, &mut self.store, now);
        self.frames = FrameCodec::new();
        self.rx = RxState::new();
    }

    /// The connection is gone: nothing more is sent or received on it (acks in flight lost).
    fn cut(&mut self) {
        self.session = None;
    }

    /// Its HAProxy sets gpc0 of `key` at world time `w`.
    fn write(&mut self, key: u8, gpc0: u32, w: u64) {
        let t = self.store.table(b"t").unwrap();
        let u = Update {
            table_id: 1,
            update_id: 0,
            id_on_wire: true,
            expire_ms: None,
            key: ip(key),
            values: vec![(DataType::Gpc0, Value::Uint(gpc0))],
            trailing: Bytes::new(),
        };
        let now = self.now(w);
        assert!(self.store.apply(t, &u, Link::Local, now).unwrap().changed);
    }

    fn poll(&mut self, w: u64) -> Vec<u8> {
        let now = self.now(w);
        let session = self.session.as_mut().unwrap();
        let mut bytes = Vec::new();
        for o in session.poll(&mut self.store, now, 200) {
            match o {
                Output::Send(b) => bytes.extend_from_slice(&b),
                Output::Close(r) => panic!("{} closed: {r}", self.name),
                Output::Event(SessionEvent::UpdateRefused { table, error }) => {
                    panic!("{} refused an update of {table}: {error}", self.name)
                }
                Output::Event(_) => {}
            }
        }
        bytes
    }

    fn feed(&mut self, bytes: &[u8], w: u64) {
        let now = self.now(w);
        let mut inbox = BytesMut::from(bytes);
        while let Some(frame) = self.frames.decode(&mut inbox).unwrap() {
            let msg = self.rx.decode(&frame).unwrap();
            if let Message::Update(u) = &msg {
                self.received.push(u.clone());
            }
            let session = self.session.as_mut().unwrap();
            for o in session.on_message(msg, &mut self.store, now) {
                assert!(!matches!(o, Output::Close(_)), "{}: {o:?}", self.name);
            }
        }
        assert!(inbox.is_empty(), "{} left a partial frame", self.name);
    }

    fn gpc0(&self, key: u8, w: u64) -> Option<u32> {
        let e = self.store.lookup(b"t", &ip(key), self.now(w))?;
        match e.values[0].value {
            Value::Uint(v) => Some(v),
            _ => None,
        }
    }

    /// What this sidecar pushes to its own HAProxy now: (key, gpc0).
    fn pushed_to_haproxy(&mut self, w: u64) -> Vec<(Key, Option<Value>)> {
        let (t, now) = (self.store.table(b"t").unwrap(), self.now(w));
        let batch = self.store.updates_for(Link::Local, t, 100, now);
        batch
            .updates
            .into_iter()
            .map(|o| {
                assert_eq!(o.update.expire_ms, None, "HAProxy gets untimed pushes");
                let v = o.update.value(DataType::Gpc0).cloned();
                (o.update.key, v)
            })
            .collect()
    }
}

fn ip(n: u8) -> Key {
    Key::Ipv4(Ipv4Addr::new(10, 0, 0, n))
}

/// Both poll, then both read what the other sent: the two directions cross, as on a real
/// connection. Repeats until nothing flows; returns how many rounds carried bytes.
fn cross(a: &mut Member, b: &mut Member, w: &mut u64) -> usize {
    for round in 0..50 {
        let (x, y) = (a.poll(*w), b.poll(*w));
        *w += 10;
        b.feed(&x, *w);
        a.feed(&y, *w);
        if x.is_empty() && y.is_empty() {
            return round;
        }
    }
    panic!("the two sessions never went quiet");
}

#[test]
fn crossing_updates_after_a_reconnect_converge_on_the_later_write() {
    let mut a = Member::new("a", 0);
    let mut b = Member::new("b", 987_654_321);
    let mut w = 1_000;
    a.connect("b", w);
    b.connect("a", w);
    a.write(1, 1, w);
    cross(&mut a, &mut b, &mut w);
    assert_eq!(b.gpc0(1, w), Some(1));

    // Partition. Both HAProxies keep writing: key 1 on both sides (b later), a key each.
    a.cut();
    b.cut();
    a.write(1, 10, 5_000);
    a.write(2, 20, 5_100);
    b.write(1, 11, 7_000);
    b.write(3, 30, 7_100);
    let (a_before, b_before) = (a.received.len(), b.received.len());

    // Heal: new sessions resume after the last acks, and push at the same time.
    w = 20_000;
    a.connect("b", w);
    b.connect("a", w);
    let rounds = cross(&mut a, &mut b, &mut w);
    for m in [&a, &b] {
        assert_eq!(
            m.gpc0(1, w),
            Some(11),
            "{}: key 1 is b's later write",
            m.name
        );
        assert_eq!(m.gpc0(2, w), Some(20), "{}", m.name);
        assert_eq!(m.gpc0(3, w), Some(30), "{}", m.name);
    }
    // a sent its two keys; b sent its two, then key 1 once more after refusing a's older
    // one (a, which had taken b's value meanwhile, takes it as a no-op and sends nothing).
    let keys = |m: &Member, from: usize| -> Vec<Key> {
        m.received[from..].iter().map(|u| u.key.clone()).collect()
    };
    assert_eq!(keys(&b, b_before), [ip(1), ip(2)]);
    assert_eq!(keys(&a, a_before), [ip(1), ip(3), ip(1)]);
    assert!(
        a.received[a_before..]
            .iter()
            .chain(&b.received[b_before..])
            .all(|u| u.expire_ms.is_some()),
        "pushes between members carry write times"
    );
    assert!(rounds <= 3, "{rounds} rounds");
    let stale = |m: &Member| m.store.tables_view()[0].stats.stale_rejected;
    assert_eq!((stale(&a), stale(&b)), (0, 1));
    // Each HAProxy is sent what it lacks: a's gets b's key 1 and key 3; b's gets key 2 only
    // (it wrote key 1's winning value itself).
    assert_eq!(
        a.pushed_to_haproxy(w),
        [
            (ip(1), Some(Value::Uint(11))),
            (ip(3), Some(Value::Uint(30)))
        ]
    );
    assert_eq!(b.pushed_to_haproxy(w), [(ip(2), Some(Value::Uint(20)))]);
}
