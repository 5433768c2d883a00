//! Hot reload: poll the mounted Secret, validate what changed, publish new configs.
//!
//! The kubelet updates a Secret volume by writing a new hidden directory and renaming the
//! `..data` symlink onto it, so file paths stay and contents change. Polling contents is immune
//! to that (an inotify watch on the files would follow the old inode). A poll reads the three
//! files twice and acts only when both reads agree, so a set caught half-way through a
//! non-atomic update (old `ca.crt`, new leaf) is neither published nor counted as rejected.
//! A changed set that fails validation is rejected once (counted and logged) and the previous
//! configs stay published; it is re-validated at every poll, since a not-yet-valid leaf becomes
//! valid without its bytes changing.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::pki_types::UnixTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::config::TlsConfigs;
use super::identity::utc;
use super::material::{MaterialError, MaterialFiles, MaterialPaths, TlsMaterial};

/// Counters for the admin module's metrics.
#[derive(Debug, Default)]
pub struct ReloadCounters {
    published: AtomicU64,
    rejected: AtomicU64,
    polls: AtomicU64,
}

impl ReloadCounters {
    /// File sets validated and published, the initial one included.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Distinct file sets (or read failures) rejected; the previous configs stayed in use.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Checks of the files completed: shows that the watcher is alive.
    pub fn polls(&self) -> u64 {
        self.polls.load(Ordering::Relaxed)
    }
}

/// What one poll decided.
#[derive(Debug)]
pub(crate) enum Step {
    /// Same bytes as the published set.
    Unchanged,
    /// Two reads disagreed: an update is in progress; look again at the next poll.
    InFlux,
    Publish(Arc<TlsConfigs>),
    Reject(MaterialError),
    /// The same set failed again for the same reason: already counted and logged.
    StillRejected,
}

/// The reload decision: a function of what the files hold and of `now`.
pub(crate) struct Tracker {
    paths: MaterialPaths,
    published: Option<MaterialFiles>,
    rejected: Option<(Option<MaterialFiles>, &'static str)>,
}

impl Tracker {
    pub(crate) fn new(paths: MaterialPaths) -> Self {
        Self {
            paths,
            published: None,
            rejected: None,
        }
    }

    pub(crate) fn step(
        &mut self,
        mut read: impl FnMut(&MaterialPaths) -> Result<MaterialFiles, MaterialError>,
        now: UnixTime,
    ) -> Step {
        let first = read(&self.paths);
        if let (Ok(files), Some(published)) = (&first, &self.published) {
            if files == published {
                self.rejected = None;
                return Step::Unchanged;
            }
        }
        let second = read(&self.paths);
        let stable = match (&first, &second) {
            (Ok(a), Ok(b)) => a == b,
            (Err(a), Err(b)) => a.to_string() == b.to_string(),
            _ => false,
        };
        if !stable {
            return Step::InFlux;
        }
        let files = first.as_ref().ok().cloned();
        let outcome = first.and_then(|files| {
            let material = TlsMaterial::parse(self.paths.clone(), &files)?;
            TlsConfigs::validated(&material, now)
        });
        match outcome {
            Ok(configs) => {
                self.published = files;
                self.rejected = None;
                Step::Publish(Arc::new(configs))
            }
            Err(error) => {
                // The label, not the text: a time-related message changes every second.
                let seen = (files, error.metric_label());
                if self.rejected.as_ref() == Some(&seen) {
                    Step::StillRejected
                } else {
                    self.rejected = Some(seen);
                    Step::Reject(error)
                }
            }
        }
    }
}

/// The reloader has stopped (its [`TlsReloader`] was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the TLS reloader has stopped: no new certificates will be picked up")]
pub struct ReloaderGone;

/// The receiving side: the latest published configs, if any yet.
#[derive(Debug, Clone)]
pub struct TlsWatch {
    rx: watch::Receiver<Option<Arc<TlsConfigs>>>,
}

impl TlsWatch {
    /// The configs a new handshake should use now; `None` until a valid set was read.
    pub fn current(&self) -> Option<Arc<TlsConfigs>> {
        self.rx.borrow().clone()
    }

    /// Waits until a valid set has been published (returns at once if one has).
    pub async fn ready(&mut self) -> Result<Arc<TlsConfigs>, ReloaderGone> {
        let configs = self
            .rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| ReloaderGone)?;
        configs.clone().ok_or(ReloaderGone)
    }

    /// Waits for the next publication after the last one this watch has seen.
    pub async fn changed(&mut self) -> Result<Arc<TlsConfigs>, ReloaderGone> {
        loop {
            self.rx.changed().await.map_err(|_| ReloaderGone)?;
            if let Some(configs) = self.rx.borrow_and_update().clone() {
                return Ok(configs);
            }
        }
    }

    /// Whether a publication happened that [`Self::changed`] has not returned yet.
    pub fn has_changed(&self) -> bool {
        self.rx.has_changed().unwrap_or(false)
    }
}

struct Shared {
    counters: Arc<ReloadCounters>,
    last_error: Mutex<Option<MaterialError>>,
}

/// Owns the polling task; dropping it stops the polling (published configs stay usable).
pub struct TlsReloader {
    task: JoinHandle<()>,
    shared: Arc<Shared>,
    paths: MaterialPaths,
}

