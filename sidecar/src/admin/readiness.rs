//! Readiness as named blockers: facts about the HAProxy link, the replica and the TLS material
//! in, the reasons the pod must not take traffic yet out, each worded for the person reading
//! `kubectl describe pod` or `/readyz`. Pure: the runtime gathers the facts.
//!
//! The pod is Ready once the replica is complete (learned from a member, no member to learn
//! from, or the resync timeout passed) **and** the current HAProxy process has confirmed the
//! sidecar's lesson: before that, HAProxy's ACLs would read an empty or partial table.

use std::net::SocketAddr;

use super::text::duration;
use super::views::{Blocker, BlockerKind, Readiness, ReplicaSync};

/// Everything readiness depends on, as observed by the runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The pod name: HAProxy's local peer name must be this.
    pub pod: String,
    /// The sidecar's loopback listener that HAProxy calls.
    pub local_listen: SocketAddr,
    /// HAProxy's own peers listener.
    pub haproxy_addr: SocketAddr,
    pub haproxy: HaproxyLink,
    pub replica: ReplicaSync,
    pub tls: TlsState,
    /// Why this pod cannot join the mesh yet (it is not listed in `members.yaml`): the
    /// sidecar keeps running and waits for the file to change.
    pub membership: Option<String>,
}

/// The link with the local HAProxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaproxyLink {
    /// HAProxy has not called since the sidecar started. `probe`: what the sidecar found when
    /// it dialed HAProxy's own peers listener, if it did.
    NeverConnected { probe: Option<Probe> },
    /// A session with HAProxy process `pid` is established.
    Connected { pid: u32, lesson: Lesson },
    /// The session with process `pid` ended `ms_ago`; HAProxy calls again every 5 s.
    Disconnected { pid: u32, ms_ago: u64 },
}

/// What dialing HAProxy's peers listener (with the pod name in hello line 2) showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Connection refused: no peers listener, so HAProxy dropped the section or is not up.
    Refused,
    /// HAProxy answered this status code (§2.3) instead of calling us itself.
    Status(u16),
}

/// The sidecar's lesson to the current HAProxy process (§7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lesson {
    NotStarted,
    Sending {
        sent: u64,
        total: u64,
    },
    /// Everything sent; waiting for HAProxy to confirm.
    AwaitingConfirmation {
        sent: u64,
    },
    /// Confirmed, but HAProxy has not yet acknowledged everything the replica learned after
    /// the lesson began (it was taught before the replica was complete).
    CatchingUp,
    Confirmed,
}

/// This pod's TLS material for the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsState {
    /// `members.yaml` says `tls: false`.
    Disabled,
    Loaded,
    /// No valid certificate yet; `reason` is the loader's message (it names the file).
    NotLoaded {
        reason: String,
    },
}

/// The blockers for these facts; ready when there are none.
pub fn evaluate(facts: &Facts) -> Readiness {
    let blockers = [
        membership(facts),
        haproxy(facts),
        replica(&facts.replica),
        tls(facts),
    ]
    .into_iter()
    .flatten()
    .collect();
    Readiness::from_blockers(blockers)
}

