//! Parser for the runtime API's `show peers` output (2.6 and 3.x shapes).
//!
//! ```text
//! 0x…: [23/Nov/2026:19:41:01] id=mesh disabled=0 flags=0x4033 resync_timeout=<PAST> task_calls=7
//!   0x…: id=B(remote,active) addr=127.0.0.1:21102 last_status=ESTA last_hdshk=5s
//!         reconnect=2s heartbeat=0s confirm=0 tx_hbt=1 rx_hbt=1 no_hbt=0 new_conn=2 …
//!         flags=0x20000000 appctx:0x… st0=7 st1=0 task_calls=6 state=EST
//!         shared tables:
//!           0x… local_id=9 remote_id=0 flags=0x0 remote_data=0x0
//!               last_acked=0 last_pushed=0 last_get=0 teaching_origin=0 update=0
//!               table:0x… id=t_noexp update=0 localupdate=0 commitupdate=0 refcnt=1
//! ```

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// Section flag: no more learning from the local (old) process.
pub const RESYNC_LOCAL_FINISHED: u32 = 0x1;
/// Section flag: no more learning from remote peers.
pub const RESYNC_REMOTE_FINISHED: u32 = 0x2;

/// One `peers` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeersSection {
    pub name: String,
    /// Section `flags=`; `& 0x3 == 0x3` means the start-up resync is over.
    pub flags: u32,
    /// Every `name=value` of the section line.
    pub fields: BTreeMap<String, String>,
    pub peers: Vec<PeerState>,
}

/// One peer of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    pub name: String,
    /// `local` (this process) or `remote`.
    pub local: bool,
    /// A session exists.
    pub active: bool,
    /// `ESTA`, `CONN`, `HSHK`, `NONE`, `NAME`, `UNKN`, …
    pub last_status: String,
    /// Peer `flags=` (0x80000000 = downgraded to 2.0 in 2.6).
    pub flags: u32,
    /// Every `name=value` of the peer's own lines (`addr`, `tx_hbt`, `coll`, `state`, …).
    pub fields: BTreeMap<String, String>,
    pub tables: Vec<SharedTable>,
}

/// One shared table of a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedTable {
    /// Runtime name from the `table:` line.
    pub name: String,
    pub local_id: u64,
    pub remote_id: u64,
    /// `flags`, `remote_data`, `last_acked`, `last_pushed`, `last_get`, `update`, …
    pub fields: BTreeMap<String, String>,
    /// The `table:` line's own fields (`update`, `localupdate`, `commitupdate`, `refcnt`).
    pub table_fields: BTreeMap<String, String>,
}

impl PeersSection {
    pub fn peer(&self, name: &str) -> Option<&PeerState> {
        self.peers.iter().find(|peer| peer.name == name)
    }

    /// Both start-up resync bits are set.
    pub fn resync_finished(&self) -> bool {
        let done = RESYNC_LOCAL_FINISHED | RESYNC_REMOTE_FINISHED;
        self.flags & done == done
    }
}

impl PeerState {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// A numeric field such as `tx_hbt`, `rx_hbt`, `no_hbt`, `new_conn`, `coll`, `proto_err`.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.field(name)?.parse().ok()
    }

    pub fn table(&self, name: &str) -> Option<&SharedTable> {
        self.tables.iter().find(|table| table.name == name)
    }
}

impl SharedTable {
    /// A numeric field such as `last_get`, `last_acked`, `update`.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.fields.get(name)?.parse().ok()
    }
}

enum Block {
    Peer,
    Tables,
}

