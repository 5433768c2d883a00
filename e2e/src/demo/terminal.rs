//! The demo's inputs: key presses (the terminal in non-canonical mode, set and restored with
//! `stty`, so no terminal library is needed) and the signals that stop it (SIGINT, SIGTERM,
//! SIGHUP), all delivered to one channel.

use std::io::{IsTerminal, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;

use crate::error::{Error, Result};

/// What the main loop reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Key(char),
    /// A signal asked the demo to stop.
    Stop(&'static str),
}

/// Restores the terminal's settings when dropped.
#[derive(Debug)]
pub struct RawTerminal {
    saved: String,
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = Command::new("stty").arg(&self.saved).status();
    }
}

/// When stdin is a terminal: single key presses without echo (Ctrl-C still signals), read by a
/// thread that sends them to `tx`. `None` when stdin is not a terminal (CI, a pipe).
pub fn keys(tx: Sender<Input>) -> Option<RawTerminal> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    // `output()` would give stty a null stdin; it must read the terminal's settings.
    let saved = Command::new("stty")
        .arg("-g")
        .stdin(Stdio::inherit())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !saved.status.success() {
        return None;
    }
    let saved = String::from_utf8_lossy(&saved.stdout).trim().to_string();
    let raw = Command::new("stty")
        .args(["-icanon", "-echo", "min", "1"])
        .status()
        .ok()?;
    if !raw.success() {
        return None;
    }
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 16];
        while let Ok(n @ 1..) = stdin.read(&mut buf) {
            for byte in &buf[..n] {
                if tx.send(Input::Key(char::from(*byte))).is_err() {
                    return;
                }
            }
        }
    });
    Some(RawTerminal { saved })
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that send [`Input::Stop`] instead of
/// killing the process, so that the demo always cleans up. Returns once they are installed.
pub fn watch_signals(tx: Sender<Input>) -> Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        runtime.block_on(async move {
            let handlers = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            );
            let (mut int, mut term, mut hup) = match handlers {
                (Ok(a), Ok(b), Ok(c)) => (a, b, c),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            loop {
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                };
                if tx.send(Input::Stop(name)).is_err() {
                    return;
                }
            }
        });
    });
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::Io {
            action: "install the demo's signal handlers".into(),
            source: std::io::Error::other(e),
        }),
        Err(_) => Err(Error::Io {
            action: "install the demo's signal handlers".into(),
            source: std::io::Error::other("the signal thread ended"),
        }),
    }
}
