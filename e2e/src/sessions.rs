//! The fleet's mesh sessions as every sidecar's `/peers` shows them, and the check that none
//! was replaced between two moments: what "no connection failed" means while certificates
//! change or an intruder knocks.
//!
//! A new session of the same pair shows in at least one of: a new TCP connection (the
//! inbound side's `remote_addr` holds the caller's ephemeral port), the caller's pid,
//! `reconnects`, `collisions`, `silent_closes`, `protocol_errors`, or a later handshake.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use haproxy_peers_sidecar::admin::views::{Direction, PeerRole, PeerView, SessionState};

use crate::fleet::Fleet;
use crate::wait::poll;
use crate::Result;

/// How far apart two readings of one handshake's time may be: each reading is
/// `read_at - last_handshake_ms_ago`, and a reading takes a probe run, slow on a loaded
/// machine. A session replaced sooner than this after the one it replaces still shows in its
/// mark (the inbound side's new port, the dialing side's reconnect).
const HANDSHAKE_SLACK: Duration = Duration::from_secs(5);

/// One sidecar's view of its session with one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub direction: Option<Direction>,
    pub remote_addr: Option<String>,
    pub pid: Option<u32>,
    pub reconnects: u64,
    pub collisions: u64,
    pub silent_closes: u64,
    pub protocol_errors: u64,
}

/// A session as read at one moment.
#[derive(Debug, Clone)]
pub struct Reading {
    pub mark: Mark,
    /// When the handshake happened, as read (see [`HANDSHAKE_SLACK`]).
    pub handshake_at: Option<Instant>,
}

/// Every established member session of every pod, by (pod, member).
#[derive(Debug, Clone, Default)]
pub struct Sessions(pub BTreeMap<(String, String), Reading>);

impl Sessions {
    /// Reads every pod's `/peers`.
    pub fn read(fleet: &Fleet) -> Result<Sessions> {
        let mut out = BTreeMap::new();
        for pod in fleet.pod_names() {
            let snap = fleet.admin(&pod)?;
            let read_at = Instant::now();
            for peer in snap.peers.iter().flat_map(|p| &p.peers) {
                if peer.role == PeerRole::Member && peer.state == SessionState::Established {
                    out.insert((pod.clone(), peer.name.clone()), reading(peer, read_at));
                }
            }
        }
        Ok(Sessions(out))
    }

    /// Waits until every pod has an established session with every other pod and a second
    /// reading shows the same sessions (no dial still in flight replaced one); returns that
    /// reading.
    pub fn settled(fleet: &Fleet, timeout: Duration) -> Result<Sessions> {
        let pods = fleet.pod_names();
        let full = pods.len() * pods.len().saturating_sub(1);
        let mut last: Option<Sessions> = None;
        poll(
            "every mesh session to be established and stable",
            timeout,
            || {
                let now = Sessions::read(fleet)?;
                if now.0.len() != full {
                    last = None;
                    return Ok(None);
                }
                let stable = last
                    .as_ref()
                    .is_some_and(|l| l.changes(&now, |_, _| true).is_empty());
                last = Some(now.clone());
                Ok(stable.then_some(now))
            },
        )
    }

    /// The pairs (pod, member) with an established session.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.0.keys().cloned().collect()
    }

    /// What differs in `later` for the sessions of `self` that `keep` selects: a session
    /// gone, replaced or disturbed, one line each. Empty: every one is the same session.
    pub fn changes(&self, later: &Sessions, keep: impl Fn(&str, &str) -> bool) -> Vec<String> {
        self.0
            .keys()
            .filter(|(pod, member)| keep(pod, member))
            .filter_map(|(pod, member)| self.replaced(later, pod, member))
            .collect()
    }

    /// Why `pod`'s session with `member` in `later` is not the one in `self` (gone, replaced
    /// or disturbed); `None` when it is the same session.
    pub fn replaced(&self, later: &Sessions, pod: &str, member: &str) -> Option<String> {
        let key = (pod.to_string(), member.to_string());
        let Some(before) = self.0.get(&key) else {
            return Some(format!("{pod}: no session with {member} to compare"));
        };
        let Some(after) = later.0.get(&key) else {
            return Some(format!("{pod}: the session with {member} is gone"));
        };
        if after.mark != before.mark {
            return Some(format!(
                "{pod}: the session with {member} changed: {:?} -> {:?}",
                before.mark, after.mark
            ));
        }
        let (Some(b), Some(a)) = (before.handshake_at, after.handshake_at) else {
            return None;
        };
        let apart = if a > b { a - b } else { b - a };
        (apart > HANDSHAKE_SLACK).then(|| {
            format!(
                "{pod}: the session with {member} had a new handshake ({apart:?} away from the \
                 one read before)"
            )
        })
    }
}