impl TlsReloader {
    /// Reads `dir` for `pod` once before returning (so [`TlsWatch::current`] is already set
    /// when the files are good), then polls every `interval`. Fails only for a pod name that
    /// cannot name files; missing or invalid files are reported through [`Self::last_error`]
    /// and picked up as soon as they become valid.
    pub async fn spawn(
        dir: impl Into<PathBuf>,
        pod: &str,
        interval: Duration,
    ) -> Result<(Self, TlsWatch), MaterialError> {
        let paths = MaterialPaths::new(dir, pod)?;
        let (tx, rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            counters: Arc::default(),
            last_error: Mutex::new(None),
        });
        let tracker = Arc::new(Mutex::new(Tracker::new(paths.clone())));
        poll_once(&tracker, &tx, &shared).await;
        // `changed()` then means "newer than what `current()` gives right now".
        let mut rx = rx;
        rx.borrow_and_update();
        let task = tokio::spawn(poll(tracker, tx, shared.clone(), interval));
        Ok((
            Self {
                task,
                shared,
                paths,
            },
            TlsWatch { rx },
        ))
    }

    /// Publication and rejection counts, shareable with the metrics registry.
    pub fn counters(&self) -> Arc<ReloadCounters> {
        self.shared.counters.clone()
    }

    /// Why the files on disk are not in use, when they are not (for readiness and logs).
    pub fn last_error(&self) -> Option<MaterialError> {
        lock(&self.shared.last_error).clone()
    }

    /// The files this reloader watches.
    pub fn paths(&self) -> &MaterialPaths {
        &self.paths
    }
}

impl Drop for TlsReloader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn poll(
    tracker: Arc<Mutex<Tracker>>,
    tx: watch::Sender<Option<Arc<TlsConfigs>>>,
    shared: Arc<Shared>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => poll_once(&tracker, &tx, &shared).await,
            () = tx.closed() => return,
        }
    }
}

/// File reads and signature checks are blocking work: run them off the async threads.
async fn poll_once(
    tracker: &Arc<Mutex<Tracker>>,
    tx: &watch::Sender<Option<Arc<TlsConfigs>>>,
    shared: &Shared,
) {
    let blocking = tracker.clone();
    let step = tokio::task::spawn_blocking(move || {
        lock(&blocking).step(MaterialFiles::read, UnixTime::now())
    })
    .await;
    shared.counters.polls.fetch_add(1, Ordering::Relaxed);
    let step = match step {
        Ok(step) => step,
        Err(join) => {
            tracing::error!(error = %join, "TLS reload check failed; retrying at the next poll");
            return;
        }
    };
    match step {
        Step::Publish(configs) => {
            shared.counters.published.fetch_add(1, Ordering::Relaxed);
            *lock(&shared.last_error) = None;
            tracing::info!(
                serial = %configs.own.serial,
                issuer = %configs.own.issuer,
                not_after = %utc(configs.not_after),
                "TLS material published: new handshakes use it, live sessions keep theirs"
            );
            tx.send_replace(Some(configs));
        }
        Step::Reject(error) => {
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            let kept = if tx.borrow().is_some() {
                "the previous certificates stay in use"
            } else {
                "no certificates yet: mesh connections wait for valid files"
            };
            tracing::warn!(
                reason = error.metric_label(),
                "TLS material rejected: {error}; {kept}"
            );
            *lock(&shared.last_error) = Some(error);
        }
        Step::Unchanged => *lock(&shared.last_error) = None,
        Step::InFlux => tracing::debug!("TLS files changed between two reads; looking again"),
        Step::StillRejected => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(tag: u8) -> MaterialFiles {
        MaterialFiles {
            bundle: vec![tag],
            cert: vec![tag],
            key: vec![tag],
        }
    }

    fn tracker() -> Tracker {
        Tracker::new(MaterialPaths::new("/secret", "edge-1").unwrap())
    }

    #[test]
    fn disagreeing_reads_are_in_flux_not_rejected() {
        let mut tracker = tracker();
        let mut tag = 0;
        let step = tracker.step(
            |_| {
                tag += 1;
                Ok(files(tag))
            },
            UnixTime::now(),
        );
        assert!(matches!(step, Step::InFlux), "{step:?}");
    }

    #[test]
    fn a_bad_set_is_rejected_once_then_again_when_it_changes() {
        let mut tracker = tracker();
        let step = tracker.step(|_| Ok(files(1)), UnixTime::now());
        let Step::Reject(error) = step else {
            panic!("garbage must be rejected, got {step:?}")
        };
        assert!(error
            .to_string()
            .starts_with("/secret/ca.crt holds no usable PEM certificate"));
        let step = tracker.step(|_| Ok(files(1)), UnixTime::now());
        assert!(matches!(step, Step::StillRejected), "{step:?}");
        let step = tracker.step(|_| Ok(files(2)), UnixTime::now());
        assert!(matches!(step, Step::Reject(_)), "{step:?}");
    }

    #[test]
    fn a_missing_leaf_is_one_rejection_naming_the_file() {
        let mut tracker = tracker();
        let missing = |paths: &MaterialPaths| {
            Err(MaterialError::LeafMissing {
                path: paths.cert.clone(),
                pod: paths.pod.clone(),
            })
        };
        let step = tracker.step(missing, UnixTime::now());
        let Step::Reject(error) = step else {
            panic!("a missing file must be rejected, got {step:?}")
        };
        assert!(
            error
                .to_string()
                .starts_with("/secret/edge-1.crt is missing"),
            "{error}"
        );
        assert!(matches!(
            tracker.step(missing, UnixTime::now()),
            Step::StillRejected
        ));
    }
}