fn haproxy(f: &Facts) -> Option<Blocker> {
    let pod = &f.pod;
    let (listen, hap) = (f.local_listen, f.haproxy_addr);
    let name_fix = format!(
        "set POD_NAME={pod} in the HAProxy container (downward API metadata.name), do not start \
         HAProxy with -L, and load peers.cfg after HAProxy's own configuration"
    );
    let (kind, message) = match &f.haproxy {
        HaproxyLink::NeverConnected { probe: None } => (
            BlockerKind::HaproxyNotConnected,
            format!(
                "waiting for HAProxy to connect to {listen}: check that the pod hostname (or \
                 POD_NAME in the HAProxy container) is a peer name in peers.cfg, here {pod}, \
                 and that HAProxy loads peers.cfg"
            ),
        ),
        HaproxyLink::NeverConnected {
            probe: Some(Probe::Refused),
        } => (
            BlockerKind::HaproxyPeerName,
            format!(
                "HAProxy's local peer name is not the pod name {pod}, or HAProxy is not running: \
                 its peers listener {hap} refuses connections, and HAProxy drops a peers section \
                 that lacks its own name with only a startup warning (\"Removing incomplete \
                 section\"): {name_fix}"
            ),
        ),
        HaproxyLink::NeverConnected {
            probe: Some(Probe::Status(503)),
        } => (
            BlockerKind::HaproxyPeerName,
            format!(
                "HAProxy's local peer name is not the pod name {pod}: its peers listener {hap} \
                 answered 503 to a hello for {pod}: {name_fix}"
            ),
        ),
        HaproxyLink::NeverConnected {
            probe: Some(Probe::Status(504)),
        } => (
            BlockerKind::HaproxyPeerName,
            format!(
                "HAProxy at {hap} does not list this sidecar as a peer (it answered 504): load \
                 the operator's peers.cfg unchanged"
            ),
        ),
        HaproxyLink::NeverConnected {
            probe: Some(Probe::Status(code)),
        } => (
            BlockerKind::HaproxyNotConnected,
            format!(
                "waiting for HAProxy to connect to {listen}: its peers listener {hap} answered \
                 {code} to the sidecar's hello"
            ),
        ),
        HaproxyLink::Connected { pid, lesson } => match lesson {
            Lesson::Confirmed => return None,
            Lesson::NotStarted => (
                BlockerKind::TeachingHaproxy,
                format!("HAProxy (pid {pid}) has not been taught the replica yet"),
            ),
            Lesson::Sending { sent, total } => (
                BlockerKind::TeachingHaproxy,
                format!("teaching HAProxy (pid {pid}): {sent} of {total} entries sent"),
            ),
            Lesson::AwaitingConfirmation { sent } => (
                BlockerKind::TeachingHaproxy,
                format!(
                    "waiting for HAProxy (pid {pid}) to confirm the lesson ({sent} entries sent)"
                ),
            ),
            Lesson::CatchingUp => (
                BlockerKind::TeachingHaproxy,
                format!(
                    "HAProxy (pid {pid}) confirmed its lesson before the replica was complete: \
                     waiting for it to acknowledge what the sidecar learned since"
                ),
            ),
        },
        HaproxyLink::Disconnected { pid, ms_ago } => (
            BlockerKind::HaproxyDisconnected,
            format!(
                "HAProxy (pid {pid}) closed its session {} ago: waiting for it to call {listen} \
                 again (it retries every 5 s)",
                duration(*ms_ago)
            ),
        ),
    };
    Some(Blocker { kind, message })
}

fn replica(sync: &ReplicaSync) -> Option<Blocker> {
    let (kind, message) = match sync {
        ReplicaSync::WaitingForTeacher { ms_left } => (
            BlockerKind::WaitingForTeacher,
            format!(
                "waiting for another member to learn the table from (none connected yet): \
                 giving up in {} (the group's resync timeout)",
                duration(*ms_left)
            ),
        ),
        ReplicaSync::Learning {
            from,
            received,
            expected: Some(expected),
        } => (
            BlockerKind::Learning,
            format!("learning from {from}: {received} of ~{expected} entries"),
        ),
        ReplicaSync::Learning {
            from,
            received,
            expected: None,
        } => (
            BlockerKind::Learning,
            format!("learning from {from}: {received} entries so far"),
        ),
        ReplicaSync::Learned { .. } | ReplicaSync::NoRemote | ReplicaSync::TimedOut => return None,
    };
    Some(Blocker { kind, message })
}

fn membership(f: &Facts) -> Option<Blocker> {
    f.membership.as_ref().map(|problem| Blocker {
        kind: BlockerKind::NotMember,
        message: format!("{problem}; waiting for members.yaml to list it"),
    })
}

