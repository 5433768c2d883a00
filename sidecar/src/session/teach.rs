//! A lesson we teach (§7.4): for each table a definition (even when empty), then every entry as
//! a timed update with its remaining lifetime, then `00 01` if the replica is complete or
//! `00 02`. The walk follows the relay log of each table up to its end at the time it gets
//! there, so entries changed during the lesson are included once; changes after a table was
//! finished are pushed normally after the peer's `00 03`.

use crate::store::{Link, TableIdx};

#[derive(Debug, Clone)]
pub(crate) struct Lesson {
    pub(crate) tables: Vec<TableIdx>,
    /// Index into `tables` of the table being taught.
    pub(crate) at: usize,
    /// Last sequence taught in that table.
    pub(crate) after: u64,
    /// Its definition is out.
    pub(crate) defined: bool,
    /// Per finished table: the sequence the lesson covered.
    pub(crate) upto: Vec<(TableIdx, u64)>,
    pub(crate) entries: u64,
    /// Per table (as `tables`): its head when the lesson began. What the learner itself wrote
    /// after that is not taught back to it (see [`Lesson::echoes`]).
    began: Vec<u64>,
}

impl Lesson {
    /// `heads`: each table's head now, in the order of `tables`.
    pub(crate) fn new(tables: Vec<TableIdx>, heads: Vec<u64>) -> Lesson {
        Lesson {
            tables,
            began: heads,
            at: 0,
            after: 0,
            defined: false,
            upto: Vec::new(),
            entries: 0,
        }
    }

    /// Whether an entry of the current table at `seq`, written by `writer`, would only echo
    /// the `learner`'s own write back to it (for a member learner: on the HAProxy link one
    /// link stands for the old and the new worker alike): it wrote that entry while the lesson ran, so it
    /// holds it or a newer write, and the echo's write time (inflated by the transits) could
    /// beat that newer write. Entries it wrote before the lesson began are taught: a restarted
    /// sidecar lost them.
    pub(crate) fn echoes(&self, seq: u64, writer: Link, learner: Link) -> bool {
        writer == learner && self.began.get(self.at).is_some_and(|&head| seq > head)
    }

    pub(crate) fn current(&self) -> Option<TableIdx> {
        self.tables.get(self.at).copied()
    }

    /// The current table is done up to `head`.
    pub(crate) fn finish_table(&mut self, t: TableIdx, head: u64) {
        self.upto.push((t, head));
        self.at = self.at.saturating_add(1);
        self.after = 0;
        self.defined = false;
    }
}

/// Where teaching stands on a session.
#[derive(Debug, Clone)]
pub(crate) enum Teach {
    Idle,
    /// To start as soon as allowed (`asked`: the peer sent `00 00`).
    Pending {
        asked: bool,
    },
    Sending(Lesson),
    /// `00 01`/`00 02` sent; no normal pushes until `00 03` (HAProxy does the same).
    AwaitingConfirm {
        upto: Vec<(TableIdx, u64)>,
        complete: bool,
    },
}
