//! The replica: every table by wire name, the peer names, the `server_key` strings, and whether
//! the content is complete (learned from a remote, or nothing to learn from).

use std::collections::HashMap;

use bytes::Bytes;

use crate::codec::{Key, TableDefinition, Update};

use super::dict::Interner;
use super::drift::{compare, compat_of, Compat, DriftReport};
use super::link::{Link, PeerNames};
use super::process::{LocalProcess, NewProcess};
use super::relay::Pointers;
use super::schema::{KeyError, Schema, SchemaError};
use super::table::Table;
use super::walk::Batch;

/// Most tables the replica holds (definitions beyond are refused).
pub const MAX_TABLES: usize = 4_096;

/// A table of the replica. Its wire id in our own definitions is [`TableIdx::wire_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableIdx(u32);

impl TableIdx {
    /// The id this replica gives the table in the definitions it sends (1-based, like
    /// HAProxy's).
    pub fn wire_id(self) -> u64 {
        u64::from(self.0).saturating_add(1)
    }

    fn index(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

/// Limits and tolerances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// Memory bound: entries per table; at the bound the entry expiring soonest is evicted.
    pub max_entries_per_table: usize,
    /// A frequency counter whose period start moved by at most this much (and whose counts are
    /// equal) is the same counter: an owner re-sending it adds the transit time to its age.
    pub freq_tolerance_ms: u32,
    /// An expiry moved by at most this much is not a change. It bounds how often an entry that
    /// is only refreshed gets relayed (about once per tolerance), and how much earlier a copy
    /// may expire than the original.
    pub expiry_tolerance_ms: u64,
}

impl Default for ReplicaConfig {
    fn default() -> Self {
        ReplicaConfig {
            max_entries_per_table: 4 << 20,
            freq_tolerance_ms: 1_000,
            expiry_tolerance_ms: 1_000,
        }
    }
}

/// The result of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Something changed: the entry got a new sequence number and will be relayed.
    pub changed: bool,
    /// The entry is new.
    pub created: bool,
    /// The entry's new sequence number, when it changed or was queued again.
    pub seq: Option<u64>,
    /// Another entry was evicted to make room.
    pub evicted: bool,
    /// The update was refused as stale: the entry here was written later and differs. It was
    /// queued again (new `seq`) for every member, so that the sender gets the newer value.
    pub rejected: bool,
}

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("no such table in the replica")]
    UnknownTable,
    #[error(transparent)]
    Key(KeyError),
    #[error("the table has no room left")]
    Full,
    #[error(
        "the PeerGroup's policy for this table is `ignore`: it is not replicated between members"
    )]
    PolicyIgnored,
}

/// Why a definition was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefineError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("the replica already holds {MAX_TABLES} tables")]
    TooManyTables,
}

/// The result of recording a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defined {
    pub table: TableIdx,
    /// How the source's definition relates to the schema.
    pub compat: Compat,
    /// Its differences, if any.
    pub drift: Option<DriftReport>,
    /// The differences are not the ones this source showed before (log them).
    pub drift_changed: bool,
    /// The schema changed (new authoritative definition).
    pub schema_changed: bool,
    /// Entries dropped because the new schema has another key.
    pub dropped: usize,
}

#[derive(Debug, Default)]
pub struct Replica {
    config: ReplicaConfig,
    pub(crate) tables: Vec<Table>,
    by_name: HashMap<Bytes, TableIdx>,
    pub(crate) peers: PeerNames,
    pub(crate) dict: Interner,
    complete: bool,
    /// Each table's last sequence number when the replica became complete: what the local
    /// HAProxy must hold before the pod is Ready.
    complete_heads: Vec<u64>,
    /// Which tables the group keeps out of the mesh (members.yaml table policies).
    policy: MeshPolicy,
    /// The local HAProxy process of the last session with it.
    local: LocalProcess,
}

/// members.yaml's table policies, as the replica applies them: per wire name, or the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshPolicy {
    /// Tables without an entry of their own are ignored (`defaultPolicy: ignore`).
    pub ignore_by_default: bool,
    /// Wire name -> ignored.
    pub tables: HashMap<Bytes, bool>,
}

