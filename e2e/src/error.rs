//! One error type for the e2e harness. Messages say what to do where a person can act.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the e2e fleet needs root: it creates network namespaces, veth pairs and \
         /etc/netns/<namespace>/hosts. Run the tests as root (CI does), or run `make demo` as a \
         normal user for the loopback demo"
    )]
    NotRoot,

    #[error(
        "cannot create a network namespace ({0}): the e2e suite needs root with CAP_SYS_ADMIN and \
         CAP_NET_ADMIN (in a container: --privileged)"
    )]
    NamespacesUnavailable(String),

    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Testkit(#[from] haproxy_peers_testkit::Error),

    #[error("the operator's render failed: {0}")]
    Render(String),

    #[error(
        "{} does not exist: build it first (`cargo build -p {package}`; `cargo test --workspace` \
         and `make demo` build it), or point ${env} at it",
        path.display()
    )]
    MissingBinary {
        path: PathBuf,
        package: &'static str,
        env: &'static str,
    },

    #[error(
        "{} is older than {} (a source it is built from): rebuild it (`cargo build -p \
         {package}`, with --release for the demo) so that the tests run the code in the tree",
        path.display(),
        newer.display()
    )]
    StaleBinary {
        path: PathBuf,
        newer: PathBuf,
        package: &'static str,
    },

    #[error("the probe in network namespace {netns} failed: {detail}")]
    Probe { netns: String, detail: String },

    #[error("no pod {0} in the fleet")]
    NoSuchPod(String),

    #[error("{process} of pod {pod} exited during start-up ({status}); its log:\n{log}")]
    Exited {
        process: &'static str,
        pod: String,
        status: String,
        log: String,
    },

    #[error("the address range 10.213.0.0/24 of this run is used up: start fewer pods")]
    AddressesExhausted,
}

impl Error {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let action = action.into();
        move |source| Error::Io { action, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
