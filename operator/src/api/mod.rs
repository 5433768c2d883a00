//! The `PeerGroup` API: types, the CRD generated from them, and the checks render relies on.

pub mod crd;
pub mod duration;
pub mod v1alpha1;
pub mod validate;

pub use duration::{parse_duration, DurationError};
pub use v1alpha1::{
    MemberStatus, NetworkPolicySpec, PeerGroup, PeerGroupSpec, PeerGroupStatus, Ports, TablePolicy,
    TableSpec, TlsSpec,
};
pub use validate::SpecProblem;
