//! One error type for the whole harness. Messages say what to do where a person can act.

use std::path::PathBuf;
use std::time::Duration;

/// Everything the harness can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no haproxy binary found (looked at $HAPROXY_BIN, every PATH entry and /usr/sbin/haproxy): \
         install Debian's haproxy package (apt-get install haproxy)"
    )]
    HaproxyNotFound,

    #[error("$HAPROXY_BIN points to {0}, which is not an executable file: fix or unset it")]
    BadHaproxyBin(PathBuf),

    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },

    #[error("haproxy exited during start-up ({status}); config {config}; its output:\n{log}")]
    StartFailed {
        status: String,
        config: PathBuf,
        log: String,
    },

    #[error(
        "haproxy did not answer on its stats socket {socket} within {waited:?} \
         (last error: {last_error}); its output:\n{log}"
    )]
    NotReady {
        socket: PathBuf,
        waited: Duration,
        last_error: String,
        log: String,
    },

    #[error("the sidecar exited during start-up ({status}); its output:\n{log}")]
    SidecarExited { status: String, log: String },

    #[error("the process is not running (it was killed or terminated): call restart() first")]
    NotRunning,

    #[error("{0} needs master-worker mode: start with HaproxyOptions::master_worker(true)")]
    NeedsMasterWorker(&'static str),

    #[error("runtime API command `{command}` was refused: {answer}")]
    Refused { command: String, answer: String },

    #[error("cannot parse {what} from `{input}`")]
    Parse { what: &'static str, input: String },

    #[error(
        "no free TCP port on 127.0.0.1 in {first}..{last}: free some ports or stop other tests"
    )]
    NoFreePort { first: u16, last: u16 },

    #[error("HTTP exchange with {addr} failed: {detail}")]
    Http { addr: String, detail: String },

    #[error("the link between pods {a} and {b} has no relay: start the cluster with ClusterOptions::relayed(true)")]
    NotRelayed { a: usize, b: usize },

    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout { what: String, waited: Duration },
}

impl Error {
    pub(crate) fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let action = action.into();
        move |source| Error::Io { action, source }
    }

    pub(crate) fn parse(what: &'static str, input: &str) -> Error {
        Error::Parse {
            what,
            input: input.to_owned(),
        }
    }
}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
