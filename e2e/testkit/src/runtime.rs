//! HAProxy's runtime API (the `stats socket`), one connection per command.

use std::fmt::Display;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::show_peers::{parse_show_peers, PeersSection};
use crate::show_table::{parse_show_table, TableDump, TableEntry};

/// How long one command may take before the harness gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of one runtime API socket (a worker's `stats socket` or the master CLI).
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    socket: PathBuf,
}

impl RuntimeApi {
    pub fn new(socket: impl Into<PathBuf>) -> RuntimeApi {
        RuntimeApi {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one command and returns everything HAProxy wrote before closing.
    pub fn command(&self, command: &str) -> Result<String> {
        let action = || format!("runtime API `{command}` on {}", self.socket.display());
        let mut stream = UnixStream::connect(&self.socket).map_err(Error::io(action()))?;
        stream
            .set_read_timeout(Some(COMMAND_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(COMMAND_TIMEOUT)))
            .map_err(Error::io(action()))?;
        stream
            .write_all(format!("{command}\n").as_bytes())
            .map_err(Error::io(action()))?;
        // The master CLI keeps reading commands until the client half-closes.
        stream
            .shutdown(Shutdown::Write)
            .map_err(Error::io(action()))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(Error::io(action()))?;
        Ok(answer)
    }

    /// A command that answers nothing but an empty line when it succeeds (`set table`,
    /// `clear table`, …); any other answer is HAProxy refusing it.
    pub fn command_ok(&self, command: &str) -> Result<()> {
        let answer = self.command(command)?;
        if answer.trim().is_empty() {
            Ok(())
        } else {
            Err(Error::Refused {
                command: command.to_owned(),
                answer: answer.trim().to_owned(),
            })
        }
    }

    /// `set table <table> key <key> data.<type> <value>…`: creates or updates an entry, which
    /// HAProxy then pushes to its peers. 2.6 accepts integer values only, for ip, ipv6, integer
    /// and string tables.
    pub fn set_table<V: Display>(&self, table: &str, key: &str, data: &[(&str, V)]) -> Result<()> {
        let mut command = format!("set table {table} key {key}");
        for (data_type, value) in data {
            command.push_str(&format!(" data.{data_type} {value}"));
        }
        self.command_ok(&command)
    }

    /// `show table <table>`, parsed. `table` is the runtime name (`pg/t_pdecl` for a table
    /// declared in a peers section).
    pub fn show_table(&self, table: &str) -> Result<TableDump> {
        parse_show_table(&self.command(&format!("show table {table}"))?)
    }

    /// The entry for one key, if the table holds it.
    pub fn table_entry(&self, table: &str, key: &str) -> Result<Option<TableEntry>> {
        let dump = parse_show_table(&self.command(&format!("show table {table} key {key}"))?)?;
        Ok(dump.entries.into_iter().next())
    }

    /// `clear table <table>` (local only: nothing is sent to peers).
    pub fn clear_table(&self, table: &str) -> Result<()> {
        self.command_ok(&format!("clear table {table}"))
    }

    /// `show peers`, raw.
    pub fn show_peers_raw(&self) -> Result<String> {
        self.command("show peers")
    }

    /// `show peers`, parsed into one value per peers section.
    pub fn show_peers(&self) -> Result<Vec<PeersSection>> {
        parse_show_peers(&self.show_peers_raw()?)
    }

    /// The `Pid:` of `show info`: the process serving this socket (the worker).
    pub fn pid(&self) -> Result<u32> {
        let info = self.command("show info")?;
        info.lines()
            .find_map(|line| line.strip_prefix("Pid: "))
            .and_then(|pid| pid.trim().parse().ok())
            .ok_or_else(|| Error::parse("Pid from show info", &info))
    }
}
