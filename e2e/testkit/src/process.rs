//! A real HAProxy process started from a configuration string in its own temporary directory.
//!
//! The harness adds a `global` section with an admin-level `stats socket` in that directory,
//! starts HAProxy in the foreground in its own process group (so that the master and its workers
//! can be killed together), sends its stdout and stderr to `haproxy.log` there, and waits until
//! the stats socket answers. Dropping the value kills the whole group, also when a test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use rustix::process::{kill_process, kill_process_group, Pid, Signal};
use tempfile::TempDir;

use crate::binary::haproxy_binary;
use crate::child::{
    kill_group, spawn_logged, wait_group_gone, wait_started, with_output, NotStarted,
};
use crate::error::{Error, Result};
use crate::runtime::RuntimeApi;
use crate::wait::wait_until;

const CONFIG_FILE: &str = "haproxy.cfg";
const LOG_FILE: &str = "haproxy.log";
const STATS_SOCKET: &str = "admin.sock";
const MASTER_SOCKET: &str = "master.sock";
/// How long SIGTERM may take before SIGKILL follows.
const TERMINATE_GRACE: Duration = Duration::from_secs(10);

/// What to start.
#[derive(Debug, Clone)]
pub struct HaproxyOptions {
    config: String,
    local_peer: Option<String>,
    master_worker: bool,
    ready_timeout: Duration,
    env: Vec<(String, String)>,
}

impl HaproxyOptions {
    /// `config` is a complete configuration except the stats socket, which the harness adds.
    /// It may hold its own `global` section (HAProxy merges repeated ones).
    pub fn new(config: impl Into<String>) -> HaproxyOptions {
        HaproxyOptions {
            config: config.into(),
            local_peer: None,
            master_worker: false,
            ready_timeout: Duration::from_secs(10),
            env: Vec::new(),
        }
    }

    /// `-L <name>`: the local peer name (wins over `localpeer` and the hostname).
    pub fn local_peer(mut self, name: impl Into<String>) -> HaproxyOptions {
        self.local_peer = Some(name.into());
        self
    }

    /// `-W -S <dir>/master.sock`: master-worker mode, needed for [`Haproxy::reload`].
    pub fn master_worker(mut self, enabled: bool) -> HaproxyOptions {
        self.master_worker = enabled;
        self
    }

    /// How long start-up may take until the stats socket answers (default 10 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> HaproxyOptions {
        self.ready_timeout = timeout;
        self
    }

    /// An environment variable for `"${NAME}"` in the configuration.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> HaproxyOptions {
        self.env.push((name.into(), value.into()));
        self
    }
}

/// A running (or stopped, restartable) HAProxy.
#[derive(Debug)]
pub struct Haproxy {
    options: HaproxyOptions,
    binary: PathBuf,
    dir: TempDir,
    child: Option<Child>,
    starts: u32,
}

impl Haproxy {
    /// Writes the configuration, starts HAProxy and waits until its stats socket answers.
    pub fn start(options: HaproxyOptions) -> Result<Haproxy> {
        let binary = haproxy_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("haproxy-peers-testkit-")
            .tempdir()
            .map_err(Error::io("create a temporary directory for haproxy"))?;
        let mut haproxy = Haproxy {
            options,
            binary,
            dir,
            child: None,
            starts: 0,
        };
        let config = haproxy.options.config.clone();
        haproxy.set_config(config)?;
        haproxy.spawn()?;
        Ok(haproxy)
    }

