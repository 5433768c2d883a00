//! The replica: every replicated table, its entries, relay order, expiry and per-peer pointers.
//! No I/O and no clock: callers pass `now`, a monotonic millisecond clock of their own.
//!
//! Design (docs/sidecar.md "The replica"):
//! * [`Replica::define`] records each source's definition; the local HAProxy's is the schema
//!   (before one exists, the first remote's). Differences are kept as [`DriftReport`]s.
//! * [`Replica::apply`] writes an update: last writer wins by write time (a record's deadline
//!   is its write time plus the table's expire, so deadlines compare write times; a stale
//!   update from a member is refused and the newer entry sent back), frequency counters
//!   re-based on the local clock (§6.3), expiry per §7.10. A write that changes nothing keeps
//!   its sequence number and is relayed nowhere.
//! * Every change takes the table's next sequence number; [`Replica::updates_for`] walks the
//!   changes after a peer's pointer under the relay rules ([`Link::relays`]),
//!   [`Replica::lesson_batch`] walks everything. Wire update ids are the low 32 bits of the
//!   sequence; [`Replica::ack`] maps them back. Pointers live here, keyed by peer name, so a new
//!   session resumes after the last ack ([`Replica::begin_session`]).
//! * [`Replica::purge`] removes expired entries; a per-table bound evicts the entry expiring
//!   soonest.
//!
//! Memory: an entry is one fixed-size record of `u32` words in a chunked arena (layout in
//! `schema.rs`): no heap allocation per entry or per value. Keys are found through a hash table
//! of 4-byte slot numbers that compares against the key words in the record, so keys are not
//! stored twice. The relay log costs 16 bytes per change (stale ones swept), the expiry index
//! ~4 bytes per entry (bucketed by deadline). An IPv4 key with `gpc0` and `http_req_rate` is a
//! 40-byte record, about 70–80 bytes per entry in all; HAProxy's own entry is larger (~150 bytes
//! with its tree nodes).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod arena;
mod dict;
mod drift;
mod expiry;
mod freq;
mod link;
mod process;
mod relay;
mod replica;
mod schema;
mod snapshot;
mod table;
mod values;
mod walk;

#[cfg(test)]
mod conflict_tests;
#[cfg(test)]
mod tests;

pub use dict::MAX_DICT_STRINGS;
pub use drift::{Compat, Difference, DriftReport};
pub use freq::read_rate;
pub use link::{Link, PeerId, LOCAL_LABEL};
pub use process::NewProcess;
pub use relay::{map_ack, wire_id, Pointers};
pub use replica::{
    Applied, ApplyError, DefineError, Defined, MeshPolicy, Replica, ReplicaConfig, TableIdx,
    MAX_TABLES,
};
pub use schema::{KeyError, SchemaError, MAX_ARRAY_LEN, MAX_KEY_LEN};
pub use snapshot::{EntryView, FieldView, PointerView, ReplicaSummary, TableView};
pub use table::TableStats;
pub use walk::{Batch, Outgoing};
