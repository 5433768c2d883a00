//! Peer certificates: `inventory` (what exists) and `parse` (read it back from the Secrets),
//! `plan` (pure: what to do at `now`), `mint` (rcgen: the only non-deterministic step).
//!
//! The reconciler calls, in order: [`CertInventory::from_secrets`], [`plan()`], [`mint()`] (when
//! the plan has actions), then writes `tls_secret_data()` / `ca_secret_data()` — `G-ca` first,
//! so that a CA key is stored before anything it signed is published — and requeues at
//! `CertPlan::next_check`.

mod encoding;
mod events;
pub mod inventory;
pub mod mint;
pub mod parse;
pub mod plan;
pub mod policy;

pub use encoding::rfc3339;
pub use events::{CertEvent, EventType};
pub use inventory::{CaCert, CertInventory, LeafCert};
pub use mint::{mint, MintError};
pub use parse::{InventoryProblem, ParsedInventory, Remedy, SecretData};
pub use plan::{
    plan, CaReason, CertAction, CertPlan, DropCaReason, LeafReason, Validity, NOT_BEFORE_BACKDATE,
};
pub use policy::{CertPolicy, CertPolicyError};
