//! Conflicts: last writer wins by write time. Several replicas, each on its own clock, exchange
//! their normal pushes the way sessions do (apply, then ack), so these tests follow whole
//! conversations: crossing updates after a heal, stale senders, expire differences, lessons.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::tests::{def, ip, upd, T};
use super::*;
use crate::codec::{DataType, Key, KeyType, TableDefinition, Update, Value};

const E: u64 = 60_000;

/// One member: its replica (table `t` defined by its own HAProxy) and its clock, which reads
/// `offset` more than the world's: the members' clocks have nothing in common.
struct Member {
    name: &'static str,
    r: Replica,
    t: TableIdx,
    offset: u64,
    expire: u64,
}

impl Member {
    fn new(name: &'static str, expire: u64, offset: u64) -> Member {
        let mut r = Replica::new(ReplicaConfig::default());
        let t = r.define(&table(expire), Link::Local).unwrap().table;
        Member {
            name,
            r,
            t,
            offset,
            expire,
        }
    }

    fn now(&self, world: u64) -> u64 {
        world + self.offset
    }

    fn link(&mut self, other: &str) -> Link {
        self.r.peer(other).unwrap()
    }

    /// Its HAProxy sets gpc0 of `key` at world time `w` (an untimed push, as HAProxy sends).
    fn write(&mut self, key: Key, gpc0: u32, w: u64) {
        let now = self.now(w);
        let a = self
            .r
            .apply(self.t, &upd(key, g(gpc0)), Link::Local, now)
            .unwrap();
        assert!(a.changed);
    }

    fn gpc0(&self, key: &Key, w: u64) -> Option<u32> {
        let e = self.r.lookup(b"t", key, self.now(w))?;
        match e.values[0].value {
            Value::Uint(u) => Some(u),
            _ => None,
        }
    }

    fn stale_rejected(&self) -> u64 {
        self.r.tables_view()[0].stats.stale_rejected
    }
}

fn table(expire: u64) -> TableDefinition {
    let mut d = def("t", KeyType::Ipv4, 4, T);
    d.expire_ms = Some(expire);
    d
}

fn g(n: u32) -> Vec<(DataType, Value)> {
    vec![(DataType::Gpc0, Value::Uint(n))]
}

/// Both members know each other's definition, as after the definitions of a session.
fn connect(a: &mut Member, b: &mut Member) {
    let (la, lb) = (b.link(a.name), a.link(b.name));
    b.r.define(&table(a.expire), la).unwrap();
    a.r.define(&table(b.expire), lb).unwrap();
}

/// `from`'s normal pushes to member `to` at world time `sent`.
fn take(from: &mut Member, to: &str, sent: u64) -> Vec<Update> {
    let (link, t, now) = (from.link(to), from.t, from.now(sent));
    let batch = from.r.updates_for(link, t, 1_000, now);
    batch.updates.into_iter().map(|o| o.update).collect()
}

/// `to` applies `updates` from `from` arriving at world time `arrive`, and acks them. Returns
/// what it made of each (key, result).
fn deliver(
    from: &mut Member,
    to: &mut Member,
    updates: &[Update],
    arrive: u64,
) -> Vec<(Key, Applied)> {
    let (from_link, now) = (to.link(from.name), to.now(arrive));
    let out = updates
        .iter()
        .map(|u| (u.key.clone(), to.r.apply(to.t, u, from_link, now).unwrap()))
        .collect();
    if let Some(last) = updates.last() {
        let (link, t) = (from.link(to.name), from.t);
        from.r.ack(link, t, last.update_id);
    }
    out
}

/// [`take`] then [`deliver`].
fn push(from: &mut Member, to: &mut Member, sent: u64, arrive: u64) -> Vec<(Key, Applied)> {
    let updates = take(from, to.name, sent);
    deliver(from, to, &updates, arrive)
}

fn keys(pushed: &[(Key, Applied)]) -> Vec<Key> {
    pushed.iter().map(|(k, _)| k.clone()).collect()
}

