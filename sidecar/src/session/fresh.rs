//! A new HAProxy process on the local link (docs/sidecar.md "A new HAProxy process").
//!
//! A reload's new worker serves traffic before the old worker has handed its table over, and a
//! restarted HAProxy before anyone taught it: for keys it was not taught yet it counts from
//! zero and pushes those counts. HAProxy being the authority for its own writes, the replica
//! would take them, and our lesson would then teach the reset back. So while the session is
//! *fresh* (a new pid, a request for a lesson: see [`Fresh`]), HAProxy's updates of entries
//! the replica holds are not applied until HAProxy has confirmed our lesson (`00 03`): every
//! message it sends after that confirm was sent once it held the taught values. Entries the
//! replica does not hold are its own and applied at once, and so are its later updates of them
//! (our lesson skips them: it has them). If an update was held back, HAProxy's table is asked
//! for again after the confirm, so that what it counted on top of the taught values comes in.

use std::collections::HashSet;

use crate::codec::Update;
use crate::store::{NewProcess, Replica, TableIdx};

use super::events::{Output, SessionEvent};
use super::{Learn, Session};

/// Why the local HAProxy counts as a new process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fresh {
    /// Its pid is not the previous session's (`None`: that one's pid was unknown, the sidecar
    /// had dialed it).
    NewPid { previous: Option<u32> },
    /// The same process as the previous session's, which ended before it confirmed our lesson.
    Untaught,
    /// It asked for a lesson (`00 00`): a process in its first 5 s (§7.5).
    AskedForLesson,
}

impl From<NewProcess> for Fresh {
    fn from(p: NewProcess) -> Fresh {
        match p {
            NewProcess::Pid { previous } => Fresh::NewPid { previous },
            NewProcess::Untaught => Fresh::Untaught,
        }
    }
}

/// The session's state of a fresh process.
#[derive(Debug, Default)]
pub(super) struct FreshState {
    pub(super) why: Option<Fresh>,
    /// Entries `(table, sequence)` this process wrote in this session and nobody changed since.
    own: HashSet<(TableIdx, u64)>,
    /// `why` is to be announced at the next poll.
    pub(super) announce: bool,
    /// Ask HAProxy for its table again when the lesson it is sending ends.
    pub(super) relearn: bool,
}

/// What an update of the local HAProxy is to the replica.
pub(super) enum Claim {
    /// Apply it (not fresh, or an entry the replica does not hold).
    Apply,
    /// Apply it: an entry this process wrote, at this sequence.
    Own(u64),
    /// Not applied: an entry the process was not taught yet.
    HeldBack,
}

impl FreshState {
    pub(super) fn new(why: Option<Fresh>) -> FreshState {
        FreshState {
            why,
            announce: why.is_some(),
            ..FreshState::default()
        }
    }

    /// The entry at `seq` in `t` was written by this process (no lesson needed for it).
    pub(super) fn is_own(&self, t: TableIdx, seq: u64) -> bool {
        self.own.contains(&(t, seq))
    }
}

impl Session {
    /// Local link: HAProxy sent `00 00`; before it was taught anything in this session, that
    /// makes it a new process.
    pub(super) fn asked_for_lesson(&mut self, store: &mut Replica) {
        if !self.taught && self.fresh.why.is_none() {
            store.local_asked();
            self.fresh.why = Some(Fresh::AskedForLesson);
            self.fresh.announce = true;
        }
    }

    /// Whether HAProxy's update `u` of table `t` is applied (see the module documentation).
    pub(super) fn claim(
        &mut self,
        t: TableIdx,
        u: &Update,
        store: &mut Replica,
        now: u64,
    ) -> Claim {
        if self.fresh.why.is_none() {
            return Claim::Apply;
        }
        match store.held(t, &u.key, now) {
            None => Claim::Apply,
            Some(seq) if self.fresh.own.contains(&(t, seq)) => Claim::Own(seq),
            Some(_) => {
                if store.ignore_untaught(t, u, now) {
                    self.stats.untaught_ignored = self.stats.untaught_ignored.saturating_add(1);
                }
                Claim::HeldBack
            }
        }
    }

    /// HAProxy's update was applied under `claim` and the entry now has sequence `seq`.
    pub(super) fn applied(&mut self, t: TableIdx, claim: &Claim, seq: Option<u64>) {
        if self.fresh.why.is_none() {
            return;
        }
        if let (Claim::Own(old), Some(_)) = (claim, seq) {
            self.fresh.own.remove(&(t, *old));
        }
        if let Some(seq) = seq {
            self.fresh.own.insert((t, seq));
        }
    }

    /// HAProxy confirmed our lesson: everything it sends from now on was sent holding the taught
    /// values. Its updates are applied again; if some were held back, its table is asked for
    /// again (after the lesson it may be sending now).
    pub(super) fn fresh_taught(&mut self, store: &mut Replica, out: &mut Vec<Output>) {
        store.local_taught();
        if self.fresh.why.take().is_none() {
            return;
        }
        self.fresh.own = HashSet::new();
        let ignored = self.stats.untaught_ignored;
        if ignored > 0 {
            match self.learn {
                Learn::Waiting { .. } => self.fresh.relearn = true,
                Learn::Want => {}
                Learn::Idle | Learn::Done { .. } => self.learn = Learn::Want,
            }
        }
        out.push(Output::Event(SessionEvent::FreshTaught { ignored }));
    }

    /// The lesson HAProxy was sending ended: ask again if [`Session::fresh_taught`] wanted to.
    pub(super) fn lesson_in(&mut self) {
        if std::mem::take(&mut self.fresh.relearn) {
            self.learn = Learn::Want;
        }
    }
}