fn tls(f: &Facts) -> Option<Blocker> {
    match &f.tls {
        TlsState::Disabled | TlsState::Loaded => None,
        TlsState::NotLoaded { reason } => Some(Blocker {
            kind: BlockerKind::TlsMaterial,
            message: format!("TLS certificate for {} not readable yet: {reason}", f.pod),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_facts() -> Facts {
        Facts {
            pod: "edge-0".into(),
            local_listen: "127.0.0.1:10002".parse().unwrap(),
            haproxy_addr: "127.0.0.1:10001".parse().unwrap(),
            haproxy: HaproxyLink::Connected {
                pid: 4242,
                lesson: Lesson::Confirmed,
            },
            replica: ReplicaSync::Learned {
                from: "edge-1".into(),
            },
            tls: TlsState::Loaded,
            membership: None,
        }
    }

    fn messages(f: &Facts) -> Vec<String> {
        evaluate(f)
            .blockers
            .into_iter()
            .map(|b| b.message)
            .collect()
    }

    fn only(f: &Facts) -> Blocker {
        let r = evaluate(f);
        assert!(!r.ready);
        assert_eq!(r.blockers.len(), 1, "{r:?}");
        r.blockers.into_iter().next().unwrap()
    }

    #[test]
    fn ready_when_complete_and_confirmed() {
        for replica in [
            ReplicaSync::Learned {
                from: "edge-2".into(),
            },
            ReplicaSync::NoRemote,
            ReplicaSync::TimedOut,
        ] {
            for tls in [TlsState::Loaded, TlsState::Disabled] {
                let f = Facts {
                    replica: replica.clone(),
                    tls,
                    ..ready_facts()
                };
                assert_eq!(evaluate(&f), Readiness::from_blockers(vec![]));
                assert!(evaluate(&f).ready);
            }
        }
    }

    #[test]
    fn haproxy_never_called() {
        let f = Facts {
            haproxy: HaproxyLink::NeverConnected { probe: None },
            ..ready_facts()
        };
        let b = only(&f);
        assert_eq!(b.kind, BlockerKind::HaproxyNotConnected);
        assert_eq!(
            b.message,
            "waiting for HAProxy to connect to 127.0.0.1:10002: check that the pod hostname (or \
             POD_NAME in the HAProxy container) is a peer name in peers.cfg, here edge-0, and \
             that HAProxy loads peers.cfg"
        );
    }

    #[test]
    fn haproxy_listener_refused_names_the_fix() {
        let f = Facts {
            haproxy: HaproxyLink::NeverConnected {
                probe: Some(Probe::Refused),
            },
            ..ready_facts()
        };
        let b = only(&f);
        assert_eq!(b.kind, BlockerKind::HaproxyPeerName);
        assert_eq!(
            b.message,
            "HAProxy's local peer name is not the pod name edge-0, or HAProxy is not running: its \
             peers listener 127.0.0.1:10001 refuses connections, and HAProxy drops a peers \
             section that lacks its own name with only a startup warning (\"Removing incomplete \
             section\"): set POD_NAME=edge-0 in the HAProxy container (downward API \
             metadata.name), do not start HAProxy with -L, and load peers.cfg after HAProxy's \
             own configuration"
        );
    }

    #[test]
    fn haproxy_status_answers() {
        let with = |code| Facts {
            haproxy: HaproxyLink::NeverConnected {
                probe: Some(Probe::Status(code)),
            },
            ..ready_facts()
        };
        assert_eq!(
            messages(&with(503)),
            [
                "HAProxy's local peer name is not the pod name edge-0: its peers listener \
              127.0.0.1:10001 answered 503 to a hello for edge-0: set POD_NAME=edge-0 in the \
              HAProxy container (downward API metadata.name), do not start HAProxy with -L, and \
              load peers.cfg after HAProxy's own configuration"
            ]
        );
        assert_eq!(
            messages(&with(504)),
            [
                "HAProxy at 127.0.0.1:10001 does not list this sidecar as a peer (it answered \
              504): load the operator's peers.cfg unchanged"
            ]
        );
        let b = only(&with(502));
        assert_eq!(b.kind, BlockerKind::HaproxyNotConnected);
        assert_eq!(
            b.message,
            "waiting for HAProxy to connect to 127.0.0.1:10002: its peers listener \
             127.0.0.1:10001 answered 502 to the sidecar's hello"
        );
    }

    #[test]
    fn lesson_progress() {
        let with = |lesson| Facts {
            haproxy: HaproxyLink::Connected { pid: 77, lesson },
            ..ready_facts()
        };
        assert_eq!(
            messages(&with(Lesson::NotStarted)),
            ["HAProxy (pid 77) has not been taught the replica yet"]
        );
        assert_eq!(
            messages(&with(Lesson::Sending {
                sent: 5000,
                total: 40000
            })),
            ["teaching HAProxy (pid 77): 5000 of 40000 entries sent"]
        );
        let b = only(&with(Lesson::AwaitingConfirmation { sent: 40000 }));
        assert_eq!(b.kind, BlockerKind::TeachingHaproxy);
        assert_eq!(
            b.message,
            "waiting for HAProxy (pid 77) to confirm the lesson (40000 entries sent)"
        );
        let b = only(&with(Lesson::CatchingUp));
        assert_eq!(b.kind, BlockerKind::TeachingHaproxy);
        assert_eq!(
            b.message,
            "HAProxy (pid 77) confirmed its lesson before the replica was complete: waiting \
             for it to acknowledge what the sidecar learned since"
        );
    }

    #[test]
    fn haproxy_gone() {
        let f = Facts {
            haproxy: HaproxyLink::Disconnected {
                pid: 77,
                ms_ago: 12_400,
            },
            ..ready_facts()
        };
        let b = only(&f);
        assert_eq!(b.kind, BlockerKind::HaproxyDisconnected);
        assert_eq!(
            b.message,
            "HAProxy (pid 77) closed its session 12s ago: waiting for it to call 127.0.0.1:10002 \
             again (it retries every 5 s)"
        );
    }

    #[test]
    fn replica_progress() {
        let with = |replica| Facts {
            replica,
            ..ready_facts()
        };
        assert_eq!(
            messages(&with(ReplicaSync::Learning {
                from: "edge-1".into(),
                received: 12000,
                expected: Some(40000),
            })),
            ["learning from edge-1: 12000 of ~40000 entries"]
        );
        assert_eq!(
            messages(&with(ReplicaSync::Learning {
                from: "edge-1".into(),
                received: 12000,
                expected: None,
            })),
            ["learning from edge-1: 12000 entries so far"]
        );
        let b = only(&with(ReplicaSync::WaitingForTeacher { ms_left: 25_000 }));
        assert_eq!(b.kind, BlockerKind::WaitingForTeacher);
        assert_eq!(
            b.message,
            "waiting for another member to learn the table from (none connected yet): giving up \
             in 25s (the group's resync timeout)"
        );
    }

    #[test]
    fn tls_not_loaded() {
        let f = Facts {
            tls: TlsState::NotLoaded {
                reason: "/etc/haproxy-peers/tls/edge-0.crt: No such file or directory".into(),
            },
            ..ready_facts()
        };
        let b = only(&f);
        assert_eq!(b.kind, BlockerKind::TlsMaterial);
        assert_eq!(
            b.message,
            "TLS certificate for edge-0 not readable yet: /etc/haproxy-peers/tls/edge-0.crt: No \
             such file or directory"
        );
    }

    #[test]
    fn not_a_member_yet() {
        let f = Facts {
            membership: Some("pod 'edge-0' is not in members.yaml (members: edge-1)".into()),
            ..ready_facts()
        };
        let b = only(&f);
        assert_eq!(b.kind, BlockerKind::NotMember);
        assert_eq!(
            b.message,
            "pod 'edge-0' is not in members.yaml (members: edge-1); waiting for members.yaml to \
             list it"
        );
    }

    #[test]
    fn every_blocker_at_once_in_fix_order() {
        let f = Facts {
            haproxy: HaproxyLink::NeverConnected { probe: None },
            replica: ReplicaSync::WaitingForTeacher { ms_left: 1_000 },
            tls: TlsState::NotLoaded { reason: "x".into() },
            ..ready_facts()
        };
        let kinds: Vec<_> = evaluate(&f).blockers.iter().map(|b| b.kind).collect();
        assert_eq!(
            kinds,
            [
                BlockerKind::HaproxyNotConnected,
                BlockerKind::WaitingForTeacher,
                BlockerKind::TlsMaterial
            ]
        );
    }
}
