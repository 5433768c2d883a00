//! Item 4: resident memory per entry of the table `type ip … store http_req_rate(10s),gpc0`,
//! in a real HAProxy 2.6 and in the sidecar's replica, both filled by streaming updates over a
//! peers session (the runtime API would take far longer for a million entries).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use haproxy_peers_testkit::{free_addr, Haproxy, HaproxyOptions};

use crate::haproxy_cfg::{self, TABLE};
use crate::peer::Peer;
use crate::procfs::rss;
use crate::prompt::used_in;
use crate::relay::setup;

/// RSS before and after filling `entries` entries, and the entry count the process reports.
#[derive(Debug, Clone, Copy)]
pub struct Fill {
    pub before: u64,
    pub after: u64,
    pub entries: u64,
    pub seconds: f64,
}

impl Fill {
    pub fn bytes_per_entry(&self) -> f64 {
        self.after.saturating_sub(self.before) as f64 / self.entries.max(1) as f64
    }
}

/// Fills a real HAProxy with `entries` entries through a peers session.
pub fn haproxy(entries: u64) -> crate::Result<Fill> {
    let (hap, bench) = (
        free_addr().map_err(|e| e.to_string())?,
        free_addr().map_err(|e| e.to_string())?,
    );
    let haproxy = Haproxy::start(
        HaproxyOptions::new(haproxy_cfg::native(
            "hap",
            hap,
            &[("bench", bench)],
            entries * 2,
        ))
        .local_peer("hap"),
    )
    .map_err(|e| e.to_string())?;
    let pid = haproxy.pid().ok_or("haproxy is not running")?;
    let api = haproxy.runtime();
    let mut peer = Peer::connect(hap, "hap", "bench", Instant::now())?;
    std::thread::sleep(Duration::from_millis(500));
    let before = rss(pid)?;
    let start = Instant::now();
    peer.fill(entries)?;
    let mut used = 0;
    while start.elapsed() < Duration::from_secs(120) {
        let text = api.command("show table").map_err(|e| e.to_string())?;
        used = used_in(&text, TABLE)?;
        if used >= entries {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let seconds = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    Ok(Fill {
        before,
        after: rss(pid)?,
        entries: used,
        seconds,
    })
}

/// Fills sidecar A's replica (and through the mesh B's) with `entries` entries; RSS of both.
pub fn sidecars(binary: &Path, entries: u64) -> crate::Result<[Fill; 2]> {
    let mut s = setup(binary, false)?;
    let pids = s.pair.pids()?;
    let before = [rss(pids[0])?, rss(pids[1])?];
    let got0 = s.sink.counters.updates.load(Ordering::Relaxed);
    let start = Instant::now();
    s.source.fill(entries)?;
    // Wait until B's HAProxy has everything (every key is distinct: nothing coalesces).
    while s.sink.counters.updates.load(Ordering::Relaxed) - got0 < entries {
        if start.elapsed() > Duration::from_secs(120) {
            return Err("sidecar B did not relay every entry within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let mut fills = [Fill {
        before: 0,
        after: 0,
        entries,
        seconds,
    }; 2];
    for (i, fill) in fills.iter_mut().enumerate() {
        fill.before = before[i];
        fill.after = rss(pids[i])?;
    }
    Ok(fills)
}
