//! Decodes every HAProxy 2.6.12 capture in `shared/fixtures/haproxy-2.6` and checks the result
//! against the lab's `.decoded.jsonl` and the facts of each scenario's `.md`: every prefix is
//! "incomplete", any chunking gives the same messages, and re-encoding gives the same bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use haproxy_peers_sidecar::codec::{
    check_hello, decode_hello, decode_status, early_status, Ack, Control, DataType, DictValue,
    FrameCodec, FreqCounter, Hello, HelloLines, Key, KeyType, Message, RxState, StatusCode,
    TableDefinition, TxState, Update, Value,
};
use serde_json::Value as Json;
use tokio_util::codec::Decoder;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/haproxy-2.6")
}

fn read_hex(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.trim().chars())
        .collect();
    from_hex(&hex)
}

fn from_hex(hex: &str) -> Vec<u8> {
    assert!(hex.len().is_multiple_of(2), "odd hex length");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One decoded unit of a stream, with its byte offset and length in that stream.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Hello { lines: HelloLines },
    Status { code: StatusCode },
    Msg { msg: Message },
}

#[derive(Debug, Clone, PartialEq)]
struct At {
    off: usize,
    len: usize,
    item: Item,
}

/// Decodes one direction of a connection as a peer would: the handshake lines, then frames
/// through one `FrameCodec` and one `RxState`, fed in arbitrary pieces.
#[derive(Clone)]
struct StreamDecoder {
    initiator: bool,
    handshake_done: bool,
    buf: BytesMut,
    pos: usize,
    frames: FrameCodec,
    rx: RxState,
    items: Vec<At>,
}

impl StreamDecoder {
    fn new(initiator: bool) -> StreamDecoder {
        StreamDecoder {
            initiator,
            handshake_done: false,
            buf: BytesMut::new(),
            pos: 0,
            frames: FrameCodec::new(),
            rx: RxState::new(),
            items: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.buf.extend_from_slice(bytes);
        if !self.handshake_done {
            let (item, used) = if self.initiator {
                match decode_hello(&self.buf).map_err(|e| e.to_string())? {
                    None => return Ok(()),
                    Some((lines, used)) => (Item::Hello { lines }, used),
                }
            } else {
                match decode_status(&self.buf).map_err(|e| e.to_string())? {
                    None => return Ok(()),
                    Some((code, used)) => (Item::Status { code }, used),
                }
            };
            let _ = self.buf.split_to(used);
            self.items.push(At {
                off: 0,
                len: used,
                item,
            });
            self.pos = used;
            self.handshake_done = true;
        }
        loop {
            let before = self.buf.len();
            let Some(frame) = self
                .frames
                .decode(&mut self.buf)
                .map_err(|e| e.to_string())?
            else {
                return Ok(());
            };
            let len = before - self.buf.len();
            let msg = self.rx.decode(&frame).map_err(|e| e.to_string())?;
            self.items.push(At {
                off: self.pos,
                len,
                item: Item::Msg { msg },
            });
            self.pos += len;
        }
    }
}

/// One `.hex` stream and the lab's records for it.
struct Stream {
    file: String,
    scenario: String,
    bytes: Vec<u8>,
    records: Vec<Json>,
}

impl Stream {
    fn initiator(&self) -> bool {
        self.bytes.starts_with(b"HAProxyS ")
    }
}

/// `a_handshake.c3.A-to-B.hex` → (scenario, conn, jsonl dir, jsonl file).
fn parse_name(file: &str) -> (String, String, String, String) {
    let stem = file.strip_suffix(".hex").unwrap();
    let parts: Vec<&str> = stem.split('.').collect();
    let (scenario, conn, dir) = (parts[0], parts[1], parts[2]);
    let (jdir, jfile) = if conn.starts_with('p') {
        (dir.to_string(), format!("{scenario}.pcap.decoded.jsonl"))
    } else {
        let (x, y) = dir.split_once("-to-").unwrap();
        (format!("{x}>{y}"), format!("{scenario}.decoded.jsonl"))
    };
    (scenario.into(), conn.into(), jdir, jfile)
}

fn all_streams() -> Vec<Stream> {
    let mut files: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".hex"))
        .collect();
    files.sort();
    let mut jsonl: HashMap<String, Vec<Json>> = HashMap::new();
    let mut out = Vec::new();
    for file in files {
        let (scenario, conn, jdir, jfile) = parse_name(&file);
        let records = jsonl.entry(jfile.clone()).or_insert_with(|| {
            std::fs::read_to_string(fixture_dir().join(&jfile))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        });
        let mine: Vec<Json> = records
            .iter()
            .filter(|r| r["conn"] == conn.as_str() && r["dir"] == jdir.as_str())
            .cloned()
            .collect();
        out.push(Stream {
            bytes: read_hex(&file),
            file,
            scenario,
            records: mine,
        });
    }
    out
}