impl Replica {
    pub fn new(config: ReplicaConfig) -> Replica {
        Replica {
            config,
            ..Replica::default()
        }
    }

    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// The link of remote member `name` (registered on first use). `None` only past 65535
    /// distinct names.
    pub fn peer(&mut self, name: &str) -> Option<Link> {
        self.peers.id(name).map(Link::Peer)
    }

    /// The link of `name` if it was seen before.
    pub fn known_peer(&self, name: &str) -> Option<Link> {
        self.peers.get(name).map(Link::Peer)
    }

    /// A printable name for a link.
    pub fn label(&self, link: Link) -> &str {
        self.peers.label(link)
    }

    pub(crate) fn get(&self, t: TableIdx) -> Option<&Table> {
        self.tables.get(t.index())
    }

    fn get_mut(&mut self, t: TableIdx) -> Option<&mut Table> {
        self.tables.get_mut(t.index())
    }

    pub fn tables(&self) -> impl Iterator<Item = TableIdx> + '_ {
        (0..self.tables.len()).filter_map(|i| u32::try_from(i).ok().map(TableIdx))
    }

    pub fn table(&self, name: &[u8]) -> Option<TableIdx> {
        self.by_name.get(name).copied()
    }

    /// The table our own definitions call `id`.
    pub fn table_by_wire_id(&self, id: u64) -> Option<TableIdx> {
        let i = u32::try_from(id.checked_sub(1)?).ok()?;
        self.get(TableIdx(i)).map(|_| TableIdx(i))
    }

    /// The definition this replica sends for `t` (the schema, with our table id).
    pub fn definition(&self, t: TableIdx) -> Option<&TableDefinition> {
        self.get(t).map(|tb| &tb.schema.def)
    }

    /// The last definition `source` sent for `t`.
    pub fn defined_by(&self, t: TableIdx, source: Link) -> Option<&TableDefinition> {
        let table = self.get(t)?;
        table
            .sources
            .iter()
            .find(|(l, _)| *l == source)
            .map(|(_, d)| d)
    }

    pub fn len(&self, t: TableIdx) -> usize {
        self.get(t).map_or(0, Table::len)
    }

    pub fn is_empty(&self) -> bool {
        self.tables.iter().all(|t| t.len() == 0)
    }

    /// Records `def` as `source`'s definition of its table, creating the table on first sight.
    /// The local HAProxy's definition becomes the schema (§7.7: HAProxy's definitions are the
    /// authority); before one exists the first remote's is used; the authority may redefine.
    pub fn define(&mut self, def: &TableDefinition, source: Link) -> Result<Defined, DefineError> {
        let idx = match self.by_name.get(&def.name[..]) {
            Some(&idx) => idx,
            None => {
                if self.tables.len() >= MAX_TABLES {
                    return Err(DefineError::TooManyTables);
                }
                let idx = TableIdx(
                    u32::try_from(self.tables.len()).map_err(|_| DefineError::TooManyTables)?,
                );
                let name = Bytes::copy_from_slice(&def.name);
                let schema = Schema::new(def, idx.wire_id())?;
                self.tables.push(Table::new(name.clone(), schema, source));
                self.by_name.insert(name, idx);
                idx
            }
        };
        let table_label = String::from_utf8_lossy(&def.name).into_owned();
        let source_label = self.peers.label(source).to_owned();
        let Some(table) = self.tables.get_mut(idx.index()) else {
            return Err(DefineError::TooManyTables);
        };
        let kept = TableDefinition {
            name: table.name.clone(),
            trailing: Bytes::new(),
            ..def.clone()
        };
        match table.sources.iter_mut().find(|(l, _)| *l == source) {
            Some((_, d)) => *d = kept,
            None => table.sources.push((source, kept)),
        }
        let (mut schema_changed, mut dropped) = (false, 0);
        let takes_over = source == Link::Local && table.authority != Link::Local;
        if takes_over || source == table.authority {
            let schema = Schema::new(def, idx.wire_id())?;
            if schema.def != table.schema.def {
                schema_changed = true;
                dropped = table.redefine(schema);
            }
            table.authority = source;
        }
        let before = table
            .drift
            .iter()
            .find(|(l, _)| *l == source)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        let schema_def = &table.schema.def;
        table.drift = table
            .sources
            .iter()
            .filter_map(|(l, d)| {
                let diffs = compare(schema_def, d);
                (!diffs.is_empty()).then_some((*l, diffs))
            })
            .collect();
        let mine = table
            .drift
            .iter()
            .find(|(l, _)| *l == source)
            .map(|(_, d)| d.clone())
            .unwrap_or_default();
        let authority_label = self.peers.label(table.authority).to_owned();
        Ok(Defined {
            table: idx,
            compat: compat_of(&mine),
            drift_changed: before != mine,
            drift: (!mine.is_empty()).then_some(DriftReport {
                table: table_label,
                source: source_label,
                authority: authority_label,
                differences: mine,
            }),
            schema_changed,
            dropped,
        })
    }

    /// How `source`'s last definition of `t` relates to the schema (`None`: it sent none).
    pub fn compat(&self, t: TableIdx, source: Link) -> Option<Compat> {
        let table = self.get(t)?;
        table.sources.iter().find(|(l, _)| *l == source)?;
        Some(
            table
                .drift
                .iter()
                .find(|(l, _)| *l == source)
                .map_or(Compat::Same, |(_, d)| compat_of(d)),
        )
    }

    /// Tables to relay to `to`: for the local HAProxy the tables it defined (in any session);
    /// for a remote member every table except those it defined with another key.
    pub fn relay_tables(&self, to: Link) -> Vec<TableIdx> {
        self.tables()
            .filter(|&t| match to {
                Link::Local => self.defined_by(t, Link::Local).is_some(),
                Link::Peer(_) => {
                    self.compat(t, to) != Some(Compat::KeyMismatch) && !self.is_ignored(t)
                }
            })
            .collect()
    }

    /// Sets which tables the group's policy keeps out of the mesh (members.yaml `policy:
    /// ignore`). Ignored tables still go between this sidecar and its own HAProxy; they are never
    /// sent to, taught to, or accepted from another member.
    pub fn set_mesh_policy(&mut self, policy: MeshPolicy) {
        self.policy = policy;
    }

    /// Table `t` is kept out of the mesh by policy.
    pub fn is_ignored(&self, t: TableIdx) -> bool {
        self.tables.get(t.index()).is_some_and(|table| {
            self.policy
                .tables
                .get(&table.name)
                .copied()
                .unwrap_or(self.policy.ignore_by_default)
        })
    }

    /// Writes an update received from `origin` into table `t` at `now`. Last writer wins by
    /// write time (docs/sidecar.md "Conflicts"): the local HAProxy's writes are always taken; a
    /// member's update written before the entry's last write here, with other values, is
    /// refused ([`Applied::rejected`]) and the entry sent back to every member. Tables without
    /// expire have no write times: arrival order (§7.9). A write that changes nothing keeps the
    /// entry's sequence number and origin, so it is relayed nowhere.
    pub fn apply(
        &mut self,
        t: TableIdx,
        update: &Update,
        origin: Link,
        now: u64,
    ) -> Result<Applied, ApplyError> {
        if matches!(origin, Link::Peer(_)) && self.is_ignored(t) {
            return Err(ApplyError::PolicyIgnored);
        }
        let (config, dict) = (&self.config, &mut self.dict);
        let table = self
            .tables
            .get_mut(t.index())
            .ok_or(ApplyError::UnknownTable)?;
        table.apply(update, origin, now, config, dict)
    }

    /// The sequence number of `t`'s entry with `key`, if the replica holds it live at `now`.
    pub fn held(&self, t: TableIdx, key: &Key, now: u64) -> Option<u64> {
        self.get(t)?.held(key, now)
    }

    /// An update of a new local HAProxy process for an entry of `t` it has not been taught yet
    /// is not applied (docs/sidecar.md "A new HAProxy process"). Counted in
    /// [`TableStats::untaught_ignored`](super::TableStats) when it would have changed the
    /// entry's values; returns whether it would.
    pub fn ignore_untaught(&mut self, t: TableIdx, update: &Update, now: u64) -> bool {
        let (config, dict) = (&self.config, &mut self.dict);
        match self.tables.get_mut(t.index()) {
            Some(table) => table.ignore_untaught(update, now, config, dict),
            None => false,
        }
    }

    /// A session with the local HAProxy starts; `pid` from its hello (`None` when the sidecar
    /// dialed: HAProxy's status line names no pid). `Some` when its process must be taught
    /// before its values count: a reload's new worker, a restarted HAProxy (see
    /// [`NewProcess`]).
    pub fn local_process(&mut self, pid: Option<u32>) -> Option<NewProcess> {
        self.local.begin(pid)
    }

    /// The local HAProxy asked for a lesson (`00 00`): a process in its first seconds, to be
    /// taught before its values count.
    pub fn local_asked(&mut self) {
        self.local.asked();
    }

    /// The local HAProxy confirmed a lesson of ours: its values count again.
    pub fn local_taught(&mut self) {
        self.local.taught();
    }

    /// Removes expired entries of every table; returns how many.
    pub fn purge(&mut self, now: u64) -> usize {
        self.tables.iter_mut().map(|t| t.purge(now)).sum()
    }

    /// The earliest time an entry may expire (call [`Replica::purge`] then).
    pub fn next_expiry(&self) -> Option<u64> {
        self.tables.iter().filter_map(Table::next_expiry).min()
    }

    /// Last sequence number of `t`.
    pub fn head(&self, t: TableIdx) -> u64 {
        self.get(t).map_or(0, Table::head)
    }

    /// Normal pushes of `t` to `to`: up to `budget` updates changed since `to`'s pointer whose
    /// origin the relay rules send there ([`Link::relays`]); the pointer moves over everything
    /// examined.
    pub fn updates_for(&mut self, to: Link, t: TableIdx, budget: usize, now: u64) -> Batch {
        let dict = &self.dict;
        match self.tables.get_mut(t.index()) {
            Some(table) => table.push_batch(to, budget, now, dict),
            None => Batch::default(),
        }
    }

    /// A lesson step over `t`: up to `budget` timed updates after sequence `after`, whatever
    /// their origin.
    pub fn lesson_batch(&self, t: TableIdx, after: u64, budget: usize, now: u64) -> Batch {
        match self.get(t) {
            Some(table) => table.lesson_batch(after, budget, now, &self.dict, false),
            None => Batch::default(),
        }
    }

    /// A lesson step for a HAProxy process that wrote the entries whose last write is its own:
    /// those are left out (it holds them, or newer values it counted while this lesson ran).
    pub fn lesson_batch_without_local(
        &self,
        t: TableIdx,
        after: u64,
        budget: usize,
        now: u64,
    ) -> Batch {
        match self.get(t) {
            Some(table) => table.lesson_batch(after, budget, now, &self.dict, true),
            None => Batch::default(),
        }
    }

    /// A new session with `link` starts: pushing resumes after what it acknowledged.
    pub fn begin_session(&mut self, link: Link) {
        for t in &mut self.tables {
            t.rewind(link);
        }
    }

    /// `link` acknowledged wire id `wire` of `t`; returns the sequence it maps to if it moved
    /// the acknowledged point.
    pub fn ack(&mut self, link: Link, t: TableIdx, wire: u32) -> Option<u64> {
        self.get_mut(t)?.ack(link, wire)
    }

    /// `link` confirmed a lesson that covered `t` up to `upto`.
    pub fn taught(&mut self, link: Link, t: TableIdx, upto: u64) {
        if let Some(table) = self.get_mut(t) {
            table.taught(link, upto);
        }
    }

    pub fn pointer(&self, link: Link, t: TableIdx) -> Pointers {
        self.get(t).map(|tb| tb.pointer(link)).unwrap_or_default()
    }

    /// Whether the replica holds the group's data: learned from a remote (`00 01`), or the
    /// caller decided there is nobody to learn from (no other member, resync timeout).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    pub fn set_complete(&mut self, complete: bool) {
        if complete && !self.complete {
            self.complete_heads = self.tables.iter().map(Table::head).collect();
        }
        self.complete = complete;
    }

    /// Whether `link` has acknowledged (or been taught) everything the replica held when it
    /// became complete, in every table it is sent (trivially while it is not complete). A HAProxy taught before the replica was
    /// complete (a new pod's HAProxy may connect before its sidecar learned anything) holds
    /// the rest only once these pushes are acknowledged.
    pub fn caught_up(&self, link: Link) -> bool {
        self.relay_tables(link).into_iter().all(|t| {
            let head = self.complete_heads.get(t.index()).copied().unwrap_or(0);
            self.pointer(link, t).acked >= head
        })
    }
}
