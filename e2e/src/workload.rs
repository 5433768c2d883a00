//! Traffic that runs while a scenario happens, and the check that nothing it wrote was lost.
//!
//! One lane per pod, each with two threads:
//! * a writer: `set table be_rate key w-<pod>-<k> data.gpc0 <n>` through the pod's runtime API,
//!   cycling over [`KEYS_PER_LANE`] keys with ever-growing values (so a lost update shows as an
//!   old value, not only as a missing key);
//! * an HTTP client in the client namespace: batches of requests to the pod with `x-client:
//!   c-<pod>` (the rate table) and a new `x-session` per batch (the sticky table); every third
//!   batch revisits a session created earlier, possibly through another pod, and must land on the
//!   server that session was given.
//!
//! Every outcome goes into a [`Ledger`]; [`assert_nothing_lost`] polls every node until its
//! tables match the ledger (or names every difference when they do not).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use haproxy_peers_testkit::show_table::TableDump;
use haproxy_peers_testkit::RuntimeApi;

use crate::fleet::Fleet;
use crate::haproxy_cfg::{
    CLIENT_HEADER, HTTP_PORT, RATE_TABLE, SERVERS, SESSION_HEADER, STICKY_TABLE,
};
use crate::ledger::{rates_agree, Ledger, Totals, FIELDS};
use crate::netns::Host;
use crate::probe::{run_probe, HttpTally};
use crate::wait::poll;
use crate::Result;

/// Keys each lane's writer cycles over.
pub const KEYS_PER_LANE: u64 = 16;
/// One write of a lane at most this often.
const WRITE_PERIOD: Duration = Duration::from_millis(15);
/// Requests per HTTP batch.
const BATCH: u64 = 4;
/// One HTTP batch of a lane at most this often: 50 requests/s per client, 500 per 10 s, half
/// the fleet's default rate limit (1 000 per 10 s), so that no request is denied with 429 and
/// every one reaches the sticky backend however fast the machine is.
const BATCH_PERIOD: Duration = Duration::from_millis(80);
/// A session is revisited only once this old (it has reached every node by then).
const REVISIT_AGE: Duration = Duration::from_secs(2);

/// How the traffic behaves.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadOptions {
    /// Revisit sessions created through other pods (off while pods are partitioned: the other
    /// side cannot know them).
    pub revisit_foreign: bool,
    pub http: bool,
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        WorkloadOptions {
            revisit_foreign: true,
            http: true,
        }
    }
}

/// Where a lane sends: its pod's runtime API and address (the address changes when the pod is
/// replaced).
#[derive(Debug, Clone)]
struct Target {
    runtime: RuntimeApi,
    ip: Ipv4Addr,
}

struct Lane {
    paused: Arc<AtomicBool>,
    retired: Arc<AtomicBool>,
    /// Held by a lane's thread while it sends: pausing takes it to wait for what is in flight.
    busy: Arc<Mutex<()>>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    ledger: Mutex<Ledger>,
    targets: Mutex<BTreeMap<String, Target>>,
    options: WorkloadOptions,
    probe: PathBuf,
    client: Host,
}

impl Shared {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn target(&self, pod: &str) -> Option<Target> {
        self.targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(pod)
            .cloned()
    }
}

/// The running traffic.
pub struct Workload {
    shared: Arc<Shared>,
    lanes: BTreeMap<String, Lane>,
}

impl Workload {
    /// Starts a lane for every pod of the fleet.
    pub fn start(fleet: &Fleet, options: WorkloadOptions) -> Workload {
        let shared = Arc::new(Shared {
            ledger: Mutex::new(Ledger::default()),
            targets: Mutex::new(BTreeMap::new()),
            options,
            probe: fleet.options().binaries.probe.clone(),
            client: fleet.client().clone(),
        });
        let mut workload = Workload {
            shared,
            lanes: BTreeMap::new(),
        };
        workload.follow(fleet);
        workload
    }