/// Parses a whole `show peers` answer.
pub fn parse_show_peers(text: &str) -> Result<Vec<PeersSection>> {
    let mut sections: Vec<PeersSection> = Vec::new();
    let mut block = Block::Peer;
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with("Dictionary cache") {
            continue;
        }
        let bad = || Error::parse("show peers line", raw);
        let indent = raw.len() - raw.trim_start().len();
        if indent == 0 {
            sections.push(parse_section(line).ok_or_else(bad)?);
            continue;
        }
        let section = sections.last_mut().ok_or_else(bad)?;
        if line.starts_with("0x") && line.contains(" id=") && !line.contains("local_id=") {
            section.peers.push(parse_peer(line).ok_or_else(bad)?);
            block = Block::Peer;
            continue;
        }
        let peer = section.peers.last_mut().ok_or_else(bad)?;
        if line == "shared tables:" {
            block = Block::Tables;
            continue;
        }
        match block {
            // The current-table pointers of a session belong to the peer, not its tables.
            Block::Peer
                if line.starts_with("last_local_table:") || line.starts_with("remote_table:") => {}
            Block::Peer => merge_fields(&mut peer.fields, line),
            Block::Tables if line.starts_with("0x") => {
                let fields = fields_of(line);
                let id = |name: &str| fields.get(name).and_then(|v| v.parse().ok());
                peer.tables.push(SharedTable {
                    name: String::new(),
                    local_id: id("local_id").ok_or_else(bad)?,
                    remote_id: id("remote_id").ok_or_else(bad)?,
                    fields,
                    table_fields: BTreeMap::new(),
                });
            }
            Block::Tables => {
                let table = peer.tables.last_mut().ok_or_else(bad)?;
                if let Some(rest) = line.strip_prefix("table:") {
                    let mut fields = fields_of(rest);
                    table.name = fields.remove("id").ok_or_else(bad)?;
                    table.table_fields = fields;
                } else {
                    merge_fields(&mut table.fields, line);
                }
            }
        }
    }
    fill_peer_flags(&mut sections);
    Ok(sections)
}

/// `0x…: [date] id=mesh disabled=0 flags=0x4033 resync_timeout=<PAST> task_calls=7`
fn parse_section(line: &str) -> Option<PeersSection> {
    let fields = fields_of(line);
    Some(PeersSection {
        name: fields.get("id")?.clone(),
        flags: parse_hex(fields.get("flags")?)?,
        fields,
        peers: Vec::new(),
    })
}

/// `0x…: id=B(remote,active) addr=127.0.0.1:21102 last_status=ESTA last_hdshk=5s`
fn parse_peer(line: &str) -> Option<PeerState> {
    let fields = fields_of(line);
    let id = fields.get("id")?;
    let (name, kind) = id.strip_suffix(')')?.split_once('(')?;
    let (locality, activity) = kind.split_once(',')?;
    Some(PeerState {
        name: name.to_owned(),
        local: locality == "local",
        active: activity == "active",
        last_status: fields.get("last_status")?.clone(),
        flags: 0,
        fields,
        tables: Vec::new(),
    })
}

fn merge_fields(into: &mut BTreeMap<String, String>, line: &str) {
    for (name, value) in fields_of(line) {
        into.entry(name).or_insert(value);
    }
}

