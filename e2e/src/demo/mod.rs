//! `make demo`: a fleet on this machine, steady traffic, and a live view redrawn every second;
//! keys (or `--kill-after`) disturb it, and q, Ctrl-C or SIGTERM stop it and remove everything
//! it started.

mod target;
mod terminal;
mod traffic;

use std::io::{IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use target::{DemoTarget, LoopbackTarget, NetnsTarget, TABLES};
pub use terminal::Input;

use crate::error::Result;
use crate::fleet::FleetOptions;
use crate::netns::require_root;
use crate::view::{render, Frame};
use crate::Binaries;
use traffic::Traffic;

/// How many events the view keeps.
const EVENTS: usize = 8;
const KEYS: &str =
    "keys: k kill a HAProxy (-9)   s kill a sidecar   r replace a pod (new IP)   q quit";

/// The demo's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoArgs {
    pub pods: usize,
    /// Requests per second, over every pod.
    pub per_second: u64,
    /// Requests per client per 10 s before HAProxy answers 429 (counted fleet-wide).
    pub rate_limit: u64,
    /// Kill a random pod's HAProxy (-9) after this many seconds, and start it again.
    pub kill_after: Option<u64>,
    /// Stop after this many seconds.
    pub duration: Option<u64>,
    /// Use loopback ports even as root.
    pub loopback: bool,
}

/// Runs the demo until q, a signal or `--duration`; everything started is stopped on return.
pub fn run(args: &DemoArgs) -> Result<()> {
    let binaries = Binaries::locate()?;
    let (tx, rx) = mpsc::channel();
    terminal::watch_signals(tx.clone())?;
    let netns = !args.loopback && require_root().is_ok();
    println!(
        "starting {} pods {} …",
        args.pods,
        if netns {
            "in network namespaces"
        } else {
            "on loopback (not root)"
        }
    );
    let mut target: Box<dyn DemoTarget> = if netns {
        let mut options = FleetOptions::new(binaries.clone(), args.pods);
        options.rate_limit = args.rate_limit;
        Box::new(NetnsTarget::start(options)?)
    } else {
        Box::new(LoopbackTarget::start(
            &binaries,
            args.pods,
            args.rate_limit,
        )?)
    };
    let traffic = Traffic::start(target.traffic(args.per_second)?)?;
    let raw = terminal::keys(tx);
    let subtitle = format!(
        "{}\ntraffic: {} req/s round robin; client-0 sends half of it and is limited to {} \
         requests per 10 s across the fleet (each pod alone sees a third)",
        target.describe(),
        args.per_second,
        args.rate_limit
    );
    let keys = if raw.is_some() { KEYS } else { "" };
    let started = Instant::now();
    let mut kill_after = args.kill_after;
    let mut events: Vec<String> = Vec::new();
    let note = |events: &mut Vec<String>, text: String| {
        events.push(format!("{} {text}", clock()));
        if events.len() > EVENTS {
            events.remove(0);
        }
    };
    let stopped = loop {
        let frame = Frame {
            title: "haproxy-peers demo".to_string(),
            subtitle: subtitle.clone(),
            keys: keys.to_string(),
            clock: clock(),
            tables: TABLES.iter().map(|t| (*t).to_string()).collect(),
            nodes: target.names().iter().map(|n| target.observe(n)).collect(),
            traffic: traffic.total(),
            events: events.clone(),
        };
        draw(&render(&frame));
        if kill_after.is_some_and(|s| started.elapsed() >= Duration::from_secs(s)) {
            kill_after = None;
            let victim = pick(&target.names());
            note(&mut events, outcome(target.kill_haproxy(&victim)));
        }
        if args
            .duration
            .is_some_and(|s| started.elapsed() >= Duration::from_secs(s))
        {
            break format!("--duration {} s reached", args.duration.unwrap_or(0));
        }
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Input::Key('k')) => {
                let victim = pick(&target.names());
                note(&mut events, outcome(target.kill_haproxy(&victim)));
            }
            Ok(Input::Key('s')) => {
                let victim = pick(&target.names());
                note(&mut events, outcome(target.kill_sidecar(&victim)));
            }
            Ok(Input::Key('r')) => {
                let victim = pick(&target.names());
                note(&mut events, outcome(target.replace_pod(&victim)));
            }
            Ok(Input::Key('q')) => break "q pressed".to_string(),
            Ok(Input::Stop(signal)) => break format!("{signal} received"),
            Ok(Input::Key(_)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break "input closed".to_string(),
        }
    };
    drop(raw);
    println!("\n{stopped}: stopping everything the demo started …");
    drop(traffic);
    drop(target);
    println!("stopped and cleaned up.");
    Ok(())
}

fn outcome(result: Result<String>) -> String {
    result.unwrap_or_else(|e| format!("failed: {e}"))
}

fn draw(text: &str) {
    let mut out = std::io::stdout().lock();
    if std::io::stdout().is_terminal() {
        // Home, clear the screen, then the frame.
        let _ = write!(out, "\x1b[H\x1b[2J{text}");
    } else {
        let _ = writeln!(out, "{text}----");
    }
    let _ = out.flush();
}

/// `HH:MM:SS` (UTC).
fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    )
}

/// A pod chosen by the clock (good enough for a demo, and no dependency).
fn pick(names: &[String]) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let len = u32::try_from(names.len()).unwrap_or(1).max(1);
    names
        .get(usize::try_from(nanos % len).unwrap_or(0))
        .cloned()
        .unwrap_or_default()
}
