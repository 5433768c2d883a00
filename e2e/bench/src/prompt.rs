//! An interactive runtime API connection ("prompt" mode): one Unix socket kept open for many
//! commands, so that a measurement pays no connect cost per query. After `prompt`, HAProxy ends
//! every answer with `\n> ` (one per command of a `;`-separated line).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use haproxy_peers_testkit::show_table::{parse_show_table, parse_show_tables};

/// What ends one command's answer in prompt mode.
const PROMPT: &[u8] = b"\n> ";

pub struct Prompt {
    stream: UnixStream,
    buf: Vec<u8>,
    chunk: Vec<u8>,
}

impl Prompt {
    /// Connects to a stats socket and enters prompt mode.
    pub fn connect(socket: &Path) -> crate::Result<Prompt> {
        let stream = UnixStream::connect(socket)
            .map_err(|e| format!("connect to the runtime API {}: {e}", socket.display()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let mut prompt = Prompt {
            stream,
            buf: Vec::with_capacity(1 << 16),
            chunk: vec![0; 1 << 16],
        };
        prompt.send("prompt", 1)?;
        Ok(prompt)
    }

    /// Sends one line (`commands` commands joined by `;`) and returns everything HAProxy answered,
    /// prompts removed.
    pub fn send(&mut self, line: &str, commands: usize) -> crate::Result<String> {
        self.write(line)?;
        self.read(line, commands)
    }

    /// Sends one line without waiting for its answer (read it with [`Prompt::read`]).
    pub fn write(&mut self, line: &str) -> crate::Result<()> {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("runtime API `{line}`: {e}"))
    }

    /// Reads the answers to the `commands` commands of `line`, prompts removed.
    pub fn read(&mut self, line: &str, commands: usize) -> crate::Result<String> {
        self.buf.clear();
        let mut seen = 0;
        let mut scanned: usize = 0;
        while seen < commands {
            let n = self
                .stream
                .read(&mut self.chunk)
                .map_err(|e| format!("runtime API answer to `{line}`: {e}"))?;
            if n == 0 {
                return Err(format!("HAProxy closed the runtime API during `{line}`"));
            }
            self.buf.extend_from_slice(&self.chunk[..n]);
            // A prompt may straddle two reads: rescan the last two bytes of the previous one.
            let from = scanned.saturating_sub(PROMPT.len() - 1);
            seen += count(&self.buf[from..]);
            scanned = self.buf.len();
        }
        Ok(String::from_utf8_lossy(&self.buf).replace("\n> ", "\n"))
    }

    /// Reads the answer to a command sent with [`Prompt::write`] whose success is an empty
    /// answer (`set table`).
    pub fn read_ok(&mut self, command: &str) -> crate::Result<()> {
        let answer = self.read(command, 1)?;
        if answer.trim().is_empty() {
            Ok(())
        } else {
            Err(format!("HAProxy refused `{command}`: {}", answer.trim()))
        }
    }

    /// One command whose success is an empty answer (`set table`).
    pub fn command_ok(&mut self, command: &str) -> crate::Result<()> {
        self.write(command)?;
        self.read_ok(command)
    }

    /// `gpc0` of one entry of `table`, `None` while the table has no such key.
    pub fn gpc0(&mut self, table: &str, key: &str) -> crate::Result<Option<u64>> {
        let answer = self.send(&format!("show table {table} key {key}"), 1)?;
        let dump = parse_show_table(&answer).map_err(|e| e.to_string())?;
        Ok(dump.entries.first().and_then(|entry| entry.u64("gpc0")))
    }

    /// The `used:` count of `table` from `show table` (headers only: no entry is printed).
    pub fn used(&mut self, table: &str) -> crate::Result<u64> {
        let answer = self.send("show table", 1)?;
        used_in(&answer, table)
    }
}

/// The `used:` count of `table` in the answer to a plain `show table`.
pub fn used_in(answer: &str, table: &str) -> crate::Result<u64> {
    parse_show_tables(answer)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter_map(|dump| dump.header)
        .find(|header| header.name == table)
        .map(|header| header.used)
        .ok_or_else(|| format!("`show table` lists no table {table}: {answer:?}"))
}

/// Non-overlapping prompts in `bytes`.
fn count(bytes: &[u8]) -> usize {
    bytes.windows(PROMPT.len()).filter(|w| *w == PROMPT).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_prompts_and_reads_used() {
        assert_eq!(count(b"\n> \n> "), 2);
        assert_eq!(count(b"# table: st\n\n> "), 1);
        assert_eq!(count(b"> x"), 0);
        let answer = "# table: st, type: ip, size:2097152, used:3\n\n";
        assert_eq!(used_in(answer, "st"), Ok(3));
        assert!(used_in(answer, "other").is_err());
    }
}
