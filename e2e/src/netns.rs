//! Pods as network namespaces, wired to a bridge that lives in a namespace of its own.
//!
//! One [`Network`] per test run. Its namespaces are named `hp-<run>-<name>` where `<run>` is
//! `<pid>-<n>`, unique per process and per network, so parallel tests never collide:
//!
//! * `hp-<run>-sw`, the switch: a bridge `br0` and one veth end per pod. The host's own network
//!   configuration is never touched: no interface, address or route is added outside the
//!   namespaces created here.
//! * `hp-<run>-<pod>`: `lo` up and `eth0`, the other veth end, with an address in
//!   10.213.0.0/24. Nothing is ever sent outside these namespaces (they have no route out).
//!
//! Each namespace has `/etc/netns/<netns>/hosts`, which `ip netns exec` bind-mounts over
//! `/etc/hosts` for the processes it starts. It is rewritten in place (same inode, so the bind
//! mount of a running process sees the new text): that is the pods' DNS, and a pod replaced
//! with a new IP is found under its old name.
//!
//! Cleanup: dropping the network kills every process left in its namespaces, deletes them and
//! their `/etc/netns` directories. A run that died without dropping (SIGKILL, a CI timeout)
//! leaves them behind; [`sweep_leftovers`], called by every [`Network::create`], removes those
//! of runs whose owner is gone. A live owner holds an exclusive lock on
//! `/run/haproxy-peers-e2e/<run>.lock`; the lock disappears with its process (the file stays,
//! which tells the sweeper that the run crashed, so it also removes the run's directory
//! `$TMPDIR/hp-e2e-<run>-*`).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use crate::error::{Error, Result};
use crate::ip::{ip, netns_exec};
use crate::wait::poll;

/// Every namespace this harness creates starts with this.
pub const PREFIX: &str = "hp-";
/// The subnet of every run (each run has its own switch, so runs never share it).
pub const SUBNET: [u8; 3] = [10, 213, 0];
pub const PREFIX_LEN: u8 = 24;
/// Host numbers handed out to namespaces, in order; never reused within a run, so a replaced
/// pod always comes back with a new address.
const FIRST_HOST: u8 = 10;
const LAST_HOST: u8 = 250;

const LOCK_DIR: &str = "/run/haproxy-peers-e2e";
/// Runs' directories in the temporary directory start with this.
const FILES_PREFIX: &str = "hp-e2e-";
const NETNS_DIR: &str = "/run/netns";
const ETC_NETNS: &str = "/etc/netns";
const SWITCH: &str = "sw";
const BRIDGE: &str = "br0";
const POD_IF: &str = "eth0";

static NEXT_RUN: AtomicU32 = AtomicU32::new(0);

/// Fails with [`Error::NotRoot`] unless the process runs as root.
pub fn require_root() -> Result<()> {
    if rustix::process::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot)
    }
}

/// One namespace attached to the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The name given to [`Network::add`] (a pod name, or `client`).
    pub name: String,
    /// The namespace: `hp-<run>-<name>`.
    pub netns: String,
    pub ip: Ipv4Addr,
    /// The veth end in the switch namespace: cutting it cuts the host off.
    veth: String,
}

impl Host {
    /// `ip netns exec <netns> <program>`.
    pub fn command(&self, program: &Path) -> Command {
        netns_exec(&self.netns, program)
    }
}

/// The namespaces of one run.
#[derive(Debug)]
pub struct Network {
    run: String,
    switch: String,
    hosts: BTreeMap<String, Host>,
    next_host: u8,
    lock_path: PathBuf,
    /// Held (locked) for the network's lifetime: what tells a sweeper the run is alive.
    _lock: File,
}

impl Network {
    /// Sweeps leftovers of dead runs, then creates this run's switch.
    pub fn create() -> Result<Network> {
        require_root()?;
        sweep_leftovers()?;
        let run = format!(
            "{}-{}",
            std::process::id(),
            NEXT_RUN.fetch_add(1, Ordering::Relaxed)
        );
        let (lock, lock_path) = take_lock(&run)?;
        let switch = netns_name(&run, SWITCH);
        let network = Network {
            run,
            switch,
            hosts: BTreeMap::new(),
            next_host: FIRST_HOST,
            lock_path,
            _lock: lock,
        };
        ip(&["netns", "add", &network.switch])
            .map_err(|e| Error::NamespacesUnavailable(e.to_string()))?;
        let sw = network.switch.as_str();
        ip(&["-n", sw, "link", "set", "lo", "up"])?;
        ip(&["-n", sw, "link", "add", BRIDGE, "type", "bridge"])?;
        ip(&["-n", sw, "link", "set", BRIDGE, "up"])?;
        Ok(network)
    }