#[test]
fn a_later_write_from_a_member_always_applies() {
    let mut a = Member::new("a", E, 0);
    let mut b = Member::new("b", E, 7_000_000);
    connect(&mut a, &mut b);
    a.write(ip(1), 1, 10_000);
    assert!(push(&mut a, &mut b, 10_000, 10_030)[0].1.created);
    // b's HAProxy counts on from a's value, a moment later: a takes it.
    b.write(ip(1), 2, 10_100);
    let got = push(&mut b, &mut a, 10_100, 10_130);
    assert!(got[0].1.changed && !got[0].1.rejected);
    assert_eq!(a.gpc0(&ip(1), 10_130), Some(2));
    // Transit delay counts as age not yet seen, so it favours the incoming update: b writes
    // 10 ms before a's HAProxy does, but arrives 40 ms later, and is taken.
    b.write(ip(1), 3, 20_000);
    a.write(ip(1), 4, 20_010);
    let got = push(&mut b, &mut a, 20_000, 20_040);
    assert!(got[0].1.changed);
    assert_eq!(a.gpc0(&ip(1), 20_040), Some(3));
    // An update without a write time (an older sidecar's 0x80) was written on arrival.
    let bl = a.link("b");
    let now = a.now(20_050);
    assert!(a.r.apply(a.t, &upd(ip(1), g(5)), bl, now).unwrap().changed);
    assert_eq!(a.stale_rejected(), 0);
}

#[test]
fn crossing_updates_after_a_heal_converge_on_the_later_write() {
    let mut a = Member::new("a", E, 0);
    let mut b = Member::new("b", E, 123_456_789);
    connect(&mut a, &mut b);
    // Partition: each side's HAProxy writes the same key, b's later; and one key of its own.
    a.write(ip(1), 10, 5_000);
    a.write(ip(2), 20, 5_500);
    b.write(ip(1), 11, 8_000);
    b.write(ip(3), 30, 8_500);
    // Heal at 12 s: each side resumes pushing from the other's last ack; the pushes cross.
    let (ab, ba) = (take(&mut a, "b", 12_000), take(&mut b, "a", 12_000));
    let to_b = deliver(&mut a, &mut b, &ab, 12_020);
    let to_a = deliver(&mut b, &mut a, &ba, 12_020);
    assert_eq!(keys(&to_b), [ip(1), ip(2)]);
    assert!(
        ab.iter().chain(&ba).all(|u| u.expire_ms.is_some()),
        "pushes between members carry write times"
    );
    assert!(to_b[0].1.rejected, "a's key 1 was written before b's");
    assert!(to_b[1].1.created);
    assert!(to_a.iter().all(|(_, x)| x.changed && !x.rejected));
    // b sends its newer value once more (a already took it: equal, no change, no echo).
    let again = push(&mut b, &mut a, 12_020, 12_040);
    assert_eq!(keys(&again), [ip(1)]);
    assert_eq!(again[0].1, Applied::default());
    assert!(push(&mut a, &mut b, 12_040, 12_060).is_empty());
    assert!(push(&mut b, &mut a, 12_060, 12_080).is_empty());
    for m in [&a, &b] {
        assert_eq!(m.gpc0(&ip(1), 12_100), Some(11), "{}", m.name);
        assert_eq!(m.gpc0(&ip(2), 12_100), Some(20), "{}", m.name);
        assert_eq!(m.gpc0(&ip(3), 12_100), Some(30), "{}", m.name);
    }
    assert_eq!((a.stale_rejected(), b.stale_rejected()), (0, 1));
    // Both HAProxies end on the later write: a's gets b's value; b's already has it.
    let to_haproxy = |m: &mut Member, w| {
        let now = m.now(w);
        let t = m.t;
        m.r.updates_for(Link::Local, t, 100, now).updates
    };
    let a_local = to_haproxy(&mut a, 12_100);
    assert_eq!(
        a_local
            .iter()
            .map(|o| o.update.key.clone())
            .collect::<Vec<_>>(),
        [ip(1), ip(3)]
    );
    assert!(
        a_local.iter().all(|o| o.update.expire_ms.is_none()),
        "HAProxy gets untimed pushes, as always"
    );
    assert_eq!(
        to_haproxy(&mut b, 12_100)
            .iter()
            .map(|o| o.update.key.clone())
            .collect::<Vec<_>>(),
        [ip(2)]
    );
}

