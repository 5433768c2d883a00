//! A real `haproxy-peers-sidecar run` process: started with explicit addresses, its output in a
//! log file, killed (the whole process group) on drop, also when a test panics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use tempfile::TempDir;

use crate::child::{kill_group, spawn_logged, wait_started, with_output, NotStarted};
use crate::error::{Error, Result};
use crate::http::{http_get, HttpResponse};
use crate::wait::wait_until;

const LOG_FILE: &str = "sidecar.log";

/// What to start: `<binary> run --pod-name … --config-dir … --tls-dir … --admin-listen …
/// --mesh-listen … --local-listen … --haproxy-addr …`.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    pub binary: PathBuf,
    pub pod_name: String,
    pub config_dir: PathBuf,
    pub tls_dir: PathBuf,
    pub admin: SocketAddr,
    pub mesh: SocketAddr,
    pub local: SocketAddr,
    pub haproxy: SocketAddr,
    /// `--log-level` (default `info`).
    pub log_level: String,
    /// More environment variables (the harness clears `HAPROXY_PEERS_*` and `POD_NAME` so that
    /// the caller's environment cannot change what a test runs).
    pub env: Vec<(String, String)>,
    /// How long start-up may take until `/healthz` answers (default 10 s).
    pub start_timeout: Duration,
}

impl SidecarOptions {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("run")
            .arg("--pod-name")
            .arg(&self.pod_name)
            .arg("--config-dir")
            .arg(&self.config_dir)
            .arg("--tls-dir")
            .arg(&self.tls_dir)
            .arg("--admin-listen")
            .arg(self.admin.to_string())
            .arg("--mesh-listen")
            .arg(self.mesh.to_string())
            .arg("--local-listen")
            .arg(self.local.to_string())
            .arg("--haproxy-addr")
            .arg(self.haproxy.to_string())
            .arg("--log-level")
            .arg(&self.log_level);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("HAPROXY_PEERS_") || name == "POD_NAME" {
                command.env_remove(name.as_ref());
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }
}

/// A running (or stopped, restartable) sidecar.
#[derive(Debug)]
pub struct Sidecar {
    options: SidecarOptions,
    dir: TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Sidecar {
    /// Starts the sidecar and waits until its admin server answers `/healthz` (not `/readyz`:
    /// readiness is what tests observe).
    pub fn start(options: SidecarOptions) -> Result<Sidecar> {
        let dir = tempfile::Builder::new()
            .prefix("haproxy-peers-sidecar-")
            .tempdir()
            .map_err(Error::io(
                "create a temporary directory for the sidecar log",
            ))?;
        let mut sidecar = Sidecar {
            options,
            dir,
            child: None,
            starts: 0,
        };
        sidecar.spawn()?;
        Ok(sidecar)
    }

    pub fn options(&self) -> &SidecarOptions {
        &self.options
    }

    pub fn name(&self) -> &str {
        &self.options.pod_name
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.options.admin
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// Everything the sidecar wrote to stdout and stderr, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The lines of [`Sidecar::log`] holding every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits for a log line holding every one of `needles` and returns it.
    pub fn wait_log(&self, needles: &[&str], timeout: Duration) -> Result<String> {
        wait_until(
            &format!("a log line of sidecar {} with {needles:?}", self.name()),
            timeout,
            || Ok(self.log_lines_with(needles).into_iter().next()),
        )
        .map_err(|err| self.with_log(err))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times this value has started the sidecar.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// `GET <path>` on the admin port.
    pub fn get(&self, path: &str) -> Result<HttpResponse> {
        http_get(self.options.admin, path, &[])
    }

    /// `GET <path>` that must answer 200; returns the body as text.
    pub fn get_ok(&self, path: &str) -> Result<String> {
        let response = self.get(path)?;
        let body = String::from_utf8_lossy(&response.body).into_owned();
        if response.status == 200 {
            Ok(body)
        } else {
            Err(Error::Http {
                addr: format!("{}{path}", self.options.admin),
                detail: format!("status {}: {body}", response.status),
            })
        }
    }

    /// The status of `/readyz` and its body.
    pub fn readyz(&self) -> Result<(u16, String)> {
        let response = self.get("/readyz")?;
        Ok((
            response.status,
            String::from_utf8_lossy(&response.body).into_owned(),
        ))
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let mut last = String::new();
        let waited = wait_until(
            &format!("sidecar {} to be ready", self.name()),
            timeout,
            || match self.readyz() {
                Ok((200, _)) => Ok(Some(())),
                Ok((status, body)) => {
                    last = format!("{status}: {body}");
                    Ok(None)
                }
                Err(err) => {
                    last = err.to_string();
                    Ok(None)
                }
            },
        );
        waited.map_err(|err| match err {
            Error::Timeout { what, waited } => self.with_log(Error::Timeout {
                what: format!("{what} (last /readyz: {last})"),
                waited,
            }),
            other => other,
        })
    }

    /// SIGKILL to the sidecar's process group; returns once it is gone.
    pub fn kill(&mut self) -> Result<()> {
        let child = self.child.take().ok_or(Error::NotRunning)?;
        kill_group(child, "sidecar")
    }

    /// Starts the sidecar again with the same options, killing the running one first.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.kill()?;
        }
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let mut command = self.options.command();
        command.current_dir(self.dir.path());
        self.starts += 1;
        let mut child = spawn_logged(command, &self.log_path(), self.starts, "sidecar")?;
        let serving = wait_started(
            &mut child,
            self.options.start_timeout,
            "sidecar",
            || match self.get("/healthz")? {
                response if response.status == 200 => Ok(()),
                response => Err(Error::Http {
                    addr: self.options.admin.to_string(),
                    detail: format!("/healthz answered {}", response.status),
                }),
            },
        )?;
        match serving {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(NotStarted::Exited(status)) => Err(Error::SidecarExited {
                status: status.to_string(),
                log: self.log(),
            }),
            Err(NotStarted::TimedOut { last_error, waited }) => {
                let _ = kill_group(child, "sidecar");
                Err(Error::Timeout {
                    what: format!(
                        "sidecar {} to answer /healthz on {} (last: {last_error}); its output:\n{}",
                        self.name(),
                        self.options.admin,
                        self.log()
                    ),
                    waited,
                })
            }
        }
    }

    fn with_log(&self, err: Error) -> Error {
        with_output(err, "sidecar", &self.log())
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
    }
}