    /// Follows the fleet's pods: new addresses of replaced pods, a lane for every new pod. The
    /// lanes of pods that are gone stop (drain them before removing the pod).
    pub fn follow(&mut self, fleet: &Fleet) {
        let targets: BTreeMap<String, Target> = fleet
            .pods()
            .map(|p| {
                (
                    p.name.clone(),
                    Target {
                        runtime: p.runtime(),
                        ip: p.ip(),
                    },
                )
            })
            .collect();
        *self
            .shared
            .targets
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = targets.clone();
        let gone: Vec<String> = self
            .lanes
            .keys()
            .filter(|n| !targets.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(lane) = self.lanes.remove(&name) {
                lane.retired.store(true, Ordering::SeqCst);
                for t in lane.threads {
                    let _ = t.join();
                }
            }
        }
        for name in targets.keys() {
            if !self.lanes.contains_key(name) {
                let lane = self.spawn_lane(name);
                self.lanes.insert(name.clone(), lane);
            }
        }
    }

    fn spawn_lane(&self, pod: &str) -> Lane {
        let paused = Arc::new(AtomicBool::new(false));
        let retired = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(Mutex::new(()));
        let mut threads = Vec::new();
        let ctx = LaneCtx {
            pod: pod.to_string(),
            shared: Arc::clone(&self.shared),
            paused: Arc::clone(&paused),
            retired: Arc::clone(&retired),
            busy: Arc::clone(&busy),
        };
        let writer = ctx.clone();
        threads.push(std::thread::spawn(move || writer.write_loop()));
        if self.shared.options.http {
            let http = ctx;
            threads.push(std::thread::spawn(move || http.http_loop()));
        }
        Lane {
            paused,
            retired,
            busy,
            threads,
        }
    }