#[test]
fn pushes_to_members_carry_write_times() {
    let mut a = Member::new("a", E, 0);
    let b = a.link("b");
    a.write(ip(1), 1, 1_000);
    let t = a.t;
    let out = a.r.updates_for(b, t, 10, 4_000).updates;
    assert_eq!(out[0].update.expire_ms, Some(57_000), "written 3 s ago");
}

#[test]
fn a_stale_sender_gets_the_newer_value_from_whoever_holds_it() {
    // b wrote key 1 and c learned it; b is gone. a, cut off, wrote it earlier.
    let mut a = Member::new("a", E, 0);
    let mut c = Member::new("c", E, 50_000);
    connect(&mut a, &mut c);
    let bl = c.link("b");
    c.r.define(&table(E), bl).unwrap();
    a.write(ip(1), 1, 1_000);
    let now = c.now(2_000);
    let mut from_b = upd(ip(1), g(2));
    from_b.expire_ms = Some(59_990);
    c.r.apply(c.t, &from_b, bl, now).unwrap();
    // c's HAProxy was already sent b's value.
    let t = c.t;
    assert_eq!(c.r.updates_for(Link::Local, t, 10, now).updates.len(), 1);
    let got = push(&mut a, &mut c, 3_000, 3_010);
    assert!(got[0].1.rejected);
    assert_eq!(c.gpc0(&ip(1), 3_010), Some(2));
    // c sends b's value to a (and would to every member), not again to its own HAProxy.
    let now = c.now(3_010);
    assert!(c.r.updates_for(Link::Local, t, 10, now).updates.is_empty());
    assert_eq!(
        c.r.lookup(b"t", &ip(1), now).unwrap().origin,
        "b",
        "re-sent with its writer kept"
    );
    // ... so that it goes to every member but its writer, which holds it or a newer write
    // (an echo, its write time inflated by two transits, could undo that newer write).
    assert!(c.r.updates_for(bl, t, 10, now).updates.is_empty());
    let back = push(&mut c, &mut a, 3_010, 3_020);
    assert!(back[0].1.changed && !back[0].1.rejected);
    assert_eq!(a.gpc0(&ip(1), 3_020), Some(2));
    // a keeps it: it came from c, so a sends it to its own HAProxy only.
    assert!(push(&mut a, &mut c, 3_020, 3_030).is_empty());
    assert_eq!(a.stale_rejected() + c.stale_rejected(), 1);
}

#[test]
fn a_value_refused_before_the_local_haproxy_got_it_still_goes_there() {
    let mut a = Member::new("a", E, 0);
    let mut c = Member::new("c", E, 0);
    connect(&mut a, &mut c);
    let bl = c.link("b");
    c.r.define(&table(E), bl).unwrap();
    a.write(ip(1), 1, 1_000);
    let mut from_b = upd(ip(1), g(2));
    from_b.expire_ms = Some(59_990);
    c.r.apply(c.t, &from_b, bl, 2_000).unwrap();
    // a's stale update arrives before c pushed b's value to its HAProxy.
    assert!(push(&mut a, &mut c, 3_000, 3_010)[0].1.rejected);
    let t = c.t;
    let local = c.r.updates_for(Link::Local, t, 10, 3_010).updates;
    assert_eq!(local.len(), 1);
    assert_eq!(local[0].update.value(DataType::Gpc0), Some(&Value::Uint(2)));
    assert_eq!(push(&mut c, &mut a, 3_010, 3_020).len(), 1);
    assert_eq!(a.gpc0(&ip(1), 3_020), Some(2));
}

