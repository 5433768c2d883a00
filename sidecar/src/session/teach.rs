//! A lesson we teach (§7.4): for each table a definition (even when empty), then every entry as
//! a timed update with its remaining lifetime, then `00 01` if the replica is complete or
//! `00 02`. The walk follows the relay log of each table up to its end at the time it gets
//! there, so entries changed during the lesson are included once; changes after a table was
//! finished are pushed normally after the peer's `00 03`.

use crate::store::TableIdx;

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
}

impl Lesson {
    pub(crate) fn new(tables: Vec<TableIdx>) -> Lesson {
        Lesson {
            tables,
            at: 0,
            after: 0,
            defined: false,
            upto: Vec::new(),
            entries: 0,
        }
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