    /// Stops sending to `pod` and waits for what is in flight: a pod taken out of its Service's
    /// endpoints before it is deleted.
    pub fn pause(&self, pod: &str) {
        if let Some(lane) = self.lanes.get(pod) {
            lane.paused.store(true, Ordering::SeqCst);
            drop(lane.busy.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }

    pub fn resume(&self, pod: &str) {
        if let Some(lane) = self.lanes.get(pod) {
            lane.paused.store(false, Ordering::SeqCst);
        }
    }

    /// Runs `kill` (a `SIGKILL` of `pod`'s HAProxy, or of the whole pod) and records it, so that
    /// what the pod acknowledged just before may be missing ([`crate::ledger::CRASH_GRACE`]).
    pub fn crash<T>(&self, pod: &str, kill: impl FnOnce() -> T) -> T {
        let from = Instant::now();
        let out = kill();
        self.shared.ledger().crashed(pod, from, Instant::now());
        out
    }

    /// Runs `reload` (a soft reload of `pod`'s HAProxy, returning once its new worker serves)
    /// and records it ([`crate::ledger::RELOAD_GRACE`]).
    pub fn reload<T>(&self, pod: &str, reload: impl FnOnce() -> T) -> T {
        let from = Instant::now();
        let out = reload();
        self.shared.ledger().reloaded(pod, from, Instant::now());
        out
    }

    /// A copy of the ledger so far.
    pub fn ledger(&self) -> Ledger {
        self.shared.ledger().clone()
    }

    pub fn totals(&self) -> Totals {
        self.shared.ledger().totals()
    }

    /// Waits until every lane that is not paused made `writes` more acknowledged writes (the
    /// traffic really flows, e.g. while an event is under way).
    pub fn wait_progress(&self, writes: u64, timeout: Duration) -> Result<()> {
        let since = Instant::now();
        let active: Vec<String> = self
            .lanes
            .iter()
            .filter(|(_, l)| !l.paused.load(Ordering::SeqCst))
            .map(|(n, _)| n.clone())
            .collect();
        poll(
            &format!("{writes} acknowledged writes through each of {active:?}"),
            timeout,
            || {
                let ledger = self.shared.ledger();
                Ok(active
                    .iter()
                    .all(|p| ledger.acked_since(p, since) >= writes)
                    .then_some(()))
            },
        )
    }

    /// Stops every lane and returns the final ledger.
    pub fn stop(mut self) -> Ledger {
        for lane in self.lanes.values() {
            lane.retired.store(true, Ordering::SeqCst);
        }
        for (_, lane) in std::mem::take(&mut self.lanes) {
            for t in lane.threads {
                let _ = t.join();
            }
        }
        self.ledger()
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        for lane in self.lanes.values() {
            lane.retired.store(true, Ordering::SeqCst);
        }
    }
}

#[derive(Clone)]
struct LaneCtx {
    pod: String,
    shared: Arc<Shared>,
    paused: Arc<AtomicBool>,
    retired: Arc<AtomicBool>,
    busy: Arc<Mutex<()>>,
}

impl LaneCtx {
    /// Runs `step` while the lane is neither paused nor retired, then waits out the rest of
    /// `period` (at least a millisecond); returns false once retired.
    fn step(&self, period: Duration, step: impl FnOnce(Target)) -> bool {
        if self.retired.load(Ordering::SeqCst) {
            return false;
        }
        let started = Instant::now();
        {
            let _busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
            if !self.paused.load(Ordering::SeqCst) {
                if let Some(target) = self.shared.target(&self.pod) {
                    step(target);
                }
            }
        }
        let rest = period.saturating_sub(started.elapsed());
        std::thread::sleep(rest.max(Duration::from_millis(1)));
        true
    }

    fn write_loop(&self) {
        let mut n: u64 = 0;
        while self.step(WRITE_PERIOD, |target| {
            n += 1;
            let key = format!("w-{}-{}", self.pod, n % KEYS_PER_LANE);
            let outcome = write_outcome(target.runtime.set_table(RATE_TABLE, &key, &[("gpc0", n)]));
            let at = Instant::now();
            match outcome {
                Outcome::Applied => self.shared.ledger().wrote(&key, n, &self.pod, Some(at)),
                Outcome::Unknown => self.shared.ledger().wrote(&key, n, &self.pod, None),
                Outcome::NotApplied => {}
            }
        }) {}
    }

    fn http_loop(&self) {
        let client = format!("c-{}", self.pod);
        let mut batch: u64 = 0;
        while self.step(BATCH_PERIOD, |target| {
            batch += 1;
            let revisit = batch
                .is_multiple_of(3)
                .then(|| self.pick_revisit(batch))
                .flatten();
            let session = revisit
                .clone()
                .unwrap_or_else(|| format!("s-{}-{batch}", self.pod));
            let args = vec![
                "http".to_string(),
                format!("{}:{HTTP_PORT}", target.ip),
                "--count".to_string(),
                BATCH.to_string(),
                "--header".to_string(),
                format!("{CLIENT_HEADER}: {client}"),
                "--header".to_string(),
                format!("{SESSION_HEADER}: {session}"),
            ];
            let tally: HttpTally = match run_probe(&self.shared.probe, &self.shared.client, &args) {
                Ok(t) => t,
                // The probe itself failed to run: nothing is known to have been sent.
                Err(_) => return,
            };
            let at = Instant::now();
            let answered: u64 = tally.statuses.values().sum();
            let mut ledger = self.shared.ledger();
            ledger.requested(&client, &self.pod, at, answered, tally.failed);
            let ids: Vec<i64> = tally.servers.keys().filter_map(|s| server_id(s)).collect();
            match (&revisit, ids.as_slice()) {
                (_, []) => {
                    // A 429 is answered before the backend (no server); a 200 always names one.
                    if revisit.is_none() && tally.status(200) > 0 {
                        ledger.violation(format!(
                            "{}: session {session} answered without a known x-server: {tally:?}",
                            self.pod
                        ));
                    }
                    if revisit.is_none() {
                        ledger.session(&session, &self.pod, at, None);
                    }
                }
                (None, [id]) => ledger.session(&session, &self.pod, at, Some(*id)),
                (Some(_), [id]) => {
                    let had = ledger.server_of(&session);
                    if had != Some(*id) {
                        ledger.violation(format!(
                            "{}: revisited session {session} went to server {id}, it had {had:?}",
                            self.pod
                        ));
                    }
                }
                (Some(_), _) => ledger.violation(format!(
                    "{}: revisited session {session} was split over servers {ids:?}",
                    self.pod
                )),
                (None, _) => ledger.split(
                    &self.pod,
                    at,
                    format!(
                        "{}: session {session} was split over servers {ids:?}",
                        self.pod
                    ),
                ),
            }
        }) {}
    }

    /// A settled session to revisit: one of this lane's, or any lane's if foreign revisits are
    /// allowed.
    fn pick_revisit(&self, batch: u64) -> Option<String> {
        let ledger = self.shared.ledger();
        let own = format!("s-{}-", self.pod);
        let candidates: Vec<String> = ledger
            .settled_sessions(Instant::now(), REVISIT_AGE)
            .into_iter()
            .filter(|s| self.shared.options.revisit_foreign || s.starts_with(&own))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i =
            usize::try_from(batch.wrapping_mul(2_654_435_761) % candidates.len() as u64).ok()?;
        candidates.get(i).cloned()
    }
}

enum Outcome {
    Applied,
    NotApplied,
    Unknown,
}

/// Whether a `set table` happened: refused or never connected means no; an answer means yes; a
/// connection that broke on the way leaves it unknown.
fn write_outcome(result: haproxy_peers_testkit::Result<()>) -> Outcome {
    use haproxy_peers_testkit::Error as E;
    use std::io::ErrorKind as K;
    match result {
        Ok(()) => Outcome::Applied,
        Err(E::Refused { .. }) => Outcome::NotApplied,
        Err(E::Io { source, .. })
            if matches!(source.kind(), K::ConnectionRefused | K::NotFound) =>
        {
            Outcome::NotApplied
        }
        Err(_) => Outcome::Unknown,
    }
}

fn server_id(name: &str) -> Option<i64> {
    SERVERS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, id)| i64::from(*id))
}