#[test]
fn three_members_healing_at_once_settle_without_a_relay_storm() {
    let mut m = [
        Member::new("a", E, 0),
        Member::new("b", E, 1_000_000),
        Member::new("c", E, 2_000_000),
    ];
    {
        let [a, b, c] = &mut m;
        connect(a, b);
        connect(a, c);
        connect(b, c);
    }
    // Every member writes key 1 during a three-way partition, c last; and a key of its own.
    for (i, mb) in m.iter_mut().enumerate() {
        let i = i as u32;
        mb.write(ip(1), 100 + i, 10_000 + u64::from(i) * 1_000);
        mb.write(ip(10 + i as u8), i, 10_000);
    }
    // Heal: rounds in which every member pushes to every other one at once (the pushes of a
    // round cross), until nothing moves.
    let mut w = 20_000;
    let mut per_round = Vec::new();
    loop {
        let mut flights = Vec::new();
        for i in 0..3 {
            for j in (0..3).filter(|&j| j != i) {
                let to = m[j].name;
                flights.push((i, j, take(&mut m[i], to, w)));
            }
        }
        let mut moved = 0;
        for (i, j, updates) in flights {
            let (from, to) = pair(&mut m, i, j);
            moved += deliver(from, to, &updates, w + 15).len();
        }
        w += 20;
        per_round.push(moved);
        if moved == 0 {
            break;
        }
        assert!(per_round.len() < 10, "still pushing: {per_round:?}");
    }
    // Round 1: key 1 and an own key from each member to the two others; round 2: c re-sends
    // key 1, which a and b already took from c in round 1 (equal: no change, no echo).
    assert_eq!(per_round, [12, 2, 0]);
    for mb in &m {
        assert_eq!(mb.gpc0(&ip(1), w), Some(102), "{}", mb.name);
        for k in 10..13u8 {
            assert_eq!(mb.gpc0(&ip(k), w), Some(u32::from(k - 10)), "{}", mb.name);
        }
    }
    let rejected: Vec<u64> = m.iter().map(Member::stale_rejected).collect();
    assert_eq!(
        rejected,
        [0, 1, 2],
        "b refuses a's key 1, c refuses a's and b's; each stale update once"
    );
}

/// Two distinct members of `m`, `i` sending to `j`.
fn pair(m: &mut [Member; 3], i: usize, j: usize) -> (&mut Member, &mut Member) {
    assert_ne!(i, j);
    let (lo, hi) = m.split_at_mut(i.max(j));
    let (x, y) = (&mut lo[i.min(j)], &mut hi[0]);
    if i < j {
        (x, y)
    } else {
        (y, x)
    }
}

#[test]
fn members_with_another_expire_are_compared_by_write_time() {
    // A rollout changing `expire`: a keeps 60 s, b already has 20 s.
    let mut a = Member::new("a", E, 0);
    let mut b = Member::new("b", 20_000, 900_000);
    connect(&mut a, &mut b);
    a.write(ip(1), 1, 10_000);
    b.write(ip(1), 2, 15_000);
    // By lifetime b's would look older (15 + 20 < 10 + 60 s); by write time it is newer.
    let to_a = push(&mut b, &mut a, 16_000, 16_000);
    assert!(to_a[0].1.changed);
    let to_b = push(&mut a, &mut b, 16_000, 16_000);
    assert!(
        to_b.is_empty(),
        "a took b's value: it is b's now, not sent back"
    );
    assert_eq!(a.gpc0(&ip(1), 16_000), Some(2));
    // a keeps it for its own expire from b's write: 15 + 60 − 16 s.
    let e = a.r.lookup(b"t", &ip(1), a.now(16_000)).unwrap();
    assert_eq!(e.expires_in_ms, Some(59_000));
    // The other way: a's later write beats b's older one at b, and lives b's 20 s there.
    b.write(ip(2), 2, 17_000);
    a.write(ip(2), 1, 18_000);
    let to_b = push(&mut a, &mut b, 18_500, 18_500);
    assert!(to_b[0].1.changed);
    let e = b.r.lookup(b"t", &ip(2), b.now(18_500)).unwrap();
    assert_eq!(e.expires_in_ms, Some(19_500));
    // A write older than b's expire is expired there on arrival: not stored.
    a.write(ip(3), 1, 20_000);
    let to_b = push(&mut a, &mut b, 45_000, 45_000);
    assert_eq!(keys(&to_b), [ip(3)]);
    assert_eq!(to_b[0].1, Applied::default());
    assert_eq!(b.gpc0(&ip(3), 45_000), None);
}

