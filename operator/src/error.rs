//! The operator's error type. Each variant names what is wrong and what to do about it, and maps
//! to a stable metric label so failures can be counted by kind.

/// Errors of the operator's pure core (render) and of the controller around it.
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

    /// A request to the API server failed. `action` says which (e.g. "apply Secret web/edge-ca").
    #[error("cannot {action}: {source}; {}", api_remedy(source))]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },

    /// An object the group needs exists under the name the operator derives, but belongs to
    /// something else: the operator never takes over objects it did not create.
    #[error(
        "{kind} {namespace}/{name} exists but is not owned by PeerGroup {group}: delete or rename \
         it so that the operator can create its own (if the PeerGroup was just recreated, the \
         garbage collector removes the old one shortly)"
    )]
    NotOwned {
        kind: &'static str,
        namespace: String,
        name: String,
        group: String,
    },

    /// Minting certificates failed (rcgen or the system RNG).
    #[error("cannot issue certificates for PeerGroup {group}: {source}")]
    Mint {
        group: String,
        #[source]
        source: crate::certs::MintError,
    },

    /// An object could not be turned into JSON to compare it with what is stored.
    #[error("cannot serialise {what}: {source}; this is a bug in haproxy-peers-operator, please report it")]
    Serialize {
        what: String,
        #[source]
        source: serde_json::Error,
    },

    /// Another replica holds the leader Lease now; this one must stop reconciling.
    #[error(
        "lost leadership of Lease {namespace}/{name} ({why}): exiting so that Kubernetes restarts \
         this replica as a follower; if this repeats, check the API server's latency and that \
         the operator may update Leases"
    )]
    LeadershipLost {
        namespace: String,
        name: String,
        why: String,
    },
}

impl Error {
    /// Label for a failure counter, one per variant.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingMetadata { .. } => "missing_metadata",
            Error::Members(_) => "members_contract",
            Error::Kube { .. } => "kube_api",
            Error::NotOwned { .. } => "not_owned",
            Error::Mint { .. } => "mint",
            Error::Serialize { .. } => "serialize",
            Error::LeadershipLost { .. } => "leadership_lost",
        }
    }

    /// A `kube::Error` with the request that failed.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

/// What a person can do about a failed API request, by its status code.
fn api_remedy(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) if s.code == 401 || s.code == 403 => {
            "grant the operator's ServiceAccount the permission (the Helm chart's RBAC lists every \
             one the operator uses)"
        }
        kube::Error::Api(s) if s.code == 404 => {
            "the object or its resource type is gone: if the PeerGroup was deleted meanwhile this \
             resolves itself, otherwise install the PeerGroup CRD (crds/peergroups.yaml)"
        }
        kube::Error::Api(s) if s.code == 409 || s.code == 422 => {
            "another client changed or refused the object; the operator retries with backoff, \
             check for another controller writing the same object if this persists"
        }
        _ => "the operator retries with backoff; check the API server's health if this persists",
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