fn reading(peer: &PeerView, read_at: Instant) -> Reading {
    Reading {
        mark: Mark {
            direction: peer.direction,
            remote_addr: peer.remote_addr.clone(),
            pid: peer.pid,
            reconnects: peer.reconnects,
            collisions: peer.collisions,
            silent_closes: peer.silent_closes,
            protocol_errors: peer.protocol_errors,
        },
        handshake_at: peer
            .last_handshake_ms_ago
            .and_then(|ms| read_at.checked_sub(Duration::from_millis(ms))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haproxy_peers_sidecar::admin::views::LastStatus;

    fn view(remote: &str, ms_ago: u64) -> PeerView {
        PeerView {
            name: "edge-1".into(),
            role: PeerRole::Member,
            state: SessionState::Established,
            direction: Some(Direction::Inbound),
            address: "edge-1.edge-peers.web.svc:10000".into(),
            remote_addr: Some(remote.into()),
            pid: Some(42),
            last_status: LastStatus::Esta,
            last_handshake_ms_ago: Some(ms_ago),
            last_message_ms_ago: Some(10),
            last_sync: None,
            heartbeats_tx: 0,
            heartbeats_rx: 0,
            silent_closes: 0,
            reconnects: 0,
            protocol_errors: 0,
            collisions: 0,
            last_error: None,
            tables: Vec::new(),
        }
    }

    fn sessions(view: &PeerView, read_at: Instant) -> Sessions {
        Sessions(BTreeMap::from([(
            ("edge-0".to_string(), "edge-1".to_string()),
            reading(view, read_at),
        )]))
    }

    #[test]
    fn the_same_session_read_twice_is_kept_and_a_new_one_is_not() {
        let t0 = Instant::now() + Duration::from_secs(3_600);
        let first = sessions(&view("10.213.0.12:40000", 5_000), t0);
        // Read 60 s later: the same handshake, a minute older; the error field may change.
        let mut same = view("10.213.0.12:40000", 65_000);
        same.last_error = Some("a refused impostor".into());
        same.heartbeats_rx = 20;
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            first.replaced(&sessions(&same, later), "edge-0", "edge-1"),
            None
        );
        assert!(first
            .changes(&sessions(&same, later), |_, _| true)
            .is_empty());

        // A new connection from the same peer: another ephemeral port.
        let reconnected = view("10.213.0.12:40002", 65_000);
        assert!(first
            .replaced(&sessions(&reconnected, later), "edge-0", "edge-1")
            .is_some());
        // Same address and counters, but a handshake 30 s after the first one.
        let rehandshaken = view("10.213.0.12:40000", 35_000);
        let why = first
            .replaced(&sessions(&rehandshaken, later), "edge-0", "edge-1")
            .unwrap();
        assert!(why.contains("new handshake"), "{why}");
        // A reconnect counted, or the session gone.
        let mut counted = view("10.213.0.12:40000", 65_000);
        counted.reconnects = 1;
        assert!(first
            .replaced(&sessions(&counted, later), "edge-0", "edge-1")
            .is_some());
        let gone = Sessions::default();
        assert_eq!(first.changes(&gone, |_, _| true).len(), 1);
        assert!(first.changes(&gone, |pod, _| pod != "edge-0").is_empty());
    }
}