#[test]
fn a_new_local_expire_keeps_write_times() {
    let mut a = Member::new("a", E, 0);
    a.write(ip(1), 1, 10_000);
    a.r.define(&table(30_000), Link::Local).unwrap();
    let e = a.r.lookup(b"t", &ip(1), 12_000).unwrap();
    assert_eq!(
        e.expires_in_ms,
        Some(28_000),
        "written at 10 s, expires 30 s later"
    );
}

#[test]
fn a_lesson_into_a_non_empty_replica_keeps_newer_entries_and_sends_them_back() {
    // The teacher holds key 1 and 2 from long ago, key 3 that the learner lacks.
    let mut teacher = Member::new("teacher", E, 0);
    let mut learner = Member::new("learner", E, 333);
    connect(&mut teacher, &mut learner);
    for n in 1..=3u8 {
        teacher.write(ip(n), 1, 1_000);
    }
    // The learner's HAProxy wrote key 1 later; key 2 it got later from another member.
    learner.write(ip(1), 9, 5_000);
    let x = learner.link("x");
    learner.r.define(&table(E), x).unwrap();
    let mut from_x = upd(ip(2), g(8));
    from_x.expire_ms = Some(E as u32);
    let now = learner.now(5_000);
    learner.r.apply(learner.t, &from_x, x, now).unwrap();
    let from_teacher = learner.link("teacher");
    let to_learner = teacher.link("learner");
    let lesson = teacher
        .r
        .lesson_batch(teacher.t, 0, 100, teacher.now(6_000));
    let now = learner.now(6_010);
    let results: Vec<Applied> = lesson
        .updates
        .iter()
        .map(|o| {
            learner
                .r
                .apply(learner.t, &o.update, from_teacher, now)
                .unwrap()
        })
        .collect();
    assert!(results[0].rejected && results[1].rejected && results[2].created);
    teacher.r.taught(to_learner, teacher.t, lesson.last);
    assert_eq!(learner.gpc0(&ip(1), 6_010), Some(9));
    assert_eq!(learner.gpc0(&ip(2), 6_010), Some(8));
    // Both newer entries go back to the teacher, which takes them.
    let back = push(&mut learner, &mut teacher, 6_020, 6_030);
    assert_eq!(keys(&back), [ip(1), ip(2)]);
    assert!(back.iter().all(|(_, a)| a.changed));
    assert_eq!(teacher.gpc0(&ip(1), 6_030), Some(9));
    assert_eq!(teacher.gpc0(&ip(2), 6_030), Some(8));
    assert!(
        push(&mut teacher, &mut learner, 6_030, 6_040).is_empty(),
        "the teacher does not echo them"
    );
}

