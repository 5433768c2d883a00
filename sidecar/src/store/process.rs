//! What the replica remembers of the local HAProxy process between sessions: its pid, and
//! whether it is a new process that has not confirmed a lesson of ours yet. Lives as long as the
//! sidecar process, like the replica (a restarted sidecar knows no earlier HAProxy).

/// Why a session with the local HAProxy starts with a process that must be taught before its
/// values count (docs/sidecar.md "A new HAProxy process").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewProcess {
    /// Its pid is not the previous session's (`previous: None`: that session's pid was unknown,
    /// the sidecar had dialed it).
    Pid { previous: Option<u32> },
    /// The same process as before, whose earlier session ended before it confirmed our lesson.
    Untaught,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LocalProcess {
    /// `None` before the first session; then the last session's pid (`Some(None)`: unknown).
    pid: Option<Option<u32>>,
    /// The process of the last session is new and was not taught yet.
    untaught: bool,
}

impl LocalProcess {
    /// A session starts with `pid` from HAProxy's hello (`None` when the sidecar dialed: the
    /// status line names no pid). The first session since the sidecar started is never a new
    /// process (its HAProxy kept its table, whose values are the newest), nor is a session whose
    /// own pid is unknown, unless the last process was left untaught. A known pid after an
    /// unknown one counts as new: it may be any process, and taking the same process for a new
    /// one costs what it counted since its last session, while missing a new one resets
    /// counters everywhere.
    pub(crate) fn begin(&mut self, pid: Option<u32>) -> Option<NewProcess> {
        let previous = self.pid.replace(pid)?;
        match pid {
            Some(_) if previous != pid => {
                self.untaught = true;
                Some(NewProcess::Pid { previous })
            }
            _ => self.untaught.then_some(NewProcess::Untaught),
        }
    }

    /// The process asked for a lesson (`00 00`): it is in its first seconds.
    pub(crate) fn asked(&mut self) {
        self.untaught = true;
    }

    /// The process confirmed a lesson of ours.
    pub(crate) fn taught(&mut self) {
        self.untaught = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_pids_and_untaught_processes() {
        let mut p = LocalProcess::default();
        assert_eq!(p.begin(Some(10)), None, "the first session");
        assert_eq!(p.begin(Some(10)), None, "the same process again");
        assert_eq!(
            p.begin(Some(11)),
            Some(NewProcess::Pid { previous: Some(10) })
        );
        // Its session ended before it was taught: still to be taught.
        assert_eq!(p.begin(Some(11)), Some(NewProcess::Untaught));
        assert_eq!(p.begin(None), Some(NewProcess::Untaught));
        p.taught();
        assert_eq!(p.begin(None), None, "dialed: no pid to compare");
        assert_eq!(p.begin(Some(11)), Some(NewProcess::Pid { previous: None }));
        p.taught();
        assert_eq!(p.begin(Some(11)), None);
        // A first session that asks for a lesson, cut before it confirmed one.
        let mut p = LocalProcess::default();
        assert_eq!(p.begin(Some(5)), None);
        p.asked();
        assert_eq!(p.begin(Some(5)), Some(NewProcess::Untaught));
    }
}
