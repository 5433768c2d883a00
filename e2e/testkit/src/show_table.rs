//! Parser for the runtime API's `show table` output.
//!
//! ```text
//! # table: pg/t_ip, type: ip, size:1024, used:7
//! 0x558eee6370b8: key=10.1.1.1 use=0 exp=26747 gpt0=1 gpc0=42 conn_rate(10000)=9 http_req_cnt=99
//! ```
//!
//! Data types come in id order; rates carry their period in parentheses and are computed by
//! HAProxy at display time; array elements read `gpt0=`, `gpc1=`, `gpc0_rate(5000)=`.

use crate::error::{Error, Result};

/// The `# table:` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableHeader {
    /// Runtime name: the proxy name, or `<section>/<table>` for a table declared in `peers`.
    pub name: String,
    /// `ip`, `ipv6`, `integer`, `string`, `binary` (3.2+ says `ipv4`).
    pub key_type: String,
    pub size: u64,
    pub used: u64,
}

/// One stored data type of an entry, as displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// `gpc0`, `conn_rate`, `server_key`, … (array elements: `gpt1`, `gpc0_rate`).
    pub name: String,
    /// The period in ms of a rate, `conn_rate(10000)`.
    pub period: Option<u64>,
    /// The value as printed (an integer, or a server name for `server_key`).
    pub value: String,
}

/// One entry line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The entry's address, `0x558eee6370b8`.
    pub ptr: String,
    /// As printed: dotted IPv4, IPv6 text, unsigned integer, raw string, or hex for binary.
    pub key: String,
    /// `use=`: streams currently tracking the entry.
    pub use_count: u64,
    /// `exp=`: ms left before expiry (0 when the table has no `expire`).
    pub exp: u64,
    /// Every other `name=value`, in the order printed (`shard=` on 3.x lands here too).
    pub fields: Vec<Field>,
}

/// One `show table <name>` answer: its header and entries. Several tables (plain `show table`)
/// give several dumps; see [`parse_show_tables`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableDump {
    pub header: Option<TableHeader>,
    pub entries: Vec<TableEntry>,
}

impl TableDump {
    /// The entry with this key as printed.
    pub fn entry(&self, key: &str) -> Option<&TableEntry> {
        self.entries.iter().find(|entry| entry.key == key)
    }
}

impl TableEntry {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// The value of an unsigned data type (counters, rates, `gpt0`, …).
    pub fn u64(&self, name: &str) -> Option<u64> {
        self.field(name)?.value.parse().ok()
    }

    /// The value of a signed data type (`server_id`).
    pub fn i64(&self, name: &str) -> Option<i64> {
        self.field(name)?.value.parse().ok()
    }

    /// The value as printed (`server_key`).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.field(name).map(|field| field.value.as_str())
    }
}

/// Parses the answer to `show table <name>` (one table). Lines that are neither a header nor an
/// entry (blank lines) are skipped; a malformed header or entry is an error.
pub fn parse_show_table(text: &str) -> Result<TableDump> {
    let mut dumps = parse_show_tables(text)?;
    match dumps.len() {
        0 => Ok(TableDump::default()),
        1 => Ok(dumps.remove(0)),
        _ => Err(Error::parse("a single table (got several headers)", text)),
    }
}

/// Parses the answer to `show table` (every table: headers only) or to several dumps.
pub fn parse_show_tables(text: &str) -> Result<Vec<TableDump>> {
    let mut dumps: Vec<TableDump> = Vec::new();
    for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        if let Some(header) = line.strip_prefix("# table: ") {
            dumps.push(TableDump {
                header: Some(
                    parse_header(header).ok_or_else(|| Error::parse("table header", line))?,
                ),
                entries: Vec::new(),
            });
        } else if line.starts_with("0x") {
            let entry = parse_entry(line).ok_or_else(|| Error::parse("table entry", line))?;
            if dumps.is_empty() {
                dumps.push(TableDump::default());
            }
            if let Some(last) = dumps.last_mut() {
                last.entries.push(entry);
            }
        } else {
            return Err(Error::parse("show table line", line));
        }
    }
    Ok(dumps)
}

/// `pg/t_ip, type: ip, size:1024, used:7`
fn parse_header(rest: &str) -> Option<TableHeader> {
    let mut parts = rest.split(", ");
    let name = parts.next()?.to_owned();
    let key_type = parts.next()?.strip_prefix("type: ")?.to_owned();
    let size = parts.next()?.strip_prefix("size:")?.parse().ok()?;
    let used = parts.next()?.strip_prefix("used:")?.parse().ok()?;
    Some(TableHeader {
        name,
        key_type,
        size,
        used,
    })
}

/// `0x…: key=<key> use=<n> exp=<ms> <name>[(<period>)]=<value>…`
fn parse_entry(line: &str) -> Option<TableEntry> {
    let (ptr, rest) = line.split_once(": ")?;
    let rest = rest.strip_prefix("key=")?;
    // A string key may hold spaces; ` use=` is what ends it.
    let (key, rest) = rest.split_once(" use=")?;
    let mut words = rest.split(' ');
    let use_count = words.next()?.parse().ok()?;
    let exp = words.next()?.strip_prefix("exp=")?.parse().ok()?;
    let fields = words
        .filter(|word| !word.is_empty())
        .map(parse_field)
        .collect::<Option<Vec<_>>>()?;
    Some(TableEntry {
        ptr: ptr.to_owned(),
        key: key.to_owned(),
        use_count,
        exp,
        fields,
    })
}

