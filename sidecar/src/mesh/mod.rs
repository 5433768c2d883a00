//! Sockets and tasks: the local HAProxy link, the mesh of members (dialing, accepting,
//! collisions, backoff, DNS), `members.yaml` changes, and the learning decision. Protocol
//! behaviour is the session's ([`crate::session`]); this room moves bytes, keeps time and
//! keeps the records `/peers` and readiness read.
//!
//! | file | holds |
//! | --- | --- |
//! | `state` | the replica and the peer records behind one lock; session registration and collisions |
//! | `conn` | one session driven over a byte stream |
//! | `local` | HAProxy's calls and the sidecar's own dial to HAProxy's listener |
//! | `supervisor` / `dial` | the mesh port, and dialing each member |
//! | `membership` | `members.yaml` re-read and applied |
//! | `learning` | which member to learn from, and when to stop waiting (pure) |
//! | `handshake`, `events`, `peers`, `backoff`, `clock`, `txcount` | the pieces they share |

mod backoff;
mod clock;
mod conn;
mod dial;
mod events;
mod handshake;
mod learning;
mod listen;
pub(crate) mod local;
pub(crate) mod membership;
pub(crate) mod peers;
pub(crate) mod state;
pub(crate) mod supervisor;
mod txcount;

pub(crate) use state::{Core, Settings, Shared};