    /// The temporary directory holding the configuration, sockets and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join(CONFIG_FILE)
    }

    pub fn stats_socket(&self) -> PathBuf {
        self.dir().join(STATS_SOCKET)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join(LOG_FILE)
    }

    /// Everything HAProxy wrote to stdout and stderr, over all its starts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The runtime API of the serving (worker) process.
    pub fn runtime(&self) -> RuntimeApi {
        RuntimeApi::new(self.stats_socket())
    }

    /// The master CLI (master-worker mode only): `show proc`, `reload`, …
    pub fn master(&self) -> Result<RuntimeApi> {
        if self.options.master_worker {
            Ok(RuntimeApi::new(self.dir().join(MASTER_SOCKET)))
        } else {
            Err(Error::NeedsMasterWorker("the master CLI"))
        }
    }

    /// The pid of the process the harness started (the master in master-worker mode).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The pid of the process serving traffic and peers (what HAProxy puts in its hello).
    pub fn worker_pid(&self) -> Result<u32> {
        self.runtime().pid()
    }

    /// How many times this value has started HAProxy.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Whether the started process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_)) | Err(_)) | None => false,
        }
    }

    /// SIGKILL to the whole process group (master and workers); returns once none of them
    /// runs any more.
    pub fn kill(&mut self) -> Result<()> {
        let child = self.child.take().ok_or(Error::NotRunning)?;
        kill_group(child, "haproxy")
    }

    /// SIGTERM to the started process (the master forwards it to its workers); SIGKILL to the
    /// group if it has not exited within 10 s.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        let mut child = self.child.take().ok_or(Error::NotRunning)?;
        let pid = Pid::from_child(&child);
        let _ = kill_process(pid, Signal::TERM);
        let exited = wait_until("haproxy to exit after SIGTERM", TERMINATE_GRACE, || {
            child.try_wait().map_err(Error::io("wait for haproxy"))
        });
        let _ = kill_process_group(pid, Signal::KILL);
        let status = match exited {
            Ok(status) => status,
            Err(_) => child.wait().map_err(Error::io("reap haproxy"))?,
        };
        wait_group_gone(pid)?;
        Ok(status)
    }

    /// Replaces the configuration file (the harness's stats socket is added again). It takes
    /// effect at the next [`Haproxy::restart`] or [`Haproxy::reload`].
    pub fn set_config(&mut self, config: impl Into<String>) -> Result<()> {
        self.options.config = config.into();
        std::fs::write(self.config_path(), self.full_config())
            .map_err(Error::io(format!("write {}", self.config_path().display())))
    }

    /// Starts HAProxy again with the same configuration, ports and directory, terminating the
    /// running one first if there is one.
    pub fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            self.terminate()?;
        }
        self.spawn()
    }

    /// Soft reload of a master-worker HAProxy (SIGUSR2 to the master). Returns once a new
    /// worker serves the stats socket, with that worker's pid.
    pub fn reload(&mut self) -> Result<u32> {
        if !self.options.master_worker {
            return Err(Error::NeedsMasterWorker("reload"));
        }
        let old_worker = self.worker_pid()?;
        let master = self.child.as_ref().ok_or(Error::NotRunning)?;
        kill_process(Pid::from_child(master), Signal::USR2)
            .map_err(|e| Error::io("send SIGUSR2 to the haproxy master")(e.into()))?;
        let waited = wait_until(
            "a new haproxy worker after SIGUSR2",
            self.options.ready_timeout,
            || Ok(self.serving().ok().filter(|pid| *pid != old_worker)),
        );
        waited.map_err(|err| self.with_log(err))
    }

    /// The worker pid once the stats socket answers and, in master-worker mode, the master CLI
    /// too (the master binds it after its worker is up, and again after each reload).
    fn serving(&self) -> Result<u32> {
        let worker = self.runtime().pid()?;
        if self.options.master_worker {
            self.master()?.command("show proc")?;
        }
        Ok(worker)
    }

    fn spawn(&mut self) -> Result<()> {
        let mut command = Command::new(&self.binary);
        command.arg("-f").arg(self.config_path());
        if let Some(name) = &self.options.local_peer {
            command.arg("-L").arg(name);
        }
        if self.options.master_worker {
            command
                .arg("-W")
                .arg("-S")
                .arg(self.dir().join(MASTER_SOCKET));
        } else {
            command.arg("-db");
        }
        command
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir());
        self.starts += 1;
        let child = spawn_logged(command, &self.log_path(), self.starts, "haproxy")?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let mut child = self.child.take().ok_or(Error::NotRunning)?;
        let started = wait_started(&mut child, self.options.ready_timeout, "haproxy", || {
            self.serving().map(|_| ())
        })?;
        match started {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(NotStarted::Exited(status)) => Err(Error::StartFailed {
                status: status.to_string(),
                config: self.config_path(),
                log: self.log(),
            }),
            Err(NotStarted::TimedOut { last_error, waited }) => {
                let _ = kill_group(child, "haproxy");
                Err(Error::NotReady {
                    socket: self.stats_socket(),
                    waited,
                    last_error,
                    log: self.log(),
                })
            }
        }
    }

    fn full_config(&self) -> String {
        format!(
            "# stats socket added by haproxy-peers-testkit\n\
             global\n    stats socket unix@{} level admin\n\n{}\n",
            self.stats_socket().display(),
            self.options.config
        )
    }

    fn with_log(&self, err: Error) -> Error {
        with_output(err, "haproxy", &self.log())
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
    }
}