/// `gpc0=42`, `conn_rate(10000)=9`, `server_key=s1`
fn parse_field(word: &str) -> Option<Field> {
    let (name, value) = word.split_once('=')?;
    let (name, period) = match name.split_once('(') {
        Some((base, period)) => (base, Some(period.strip_suffix(')')?.parse().ok()?)),
        None => (name, None),
    };
    if name.is_empty() {
        return None;
    }
    Some(Field {
        name: name.to_owned(),
        period,
        value: value.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The four entry lines of peers-protocol.md §10.2 (2.6.12 and 3.4.0).
    const DOC_LINES: &str = "\
# table: pg/t_ip, type: ip, size:1024, used:7
0x558eee6370b8: key=10.1.1.1 use=0 exp=26747 gpt0=1 gpc0=42 conn_rate(10000)=9 http_req_cnt=99
0x5605a79fee48: key=10.0.0.1 use=0 exp=52954 shard=0 gpt0=1 gpc0=7 conn_rate(10000)=3 glitch_rate(3000)=0
0x558eee638520: key=127.0.0.2 use=0 exp=59953 server_id=1 server_key=s1
0x558eee637288: key=remote-key use=0 exp=36742 conn_cur=0 http_req_rate(10000)=4 bytes_in_cnt=1099511627776 gpt0=1 gpt1=2 gpt2=3 gpc0=4 gpc1=5 gpc0_rate(5000)=6 gpc1_rate(5000)=6
";

    #[test]
    fn parses_the_documented_lines() {
        let dump = parse_show_table(DOC_LINES).unwrap();
        assert_eq!(
            dump.header,
            Some(TableHeader {
                name: "pg/t_ip".into(),
                key_type: "ip".into(),
                size: 1024,
                used: 7,
            })
        );
        assert_eq!(dump.entries.len(), 4);

        let first = &dump.entries[0];
        assert_eq!(first.ptr, "0x558eee6370b8");
        assert_eq!(first.key, "10.1.1.1");
        assert_eq!((first.use_count, first.exp), (0, 26747));
        assert_eq!(first.u64("gpc0"), Some(42));
        let rate = first.field("conn_rate").unwrap();
        assert_eq!((rate.period, rate.value.as_str()), (Some(10000), "9"));
        assert_eq!(first.u64("http_req_cnt"), Some(99));
        assert_eq!(first.fields.len(), 4);

        let three_x = &dump.entries[1];
        assert_eq!(three_x.u64("shard"), Some(0));
        assert_eq!(three_x.field("glitch_rate").unwrap().period, Some(3000));

        let sticky = dump.entry("127.0.0.2").unwrap();
        assert_eq!(sticky.i64("server_id"), Some(1));
        assert_eq!(sticky.str("server_key"), Some("s1"));

        let arrays = dump.entry("remote-key").unwrap();
        assert_eq!(arrays.u64("bytes_in_cnt"), Some(1_099_511_627_776));
        let gpts: Vec<u64> = ["gpt0", "gpt1", "gpt2"]
            .iter()
            .map(|n| arrays.u64(n).unwrap())
            .collect();
        assert_eq!(gpts, [1, 2, 3]);
        assert_eq!(arrays.field("gpc0_rate").unwrap().period, Some(5000));
        assert_eq!(arrays.u64("gpc1_rate"), Some(6));
    }

    #[test]
    fn negative_server_id_and_unknown_names() {
        let dump = parse_show_table(
            "# table: t_ip, type: ip, size:1024, used:1\n\
             0x5581d242c690: key=10.0.0.1 use=0 exp=59695 server_id=-1 gpt0=0 gpc0=5\n\n",
        )
        .unwrap();
        let entry = &dump.entries[0];
        assert_eq!(entry.i64("server_id"), Some(-1));
        assert_eq!(entry.u64("server_id"), None);
        assert_eq!(entry.u64("gpc1"), None);
    }

    #[test]
    fn string_key_with_spaces_ends_at_use() {
        let dump = parse_show_table("0x1: key=a b=c use=2 exp=0 gpc0=1\n").unwrap();
        assert_eq!(dump.header, None);
        assert_eq!(dump.entries[0].key, "a b=c");
        assert_eq!(dump.entries[0].use_count, 2);
    }

    #[test]
    fn empty_answer_is_an_empty_dump() {
        assert_eq!(parse_show_table("\n").unwrap(), TableDump::default());
        let header_only =
            parse_show_table("# table: t, type: binary, size:1024, used:0\n\n").unwrap();
        assert!(header_only.entries.is_empty());
        assert_eq!(header_only.header.unwrap().key_type, "binary");
    }

    #[test]
    fn lists_every_table_header() {
        let dumps = parse_show_tables(
            "# table: t_noexp, type: string, size:1024, used:1\n\
             # table: pg/t_pdecl, type: integer, size:1024, used:0\n",
        )
        .unwrap();
        let names: Vec<&str> = dumps
            .iter()
            .map(|d| d.header.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["t_noexp", "pg/t_pdecl"]);
        assert!(parse_show_table(
            "# table: a, type: ip, size:1, used:0\n# table: b, type: ip, size:1, used:0\n"
        )
        .is_err());
    }

    #[test]
    fn malformed_lines_are_errors_not_skips() {
        for bad in [
            "0x1: key=k exp=1 gpc0=1", // no use=
            "0x1: key=k use=x exp=1",  // use not a number
            "0x1: key=k use=0 exp=1 conn_rate(10000=3",
            "0x1: key=k use=0 exp=1 noequals",
            "# table: t, type: ip, size:big, used:0",
            "Unknown command",
        ] {
            assert!(parse_show_table(bad).is_err(), "{bad}");
        }
    }
}
