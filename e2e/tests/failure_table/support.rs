//! What every scenario starts with and ends with.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use haproxy_peers_e2e::workload::{assert_nothing_lost, Workload, WorkloadOptions};
use haproxy_peers_e2e::{poll, Binaries, Fleet, FleetOptions};

pub const READY: Duration = Duration::from_secs(60);
pub const CONVERGE: Duration = Duration::from_secs(30);
/// Acknowledged writes per lane that show the traffic flows at a given moment.
pub const FLOWING: u64 = 20;

static SERIAL: Mutex<()> = Mutex::new(());

/// Held for a scenario's whole run: one scenario at a time (a failed one does not poison it).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn options(pods: usize) -> FleetOptions {
    let binaries =
        Binaries::with_probe(env!("CARGO_BIN_EXE_hp-e2e-probe")).unwrap_or_else(|e| panic!("{e}"));
    FleetOptions::new(binaries, pods)
}

/// A fleet of `pods`, every pod Ready, issued certificates as of `now`.
pub fn start(pods: usize, now: SystemTime) -> Fleet {
    let mut options = options(pods);
    options.now = now;
    start_with(options)
}

pub fn start_with(options: FleetOptions) -> Fleet {
    let fleet = Fleet::start(options).unwrap_or_else(|e| panic!("{e}"));
    ready(&fleet);
    fleet
}

pub fn ready(fleet: &Fleet) {
    fleet
        .wait_ready(READY)
        .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
}

/// Starts the traffic and waits until it flows through every pod.
pub fn traffic(fleet: &Fleet, options: WorkloadOptions) -> Workload {
    let workload = Workload::start(fleet, options);
    flowing(fleet, &workload);
    workload
}

/// Waits until every lane that is not paused writes again.
pub fn flowing(fleet: &Fleet, workload: &Workload) {
    workload
        .wait_progress(FLOWING, CONVERGE)
        .unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()));
}

/// Stops the traffic and asserts that every node holds everything it wrote.
pub fn nothing_lost(fleet: &Fleet, workload: Workload) {
    let ledger = workload.stop();
    assert_nothing_lost(fleet, &ledger, CONVERGE);
}

/// Fails with the fleet's logs.
pub fn check<T, E: std::fmt::Display>(fleet: &Fleet, what: Result<T, E>) -> T {
    what.unwrap_or_else(|e| panic!("{e}\n{}", fleet.logs()))
}

/// Waits until `check` holds on the fleet, failing with its logs.
pub fn until<T>(
    fleet: &Fleet,
    what: &str,
    check: impl FnMut() -> haproxy_peers_e2e::Result<Option<T>>,
) -> T {
    let out = poll(what, CONVERGE, check);
    self::check(fleet, out)
}

/// Runs an operation on the fleet, failing with its logs.
pub fn act<T>(fleet: &mut Fleet, op: impl FnOnce(&mut Fleet) -> haproxy_peers_e2e::Result<T>) -> T {
    let out = op(fleet);
    check(fleet, out)
}