fn decode_all(s: &Stream) -> Vec<At> {
    let mut d = StreamDecoder::new(s.initiator());
    d.feed(&s.bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", s.file));
    let consumed: usize = d.items.iter().map(|a| a.len).sum();
    assert_eq!(consumed, s.bytes.len(), "{}: bytes left undecoded", s.file);
    d.items
}

fn messages(items: &[At]) -> Vec<&Message> {
    items
        .iter()
        .filter_map(|a| match &a.item {
            Item::Msg { msg } => Some(msg),
            _ => None,
        })
        .collect()
}

fn updates(items: &[At]) -> Vec<&Update> {
    messages(items)
        .into_iter()
        .filter_map(|m| match m {
            Message::Update(u) => Some(u),
            _ => None,
        })
        .collect()
}

/// The table name each update applies to, from the definitions before it in the stream.
fn updates_with_table(items: &[At]) -> Vec<(String, &Update)> {
    let mut defs: HashMap<u64, String> = HashMap::new();
    let mut out = Vec::new();
    for m in messages(items) {
        match m {
            Message::Definition(d) => {
                defs.insert(d.table_id, d.name_str().unwrap().to_string());
            }
            Message::Update(u) => out.push((defs[&u.table_id].clone(), u)),
            _ => {}
        }
    }
    out
}

fn definitions(items: &[At]) -> Vec<&TableDefinition> {
    messages(items)
        .into_iter()
        .filter_map(|m| match m {
            Message::Definition(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn controls(items: &[At]) -> Vec<Control> {
    messages(items)
        .into_iter()
        .filter_map(|m| match m {
            Message::Control(c) => Some(*c),
            _ => None,
        })
        .collect()
}

fn acks(items: &[At]) -> Vec<(u64, u32)> {
    messages(items)
        .into_iter()
        .filter_map(|m| match m {
            Message::Ack(Ack {
                table_id,
                update_id,
            }) => Some((*table_id, *update_id)),
            _ => None,
        })
        .collect()
}

fn hello_of(items: &[At]) -> Hello {
    let Item::Hello { lines } = &items[0].item else {
        panic!("stream does not start with a hello")
    };
    let me = String::from_utf8(lines.remote_name.clone()).unwrap();
    check_hello(lines, &me, |_| true).unwrap()
}

/// (line 2, first word of line 3, pid) of a hello.
fn names_pid(h: &Hello) -> (&str, &str, Option<u32>) {
    (h.remote_name.as_str(), h.local_name.as_str(), h.pid())
}

fn status_of(items: &[At]) -> StatusCode {
    match &items[0].item {
        Item::Status { code } => *code,
        other => panic!("stream does not start with a status line: {other:?}"),
    }
}

fn key_str(k: &Key) -> Option<&[u8]> {
    match k {
        Key::String(s) => Some(s),
        _ => None,
    }
}

fn find_update<'a>(items: &'a [At], table: &str, key: &[u8]) -> Vec<&'a Update> {
    updates_with_table(items)
        .into_iter()
        .filter(|(t, u)| {
            t == table
                && match &u.key {
                    Key::String(s) | Key::Binary(s) => &s[..] == key,
                    _ => false,
                }
        })
        .map(|(_, u)| u)
        .collect()
}

fn freq(elapsed: u32, curr: u32, prev: u32) -> Value {
    Value::Freq(FreqCounter {
        elapsed,
        curr,
        prev,
    })
}

fn val(u: &Update, t: DataType) -> &Value {
    u.value(t)
        .unwrap_or_else(|| panic!("no value for {}", t.name()))
}

// ---------------------------------------------------------------------------------------------
// Comparison with the lab's jsonl.

fn json_key(k: &Key) -> Json {
    match k {
        Key::Integer(v) => Json::from(*v),
        Key::Ipv4(a) => Json::from(a.to_string()),
        Key::Ipv6(a) => Json::from(a.to_string()),
        Key::String(s) => Json::from(String::from_utf8(s.to_vec()).unwrap()),
        Key::Binary(b) => Json::from(to_hex(b)),
    }
}

fn json_freq(f: &FreqCounter) -> Json {
    serde_json::json!({"age_ms": f.elapsed, "curr": f.curr, "prev": f.prev})
}

fn json_value(v: &Value) -> Json {
    match v {
        Value::Sint(i) => serde_json::json!({"int32": i}),
        Value::Uint(u) => Json::from(*u),
        Value::Ull(u) => Json::from(*u),
        Value::Freq(f) => json_freq(f),
        Value::Dict(DictValue::Absent) => Json::Null,
        Value::Dict(DictValue::Ref { id, .. }) => serde_json::json!({"dict_id": id}),
        Value::Dict(DictValue::Define { id, value }) => {
            serde_json::json!({"dict_id": id, "value": String::from_utf8(value.to_vec()).unwrap()})
        }
        Value::UintArray(items) => Json::from(items.clone()),
        Value::FreqArray(items) => Json::from(items.iter().map(json_freq).collect::<Vec<_>>()),
    }
}

fn msg_kind(m: &Message) -> &'static str {
    match m {
        Message::Control(Control::ResyncRequest) => "RESYNC_REQ",
        Message::Control(Control::ResyncFinished) => "RESYNC_FINISHED",
        Message::Control(Control::ResyncPartial) => "RESYNC_PARTIAL",
        Message::Control(Control::ResyncConfirm) => "RESYNC_CONFIRM",
        Message::Control(Control::Heartbeat) => "HEARTBEAT",
        Message::Definition(_) => "DEFINE",
        Message::Ack(_) => "ACK",
        Message::Update(u) => match (u.id_on_wire, u.expire_ms.is_some()) {
            (true, false) => "UPDATE",
            (false, false) => "INCUPDATE",
            (true, true) => "UPDATE_TIMED",
            (false, true) => "INCUPDATE_TIMED",
        },
        other => panic!("the captures hold no {other:?}"),
    }
}

fn check_define(rec: &Json, d: &TableDefinition, ctx: &str) {
    let j = &rec["define"];
    assert_eq!(j["table_id"], d.table_id, "{ctx}");
    assert_eq!(j["name"], d.name_str().unwrap(), "{ctx}");
    assert_eq!(j["key_type_id"], d.key_type.wire_code(), "{ctx}");
    assert_eq!(j["key_size"], d.key_len, "{ctx}");
    assert_eq!(j["data_bits"], d.data_types.0, "{ctx}");
    assert_eq!(j["expire_ms"], d.expire_ms.unwrap(), "{ctx}");
    let names: Vec<&str> = d.data_types.known().map(|t| t.name()).collect();
    assert_eq!(j["data_types"], Json::from(names), "{ctx}");
    let mut params = serde_json::Map::new();
    for p in &d.params {
        let mut block = serde_json::Map::new();
        if let Some(c) = p.count {
            block.insert("nbelem".into(), c.into());
        }
        if let Some(ms) = p.period_ms {
            block.insert("period_ms".into(), ms.into());
        }
        params.insert(p.data_type.name().into(), block.into());
    }
    assert_eq!(j["params"], Json::Object(params), "{ctx}");
    assert!(d.trailing.is_empty(), "{ctx}");
}

fn check_update(rec: &Json, u: &Update, table: &str, ctx: &str) {
    let j = &rec["update"];
    assert_eq!(rec["table_id"], u.table_id, "{ctx}");
    assert_eq!(j["table"], table, "{ctx}");
    assert_eq!(j["update_id"], u.update_id, "{ctx}");
    assert_eq!(
        j.get("update_id_implicit")
            .and_then(Json::as_bool)
            .unwrap_or(false),
        !u.id_on_wire,
        "{ctx}"
    );
    assert_eq!(
        j.get("expire_ms").and_then(Json::as_u64),
        u.expire_ms.map(u64::from),
        "{ctx}"
    );
    assert_eq!(j["key"], json_key(&u.key), "{ctx}");
    let data = j["data"].as_object().unwrap();
    assert_eq!(data.len(), u.values.len(), "{ctx}: number of values");
    for (t, v) in &u.values {
        let want = &data[t.name()];
        match (t, want) {
            (DataType::ServerId, _) => {
                assert_eq!(want["int32"], json_value(v)["int32"], "{ctx} {}", t.name());
                // The raw 64-bit value is the sign extension of what we keep.
                let Value::Sint(i) = v else { panic!() };
                assert_eq!(want["raw"], i64::from(*i) as u64, "{ctx}");
            }
            _ => assert_eq!(*want, json_value(v), "{ctx} {}", t.name()),
        }
    }
    assert!(u.trailing.is_empty(), "{ctx}");
}

/// Every record of the lab's decoder matches one of our items, in order, at the same offset.
fn check_against_jsonl(s: &Stream, items: &[At]) {
    let mut defs: HashMap<u64, String> = HashMap::new();
    let mut hello_lines: Vec<(usize, usize, &[u8])> = Vec::new();
    let mut ours: Vec<(usize, usize, &Item)> = Vec::new();
    for a in items {
        if let Item::Hello { lines } = &a.item {
            let mut off = 0;
            for l in [&lines.version, &lines.remote_name, &lines.peer] {
                hello_lines.push((off, l.len() + 1, l));
                off += l.len() + 1;
            }
        }
        ours.push((a.off, a.len, &a.item));
    }
    let mut hello_i = 0;
    let mut msg_i = usize::from(!hello_lines.is_empty());
    for rec in &s.records {
        let ctx = format!("{} @{}", s.file, rec["off"]);
        let off = rec["off"].as_u64().unwrap() as usize;
        let len = rec["len"].as_u64().unwrap() as usize;
        assert_eq!(
            to_hex(&s.bytes[off..off + len]),
            rec["hex"].as_str().unwrap(),
            "{ctx}"
        );
        let kind = rec["msg"].as_str().unwrap();
        if kind.starts_with("hello_") {
            let (hoff, hlen, text) = hello_lines[hello_i];
            hello_i += 1;
            assert_eq!((hoff, hlen), (off, len), "{ctx}");
            assert_eq!(
                rec["text"],
                String::from_utf8(text.to_vec()).unwrap(),
                "{ctx}"
            );
            continue;
        }
        if kind == "status" {
            let (o, l, Item::Status { code }) = ours[0] else {
                panic!("{ctx}: expected a status line")
            };
            assert_eq!((o, l), (off, len), "{ctx}");
            assert_eq!(rec["code"], code.code(), "{ctx}");
            msg_i = 1;
            continue;
        }
        let (o, l, Item::Msg { msg }) = ours[msg_i] else {
            panic!("{ctx}: expected a message")
        };
        msg_i += 1;
        assert_eq!((o, l), (off, len), "{ctx}");
        assert_eq!(msg_kind(msg), kind, "{ctx}");
        let (class, kind_byte) = msg.wire_header();
        assert_eq!(rec["class"], class, "{ctx}");
        assert_eq!(rec["type"], kind_byte, "{ctx}");
        match msg {
            Message::Definition(d) => {
                check_define(rec, d, &ctx);
                defs.insert(d.table_id, d.name_str().unwrap().to_string());
            }
            Message::Ack(a) => {
                assert_eq!(rec["table_id"], a.table_id, "{ctx}");
                assert_eq!(rec["update_id"], a.update_id, "{ctx}");
            }
            Message::Update(u) => check_update(rec, u, &defs[&u.table_id], &ctx),
            _ => {}
        }
    }
    assert_eq!(
        hello_i,
        hello_lines.len(),
        "{}: hello lines unchecked",
        s.file
    );
    assert_eq!(msg_i, ours.len(), "{}: items without a lab record", s.file);
}

// ---------------------------------------------------------------------------------------------
// Re-encoding.

fn reencode(items: &[At]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut tx = TxState::new();
    for a in items {
        let start = out.len();
        match &a.item {
            Item::Hello { .. } => hello_of(items).encode(&mut out).unwrap(),
            Item::Status { code } => code.encode(&mut out),
            Item::Msg { msg } => tx.encode(msg, &mut out).unwrap(),
        }
        assert_eq!(
            out.len() - start,
            a.len,
            "re-encoded length at offset {}",
            a.off
        );
    }
    out.to_vec()
}

// ---------------------------------------------------------------------------------------------
// Tests over every stream.

#[test]
fn every_capture_is_covered() {
    let streams = all_streams();
    let scenarios: std::collections::BTreeSet<&str> =
        streams.iter().map(|s| s.scenario.as_str()).collect();
    assert_eq!(
        scenarios.into_iter().collect::<Vec<_>>(),
        [
            "a_handshake",
            "b_key_types",
            "c_data_types",
            "d_idle",
            "e_full_resync",
            "f_reload",
            "h_simultaneous_start",
            "p_pypeer"
        ]
    );
    assert_eq!(streams.len(), 32);
    for s in &streams {
        assert!(!s.records.is_empty(), "{}: no lab records", s.file);
    }
}

#[test]
fn every_stream_matches_the_lab_decoder_and_reencodes_identically() {
    let (mut items_total, mut records_total) = (0, 0);
    for s in all_streams() {
        let items = decode_all(&s);
        check_against_jsonl(&s, &items);
        assert_eq!(reencode(&items), s.bytes, "{}: re-encoding differs", s.file);
        items_total += items.len();
        records_total += s.records.len();
    }
    // The lab has one record per hello line, we have one item per hello: 16 hellos.
    assert_eq!((records_total, items_total), (1233, 1233 - 2 * 16));
}

#[test]
fn every_prefix_is_incomplete_and_every_split_decodes_the_same() {
    for s in all_streams() {
        let full = decode_all(&s);
        // At each item boundary, the state of a decoder fed exactly the bytes before it in one
        // piece; the prefixes inside the item continue from there (decoding is sequential, so
        // this is what a decoder fed the whole prefix at once does, without the O(n²) cost).
        let mut at_boundary = Vec::with_capacity(full.len());
        for item in &full {
            let mut d = StreamDecoder::new(s.initiator());
            d.feed(&s.bytes[..item.off]).unwrap();
            assert_eq!(
                d.items[..],
                full[..d.items.len()],
                "{} @{}",
                s.file,
                item.off
            );
            assert_eq!(d.items.len(), at_boundary.len(), "{} @{}", s.file, item.off);
            at_boundary.push(d);
        }
        for (i, item) in full.iter().enumerate() {
            let end = item.off + item.len;
            for k in item.off..end {
                let mut d = at_boundary[i].clone();
                d.feed(&s.bytes[item.off..k])
                    .unwrap_or_else(|e| panic!("{} prefix {k}: {e}", s.file));
                assert_eq!(
                    d.items.len(),
                    i,
                    "{} prefix {k}: item {i} too early",
                    s.file
                );
                d.feed(&s.bytes[k..end]).unwrap();
                assert_eq!(d.items.len(), i + 1, "{} split at {k}", s.file);
                assert_eq!(d.items[i], *item, "{} split at {k}", s.file);
            }
        }
        // And the complete split for a sample of cut points, fed as two pieces from scratch.
        for k in (0..s.bytes.len()).step_by(97) {
            let mut d = StreamDecoder::new(s.initiator());
            d.feed(&s.bytes[..k]).unwrap();
            assert!(d.items.len() < full.len(), "{} prefix {k}", s.file);
            d.feed(&s.bytes[k..]).unwrap();
            assert_eq!(d.items, full, "{} split at {k}", s.file);
        }
    }
}

#[test]
fn random_chunkings_decode_the_same() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for s in all_streams() {
        let full = decode_all(&s);
        for round in 0..20 {
            let max_chunk = [1usize, 2, 3, 7, 64, 1500][round % 6];
            let mut d = StreamDecoder::new(s.initiator());
            let mut at = 0;
            while at < s.bytes.len() {
                let n = 1 + (next() as usize) % max_chunk;
                let end = (at + n).min(s.bytes.len());
                d.feed(&s.bytes[at..end]).unwrap();
                at = end;
            }
            assert_eq!(d.items, full, "{} round {round}", s.file);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Facts of each scenario's notes.

fn stream(name: &str) -> (Stream, Vec<At>) {
    let s = all_streams().into_iter().find(|s| s.file == name).unwrap();
    let items = decode_all(&s);
    (s, items)
}

#[test]
fn a_handshake_hello_lesson_of_nine_empty_tables() {
    let (_, b2a) = stream("a_handshake.c3.B-to-A.hex");
    let hello = hello_of(&b2a);
    assert_eq!(hello.remote_name, "A");
    assert_eq!(hello.local_name, "B");
    assert_eq!(hello.pid(), Some(3811));
    let Item::Hello { lines } = &b2a[0].item else {
        panic!()
    };
    assert_eq!(check_hello(lines, "A", |n| n == "A" || n == "B"), Ok(hello));
    assert_eq!(
        controls(&b2a),
        [
            Control::ResyncRequest,
            Control::ResyncConfirm,
            Control::Heartbeat
        ]
    );

    let (_, a2b) = stream("a_handshake.c3.A-to-B.hex");
    assert_eq!(status_of(&a2b), StatusCode::Success);
    let defs = definitions(&a2b);
    let ids: Vec<u64> = defs.iter().map(|d| d.table_id).collect();
    assert_eq!(ids, [8, 7, 6, 5, 4, 3, 2, 1, 9]);
    assert!(updates(&a2b).is_empty());
    assert_eq!(
        controls(&a2b),
        [Control::ResyncFinished, Control::Heartbeat]
    );

    let by_name: HashMap<&str, &TableDefinition> =
        defs.iter().map(|d| (d.name_str().unwrap(), *d)).collect();
    let all = by_name["t_all"];
    assert_eq!((all.key_type, all.key_len), (KeyType::String, 33));
    assert_eq!(all.data_types.0, 0x3f_ffff);
    assert_eq!(all.expire_ms, Some(60_000));
    assert_eq!(all.params.len(), 9);
    assert!(all
        .params
        .iter()
        .all(|p| p.period_ms == Some(10_000) && p.count.is_none()));

    let arr = by_name["t_arr"];
    assert_eq!(arr.data_types.0, 0x1c0_0200);
    assert_eq!(arr.array_len(DataType::Gpt), Some(2));
    assert_eq!(arr.array_len(DataType::Gpc), Some(2));
    assert_eq!(arr.array_len(DataType::GpcRate), Some(2));
    assert_eq!(arr.period_ms(DataType::GpcRate), Some(10_000));
    assert_eq!(arr.period_ms(DataType::Gpt), None);

    assert_eq!(by_name["t_ip"].data_types.0, 0x32eff);
    for (name, key_type, key_len) in [
        ("t_ip", KeyType::Ipv4, 4),
        ("t_ipv6", KeyType::Ipv6, 16),
        ("t_int", KeyType::Integer, 4),
        ("t_bin", KeyType::Binary, 16),
        ("t_str", KeyType::String, 33),
    ] {
        let d = by_name[name];
        assert_eq!((d.key_type, d.key_len), (key_type, key_len), "{name}");
    }

    let pdecl = by_name["/t_pdecl"];
    assert_eq!(
        (pdecl.key_type, pdecl.data_types.0),
        (KeyType::Integer, 0x404)
    );
    assert_eq!(pdecl.expire_ms, Some(30_000));
    assert_eq!(pdecl.period_ms(DataType::HttpReqRate), Some(5_000));

    let noexp = by_name["t_noexp"];
    assert_eq!(noexp.expire_ms, Some(0));
    assert_eq!(noexp.data_types.0, 4);
    assert!(noexp.params.is_empty());
}

#[test]
fn b_key_types_live_pushes_then_timed_lesson() {
    let (_, live) = stream("b_key_types.c3.A-to-B.hex");
    // Live pushes carry explicit ids and no lifetime; a push for another table than the previous
    // one starts with that table's DEFINE.
    let msgs = messages(&live);
    let mut prev_table = None;
    for (i, m) in msgs.iter().enumerate() {
        if let Message::Update(u) = m {
            assert!(u.id_on_wire && u.expire_ms.is_none());
            if prev_table != Some(u.table_id) {
                let Message::Definition(d) = msgs[i - 1] else {
                    panic!("update {} not preceded by its definition", u.update_id)
                };
                assert_eq!(d.table_id, u.table_id);
            }
            prev_table = Some(u.table_id);
        }
    }
    let got: Vec<(String, Key, u32, Option<&Value>)> = updates_with_table(&live)
        .into_iter()
        .map(|(t, u)| (t, u.key.clone(), u.update_id, u.value(DataType::Gpc0)))
        .collect();
    let s = |b: &'static [u8]| Key::String(Bytes::from_static(b));
    let b = |b: &'static [u8]| Key::Binary(Bytes::from_static(b));
    let u = |v| Some(&*Box::leak(Box::new(Value::Uint(v))));
    assert_eq!(
        got,
        vec![
            (
                "t_ip".into(),
                Key::Ipv4(Ipv4Addr::new(10, 1, 2, 3)),
                1,
                u(1)
            ),
            (
                "t_ipv6".into(),
                Key::Ipv6("2001:db8::1".parse::<Ipv6Addr>().unwrap()),
                1,
                u(2)
            ),
            ("t_int".into(), Key::Integer(0x1234_5678), 1, u(3)),
            ("t_str".into(), s(b"hello"), 1, u(4)),
            ("t_bin".into(), b(b"bin\x01key\0\0\0\0\0\0\0\0\0"), 5, u(0)),
            ("t_bin".into(), b(b"ABCDEFGHIJKLMNOP"), 10, u(0)),
            ("t_str".into(), s(b"hello"), 2, u(5)),
            ("t_str".into(), s(b"world"), 3, u(6)),
            ("t_noexp".into(), s(b"forever"), 1, u(7)),
            ("/t_pdecl".into(), Key::Integer(77), 2, u(0)),
        ]
    );
    let noexp = &find_update(&live, "t_noexp", b"forever")[0];
    assert_eq!(noexp.values, [(DataType::Gpc0, Value::Uint(7))]);
    let pdecl = updates_with_table(&live)
        .into_iter()
        .find(|(t, _)| t == "/t_pdecl")
        .unwrap()
        .1;
    assert_eq!(*val(pdecl, DataType::HttpReqRate), freq(0, 1, 0));
    // The traffic-driven binary entry carries live counters.
    let bin = &find_update(&live, "t_bin", b"bin\x01key\0\0\0\0\0\0\0\0\0")[0];
    assert_eq!(*val(bin, DataType::ConnCnt), Value::Uint(1));
    assert_eq!(*val(bin, DataType::ConnRate), freq(0, 1, 0));
    assert_eq!(*val(bin, DataType::BytesInCnt), Value::Ull(94));
    assert_eq!(*val(bin, DataType::BytesOutRate), freq(0, 73, 0));
    // A never-touched counter's age is A's raw clock.
    let ip = updates(&live)[0];
    assert_eq!(*val(ip, DataType::Gpc0Rate), freq(166_553_104, 0, 0));

    let (_, b_live) = stream("b_key_types.c3.B-to-A.hex");
    let a = acks(&b_live);
    assert_eq!(a[0], (2, 1));
    assert!(a.contains(&(6, 5)) && a.contains(&(6, 10)));

    let (_, lesson) = stream("b_key_types.c4.A-to-B.hex");
    let timed = updates_with_table(&lesson);
    assert!(timed.iter().all(|(_, u)| u.expire_ms.is_some()));
    let first = timed[0].1;
    assert_eq!((first.update_id, first.expire_ms), (5, Some(55_437)));
    assert_eq!(first.key, b(b"bin\x01key\0\0\0\0\0\0\0\0\0"));
    let hello = find_update(&lesson, "t_str", b"hello")[0];
    assert_eq!(
        (hello.update_id, hello.expire_ms, hello.id_on_wire),
        (2, Some(56_448), true)
    );
    let world = find_update(&lesson, "t_str", b"world")[0];
    assert_eq!(
        (world.update_id, world.expire_ms, world.id_on_wire),
        (3, Some(56_948), false)
    );
    let (_, pd) = timed.iter().find(|(t, _)| t == "/t_pdecl").unwrap();
    assert_eq!(pd.expire_ms, Some(27_957));
    assert_eq!(*val(pd, DataType::HttpReqRate), freq(2043, 1, 0));
    let noexp = find_update(&lesson, "t_noexp", b"forever")[0];
    assert_eq!(noexp.expire_ms, Some(0));
    // The lesson ends with RESYNC_FINISHED after the last timed update (a heartbeat follows).
    let lesson_msgs = messages(&lesson);
    let fin = lesson_msgs
        .iter()
        .position(|m| **m == Message::Control(Control::ResyncFinished))
        .unwrap();
    assert!(!lesson_msgs[fin..]
        .iter()
        .any(|m| matches!(m, Message::Update(_))));

    let (_, learner) = stream("b_key_types.c4.B-to-A.hex");
    let c = controls(&learner);
    assert_eq!(c[0], Control::ResyncRequest);
    assert!(c.contains(&Control::ResyncConfirm));
    assert!(acks(&learner).contains(&(6, 10)));
}

#[test]
fn c_data_types_every_value() {
    let (_, items) = stream("c_data_types.c3.A-to-B.hex");
    let dt = find_update(&items, "t_all", b"dt");
    let ids: Vec<u32> = dt.iter().map(|u| u.update_id).collect();
    assert_eq!(ids, (1..=21).collect::<Vec<_>>());
    // Before it is touched, a counter's age is A's raw clock (f5ecb5fa03).
    assert_eq!(*val(dt[0], DataType::Gpc0Rate), freq(166_574_005, 0, 0));
    let last = dt[20];
    use DataType as T;
    let expected = [
        (T::ServerId, Value::Sint(7)),
        (T::Gpt0, Value::Uint(11)),
        (T::Gpc0, Value::Uint(12)),
        (T::Gpc0Rate, freq(5111, 13, 0)),
        (T::ConnCnt, Value::Uint(14)),
        (T::ConnRate, freq(4509, 15, 0)),
        (T::ConnCur, Value::Uint(16)),
        (T::SessCnt, Value::Uint(17)),
        (T::SessRate, freq(3607, 18, 0)),
        (T::HttpReqCnt, Value::Uint(19)),
        (T::HttpReqRate, freq(3007, 20, 0)),
        (T::HttpErrCnt, Value::Uint(21)),
        (T::HttpErrRate, freq(2405, 22, 0)),
        (T::BytesInCnt, Value::Ull(1 << 40)),
        (T::BytesInRate, freq(1803, 24, 0)),
        (T::BytesOutCnt, Value::Ull(25)),
        (T::BytesOutRate, freq(1203, 26, 0)),
        (T::Gpc1, Value::Uint(27)),
        (T::Gpc1Rate, freq(601, 28, 0)),
        (T::ServerKey, Value::Dict(DictValue::Absent)),
        (T::HttpFailCnt, Value::Uint(29)),
        (T::HttpFailRate, freq(1, 30, 0)),
    ];
    assert_eq!(last.values, expected);

    let edge = find_update(&items, "t_all", b"edge")[0];
    assert_eq!(edge.update_id, 22);
    for (t, v) in [
        (T::ServerId, Value::Sint(-1)),
        (T::Gpt0, Value::Uint(240)),
        (T::Gpc0, Value::Uint(u32::MAX)),
        (T::ConnCnt, Value::Uint(2287)),
        (T::SessCnt, Value::Uint(2288)),
        (T::HttpReqCnt, Value::Uint(264_431)),
        (T::HttpErrCnt, Value::Uint(264_432)),
        (T::BytesInCnt, Value::Ull(33_818_864)),
        (T::BytesOutCnt, Value::Ull(i64::MAX as u64)),
        (T::Gpc1, Value::Uint(239)),
    ] {
        assert_eq!(*val(edge, t), v, "edge {}", t.name());
    }

    // server_key: the first sight defines slot 1 = "s1", every later use references it.
    let mut seen_define = false;
    let mut refs = 0;
    for (table, u) in updates_with_table(&items) {
        if table != "t_all" {
            continue;
        }
        match val(u, T::ServerKey) {
            Value::Dict(DictValue::Define { id, value }) => {
                assert!(!seen_define, "defined twice");
                assert_eq!((*id, &value[..]), (1, &b"s1"[..]));
                assert_eq!(key_str(&u.key), Some(&b"traffic"[..]));
                assert_eq!(u.update_id, 29);
                assert_eq!(*val(u, T::ServerId), Value::Sint(7));
                seen_define = true;
            }
            Value::Dict(DictValue::Ref { id, value }) => {
                assert!(seen_define, "reference before definition");
                assert_eq!((*id, value.as_deref()), (1, Some(&b"s1"[..])));
                refs += 1;
            }
            Value::Dict(DictValue::Absent) => {}
            other => panic!("server_key value {other:?}"),
        }
    }
    assert!(seen_define && refs >= 2, "refs {refs}");
    // traffic2 goes through the same server: the dictionary slot is reused, not re-sent.
    let traffic2 = find_update(&items, "t_all", b"traffic2");
    assert!(traffic2.iter().any(|u| matches!(
        val(u, T::ServerKey),
        Value::Dict(DictValue::Ref { id: 1, .. })
    )));

    // Arrays, in t_arr.
    let arr = find_update(&items, "t_arr", b"arr");
    assert_eq!(arr[0].update_id, 6);
    assert_eq!(
        arr[0].values,
        [
            (T::HttpReqCnt, Value::Uint(1)),
            (T::Gpt, Value::UintArray(vec![100, 200])),
            (T::Gpc, Value::UintArray(vec![1, 1])),
            (
                T::GpcRate,
                Value::FreqArray(vec![
                    FreqCounter {
                        elapsed: 1,
                        curr: 1,
                        prev: 0
                    },
                    FreqCounter {
                        elapsed: 1,
                        curr: 1,
                        prev: 0
                    }
                ])
            ),
        ]
    );
    let nine = arr.iter().find(|u| u.update_id == 9).unwrap();
    assert_eq!(*val(nine, T::Gpc), Value::UintArray(vec![1, 2]));
    assert_eq!(
        *val(arr.last().unwrap(), T::Gpt),
        Value::UintArray(vec![9, 200])
    );

    // Connection-level tracking in t_ip.
    let ip = updates_with_table(&items)
        .into_iter()
        .find(|(t, u)| t == "t_ip" && u.key == Key::Ipv4(Ipv4Addr::LOCALHOST))
        .unwrap()
        .1;
    assert_eq!(ip.update_id, 4);
    assert_eq!(*val(ip, T::ConnCnt), Value::Uint(1));
    assert_eq!(*val(ip, T::ConnRate), freq(1, 1, 0));
    assert_eq!(*val(ip, T::ConnCur), Value::Uint(1));
    assert_eq!(*val(ip, T::SessCnt), Value::Uint(1));
    assert_eq!(*val(ip, T::BytesInCnt), Value::Ull(82));
    assert_eq!(*val(ip, T::BytesOutRate), freq(1, 75, 0));

    // B acknowledges each push.
    let (_, b2a) = stream("c_data_types.c3.B-to-A.hex");
    assert!(acks(&b2a).contains(&(8, 22)));
}

#[test]
fn d_idle_acks_and_heartbeats() {
    let (_, a2b) = stream("d_idle.c3.A-to-B.hex");
    let ups = updates_with_table(&a2b);
    let a_updates: Vec<(&str, u32, Option<&[u8]>)> = ups
        .iter()
        .map(|(t, u)| (t.as_str(), u.update_id, key_str(&u.key)))
        .collect();
    assert_eq!(
        a_updates,
        [
            ("t_str", 1, Some(&b"k1"[..])),
            ("t_str", 2, Some(&b"k2"[..]))
        ]
    );
    // k2 comes without a new DEFINE: t_str is still selected.
    let msgs = messages(&a2b);
    let k2 = msgs
        .iter()
        .position(|m| matches!(m, Message::Update(u) if u.update_id == 2))
        .unwrap();
    assert!(matches!(msgs[k2 - 1], Message::Update(_)));
    assert!(acks(&a2b).contains(&(5, 3)));
    let hb = controls(&a2b)
        .iter()
        .filter(|c| **c == Control::Heartbeat)
        .count();
    assert!(hb >= 4, "A sent {hb} heartbeats");

    let (_, b2a) = stream("d_idle.c3.B-to-A.hex");
    assert_eq!(acks(&b2a)[..2], [(5, 1), (5, 2)]);
    let k3 = &updates_with_table(&b2a)[0];
    assert_eq!((k3.0.as_str(), k3.1.update_id), ("t_str", 3));
    assert_eq!(*val(k3.1, DataType::Gpc0), Value::Uint(3));
    let hb = controls(&b2a)
        .iter()
        .filter(|c| **c == Control::Heartbeat)
        .count();
    assert!(hb >= 3, "B sent {hb} heartbeats");
}

#[test]
fn e_full_resync_three_passes_per_connection() {
    for conn in ["c3", "c4", "c5"] {
        let (_, b2a) = stream(&format!("e_full_resync.{conn}.B-to-A.hex"));
        assert_eq!(hello_of(&b2a).local_name, "B");
        assert_eq!(
            controls(&b2a),
            [
                Control::ResyncRequest,
                Control::ResyncConfirm,
                Control::Heartbeat
            ]
        );
        assert_eq!(
            acks(&b2a),
            [(8, 10), (7, 3), (6, 5), (5, 10), (4, 10), (3, 10), (2, 10)]
        );
        let msgs = messages(&b2a);
        assert!(matches!(msgs[0], Message::Control(Control::ResyncRequest)));
        assert!(matches!(msgs[8], Message::Control(Control::ResyncConfirm)));

        let (_, a2b) = stream(&format!("e_full_resync.{conn}.A-to-B.hex"));
        assert_eq!(status_of(&a2b), StatusCode::Success);
        let msgs = messages(&a2b);
        let finished = msgs
            .iter()
            .position(|m| matches!(m, Message::Control(Control::ResyncFinished)))
            .unwrap();
        let lesson_start = msgs
            .iter()
            .position(|m| matches!(m, Message::Update(u) if u.expire_ms.is_some()))
            .unwrap();
        let entries = |range: &[&Message], timed: bool| -> BTreeMap<(u64, Vec<u8>), u32> {
            range
                .iter()
                .filter_map(|m| match m {
                    Message::Update(u) => {
                        assert_eq!(u.expire_ms.is_some(), timed);
                        let k = match &u.key {
                            Key::Integer(v) => v.to_be_bytes().to_vec(),
                            Key::Ipv4(a) => a.octets().to_vec(),
                            Key::Ipv6(a) => a.octets().to_vec(),
                            Key::String(s) | Key::Binary(s) => s.to_vec(),
                        };
                        Some(((u.table_id, k), u.update_id))
                    }
                    _ => None,
                })
                .collect()
        };
        // The lesson starts with the two empty tables' definitions.
        let before_lesson = &msgs[..lesson_start];
        let pass1_end = before_lesson
            .iter()
            .rposition(|m| matches!(m, Message::Update(_)))
            .unwrap();
        let lesson_defs: Vec<&str> = msgs[pass1_end + 1..lesson_start]
            .iter()
            .filter_map(|m| match m {
                Message::Definition(d) => d.name_str(),
                _ => None,
            })
            .collect();
        assert_eq!(lesson_defs[..2], ["/t_pdecl", "t_noexp"]);
        let pass1 = entries(&msgs[..pass1_end + 1], false);
        let lesson = entries(&msgs[pass1_end + 1..finished], true);
        let pass3 = entries(&msgs[finished + 1..], false);
        assert_eq!(pass1.len(), 52, "{conn}");
        assert_eq!(pass1, lesson, "{conn}");
        assert_eq!(pass1, pass3, "{conn}");
        assert!(matches!(
            msgs.last(),
            Some(Message::Control(Control::Heartbeat))
        ));

        let k0 = find_update(&a2b, "t_str", b"key-0000");
        let timed = k0.iter().find(|u| u.expire_ms.is_some()).unwrap();
        assert_eq!((timed.update_id, timed.id_on_wire), (1, true));
        let k1 = find_update(&a2b, "t_str", b"key-0001");
        let timed1 = k1.iter().find(|u| u.expire_ms.is_some()).unwrap();
        assert_eq!((timed1.update_id, timed1.id_on_wire), (2, false));
        if conn == "c3" {
            assert_eq!(timed.expire_ms, Some(59_951));
            assert_eq!(*val(timed, DataType::ConnRate), freq(50, 0, 0));
        }
    }
}

#[test]
fn f_reload_old_worker_teaches_the_new_one() {
    let (_, old) = stream("f_reload.p54340.c2s.hex");
    let hello = hello_of(&old);
    assert_eq!(
        (hello.remote_name.as_str(), hello.local_name.as_str()),
        ("B", "B")
    );
    assert_eq!(hello.pid(), Some(3881));
    let Item::Hello { lines } = &old[0].item else {
        panic!()
    };
    // The new worker knows its own name: a hello claiming it is accepted (the reload path).
    assert!(check_hello(lines, "B", |n| n == "A" || n == "B").is_ok());
    let c = controls(&old);
    assert_eq!(
        c,
        [Control::ResyncFinished],
        "no RESYNC_REQ: the lesson is unasked"
    );
    let ups = updates_with_table(&old);
    assert!(ups.iter().all(|(_, u)| u.expire_ms.is_some()));
    let all0 = find_update(&old, "t_all", b"all-0000")[0];
    assert_eq!(
        (all0.update_id, all0.expire_ms),
        (0x8000_0001, Some(0xe049))
    );
    let arr_b = find_update(&old, "t_arr", b"arrB")[0];
    assert_eq!((arr_b.update_id, arr_b.expire_ms), (5, Some(57_439)));
    assert_eq!(*val(arr_b, DataType::HttpReqCnt), Value::Uint(1));
    assert_eq!(*val(arr_b, DataType::Gpt), Value::UintArray(vec![1, 2]));
    assert_eq!(*val(arr_b, DataType::Gpc), Value::UintArray(vec![0, 1]));
    let Value::FreqArray(rates) = val(arr_b, DataType::GpcRate) else {
        panic!()
    };
    assert_eq!(
        rates[1],
        FreqCounter {
            elapsed: 2562,
            curr: 1,
            prev: 0
        }
    );
    let from_b = find_update(&old, "t_str", b"from-B")[0];
    assert_eq!(from_b.update_id, 0xb);
    assert_eq!(*val(from_b, DataType::Gpc0), Value::Uint(99));
    let key1 = find_update(&old, "t_str", b"key-0001")[0];
    assert!(!key1.id_on_wire);
    let names: Vec<&str> = definitions(&old)
        .iter()
        .filter_map(|d| d.name_str())
        .collect();
    assert!(names.contains(&"/t_pdecl") && names.contains(&"t_noexp"));

    let (_, new) = stream("f_reload.p54340.s2c.hex");
    assert_eq!(status_of(&new), StatusCode::Success);
    assert_eq!(acks(&new)[..2], [(8, 0x8000_000a), (7, 5)]);
    assert_eq!(acks(&new).len(), 7);
    assert_eq!(controls(&new), [Control::ResyncConfirm]);

    let (_, c4) = stream("f_reload.c4.B-to-A.hex");
    assert_eq!(hello_of(&c4).pid(), Some(3891));
    let (_, c4a) = stream("f_reload.c4.A-to-B.hex");
    assert_eq!(status_of(&c4a), StatusCode::Success);
    assert_eq!(c4a.len(), 1);
    let (c5, c5_items) = stream("f_reload.c5.A-to-B.hex");
    assert_eq!(names_pid(&hello_of(&c5_items)), ("B", "A", Some(3877)));
    let (c5b, c5b_items) = stream("f_reload.c5.B-to-A.hex");
    assert_eq!(controls(&c5b_items), [Control::Heartbeat]);
    // tcpdump saw the same bytes as the relay.
    assert_eq!(stream("f_reload.p43340.c2s.hex").0.bytes, c5.bytes);
    assert_eq!(stream("f_reload.p43340.s2c.hex").0.bytes, c5b.bytes);
}

#[test]
fn h_simultaneous_start_both_partial() {
    let (_, a2b) = stream("h_simultaneous_start.c2.A-to-B.hex");
    assert_eq!(status_of(&a2b), StatusCode::Success);
    // 200\n and 00 00 in the same segment: the acceptor asks too.
    assert_eq!(a2b[1].off, 4);
    assert_eq!(messages(&a2b)[0], &Message::Control(Control::ResyncRequest));
    let ca = controls(&a2b);
    assert!(ca.contains(&Control::ResyncPartial) && !ca.contains(&Control::ResyncFinished));
    assert!(ca.contains(&Control::ResyncConfirm));
    let ea = &find_update(&a2b, "t_str", b"early-A")[0];
    assert_eq!(ea.update_id, 1);

    let (_, b2a) = stream("h_simultaneous_start.c2.B-to-A.hex");
    let cb = controls(&b2a);
    assert_eq!(cb[0], Control::ResyncRequest);
    assert!(cb.contains(&Control::ResyncPartial) && cb.contains(&Control::ResyncConfirm));
    assert_eq!(find_update(&b2a, "t_str", b"early-B")[0].update_id, 2);
    assert!(acks(&b2a).contains(&(5, 1)));
    assert_eq!(
        definitions(&b2a)
            .iter()
            .filter(|d| d.name_str() != Some("t_str"))
            .count(),
        8
    );
}

#[test]
fn p_pypeer_messages_haproxy_accepted() {
    let (_, p2a) = stream("p_pypeer.c3.P-to-A.hex");
    let defs = definitions(&p2a);
    let ip = defs.iter().find(|d| d.name_str() == Some("t_ip")).unwrap();
    assert_eq!(ip.data_types.0, 0x204);
    assert!(ip.params.is_empty());
    let arr = defs.iter().find(|d| d.name_str() == Some("t_arr")).unwrap();
    assert_eq!(arr.data_types.0, 0x1c0_0000);
    let ups = updates_with_table(&p2a);
    assert!(ups
        .iter()
        .all(|(_, u)| u.expire_ms == Some(30_000) && u.id_on_wire));
    let ip_up = ups.iter().find(|(t, _)| t == "t_ip").unwrap().1;
    assert_eq!(ip_up.key, Key::Ipv4(Ipv4Addr::new(10, 20, 30, 40)));
    assert_eq!(
        ip_up.values,
        [
            (DataType::Gpc0, Value::Uint(1)),
            (DataType::HttpReqCnt, Value::Uint(2))
        ]
    );
    let int_up = ups.iter().find(|(t, _)| t == "t_int").unwrap().1;
    assert_eq!(int_up.key, Key::Integer(4242));
    assert_eq!(*val(int_up, DataType::ServerId), Value::Sint(-5));
    let arr_up = ups.iter().find(|(t, _)| t == "t_arr").unwrap().1;
    assert_eq!(*val(arr_up, DataType::Gpt), Value::UintArray(vec![5, 6]));
    assert_eq!(*val(arr_up, DataType::Gpc), Value::UintArray(vec![7, 8]));
    assert_eq!(
        *val(arr_up, DataType::GpcRate),
        Value::FreqArray(vec![
            FreqCounter {
                elapsed: 0,
                curr: 3,
                prev: 0
            },
            FreqCounter {
                elapsed: 0,
                curr: 4,
                prev: 0
            }
        ])
    );
    let all_up = ups.iter().find(|(t, _)| t == "t_all").unwrap().1;
    assert_eq!(
        all_up.values,
        [
            (DataType::ServerId, Value::Sint(7)),
            (DataType::ConnCur, Value::Uint(5)),
            (DataType::BytesInCnt, Value::Ull(1 << 40)),
            (DataType::Gpc1Rate, freq(0, 11, 0)),
            (
                DataType::ServerKey,
                Value::Dict(DictValue::Define {
                    id: 1,
                    value: Bytes::from_static(b"s1")
                })
            ),
        ]
    );
    let pd = ups.iter().find(|(t, _)| t == "/t_pdecl").unwrap().1;
    assert_eq!(
        (pd.key.clone(), val(pd, DataType::Gpc0).clone()),
        (Key::Integer(77), Value::Uint(8))
    );

    let (_, a2p) = stream("p_pypeer.c3.A-to-P.hex");
    assert_eq!(acks(&a2p).len(), 9);
    let (_, a_calls) = stream("p_pypeer.c4.A-to-P.hex");
    assert_eq!(names_pid(&hello_of(&a_calls)), ("P", "A", Some(3911)));
    let (_, p_answers) = stream("p_pypeer.c4.P-to-A.hex");
    assert_eq!(status_of(&p_answers), StatusCode::Success);
    assert_eq!(controls(&p_answers)[0], Control::ResyncRequest);
    assert!(acks(&p_answers).iter().any(|(_, id)| *id == 0x8000_0001));
}

#[test]
fn g_bad_handshakes_get_haproxys_answers() {
    let text = std::fs::read_to_string(fixture_dir().join("g_bad_handshakes.cases.tsv")).unwrap();
    let known = |n: &str| n == "A" || n == "B";
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (case, sent, answer) = (cols[0], from_hex(cols[1]), from_hex(cols[2]));
        let expected = decode_status(&answer).unwrap();
        match decode_hello(&sent).unwrap() {
            None => {
                // partial / empty: HAProxy answered nothing, and nothing is decided yet.
                assert!(expected.is_none(), "{case}");
                assert_eq!(early_status(&sent, "A"), None, "{case}");
            }
            Some((lines, used)) => {
                assert_eq!(used, sent.len(), "{case}");
                let (code, status_len) = expected.unwrap();
                let ours = match check_hello(&lines, "A", known) {
                    Ok(_) => StatusCode::Success,
                    Err(code) => code,
                };
                assert_eq!(ours, code, "{case}");
                // HAProxy decides 501/502 on line 1 and 503 on line 2 before reading on.
                let upto = |n: usize| {
                    let end = sent
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .nth(n - 1)
                        .unwrap()
                        .0;
                    early_status(&sent[..=end], "A")
                };
                let (e1, e2) = (upto(1), upto(2));
                match code {
                    // A line 3 without a space is only known at line 3.
                    StatusCode::ProtocolError if case == "no_pid" => {
                        assert_eq!((e1, e2), (None, None))
                    }
                    StatusCode::ProtocolError | StatusCode::BadVersion => {
                        assert_eq!(e1, Some(code), "{case}")
                    }
                    StatusCode::LocalNameMismatch => {
                        assert_eq!((e1, e2), (None, Some(code)), "{case}")
                    }
                    _ => assert_eq!((e1, e2), (None, None), "{case}"),
                }
                let mut out = Vec::new();
                code.encode(&mut out);
                assert_eq!(out, answer[..status_len], "{case}");
                if case == "good_during_startup" {
                    let mut rest = BytesMut::from(&answer[status_len..]);
                    let frame = FrameCodec::new().decode(&mut rest).unwrap().unwrap();
                    assert_eq!(
                        RxState::new().decode(&frame).unwrap(),
                        Message::Control(Control::ResyncRequest)
                    );
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 19);
}