    /// `<pid>-<n>`: what every namespace of this run is named after.
    pub fn run_id(&self) -> &str {
        &self.run
    }

    /// `hp-<run>-`: the prefix of every namespace of this run.
    pub fn prefix(&self) -> String {
        format!("{PREFIX}{}-", self.run)
    }

    /// The prefix of the run's directory in the temporary directory: the sweeper removes it
    /// too when the run crashed (a run that ended normally may have kept it on purpose).
    pub fn files_prefix(&self) -> String {
        files_prefix(&self.run)
    }

    /// Creates namespace `hp-<run>-<name>` with a new address, `lo` up, linked to the switch,
    /// and an `/etc/netns/<netns>/hosts` holding only localhost (see [`Network::set_hosts`]).
    pub fn add(&mut self, name: &str) -> Result<Host> {
        if self.hosts.contains_key(name) {
            return Err(Error::Command {
                command: format!("add namespace for {name}"),
                status: "refused".into(),
                stderr: format!("{name} already has a namespace: remove it first"),
            });
        }
        let number = self.next_host;
        if number > LAST_HOST {
            return Err(Error::AddressesExhausted);
        }
        self.next_host += 1;
        let host = Host {
            name: name.to_string(),
            netns: netns_name(&self.run, name),
            ip: Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], number),
            veth: format!("v{number}"),
        };
        // Registered first, so that a failure below is cleaned up by drop.
        self.hosts.insert(name.to_string(), host.clone());
        let ns = host.netns.as_str();
        let etc = etc_dir(ns);
        std::fs::create_dir_all(&etc).map_err(Error::io(format!("create {}", etc.display())))?;
        write_in_place(&etc.join("hosts"), &hosts_text(&[]))?;
        ip(&["netns", "add", ns])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            ns,
            "link",
            "add",
            POD_IF,
            "type",
            "veth",
            "peer",
            "name",
            &host.veth,
            "netns",
            &self.switch,
        ])?;
        ip(&[
            "-n",
            &self.switch,
            "link",
            "set",
            &host.veth,
            "master",
            BRIDGE,
            "up",
        ])?;
        let cidr = format!("{}/{PREFIX_LEN}", host.ip);
        ip(&["-n", ns, "addr", "add", &cidr, "dev", POD_IF])?;
        ip(&["-n", ns, "link", "set", POD_IF, "up"])?;
        Ok(host)
    }

    /// Kills every process in the namespace, deletes it and its `/etc/netns` directory.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        let host = self
            .hosts
            .remove(name)
            .ok_or_else(|| Error::NoSuchPod(name.to_string()))?;
        delete_netns(&host.netns)
    }

    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts
            .get(name)
            .ok_or_else(|| Error::NoSuchPod(name.to_string()))
    }

    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.hosts.values()
    }

    /// Rewrites every namespace's hosts file (in place) with localhost and `entries`: an
    /// address and the names that resolve to it.
    pub fn set_hosts(&self, entries: &[(Ipv4Addr, Vec<String>)]) -> Result<()> {
        let text = hosts_text(entries);
        for host in self.hosts.values() {
            write_in_place(&etc_dir(&host.netns).join("hosts"), &text)?;
        }
        Ok(())
    }

    /// Rewrites one namespace's hosts file (in place) with localhost and `entries`: a pod whose
    /// DNS answers differently from the others' (until the next [`Network::set_hosts`]).
    pub fn set_hosts_of(&self, name: &str, entries: &[(Ipv4Addr, Vec<String>)]) -> Result<()> {
        let host = self.host(name)?;
        write_in_place(&etc_dir(&host.netns).join("hosts"), &hosts_text(entries))
    }

    /// Takes the host's link to the switch down: nothing reaches it, it reaches nothing.
    pub fn cut(&self, name: &str) -> Result<()> {
        self.set_link(name, "down")
    }

    /// Brings the host's link back up.
    pub fn heal(&self, name: &str) -> Result<()> {
        self.set_link(name, "up")
    }

    /// Partitions `a` from `b` only: each drops what it sends to the other (a blackhole route
    /// in each namespace), while both still reach everyone else.
    pub fn partition(&self, a: &str, b: &str) -> Result<()> {
        self.blackhole("add", a, b)
    }

    /// Undoes [`Network::partition`].
    pub fn unpartition(&self, a: &str, b: &str) -> Result<()> {
        self.blackhole("del", a, b)
    }

    fn blackhole(&self, action: &str, a: &str, b: &str) -> Result<()> {
        let (a, b) = (self.host(a)?, self.host(b)?);
        for (from, to) in [(a, b), (b, a)] {
            let dest = format!("{}/32", to.ip);
            ip(&["-n", &from.netns, "route", action, "blackhole", &dest])?;
        }
        Ok(())
    }

    fn set_link(&self, name: &str, state: &str) -> Result<()> {
        let host = self.host(name)?;
        ip(&["-n", &self.switch, "link", "set", &host.veth, state]).map(drop)
    }

    /// The pids of every process in the host's namespace.
    pub fn pids(&self, name: &str) -> Result<Vec<u32>> {
        netns_pids(&self.host(name)?.netns)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for host in self.hosts.values() {
            if let Err(e) = delete_netns(&host.netns) {
                eprintln!("haproxy-peers-e2e: cleaning up {}: {e}", host.netns);
            }
        }
        if let Err(e) = delete_netns(&self.switch) {
            eprintln!("haproxy-peers-e2e: cleaning up {}: {e}", self.switch);
        }
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// `hp-<run>-<name>`.
fn netns_name(run: &str, name: &str) -> String {
    format!("{PREFIX}{run}-{name}")
}

fn files_prefix(run: &str) -> String {
    format!("{FILES_PREFIX}{run}-")
}

/// The file `ip netns` binds the namespace to; a namespace created again under the same name is
/// bound to it anew (another inode).
pub fn netns_file(netns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(netns)
}

fn etc_dir(netns: &str) -> PathBuf {
    Path::new(ETC_NETNS).join(netns)
}

fn lock_path(run: &str) -> PathBuf {
    Path::new(LOCK_DIR).join(format!("{run}.lock"))
}

/// Creates and locks `<run>.lock`. It is locked under a temporary name and then renamed, so
/// that a sweeper never finds it unlocked.
fn take_lock(run: &str) -> Result<(File, PathBuf)> {
    std::fs::create_dir_all(LOCK_DIR).map_err(Error::io(format!("create {LOCK_DIR}")))?;
    let path = lock_path(run);
    let tmp = Path::new(LOCK_DIR).join(format!(".{run}.lock.tmp"));
    let file = File::create(&tmp).map_err(Error::io(format!("create {}", tmp.display())))?;
    file.lock()
        .map_err(Error::io(format!("lock {}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(Error::io(format!("rename to {}", path.display())))?;
    Ok((file, path))
}

/// The text of a hosts file: localhost, then one line per address.
pub fn hosts_text(entries: &[(Ipv4Addr, Vec<String>)]) -> String {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (ip, names) in entries {
        text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    text
}

/// Truncates and rewrites the file, keeping its inode (a bind mount of it stays valid).
fn write_in_place(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(Error::io(format!("write {}", path.display())))
}

fn netns_pids(netns: &str) -> Result<Vec<u32>> {
    Ok(ip(&["netns", "pids", netns])?
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect())
}

/// SIGKILL to every process of the namespace until none is left, then deletes it and its
/// `/etc/netns` directory. A namespace that no longer exists is not an error.
/// Deletes a namespace and its `/etc/netns` directory. Idempotent: several test processes may
/// sweep the same leftovers of a crashed run at once, so "already gone" is success.
fn delete_netns(netns: &str) -> Result<()> {
    let file = netns_file(netns);
    if file.exists() {
        poll(
            &format!("the processes of namespace {netns} to die"),
            Duration::from_secs(10),
            || {
                let pids = match netns_pids(netns) {
                    Ok(pids) => pids,
                    Err(_) if !file.exists() => Vec::new(),
                    Err(e) => return Err(e),
                };
                for pid in &pids {
                    if let Some(pid) = i32::try_from(*pid).ok().and_then(Pid::from_raw) {
                        let _ = kill_process(pid, Signal::KILL);
                    }
                }
                Ok(pids.is_empty().then_some(()))
            },
        )?;
        if let Err(e) = ip(&["netns", "del", netns]) {
            if file.exists() {
                return Err(e);
            }
        }
    }
    let etc = etc_dir(netns);
    match std::fs::remove_dir_all(&etc) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("remove {}", etc.display()))(e));
        }
        _ => {}
    }
    Ok(())
}

/// The run of a namespace or `/etc/netns` directory name made by this harness.
fn run_of(name: &str) -> Option<String> {
    let rest = name.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?;
    let n = parts.next()?;
    parts.next()?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (numeric(pid) && numeric(n)).then(|| format!("{pid}-{n}"))
}

/// Whether the run's owner is gone: its lock file is missing or can be locked.
fn run_is_dead(run: &str) -> bool {
    match File::open(lock_path(run)) {
        Err(_) => true,
        Ok(file) => file.try_lock().is_ok(),
    }
}

fn names_in(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes the namespaces (killing their processes), `/etc/netns` directories and lock files
/// of every run whose owner is gone. Returns the namespaces deleted.
pub fn sweep_leftovers() -> Result<Vec<String>> {
    require_root()?;
    let mut by_run: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in names_in(NETNS_DIR).into_iter().chain(names_in(ETC_NETNS)) {
        if let Some(run) = run_of(&name) {
            let names = by_run.entry(run).or_default();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    for lock in names_in(LOCK_DIR) {
        if let Some(run) = lock.strip_suffix(".lock") {
            by_run.entry(run.to_string()).or_default();
        }
    }
    let mut swept = Vec::new();
    for (run, names) in by_run {
        if !run_is_dead(&run) {
            continue;
        }
        // Pods first, the switch last, as a live run would.
        let (switch, pods): (Vec<String>, Vec<String>) = names
            .into_iter()
            .partition(|n| n.ends_with(&format!("-{SWITCH}")));
        for name in pods.into_iter().chain(switch) {
            delete_netns(&name)?;
            swept.push(name);
        }
        // A lock file left behind means the run never dropped its network: it crashed.
        if lock_path(&run).exists() {
            remove_files_of(&run);
        }
        let _ = std::fs::remove_file(lock_path(&run));
    }
    Ok(swept)
}

fn remove_files_of(run: &str) {
    let prefix = files_prefix(run);
    let tmp = std::env::temp_dir();
    for name in names_in(&tmp.to_string_lossy()) {
        if name.starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(tmp.join(name));
        }
    }
}

/// Every namespace whose name starts with `prefix` (to check that a run left nothing behind).
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    names_in(NETNS_DIR)
        .into_iter()
        .chain(names_in(ETC_NETNS))
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_its_own_names() {
        assert_eq!(run_of("hp-1234-0-edge-0").as_deref(), Some("1234-0"));
        assert_eq!(run_of("hp-1234-17-sw").as_deref(), Some("1234-17"));
        assert_eq!(run_of("hp-1234-0").as_deref(), None);
        assert_eq!(run_of("hp-abc-0-edge-0"), None);
        assert_eq!(run_of("hp--0-x"), None);
        assert_eq!(run_of("cni-1234-0-x"), None);
        assert_eq!(netns_name("9-1", "edge-2"), "hp-9-1-edge-2");
        assert_eq!(run_of(&netns_name("9-1", "edge-2")).as_deref(), Some("9-1"));
    }

    #[test]
    fn hosts_file_lists_localhost_then_every_entry() {
        let text = hosts_text(&[(
            Ipv4Addr::new(10, 213, 0, 11),
            vec!["edge-0".into(), "edge-0.edge-peers.web.svc".into()],
        )]);
        assert_eq!(
            text,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             10.213.0.11\tedge-0 edge-0.edge-peers.web.svc\n"
        );
    }
}