/// Every `name=value` word of a line (words without `=` are skipped: pointers, dates).
fn fields_of(line: &str) -> BTreeMap<String, String> {
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn parse_hex(value: &str) -> Option<u32> {
    u32::from_str_radix(value.strip_prefix("0x")?, 16).ok()
}

/// Fills `PeerState::flags` from the merged fields (the flags sit on the third peer line).
fn fill_peer_flags(sections: &mut [PeersSection]) {
    for peer in sections.iter_mut().flat_map(|s| s.peers.iter_mut()) {
        peer.flags = peer.field("flags").and_then(parse_hex).unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/haproxy-2.6"
    );

    fn fixture(name: &str) -> String {
        let path = format!("{FIXTURES}/{name}");
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn steady_state_sample() {
        let sections = parse_show_peers(&fixture("show-peers.steady.txt")).unwrap();
        assert_eq!(sections.len(), 1);
        let mesh = &sections[0];
        assert_eq!(mesh.name, "mesh");
        assert_eq!(mesh.flags, 0x4033);
        assert!(mesh.resync_finished());
        assert_eq!(mesh.fields["resync_timeout"], "<PAST>");
        assert_eq!(mesh.peers.len(), 2);

        let b = mesh.peer("B").unwrap();
        assert!(!b.local && b.active);
        assert_eq!(b.last_status, "ESTA");
        assert_eq!(b.flags, 0x2000_0000);
        assert_eq!(b.field("addr"), Some("127.0.0.1:21102"));
        assert_eq!(b.field("xprt"), Some("RAW"));
        assert_eq!(
            (b.counter("tx_hbt"), b.counter("rx_hbt")),
            (Some(1), Some(1))
        );
        assert_eq!(b.counter("new_conn"), Some(2));
        assert_eq!(b.field("state"), Some("EST"));
        assert_eq!(b.tables.len(), 9);
        let pdecl = b.table("mesh/t_pdecl").unwrap();
        assert_eq!((pdecl.local_id, pdecl.remote_id), (1, 0));
        assert_eq!(pdecl.table_fields["refcnt"], "1");
        assert_eq!(b.table("t_noexp").unwrap().local_id, 9);

        let a = mesh.peer("A").unwrap();
        assert!(a.local && !a.active);
        assert_eq!(a.last_status, "NONE");
        assert_eq!(a.flags, 0);
        assert_eq!(a.tables.len(), 9);
    }

    #[test]
    fn after_reload_sample() {
        let sections = parse_show_peers(&fixture("show-peers.after-reload-of-B.txt")).unwrap();
        let b = sections[0].peer("B").unwrap();
        assert_eq!((b.counter("coll"), b.counter("no_hbt")), (Some(1), Some(1)));
        assert_eq!(b.counter("new_conn"), Some(3));
        let all = b.table("t_all").unwrap();
        assert_eq!(all.local_id, 8);
        assert_eq!(all.counter("last_pushed"), Some(10));
        assert_eq!(all.counter("update"), Some(10));
        assert_eq!(all.table_fields["localupdate"], "10");
        let arr = b.table("t_arr").unwrap();
        assert_eq!(arr.remote_id, 7);
        assert_eq!(arr.fields["remote_data"], "0x1c00200");
    }

    #[test]
    fn tls_sample_and_current_table_lines() {
        let sections = parse_show_peers(&fixture("show-peers.tls.txt")).unwrap();
        let mesh = &sections[0];
        assert_eq!(mesh.flags, 0x6811);
        assert!(!mesh.resync_finished());
        let b = mesh.peer("B").unwrap();
        assert_eq!(b.field("xprt"), Some("SSL"));
        assert_eq!(b.flags, 0x2000_0200);
        // `remote_table:… id=t_str` must not overwrite the peer's own id.
        assert_eq!(b.field("id"), Some("B(remote,active)"));
        assert_eq!(b.tables.len(), 1);
        assert_eq!(b.tables[0].name, "t_str");
        assert_eq!(b.tables[0].fields["remote_data"], "0x4");
    }

    #[test]
    fn three_x_peer_line() {
        let text = "0x1: [23/Nov/2026:19:41:01] id=pg disabled=0 flags=0x300003 resync_timeout=<PAST> task_calls=3\n  \
                    0x2: id=side(remote,active) addr=127.0.0.1:37001 app_state=RUNNING learn_state=NOTASSIGNED last_status=ESTA last_hdshk=5s\n";
        let sections = parse_show_peers(text).unwrap();
        let side = sections[0].peer("side").unwrap();
        assert_eq!(side.field("app_state"), Some("RUNNING"));
        assert_eq!(side.last_status, "ESTA");
        assert!(sections[0].resync_finished());
    }

    #[test]
    fn empty_and_malformed() {
        assert!(parse_show_peers("").unwrap().is_empty());
        assert!(parse_show_peers("  0x2: id=x(remote,active) last_status=ESTA\n").is_err());
        assert!(parse_show_peers("0x1: id=pg flags=zz\n").is_err());
        assert!(
            parse_show_peers("0x1: id=pg flags=0x3\n  0x2: id=x(remote,active) addr=1\n").is_err()
        );
    }
}
