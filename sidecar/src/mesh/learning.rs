//! Which member a starting sidecar learns the table from (§7.5, as HAProxy does it): one
//! established member session at a time is asked for a lesson; a partial lesson (`00 02`) or a
//! dead session moves on to another member; without any other member, or once the group's
//! resync timeout passes with no lesson running, the replica is declared complete as it is.
//! Pure: the caller passes the established sessions and `now`, and carries out the actions.

use std::collections::BTreeMap;

use crate::admin::views::ReplicaSync;
use crate::session::LearnProgress;

use super::peers::SessionId;

/// A member whose partial lesson was seen is asked again only after this long (its own
/// replica may have completed meanwhile).
pub(crate) const PARTIAL_RETRY_MS: u64 = 5_000;

/// An established session with another member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub peer: String,
    pub session: SessionId,
    pub progress: Option<LearnProgress>,
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// `request_lesson()` on this session.
    Ask { peer: String, session: SessionId },
    /// `set_complete(true)` on the replica.
    Complete,
    /// The lesson from `peer` died with its session (for logs and `/peers`).
    Aborted { peer: String },
}

#[derive(Debug, Clone)]
pub(crate) struct Learner {
    timeout_ms: u64,
    started_at: Option<u64>,
    teacher: Option<(String, SessionId)>,
    /// Sessions that answered with a partial lesson, and when.
    partial: BTreeMap<SessionId, u64>,
    outcome: Option<ReplicaSync>,
}

impl Learner {
    pub(crate) fn new(timeout_ms: u64) -> Learner {
        Learner {
            timeout_ms,
            started_at: None,
            teacher: None,
            partial: BTreeMap::new(),
            outcome: None,
        }
    }

    /// The resync timeout changed in `members.yaml`.
    pub(crate) fn set_timeout(&mut self, timeout_ms: u64) {
        self.timeout_ms = timeout_ms;
    }

    /// Learning starts once this pod is a member (the timeout counts from here).
    pub(crate) fn start(&mut self, now: u64) {
        self.started_at.get_or_insert(now);
    }

    pub(crate) fn is_done(&self) -> bool {
        self.outcome.is_some()
    }

    /// One decision at `now`. `complete`: the replica says it is (a session received `00 01`);
    /// `others`: members other than this pod in `members.yaml`; `candidates`: established
    /// sessions with them.
    pub(crate) fn decide(
        &mut self,
        now: u64,
        complete: bool,
        others: usize,
        candidates: &[Candidate],
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.outcome.is_some() {
            return actions;
        }
        let Some(start) = self.started_at else {
            return actions;
        };
        if complete {
            let from = self
                .teacher
                .take()
                .map_or_else(|| "a member".to_owned(), |(peer, _)| peer);
            self.outcome = Some(ReplicaSync::Learned { from });
            return actions;
        }
        if others == 0 {
            self.teacher = None;
            self.outcome = Some(ReplicaSync::NoRemote);
            actions.push(Action::Complete);
            return actions;
        }
        if let Some((peer, id)) = self.teacher.clone() {
            match candidates.iter().find(|c| c.session == id) {
                None => {
                    self.teacher = None;
                    actions.push(Action::Aborted { peer });
                }
                Some(c) => match c.progress.and_then(|p| p.complete) {
                    Some(true) => {
                        self.teacher = None;
                        self.outcome = Some(ReplicaSync::Learned { from: peer });
                        actions.push(Action::Complete);
                        return actions;
                    }
                    Some(false) => {
                        self.partial.insert(id, now);
                        self.teacher = None;
                    }
                    // Still running: an in-progress lesson is not cut by the timeout (the
                    // session's liveness timeout bounds a teacher that stopped talking).
                    None => return actions,
                },
            }
        }
        if now >= start.saturating_add(self.timeout_ms) {
            self.outcome = Some(ReplicaSync::TimedOut);
            actions.push(Action::Complete);
            return actions;
        }
        self.partial
            .retain(|_, at| now < at.saturating_add(PARTIAL_RETRY_MS));
        if let Some(c) = candidates
            .iter()
            .find(|c| !self.partial.contains_key(&c.session))
        {
            self.teacher = Some((c.peer.clone(), c.session));
            actions.push(Action::Ask {
                peer: c.peer.clone(),
                session: c.session,
            });
        }
        actions
    }