/// Reads both tables (rate, sticky) of each of `pods`, one pod right after the other.
pub fn read_tables(fleet: &Fleet, pods: &[String]) -> Result<Vec<(String, TableDump, TableDump)>> {
    let mut out = Vec::new();
    for name in pods {
        let api = fleet.pod(name)?.runtime();
        out.push((
            name.clone(),
            api.show_table(RATE_TABLE)?,
            api.show_table(STICKY_TABLE)?,
        ));
    }
    Ok(out)
}

/// Every difference between the nodes' tables and `ledger`, and between the nodes' rates.
pub fn differences(fleet: &Fleet, ledger: &Ledger) -> Result<Vec<String>> {
    let tables = read_tables(fleet, &fleet.pod_names())?;
    let mut problems: Vec<String> = ledger.violations();
    for (node, counters, sticky) in &tables {
        problems.extend(ledger.check(node, counters, sticky, &FIELDS));
    }
    let rates: Vec<(String, TableDump)> = tables
        .into_iter()
        .map(|(node, counters, _)| (node, counters))
        .collect();
    problems.extend(rates_agree(ledger.clients(), &rates, FIELDS.rate));
    Ok(problems)
}

/// Waits up to `timeout` for every node to hold what `ledger` says, with the same rates
/// everywhere; panics with every difference left (and every process's log) otherwise.
pub fn assert_nothing_lost(fleet: &Fleet, ledger: &Ledger, timeout: Duration) {
    let totals = ledger.totals();
    assert!(
        totals.acked_writes > 0,
        "the workload made no acknowledged write: nothing was tested"
    );
    let mut last = Vec::new();
    let outcome = poll(
        "every node to hold every write of the traffic",
        timeout,
        || {
            last = differences(fleet, ledger)?;
            Ok(last.is_empty().then_some(()))
        },
    );
    if let Err(e) = outcome {
        let shown: Vec<&String> = last.iter().take(40).collect();
        panic!(
            "{e}\n{} differences ({totals:?}), first {}:\n{}\n{}",
            last.len(),
            shown.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            fleet.logs()
        );
    }
}
