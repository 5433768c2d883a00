//! The operator's error type. Each variant names what is wrong and what to do about it, and maps
//! to a stable metric label so failures can be counted by kind.

/// Errors of the operator's pure core (render) and of the binary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PeerGroup without the metadata the API server always sets: it was not read from a
    /// cluster (a hand-built object in a test, or a bug in the caller).
    #[error("PeerGroup has no {field}: render only objects read from the API server")]
    MissingMetadata { field: &'static str },

    /// The members contract refused what render built: a bug in render, since render checks
    /// the same rules before building it.
    #[error("rendered members.yaml is invalid ({0}); this is a bug in haproxy-peers-operator, please report it")]
    Members(#[from] haproxy_peers_members::Error),
}

impl Error {
    /// Label for a failure counter, one per variant.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingMetadata { .. } => "missing_metadata",
            Error::Members(_) => "members_contract",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