    /// The state for `/peers` and readiness.
    pub(crate) fn view(&self, now: u64, candidates: &[Candidate]) -> ReplicaSync {
        if let Some(outcome) = &self.outcome {
            return outcome.clone();
        }
        if let Some((peer, id)) = &self.teacher {
            let received = candidates
                .iter()
                .find(|c| c.session == *id)
                .and_then(|c| c.progress)
                .map_or(0, |p| p.entries);
            return ReplicaSync::Learning {
                from: peer.clone(),
                received,
                expected: None,
            };
        }
        let deadline = self
            .started_at
            .unwrap_or(now)
            .saturating_add(self.timeout_ms);
        ReplicaSync::WaitingForTeacher {
            ms_left: deadline.saturating_sub(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(peer: &str, session: SessionId, progress: Option<(u64, Option<bool>)>) -> Candidate {
        Candidate {
            peer: peer.into(),
            session,
            progress: progress.map(|(entries, complete)| LearnProgress { entries, complete }),
        }
    }

    fn ask(peer: &str, session: SessionId) -> Action {
        Action::Ask {
            peer: peer.into(),
            session,
        }
    }

    #[test]
    fn nothing_before_start_and_alone_is_complete_at_once() {
        let mut l = Learner::new(30_000);
        assert!(l.decide(10, false, 0, &[]).is_empty());
        l.start(10);
        assert_eq!(l.decide(11, false, 0, &[]), [Action::Complete]);
        assert_eq!(l.view(12, &[]), ReplicaSync::NoRemote);
        assert!(l.decide(13, false, 0, &[]).is_empty());
    }

    #[test]
    fn asks_one_member_and_learns() {
        let mut l = Learner::new(30_000);
        l.start(0);
        assert!(l.decide(5, false, 2, &[]).is_empty());
        assert_eq!(
            l.view(5, &[]),
            ReplicaSync::WaitingForTeacher { ms_left: 29_995 }
        );
        let c = [cand("edge-1", 7, None), cand("edge-2", 8, None)];
        assert_eq!(l.decide(10, false, 2, &c), [ask("edge-1", 7)]);
        // Asked once, not again while it runs.
        let c = [cand("edge-1", 7, Some((40, None))), cand("edge-2", 8, None)];
        assert!(l.decide(20, false, 2, &c).is_empty());
        assert_eq!(
            l.view(20, &c),
            ReplicaSync::Learning {
                from: "edge-1".into(),
                received: 40,
                expected: None
            }
        );
        // The session set the replica complete on `00 01`.
        assert!(l.decide(30, true, 2, &c).is_empty());
        assert_eq!(
            l.view(30, &c),
            ReplicaSync::Learned {
                from: "edge-1".into()
            }
        );
    }

    #[test]
    fn partial_or_dead_teachers_hand_over() {
        let mut l = Learner::new(30_000);
        l.start(0);
        let c = [cand("edge-1", 7, None), cand("edge-2", 8, None)];
        assert_eq!(l.decide(1, false, 2, &c), [ask("edge-1", 7)]);
        let c = [
            cand("edge-1", 7, Some((3, Some(false)))),
            cand("edge-2", 8, None),
        ];
        assert_eq!(l.decide(2, false, 2, &c), [ask("edge-2", 8)]);
        // edge-2's session dies: edge-1 answered partially less than 5 s ago, so nobody.
        let c = [cand("edge-1", 7, Some((3, Some(false))))];
        assert_eq!(
            l.decide(3, false, 2, &c),
            [Action::Aborted {
                peer: "edge-2".into()
            }]
        );
        // After 5 s edge-1 may be complete itself: asked again.
        assert_eq!(l.decide(5_002, false, 2, &c), [ask("edge-1", 7)]);
    }

    #[test]
    fn timeout_completes_unless_a_lesson_runs() {
        let mut l = Learner::new(1_000);
        l.start(100);
        let c = [cand("edge-1", 7, None)];
        assert_eq!(l.decide(200, false, 1, &c), [ask("edge-1", 7)]);
        let running = [cand("edge-1", 7, Some((9, None)))];
        assert!(l.decide(5_000, false, 1, &running).is_empty());
        let partial = [cand("edge-1", 7, Some((9, Some(false))))];
        assert_eq!(l.decide(5_001, false, 1, &partial), [Action::Complete]);
        assert_eq!(l.view(5_002, &partial), ReplicaSync::TimedOut);
        assert!(l.is_done());

        let mut idle = Learner::new(1_000);
        idle.start(0);
        assert!(idle.decide(999, false, 1, &[]).is_empty());
        assert_eq!(idle.decide(1_000, false, 1, &[]), [Action::Complete]);
    }

    #[test]
    fn a_finished_lesson_completes() {
        let mut l = Learner::new(30_000);
        l.start(0);
        let c = [cand("edge-1", 7, None)];
        l.decide(1, false, 1, &c);
        let done = [cand("edge-1", 7, Some((12, Some(true))))];
        assert_eq!(l.decide(2, false, 1, &done), [Action::Complete]);
        assert_eq!(
            l.view(3, &done),
            ReplicaSync::Learned {
                from: "edge-1".into()
            }
        );
    }
}