#[test]
fn ties_apply_equal_values_change_nothing_and_only_haproxy_s_writes_always_win() {
    let mut a = Member::new("a", E, 0);
    let (x, y) = (a.link("x"), a.link("y"));
    a.r.define(&table(E), x).unwrap();
    a.r.define(&table(E), y).unwrap();
    a.write(ip(1), 1, 10_000);
    // Same write time (remaining = expire on arrival at the same ms), other value: taken.
    let mut u = upd(ip(1), g(2));
    u.expire_ms = Some(E as u32);
    assert!(a.r.apply(a.t, &u, x, 10_000).unwrap().changed);
    // Older, same value: nothing to do, nothing refused.
    u.expire_ms = Some(50_000);
    assert_eq!(a.r.apply(a.t, &u, y, 10_000).unwrap(), Applied::default());
    assert_eq!(a.stale_rejected(), 0);
    // Older, another value: refused.
    u.values = g(3);
    assert!(a.r.apply(a.t, &u, y, 10_000).unwrap().rejected);
    assert_eq!(a.gpc0(&ip(1), 10_000), Some(2));
    assert_eq!(a.stale_rejected(), 1);
    // The local HAProxy's table sent as a lesson (timed) is what it holds, not a write: an
    // entry older than the replica's is refused like a member's, and queued back to HAProxy
    // (which holds the older value, whatever it was pushed before).
    let t = a.t;
    // HAProxy was pushed everything so far.
    assert!(!a
        .r
        .updates_for(Link::Local, t, 10, 10_000)
        .updates
        .is_empty());
    u.values = g(4);
    assert!(a.r.apply(a.t, &u, Link::Local, 10_000).unwrap().rejected);
    assert_eq!(a.gpc0(&ip(1), 10_000), Some(2));
    assert_eq!(a.stale_rejected(), 2);
    let to_haproxy = a.r.updates_for(Link::Local, t, 10, 10_000).updates;
    assert!(
        to_haproxy
            .iter()
            .any(|o| o.update.key == ip(1) && o.update.values.first() == g(2).first()),
        "the newer value goes back to HAProxy"
    );
    // Its pushes (untimed) are writes it made and already applied: always taken.
    u.expire_ms = None;
    u.values = g(5);
    assert!(a.r.apply(a.t, &u, Link::Local, 10_000).unwrap().changed);
    assert_eq!(a.gpc0(&ip(1), 10_000), Some(5));
}

#[test]
fn a_member_s_updates_follow_each_other_whatever_the_jitter() {
    let mut a = Member::new("a", E, 0);
    let mut b = Member::new("b", E, 40_000);
    connect(&mut a, &mut b);
    // Two writes 1 ms apart; the first spends 30 ms in transit, the second 5 ms, so the
    // second looks 24 ms older. It follows the first on the same stream: it is newer.
    a.write(ip(1), 1, 1_000);
    assert!(push(&mut a, &mut b, 1_000, 1_030)[0].1.created);
    a.write(ip(1), 2, 1_001);
    let got = push(&mut a, &mut b, 1_001, 1_006);
    assert!(got[0].1.changed && !got[0].1.rejected);
    assert_eq!(b.gpc0(&ip(1), 1_006), Some(2));
    // Nothing goes back to a, whose HAProxy holds the latest value.
    assert!(push(&mut b, &mut a, 1_010, 1_020).is_empty());
}

#[test]
fn tables_without_expire_keep_arrival_order() {
    let mut a = Member::new("a", 0, 0);
    let mut b = Member::new("b", 0, 5_000);
    connect(&mut a, &mut b);
    a.write(ip(1), 1, 1_000);
    b.write(ip(1), 2, 2_000);
    // No write time on the wire: pushes stay untimed, and crossing updates swap the values.
    let (ab, ba) = (take(&mut a, "b", 3_000), take(&mut b, "a", 3_000));
    assert!(ab.iter().chain(&ba).all(|u| u.expire_ms.is_none()));
    let to_b = deliver(&mut a, &mut b, &ab, 3_010);
    let to_a = deliver(&mut b, &mut a, &ba, 3_010);
    assert!(to_b[0].1.changed && to_a[0].1.changed);
    assert_eq!(a.gpc0(&ip(1), 3_010), Some(2));
    assert_eq!(
        b.gpc0(&ip(1), 3_010),
        Some(1),
        "documented: stays different"
    );
    assert_eq!(a.stale_rejected() + b.stale_rejected(), 0);
}
