//! Peer certificates: `inventory` (what exists), `plan` (pure: what to do at `now`), `mint`
//! (rcgen: the only non-deterministic step).

pub mod inventory;

pub use inventory::{CaCert, CertInventory, LeafCert};
