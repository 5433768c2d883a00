//! The codec against a real HAProxy 2.6 on loopback.
//!
//! Each test starts its own HAProxy (own ports, own temp dir) whose `peers pg` section knows this
//! test as peer `tester`; the test speaks the protocol with the sidecar's codec (`FrameCodec`,
//! `RxState`, `TxState`, handshake functions) and checks what HAProxy does through its runtime API
//! and real HTTP traffic. Tables cover the five key types and every data type 2.6 stores.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use haproxy_peers_sidecar::codec::{
    check_hello, decode_hello, decode_status, Ack, Control, DataType, DataTypeSet, DictValue,
    FrameCodec, FreqCounter, Hello, IdForm, Key, KeyType, Message, ParamBlock, RxState, Shape,
    StatusCode, TableDefinition, TxState, Update, Value, Version,
};
use haproxy_peers_testkit::config::{PeersSection, StickTable, TEST_DEFAULTS};
use haproxy_peers_testkit::show_table::TableEntry;
use haproxy_peers_testkit::{free_addr, http_get, Haproxy, HaproxyOptions, RuntimeApi};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Decoder;

const SECTION: &str = "pg";
/// HAProxy's local peer name (`-L hap`).
const HAP: &str = "hap";
/// This test's peer name in HAProxy's section.
const TESTER: &str = "tester";
/// Longest wait for one expected message; a broken exchange fails instead of hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(8);

// ---------------------------------------------------------------------------------------------
// The tables: one description renders the configuration and predicts HAProxy's definition.

/// The "STD" store set of the fixtures' lab.
const STD: &[&str] = &[
    "server_id",
    "gpt0",
    "gpc0",
    "gpc0_rate(10s)",
    "conn_cnt",
    "conn_cur",
    "conn_rate(10s)",
    "sess_cnt",
    "http_req_cnt",
    "http_req_rate(10s)",
    "http_err_cnt",
    "bytes_in_cnt",
    "bytes_out_rate(10s)",
    "gpc1",
];

/// Every non-array type 2.6 knows (2.6 refuses `gpt`/`gpc` next to `gpt0`/`gpc0`/`gpc1`).
const ALL_SCALARS: &[&str] = &[
    "server_id",
    "gpt0",
    "gpc0",
    "gpc0_rate(10s)",
    "conn_cnt",
    "conn_rate(10s)",
    "conn_cur",
    "sess_cnt",
    "sess_rate(10s)",
    "http_req_cnt",
    "http_req_rate(10s)",
    "http_err_cnt",
    "http_err_rate(10s)",
    "bytes_in_cnt",
    "bytes_in_rate(10s)",
    "bytes_out_cnt",
    "bytes_out_rate(10s)",
    "gpc1",
    "gpc1_rate(10s)",
    "server_key",
    "http_fail_cnt",
    "http_fail_rate(10s)",
];

const ARRAYS: &[&str] = &["gpt(2)", "gpc(2)", "gpc_rate(2,10s)", "http_req_cnt"];

#[derive(Debug, Clone, Copy)]
struct TableSpec {
    /// Runtime API name.
    runtime: &'static str,
    /// Wire name.
    wire: &'static str,
    /// Text after `type` in the configuration.
    key: &'static str,
    key_type: KeyType,
    key_len: u64,
    store: &'static [&'static str],
    expire_ms: u64,
    /// Declared as `table` inside the peers section rather than in a backend.
    in_peers_section: bool,
}

const fn backend(
    name: &'static str,
    key: &'static str,
    key_type: KeyType,
    key_len: u64,
    store: &'static [&'static str],
    expire_ms: u64,
) -> TableSpec {
    TableSpec {
        runtime: name,
        wire: name,
        key,
        key_type,
        key_len,
        store,
        expire_ms,
        in_peers_section: false,
    }
}

const T_IP: TableSpec = backend("t_ip", "ip", KeyType::Ipv4, 4, STD, 60_000);
const T_IPV6: TableSpec = backend("t_ipv6", "ipv6", KeyType::Ipv6, 16, STD, 60_000);
const T_INT: TableSpec = backend("t_int", "integer", KeyType::Integer, 4, STD, 60_000);
const T_STR: TableSpec = backend("t_str", "string len 32", KeyType::String, 33, STD, 60_000);
const T_BIN: TableSpec = backend("t_bin", "binary len 16", KeyType::Binary, 16, STD, 60_000);
const T_ARR: TableSpec = backend(
    "t_arr",
    "string len 32",
    KeyType::String,
    33,
    ARRAYS,
    60_000,
);
const T_ALL: TableSpec = backend(
    "t_all",
    "string len 32",
    KeyType::String,
    33,
    ALL_SCALARS,
    60_000,
);
const T_NOEXP: TableSpec = backend(
    "t_noexp",
    "string len 32",
    KeyType::String,
    33,
    &["gpc0"],
    0,
);
const T_PDECL: TableSpec = TableSpec {
    runtime: "pg/t_pdecl",
    wire: "/t_pdecl",
    key: "integer",
    key_type: KeyType::Integer,
    key_len: 4,
    store: &["gpc0", "http_req_rate(5s)"],
    expire_ms: 30_000,
    in_peers_section: true,
};

const TABLES: [TableSpec; 9] = [
    T_PDECL, T_IP, T_IPV6, T_INT, T_STR, T_BIN, T_ARR, T_ALL, T_NOEXP,
];

/// `10s` → 10000.
fn duration_ms(text: &str) -> u64 {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|_| panic!("bad duration {text}"));
    match unit {
        "ms" => n,
        "s" => n * 1000,
        "m" => n * 60_000,
        _ => panic!("bad duration unit in {text}"),
    }
}

impl TableSpec {
    /// `(type, element count, period)` per `store` item, ascending type id.
    fn data_types(&self) -> Vec<(DataType, Option<u64>, Option<u64>)> {
        let mut types: Vec<_> = self
            .store
            .iter()
            .map(|item| {
                let (name, args) = match item.split_once('(') {
                    Some((name, args)) => (name, args.trim_end_matches(')').split(',').collect()),
                    None => (*item, Vec::new()),
                };
                let t = DataType::from_name(name).unwrap_or_else(|| panic!("unknown type {name}"));
                let (count, period) = match (t.is_array(), t.is_freq(), args.as_slice()) {
                    (true, true, [n, p]) => (Some(n.parse().unwrap()), Some(duration_ms(p))),
                    (true, false, [n]) => (Some(n.parse().unwrap()), None),
                    (false, true, [p]) => (None, Some(duration_ms(p))),
                    (false, false, []) => (None, None),
                    _ => panic!("unexpected arguments in {item}"),
                };
                (t, count, period)
            })
            .collect();
        types.sort_by_key(|(t, _, _)| *t);
        types
    }

    /// The definition HAProxy should send for this table (with its id), or we send (ours).
    fn definition(&self, table_id: u64) -> TableDefinition {
        let types = self.data_types();
        TableDefinition {
            table_id,
            name: Bytes::from(self.wire),
            key_type: self.key_type,
            key_len: self.key_len,
            data_types: DataTypeSet::of(&types.iter().map(|(t, _, _)| *t).collect::<Vec<_>>()),
            expire_ms: Some(self.expire_ms),
            params: types
                .iter()
                .filter(|(t, _, _)| t.has_param_block())
                .map(|&(data_type, count, period_ms)| ParamBlock {
                    data_type,
                    count,
                    period_ms,
                })
                .collect(),
            trailing: Bytes::new(),
        }
    }

    fn stick_table(&self) -> StickTable {
        let table = StickTable::new(self.runtime, self.key)
            .peers(SECTION)
            .store(self.store.iter().copied());
        if self.expire_ms > 0 {
            table.expire(format!("{}ms", self.expire_ms))
        } else {
            table
        }
    }

    fn peers_line(&self) -> String {
        let name = self.runtime.rsplit('/').next().unwrap_or(self.runtime);
        format!(
            "{name} type {} size 1k expire {}ms store {}",
            self.key,
            self.expire_ms,
            self.store.join(",")
        )
    }
}

// ---------------------------------------------------------------------------------------------
// HAProxy under test.

struct Lab {
    haproxy: Haproxy,
    /// HAProxy's peers listener.
    peers: SocketAddr,
    /// HTTP frontend that tracks `x-ip` in t_ip, `x-key` in t_str, `x-arr` in t_arr, and sends
    /// requests with `x-sticky` to the t_all backend (`stick on`).
    http: SocketAddr,
}

impl Lab {
    /// Starts HAProxy knowing this test as `tester` at `tester` (a listener of the test, or an
    /// address where nothing listens when the test dials).
    fn start(tester: SocketAddr) -> Lab {
        let peers = free_addr().unwrap();
        let http = free_addr().unwrap();
        let origin = free_addr().unwrap();
        let mut section = PeersSection::new(SECTION, HAP, peers).remote(TESTER, tester);
        for spec in TABLES.iter().filter(|s| s.in_peers_section) {
            section = section.table(spec.peers_line());
        }
        let mut config = format!("{TEST_DEFAULTS}\n{}\n", section.render());
        for spec in TABLES.iter().filter(|s| !s.in_peers_section) {
            let mut table = spec.stick_table();
            if spec.runtime == T_ALL.runtime {
                table = table
                    .line("stick on req.hdr(x-sticky)")
                    .line(format!("server s1 {origin}"))
                    .line(format!("server s2 {origin}"));
            }
            config.push_str(&table.render());
        }
        config.push_str(&format!(
            "frontend origin\n    bind {origin}\n    http-request return status 200\n\n\
             frontend fe\n    bind {http}\n    \
             http-request track-sc0 req.hdr_ip(x-ip) table t_ip if {{ req.hdr(x-ip) -m found }}\n    \
             http-request track-sc1 req.hdr(x-key) table t_str if {{ req.hdr(x-key) -m found }}\n    \
             http-request track-sc2 req.hdr(x-arr) table t_arr if {{ req.hdr(x-arr) -m found }}\n    \
             http-request sc-inc-gpc0(0) if {{ req.hdr(x-ip) -m found }}\n    \
             http-request sc-set-gpt0(1) 7 if {{ req.hdr(x-key) -m found }}\n    \
             http-request sc-inc-gpc(1,2) if {{ req.hdr(x-arr) -m found }}\n    \
             http-request sc-set-gpt(0,2) 5 if {{ req.hdr(x-arr) -m found }}\n    \
             http-request return status 200 if !{{ req.hdr(x-sticky) -m found }}\n    \
             use_backend t_all\n"
        ));
        let haproxy = Haproxy::start(HaproxyOptions::new(config).local_peer(HAP)).unwrap();
        Lab {
            haproxy,
            peers,
            http,
        }
    }

    /// A HAProxy we have dialled, its start-up resync answered: ready to exchange updates.
    async fn connected() -> (Lab, Peer) {
        let lab = Lab::start(free_addr().unwrap());
        let mut peer = Peer::dial(lab.peers).await;
        peer.answer_startup_resync().await;
        (lab, peer)
    }

    fn api(&self) -> RuntimeApi {
        self.haproxy.runtime()
    }

    /// The entry as `show table` prints it. The whole table is listed: 2.6 cannot look up a
    /// binary key from the CLI.
    fn entry(&self, spec: &TableSpec, key: &str) -> TableEntry {
        let dump = self.api().show_table(spec.runtime).unwrap();
        dump.entry(key)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {key} in {}: {dump:#?}", spec.runtime))
    }

    /// HAProxy sees an established session with us.
    fn assert_established(&self) -> haproxy_peers_testkit::show_peers::PeerState {
        let state = self.tester_state();
        assert_eq!(
            (state.last_status.as_str(), state.active),
            ("ESTA", true),
            "{state:?}"
        );
        state
    }

    /// HAProxy's view of its session with us.
    fn tester_state(&self) -> haproxy_peers_testkit::show_peers::PeerState {
        let sections = self.api().show_peers().unwrap();
        let section = sections
            .iter()
            .find(|s| s.name == SECTION)
            .expect("peers section");
        section.peer(TESTER).expect("peer tester").clone()
    }
}

// ---------------------------------------------------------------------------------------------
// The test's side of a session, built on the codec.

struct Peer {
    stream: TcpStream,
    buf: BytesMut,
    frames: FrameCodec,
    rx: RxState,
    tx: TxState,
    /// Decodes what we send, as HAProxy would, to see the wire forms the codec chose.
    mirror: RxState,
}

fn hello_bytes(hello: &Hello) -> Vec<u8> {
    let mut out = BytesMut::new();
    hello.encode(&mut out).unwrap();
    out.to_vec()
}

impl Peer {
    fn new(stream: TcpStream, leftover: BytesMut) -> Peer {
        Peer {
            stream,
            buf: leftover,
            frames: FrameCodec::new(),
            rx: RxState::new(),
            tx: TxState::new(),
            mirror: RxState::new(),
        }
    }

    /// Accepts HAProxy's call, checks its hello with the codec and answers `200`.
    async fn accept(listener: &TcpListener) -> (Peer, Hello) {
        let (mut stream, _) = tokio::time::timeout(READ_TIMEOUT, listener.accept())
            .await
            .expect("HAProxy did not call us")
            .unwrap();
        let mut buf = BytesMut::new();
        let (lines, used) = loop {
            if let Some(done) = decode_hello(&buf).unwrap() {
                break done;
            }
            read_more(&mut stream, &mut buf).await;
        };
        let _ = buf.split_to(used);
        let hello = check_hello(&lines, TESTER, |name| [HAP, TESTER].contains(&name))
            .unwrap_or_else(|status| panic!("codec refuses HAProxy's hello {lines:?}: {status:?}"));
        let mut status = BytesMut::new();
        StatusCode::Success.encode(&mut status);
        stream.write_all(&status).await.unwrap();
        (Peer::new(stream, buf), hello)
    }

    /// Sends `hello` bytes and returns HAProxy's status, the stream and what followed the status.
    async fn dial_raw(addr: SocketAddr, hello: &[u8]) -> (StatusCode, TcpStream, BytesMut) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(hello).await.unwrap();
        let mut buf = BytesMut::new();
        loop {
            if let Some((status, used)) = decode_status(&buf).unwrap() {
                let _ = buf.split_to(used);
                return (status, stream, buf);
            }
            read_more(&mut stream, &mut buf).await;
        }
    }

    /// Calls HAProxy as `tester` and expects `200`.
    async fn dial(addr: SocketAddr) -> Peer {
        let hello = hello_bytes(&Hello::new(HAP, TESTER, std::process::id()));
        let (status, stream, rest) = Peer::dial_raw(addr, &hello).await;
        assert_eq!(status, StatusCode::Success);
        Peer::new(stream, rest)
    }

    async fn send(&mut self, msg: &Message) {
        let mut out = BytesMut::new();
        self.tx.encode(msg, &mut out).unwrap();
        self.write(out).await;
    }

    /// Writes encoded messages and returns them as the receiver decodes them.
    async fn write(&mut self, mut out: BytesMut) -> Vec<Message> {
        self.stream.write_all(&out).await.unwrap();
        let mut frames = FrameCodec::new();
        let mut sent = Vec::new();
        while let Some(frame) = frames.decode(&mut out).unwrap() {
            sent.push(self.mirror.decode(&frame).unwrap());
        }
        assert!(out.is_empty(), "the codec wrote a partial frame: {out:?}");
        sent
    }

    async fn send_control(&mut self, control: Control) {
        self.send(&Message::Control(control)).await;
    }

    /// Sends one update, with the definition first when the table is not selected. Returns
    /// the update as the receiver decodes it (with the wire forms the codec chose).
    async fn send_update(&mut self, def: &TableDefinition, update: &Update, ids: IdForm) -> Update {
        let mut out = BytesMut::new();
        self.tx.encode_update(def, update, ids, &mut out).unwrap();
        let sent = self.write(out).await;
        match sent.last() {
            Some(Message::Update(wire)) => wire.clone(),
            other => panic!("the codec sent {other:?} for an update"),
        }
    }

    /// The next message, or `None` if nothing arrives within `wait`.
    async fn try_recv(&mut self, wait: Duration) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(frame) = self.frames.decode(&mut self.buf).unwrap() {
                let msg = self.rx.decode(&frame).unwrap();
                if let Message::Error(e) = &msg {
                    panic!("HAProxy reports a protocol error: {e:?}");
                }
                return Some(msg);
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf));
            match read.await {
                Err(_) => return None,
                Ok(Ok(0)) => panic!("HAProxy closed the session"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("read from HAProxy: {e}"),
            }
        }
    }

    async fn recv(&mut self, what: &str) -> Message {
        self.try_recv(READ_TIMEOUT).await.unwrap_or_else(|| {
            panic!("nothing from HAProxy within {READ_TIMEOUT:?} while waiting for {what}")
        })
    }

    /// Messages up to and including the first that `done` accepts, skipping heartbeats.
    async fn recv_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&Message) -> bool,
    ) -> Vec<Message> {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(msg) = self.try_recv(left).await else {
                panic!("no {what} from HAProxy within {READ_TIMEOUT:?}; got {seen:#?}");
            };
            let stop = done(&msg);
            if msg != Message::Control(Control::Heartbeat) || stop {
                seen.push(msg);
            }
            if stop {
                return seen;
            }
        }
    }

    /// Every message until HAProxy has been quiet for `quiet` (heartbeats skipped).
    async fn drain(&mut self, quiet: Duration) -> Vec<Message> {
        let mut seen = Vec::new();
        while let Some(msg) = self.try_recv(quiet).await {
            if msg != Message::Control(Control::Heartbeat) {
                seen.push(msg);
            }
        }
        seen
    }

    /// A fresh HAProxy asks its first peer for a lesson right after the handshake and pushes
    /// nothing to that peer until the lesson ends. We have nothing: answer "finished".
    async fn answer_startup_resync(&mut self) {
        let first = self.recv("HAProxy's start-up resync request").await;
        assert_eq!(first, Message::Control(Control::ResyncRequest));
        self.send_control(Control::ResyncFinished).await;
        let confirm = self.recv("the confirm of our (empty) lesson").await;
        assert_eq!(confirm, Message::Control(Control::ResyncConfirm));
    }

    /// Sends `00 00` and returns the lesson up to its end, which must be "finished" (HAProxy
    /// finished its own start-up resync with our empty lesson); then confirms it.
    async fn request_lesson(&mut self) -> Vec<Message> {
        self.send_control(Control::ResyncRequest).await;
        let lesson = self
            .recv_until("the end of the lesson", |m| {
                matches!(
                    m,
                    Message::Control(Control::ResyncFinished | Control::ResyncPartial)
                )
            })
            .await;
        assert_eq!(
            lesson.last(),
            Some(&Message::Control(Control::ResyncFinished))
        );
        self.send_control(Control::ResyncConfirm).await;
        lesson
    }

    /// The next ack, skipping heartbeats; anything else fails the test.
    async fn recv_ack(&mut self) -> Ack {
        match self
            .recv_until("an ack", |m| matches!(m, Message::Ack(_)))
            .await
            .as_slice()
        {
            [Message::Ack(ack)] => *ack,
            other => panic!("expected only an ack, got {other:?}"),
        }
    }

    /// Acks the last update id received for every table `updates` touched.
    async fn ack(&mut self, updates: &[Update]) -> BTreeMap<u64, u32> {
        let tables: std::collections::BTreeSet<u64> = updates.iter().map(|u| u.table_id).collect();
        let mut acked = BTreeMap::new();
        for table_id in tables {
            let update_id = self
                .rx
                .last_update_id(table_id)
                .expect("updates were received");
            self.send(&Message::Ack(Ack {
                table_id,
                update_id,
            }))
            .await;
            acked.insert(table_id, update_id);
        }
        acked
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) {
    let n = tokio::time::timeout(READ_TIMEOUT, stream.read_buf(buf))
        .await
        .unwrap_or_else(|_| panic!("HAProxy sent nothing for {READ_TIMEOUT:?}; have {buf:?}"))
        .unwrap();
    assert!(n > 0, "HAProxy closed the connection; have {buf:?}");
}

/// The definitions and the updates among `messages`, in order.
fn tables_and_updates(messages: &[Message]) -> (Vec<TableDefinition>, Vec<Update>) {
    let (mut defs, mut updates) = (Vec::new(), Vec::new());
    for msg in messages {
        match msg {
            Message::Definition(d) => defs.push(d.clone()),
            Message::Update(u) => updates.push(u.clone()),
            _ => {}
        }
    }
    (defs, updates)
}

/// How `show table` prints a key.
fn key_text(key: &Key) -> String {
    match key {
        Key::Integer(v) => v.to_string(),
        Key::Ipv4(a) => a.to_string(),
        Key::Ipv6(a) => a.to_string(),
        Key::String(s) => String::from_utf8_lossy(s).into_owned(),
        Key::Binary(b) => b.iter().map(|x| format!("{x:02X}")).collect(),
    }
}

/// The table a received update belongs to, by HAProxy's definition.
fn spec_of(rx: &RxState, update: &Update) -> TableSpec {
    let def = rx
        .definition(update.table_id)
        .expect("update after a definition");
    *TABLES
        .iter()
        .find(|s| s.wire.as_bytes() == def.name.as_ref())
        .unwrap_or_else(|| panic!("update for unknown table {:?}", def.name))
}

// ---------------------------------------------------------------------------------------------
// Values: what we send, and what `show table` must then print.

/// The `show table` names of one value (`gpt` → `gpt0`, `gpt1`; `gpc_rate` → `gpc0_rate`, …).
fn display_names(t: DataType, elements: usize) -> Vec<String> {
    if !t.is_array() {
        return vec![t.name().to_owned()];
    }
    (0..elements)
        .map(|i| match t {
            DataType::GpcRate => format!("gpc{i}_rate"),
            _ => format!("{}{i}", t.name()),
        })
        .collect()
}

/// A distinct value for type `t` of table `def`; `seed` tells entries apart.
fn sample_value(def: &TableDefinition, t: DataType, seed: u32) -> Value {
    let id = u32::from(t.id());
    let count = def.array_len(t).unwrap_or(0) as u32;
    let freq = |i: u32| FreqCounter {
        elapsed: 2000,
        curr: 5 + id + i + seed,
        prev: 10 + id + i,
    };
    match t.shape() {
        // −1 is sent sign-extended as a 10-byte varint.
        Shape::Sint if seed % 2 == 1 => Value::Sint(-1),
        Shape::Sint => Value::Sint(2),
        // Alternate small and large values to cross varint length boundaries.
        Shape::Uint if id % 2 == 0 => Value::Uint(3_000_000_000 + id + seed),
        Shape::Uint => Value::Uint(200 + id + seed),
        Shape::Ull => Value::Ull((1 << 40) + u64::from(id + seed)),
        Shape::Freq => Value::Freq(freq(0)),
        Shape::Dict => Value::Dict(DictValue::Define {
            id: 1,
            value: Bytes::from_static(b"s2"),
        }),
        Shape::UintArray => {
            Value::UintArray((0..count).map(|i| 1000 * id + 10 * i + seed).collect())
        }
        Shape::FreqArray => Value::FreqArray((0..count).map(freq).collect()),
    }
}

/// What HAProxy displays for a rate received as `fc`, `since_receipt_ms` after receipt
/// (peers-protocol.md §6.3).
fn displayed_rate(fc: FreqCounter, period: u64, since_receipt_ms: i64) -> u64 {
    let period = period as i64;
    let mut remain = period - i64::from(fc.elapsed) - since_receipt_ms;
    let (mut curr, mut prev) = (i64::from(fc.curr), i64::from(fc.prev));
    if remain < 0 {
        if remain + period >= 0 {
            prev = curr;
        } else {
            prev = 0;
        }
        curr = 0;
        remain += period;
    }
    if curr == 0 && prev <= 1 {
        return prev as u64;
    }
    ((prev * remain + curr * period) / period) as u64
}

/// Checks that `entry` shows exactly what `update` carried. `elapsed_ms` bounds the time between
/// HAProxy receiving the update and printing the entry (rates decay with it).
fn assert_shows(entry: &TableEntry, def: &TableDefinition, update: &Update, elapsed_ms: u64) {
    let ctx = format!("entry {} after {update:?}", entry.key);
    for (t, value) in &update.values {
        let names = display_names(*t, value.array_len().unwrap_or(1));
        match value {
            Value::Uint(_) if *t == DataType::ConnCur => {
                // Local-only: HAProxy parses it and keeps its own (zero for a new entry).
                assert_eq!(
                    entry.u64("conn_cur"),
                    Some(0),
                    "conn_cur must not be learned; {ctx}"
                );
            }
            Value::Uint(v) => assert_eq!(
                entry.u64(&names[0]),
                Some(u64::from(*v)),
                "{}; {ctx}",
                t.name()
            ),
            Value::Ull(v) => assert_eq!(entry.u64(&names[0]), Some(*v), "{}; {ctx}", t.name()),
            Value::Sint(v) => assert_eq!(
                entry.i64(&names[0]),
                Some(i64::from(*v)),
                "{}; {ctx}",
                t.name()
            ),
            Value::Dict(d) => {
                let expected = d.value().map(|v| String::from_utf8_lossy(v).into_owned());
                assert_eq!(
                    entry.str(&names[0]).map(str::to_owned),
                    expected,
                    "server_key; {ctx}"
                );
            }
            Value::UintArray(items) => {
                for (name, v) in names.iter().zip(items) {
                    assert_eq!(entry.u64(name), Some(u64::from(*v)), "{name}; {ctx}");
                }
            }
            Value::Freq(fc) => {
                assert_rate(entry, &names[0], *fc, def.period_ms(*t), elapsed_ms, &ctx)
            }
            Value::FreqArray(items) => {
                for (name, fc) in names.iter().zip(items) {
                    assert_rate(entry, name, *fc, def.period_ms(*t), elapsed_ms, &ctx);
                }
            }
        }
    }
}

fn assert_rate(
    entry: &TableEntry,
    name: &str,
    fc: FreqCounter,
    period: Option<u64>,
    elapsed_ms: u64,
    ctx: &str,
) {
    let field = entry
        .field(name)
        .unwrap_or_else(|| panic!("no {name}; {ctx}"));
    let period = period.expect("rates have a period");
    assert_eq!(field.period, Some(period), "{name} period; {ctx}");
    // HAProxy rounds the rebuilt period start down to an even tick: 2 ms of slack either way.
    let highest = displayed_rate(fc, period, -2);
    let lowest = displayed_rate(fc, period, elapsed_ms as i64 + 2);
    let shown: u64 = field.value.parse().unwrap();
    assert!(
        (lowest..=highest).contains(&shown),
        "{name}={shown}, expected {lowest}..={highest} for {fc:?} over {period} ms; {ctx}"
    );
}

// ---------------------------------------------------------------------------------------------
// a. Handshake, both directions.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_dials_us_and_we_answer_200() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lab = Lab::start(listener.local_addr().unwrap());
    let (mut peer, hello) = Peer::accept(&listener).await;

    assert_eq!(hello.version, Version { major: 2, minor: 1 });
    assert_eq!(hello.remote_name, TESTER);
    assert_eq!(hello.local_name, HAP);
    assert_eq!(hello.pid(), Some(lab.haproxy.worker_pid().unwrap()));
    assert_eq!(hello.rest.split(' ').nth(1), Some("1"), "relative pid");

    peer.answer_startup_resync().await;
    lab.assert_established();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_dial_haproxy_and_it_answers_200() {
    let lab = Lab::start(free_addr().unwrap());
    let mut peer = Peer::dial(lab.peers).await;
    // The acceptor asks for a lesson too when its start-up resync is not done.
    peer.answer_startup_resync().await;
    lab.assert_established();
    assert!(lab.api().show_peers().unwrap()[0].resync_finished());
}

// ---------------------------------------------------------------------------------------------
// b. Definitions on request.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_request_returns_one_definition_per_table() {
    let (lab, mut peer) = Lab::connected().await;

    let lesson = peer.request_lesson().await;
    let (defs, taught) = tables_and_updates(&lesson);
    assert!(taught.is_empty(), "empty tables, yet: {lesson:#?}");
    assert_eq!(defs.len(), TABLES.len(), "{defs:#?}");
    let mut ids: Vec<u64> = defs.iter().map(|d| d.table_id).collect();
    for spec in TABLES {
        let got = defs
            .iter()
            .find(|d| d.name.as_ref() == spec.wire.as_bytes())
            .unwrap_or_else(|| panic!("no definition for {}", spec.wire));
        assert_eq!(
            *got,
            spec.definition(got.table_id),
            "definition of {}",
            spec.wire
        );
    }
    // HAProxy numbers the tables of a section 1..N.
    ids.sort_unstable();
    assert_eq!(ids, (1..=TABLES.len() as u64).collect::<Vec<_>>());

    // The session survives the lesson: one heartbeat each way.
    peer.send_control(Control::Heartbeat).await;
    let next = peer.try_recv(Duration::from_secs(5)).await;
    assert_eq!(next, Some(Message::Control(Control::Heartbeat)));
    lab.assert_established();
}

// ---------------------------------------------------------------------------------------------
// c. Updates HAProxy pushes: from HTTP traffic and from the runtime API.

/// Receives pushed updates until HAProxy is quiet, checks every one against `show table`, acks
/// them, and returns the last update per (table, key).
async fn receive_pushes(lab: &Lab, peer: &mut Peer) -> BTreeMap<(String, String), Update> {
    let messages = peer.drain(Duration::from_millis(600)).await;
    let (_, pushed) = tables_and_updates(&messages);
    assert!(!pushed.is_empty(), "no update pushed");
    for u in &pushed {
        assert_eq!(u.expire_ms, None, "live pushes are untimed: {u:?}");
    }
    // The first update after each definition carries its id (0x80).
    for pair in messages.windows(2) {
        if let [Message::Definition(_), Message::Update(u)] = pair {
            assert!(u.id_on_wire, "{u:?}");
        }
    }
    let mut latest = BTreeMap::new();
    for u in pushed.iter() {
        latest.insert(
            (spec_of(&peer.rx, u).runtime.to_owned(), key_text(&u.key)),
            u.clone(),
        );
    }
    for ((table, key), u) in &latest {
        let spec = TABLES.iter().find(|s| s.runtime == table).unwrap();
        let entry = lab.entry(spec, key);
        let def = peer.rx.definition(u.table_id).unwrap();
        // Counters must match exactly; rates are recomputed at display time, and `conn_cur` is
        // checked by `assert_shows` as a learned (never applied) value.
        let counters = Update {
            values: u
                .values
                .iter()
                .filter(|(t, v)| {
                    *t != DataType::ConnCur && !matches!(v, Value::Freq(_) | Value::FreqArray(_))
                })
                .cloned()
                .collect(),
            ..u.clone()
        };
        assert_shows(&entry, def, &counters, 0);
    }
    let acked = peer.ack(&pushed).await;
    // HAProxy stores our ack as its resume point for us (`update=` of each shared table).
    haproxy_peers_testkit::wait_until("HAProxy to take our acks", Duration::from_secs(5), || {
        let state = lab.tester_state();
        Ok(acked
            .iter()
            .all(|(table_id, update_id)| {
                state.tables.iter().any(|t| {
                    t.local_id == *table_id && t.counter("update") == Some(u64::from(*update_id))
                })
            })
            .then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}; acked {acked:?}; {:#?}", lab.tester_state().tables));
    latest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_from_http_traffic_and_runtime_api() {
    let (lab, mut peer) = Lab::connected().await;

    // Real traffic: tracked by header in t_ip / t_str / t_arr, and a sticky request through t_all.
    let tracked = [
        ("x-ip", "10.1.1.1"),
        ("x-key", "client-a"),
        ("x-arr", "arr-1"),
    ];
    for _ in 0..2 {
        assert_eq!(http_get(lab.http, "/", &tracked).unwrap().status, 200);
    }
    assert_eq!(
        http_get(lab.http, "/", &[("x-sticky", "sticky-1")])
            .unwrap()
            .status,
        200
    );

    let got = receive_pushes(&lab, &mut peer).await;
    let get = |table: &str, key: &str| {
        got.get(&(table.to_owned(), key.to_owned()))
            .unwrap_or_else(|| {
                panic!(
                    "no update for {table} {key}; got {:?}",
                    got.keys().collect::<Vec<_>>()
                )
            })
    };
    let ip = get("t_ip", "10.1.1.1");
    assert_eq!(ip.key, Key::Ipv4(Ipv4Addr::new(10, 1, 1, 1)));
    assert_eq!(ip.value(DataType::Gpc0), Some(&Value::Uint(2)));
    assert_eq!(ip.value(DataType::HttpReqCnt), Some(&Value::Uint(2)));
    assert!(
        matches!(ip.value(DataType::HttpReqRate), Some(Value::Freq(f)) if f.curr == 2),
        "{ip:?}"
    );
    assert_eq!(
        get("t_str", "client-a").value(DataType::Gpt0),
        Some(&Value::Uint(7))
    );
    let arr = get("t_arr", "arr-1");
    assert_eq!(
        arr.value(DataType::Gpt),
        Some(&Value::UintArray(vec![5, 0]))
    );
    assert_eq!(
        arr.value(DataType::Gpc),
        Some(&Value::UintArray(vec![0, 2]))
    );
    let sticky = get("t_all", "sticky-1");
    assert_eq!(sticky.value(DataType::ServerId), Some(&Value::Sint(1)));
    assert_eq!(
        sticky.value(DataType::ServerKey).and_then(|v| match v {
            Value::Dict(d) => d.value().cloned(),
            _ => None,
        }),
        Some(Bytes::from_static(b"s1"))
    );

    // The runtime API: one entry per key type it accepts (not binary), plus the peers-section
    // table and the table without expire.
    let api = lab.api();
    api.set_table(
        "t_ipv6",
        "2001:db8::7",
        &[("gpc0", 42), ("http_req_cnt", 5)],
    )
    .unwrap();
    api.set_table(
        "t_int",
        "4294967291",
        &[("gpc1", 9), ("bytes_in_cnt", 1_099_511_627_776u64)],
    )
    .unwrap();
    api.set_table("t_str", "cli-key", &[("server_id", 3), ("gpt0", 1)])
        .unwrap();
    api.set_table("pg/t_pdecl", "77", &[("gpc0", 3), ("http_req_rate", 4)])
        .unwrap();
    api.set_table("t_noexp", "forever", &[("gpc0", 11)])
        .unwrap();
    let got = receive_pushes(&lab, &mut peer).await;
    let get = |table: &str, key: &str| {
        got.get(&(table.to_owned(), key.to_owned()))
            .unwrap()
            .clone()
    };
    assert_eq!(
        get("t_ipv6", "2001:db8::7").key,
        Key::Ipv6("2001:db8::7".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(
        get("t_ipv6", "2001:db8::7").value(DataType::Gpc0),
        Some(&Value::Uint(42))
    );
    let int = get("t_int", "4294967291");
    assert_eq!(int.key, Key::Integer(4_294_967_291));
    assert_eq!(int.value(DataType::BytesInCnt), Some(&Value::Ull(1 << 40)));
    assert_eq!(
        get("t_str", "cli-key").value(DataType::ServerId),
        Some(&Value::Sint(3))
    );
    let pdecl = get("pg/t_pdecl", "77");
    // `set table` sets a rate's current period: curr = 4, prev = 0.
    assert!(
        matches!(pdecl.value(DataType::HttpReqRate), Some(Value::Freq(f)) if (f.curr, f.prev) == (4, 0))
    );
    assert_eq!(
        get("t_noexp", "forever").value(DataType::Gpc0),
        Some(&Value::Uint(11))
    );
}

// ---------------------------------------------------------------------------------------------
// d. Updates we send: every key type and every data type, read back through `show table`.

struct Sent {
    spec: TableSpec,
    def: TableDefinition,
    update: Update,
    /// The update as it went out (decoded by a receiver).
    wire: Update,
    at: Instant,
}

fn make_update(
    def: &TableDefinition,
    update_id: u32,
    key: Key,
    seed: u32,
    expire_ms: Option<u32>,
) -> Update {
    Update {
        table_id: def.table_id,
        update_id,
        id_on_wire: true,
        expire_ms,
        key,
        values: def
            .data_types
            .known()
            .map(|t| (t, sample_value(def, t, seed)))
            .collect(),
        trailing: Bytes::new(),
    }
}

/// Our definition of a table: HAProxy's, with our own table id (its acks must carry ours).
fn sent_def(spec: &TableSpec) -> TableDefinition {
    spec.definition(100 + TABLES.iter().position(|s| s.wire == spec.wire).unwrap() as u64)
}

fn string_key(s: &str) -> Key {
    Key::String(Bytes::copy_from_slice(s.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_and_data_type_we_send_reads_back() {
    let (lab, mut peer) = Lab::connected().await;

    let binary_key: Vec<u8> = (1..=16).collect();
    let plan: Vec<(TableSpec, Key, Option<u32>, IdForm)> = vec![
        // 0x80 (explicit id, no lifetime): the receiver's own expire applies.
        (
            T_IP,
            Key::Ipv4(Ipv4Addr::new(10, 9, 0, 1)),
            None,
            IdForm::Explicit,
        ),
        // 0x85 with a lifetime shorter than the table's.
        (
            T_IPV6,
            Key::Ipv6("2001:db8::9".parse().unwrap()),
            Some(30_000),
            IdForm::Explicit,
        ),
        // 0x80 then 0x81 (id = previous + 1).
        (T_INT, Key::Integer(7), None, IdForm::Explicit),
        (T_INT, Key::Integer(8), None, IdForm::IncrementalWhenNext),
        // 0x85 with a lifetime longer than the table's expire: 2.6 does not cap it.
        (
            T_STR,
            string_key("sent-str"),
            Some(120_000),
            IdForm::Explicit,
        ),
        (
            T_BIN,
            Key::Binary(Bytes::from(binary_key.clone())),
            None,
            IdForm::Explicit,
        ),
        (T_ARR, string_key("sent-arr"), None, IdForm::Explicit),
        // server_key: first use defines dictionary slot 1, the second entry only references it.
        (T_ALL, string_key("sent-all-1"), None, IdForm::Explicit),
        (
            T_ALL,
            string_key("sent-all-2"),
            Some(45_000),
            IdForm::Explicit,
        ),
        (T_NOEXP, string_key("sent-noexp"), None, IdForm::Explicit),
        (
            T_NOEXP,
            string_key("sent-noexp-timed"),
            Some(20_000),
            IdForm::Explicit,
        ),
        (T_PDECL, Key::Integer(99), Some(20_000), IdForm::Explicit),
    ];
    let mut next_id: BTreeMap<u64, u32> = BTreeMap::new();
    let mut sent = Vec::new();
    for (seed, (spec, key, lifetime, form)) in plan.into_iter().enumerate() {
        let def = sent_def(&spec);
        let id = next_id
            .entry(def.table_id)
            .or_insert(1000 * seed as u32 + 1);
        let update = make_update(&def, *id, key, seed as u32, lifetime);
        *id += 1;
        let at = Instant::now();
        let wire = peer.send_update(&def, &update, form).await;
        sent.push(Sent {
            spec,
            def,
            update,
            wire,
            at,
        });
    }
    let forms = |table: &str| -> Vec<u8> {
        sent.iter()
            .filter(|s| s.spec.runtime == table)
            .map(|s| s.wire.wire_type())
            .collect()
    };
    assert_eq!(forms("t_ip"), [0x80]);
    assert_eq!(forms("t_ipv6"), [0x85]);
    assert_eq!(forms("t_int"), [0x80, 0x81]);
    assert_eq!(forms("t_all"), [0x80, 0x85]);

    // HAProxy acks each table with our id and the last id we sent.
    let expected_acks: BTreeMap<u64, u32> = sent
        .iter()
        .map(|s| (s.def.table_id, s.update.update_id))
        .collect();
    let mut acks = BTreeMap::new();
    while acks != expected_acks {
        let ack = peer.recv_ack().await;
        acks.insert(ack.table_id, ack.update_id);
    }

    for s in &sent {
        let key = key_text(&s.update.key);
        let entry = lab.entry(&s.spec, &key);
        let elapsed_ms = s.at.elapsed().as_millis() as u64;
        assert_shows(&entry, &s.def, &s.update, elapsed_ms);
        // 2.6 applies a received lifetime as is: longer than the table's expire, and even in
        // a table without expire. Without one, the receiver's own expire (none: `exp=0`).
        let (lifetime, ctx) = match s.update.expire_ms {
            Some(ms) => (u64::from(ms), "sent lifetime"),
            None => (s.spec.expire_ms, "table expire"),
        };
        if lifetime == 0 {
            assert_eq!(entry.exp, 0, "{} {key}", s.spec.runtime);
        } else {
            assert!(
                entry.exp <= lifetime && entry.exp + elapsed_ms + 2 >= lifetime,
                "{} {key}: exp={} for {ctx} {lifetime} ms, {elapsed_ms} ms after sending",
                s.spec.runtime,
                entry.exp
            );
        }
    }
    // In a table without expire the lifetime runs out but nothing purges the entry.
    let noexp = sent_def(&T_NOEXP);
    let short = make_update(&noexp, 9003, string_key("short-lived"), 0, Some(1000));
    peer.send_update(&noexp, &short, IdForm::Explicit).await;
    let expected = Ack {
        table_id: noexp.table_id,
        update_id: 9003,
    };
    assert_eq!(peer.recv_ack().await, expected);
    let run_out = Instant::now();
    haproxy_peers_testkit::wait_until("the lifetime to run out", Duration::from_secs(3), || {
        Ok((lab.entry(&T_NOEXP, "short-lived").exp == 0).then_some(()))
    })
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // `entry` fails if the entry is gone.
    let entry = lab.entry(&T_NOEXP, "short-lived");
    assert_eq!(
        entry.exp,
        0,
        "{:?} after the lifetime ran out",
        run_out.elapsed()
    );

    // server_key: the first entry defined dictionary slot 1, the second only referenced it.
    let dict = |key: &str| {
        let s = sent
            .iter()
            .find(|s| s.update.key == string_key(key))
            .unwrap();
        s.wire.value(DataType::ServerKey).cloned()
    };
    let s2 = Bytes::from_static(b"s2");
    let define = DictValue::Define {
        id: 1,
        value: s2.clone(),
    };
    let reference = DictValue::Ref {
        id: 1,
        value: Some(s2),
    };
    assert_eq!(dict("sent-all-1"), Some(Value::Dict(define)));
    assert_eq!(dict("sent-all-2"), Some(Value::Dict(reference)));
    for key in ["sent-all-1", "sent-all-2"] {
        assert_eq!(lab.entry(&T_ALL, key).str("server_key"), Some("s2"));
    }
    assert_eq!(lab.entry(&T_ALL, "sent-all-1").i64("server_id"), Some(-1));
    assert_eq!(lab.entry(&T_ALL, "sent-all-2").i64("server_id"), Some(2));
    // Learned entries are not pushed back to the peer they came from.
    assert_eq!(
        peer.drain(Duration::from_millis(500)).await,
        Vec::<Message>::new()
    );
}

// ---------------------------------------------------------------------------------------------
// e. Full resync with entries.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_resync_teaches_every_entry_with_its_lifetime() {
    let (lab, mut peer) = Lab::connected().await;

    let api = lab.api();
    let created = Instant::now();
    api.set_table("t_ip", "10.2.0.1", &[("gpc0", 1)]).unwrap();
    api.set_table("t_ip", "10.2.0.2", &[("gpc0", 2)]).unwrap();
    api.set_table("t_ipv6", "::2", &[("gpc1", 3)]).unwrap();
    api.set_table("t_int", "12", &[("http_req_cnt", 4)])
        .unwrap();
    api.set_table("t_str", "lesson", &[("gpt0", 5)]).unwrap();
    api.set_table("t_noexp", "kept", &[("gpc0", 6)]).unwrap();
    api.set_table("pg/t_pdecl", "13", &[("gpc0", 7)]).unwrap();
    let pushed = receive_pushes(&lab, &mut peer).await;
    assert_eq!(pushed.len(), 7, "{:?}", pushed.keys().collect::<Vec<_>>());

    let lesson = peer.request_lesson().await;
    let since_creation = created.elapsed().as_millis() as u64;

    let (defs, taught) = tables_and_updates(&lesson);
    assert_eq!(defs.len(), TABLES.len());
    assert_eq!(taught.len(), pushed.len(), "{taught:#?}");
    for u in &taught {
        let spec = spec_of(&peer.rx, u);
        let key = (spec.runtime.to_owned(), key_text(&u.key));
        let live = pushed
            .get(&key)
            .unwrap_or_else(|| panic!("taught {key:?} that was never pushed"));
        // Timed forms only (the session is not downgraded).
        let lifetime = u
            .expire_ms
            .unwrap_or_else(|| panic!("untimed update in a lesson: {u:?}"));
        if spec.expire_ms == 0 {
            assert_eq!(lifetime, 0, "{key:?}");
        } else {
            let lifetime = u64::from(lifetime);
            assert!(
                lifetime <= spec.expire_ms && lifetime + since_creation + 2 >= spec.expire_ms,
                "{key:?}: {lifetime} ms left, {since_creation} ms after creation"
            );
        }
        assert_eq!(u.key, live.key);
        let counters = |u: &Update| -> Vec<(DataType, Value)> {
            u.values
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Freq(_) | Value::FreqArray(_)))
                .cloned()
                .collect()
        };
        assert_eq!(counters(u), counters(live), "{key:?}");
    }
    // The first entry of a table carries its id (85), the next consecutive one does not (86).
    let ip_forms: Vec<u8> = taught
        .iter()
        .filter(|u| spec_of(&peer.rx, u).wire == "t_ip")
        .map(Update::wire_type)
        .collect();
    assert_eq!(ip_forms, [0x85, 0x86]);
}

// ---------------------------------------------------------------------------------------------
// f. Idle session kept up by heartbeats.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_an_idle_session_up() {
    let (lab, mut peer) = Lab::connected().await;

    let start = Instant::now();
    let idle = Duration::from_secs(12);
    let mut next_beat = start;
    let mut theirs = Vec::new();
    while start.elapsed() < idle {
        if Instant::now() >= next_beat {
            peer.send_control(Control::Heartbeat).await;
            next_beat += Duration::from_secs(3);
        }
        let wait = next_beat
            .saturating_duration_since(Instant::now())
            .min(idle.saturating_sub(start.elapsed()));
        match peer.try_recv(wait.max(Duration::from_millis(1))).await {
            Some(Message::Control(Control::Heartbeat)) => theirs.push(start.elapsed()),
            Some(other) => panic!("idle session, yet HAProxy sent {other:?}"),
            None => {}
        }
    }
    assert!(theirs.len() >= 3, "HAProxy heartbeats at {theirs:?}");
    for pair in theirs.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(2500) && gap <= Duration::from_millis(4500),
            "HAProxy heartbeats should be ~3 s apart: {theirs:?}"
        );
    }
    let state = lab.assert_established();
    assert!(
        state.counter("rx_hbt").unwrap() >= 4,
        "our heartbeats: {state:?}"
    );
    assert!(
        state.counter("tx_hbt").unwrap() >= theirs.len() as u64,
        "{state:?}"
    );
    assert_eq!(
        state.counter("no_hbt"),
        Some(0),
        "no session closed for silence"
    );

    // Still a working session: one update each way.
    lab.api()
        .set_table("t_str", "after-idle", &[("gpc0", 12)])
        .unwrap();
    let got = receive_pushes(&lab, &mut peer).await;
    assert!(got.contains_key(&("t_str".to_owned(), "after-idle".to_owned())));
    let def = T_STR.definition(50);
    let update = make_update(&def, 1, string_key("from-tester"), 0, None);
    let at = Instant::now();
    peer.send_update(&def, &update, IdForm::Explicit).await;
    let expected = Ack {
        table_id: 50,
        update_id: 1,
    };
    assert_eq!(peer.recv_ack().await, expected);
    assert_shows(
        &lab.entry(&T_STR, "from-tester"),
        &def,
        &update,
        at.elapsed().as_millis() as u64,
    );
}

// ---------------------------------------------------------------------------------------------
// g. Refused handshakes.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hellos_are_refused_with_the_right_status() {
    let lab = Lab::start(free_addr().unwrap());
    let pid = std::process::id();
    let cases: Vec<(&str, String, StatusCode)> = vec![
        (
            "unknown peer name",
            format!("HAProxyS 2.1\n{HAP}\nstranger {pid} 1\n"),
            StatusCode::UnknownPeer,
        ),
        (
            "wrong local name",
            format!("HAProxyS 2.1\nnot-{HAP}\n{TESTER} {pid} 1\n"),
            StatusCode::LocalNameMismatch,
        ),
        (
            "version 3.0",
            format!("HAProxyS 3.0\n{HAP}\n{TESTER} {pid} 1\n"),
            StatusCode::BadVersion,
        ),
        (
            "version 2.2",
            format!("HAProxyS 2.2\n{HAP}\n{TESTER} {pid} 1\n"),
            StatusCode::BadVersion,
        ),
        (
            "bad protocol id",
            format!("HAProxyX 2.1\n{HAP}\n{TESTER} {pid} 1\n"),
            StatusCode::ProtocolError,
        ),
        (
            "line 3 without a space",
            format!("HAProxyS 2.1\n{HAP}\n{TESTER}\n"),
            StatusCode::ProtocolError,
        ),
    ];
    for (what, hello, expected) in cases {
        let (status, mut stream, rest) = Peer::dial_raw(lab.peers, hello.as_bytes()).await;
        assert_eq!(status, expected, "{what}");
        assert!(rest.is_empty(), "{what}: bytes after the status: {rest:?}");
        // HAProxy closes after a refusal.
        let mut tail = Vec::new();
        let read = tokio::time::timeout(READ_TIMEOUT, stream.read_to_end(&mut tail)).await;
        assert!(
            matches!(read, Ok(Ok(0))),
            "{what}: connection not closed ({read:?}, {tail:?})"
        );
        // The codec's own verdict on the same bytes agrees with HAProxy's.
        let (lines, _) = decode_hello(hello.as_bytes()).unwrap().unwrap();
        let verdict = check_hello(&lines, HAP, |name| [HAP, TESTER].contains(&name));
        assert_eq!(verdict.err(), Some(expected), "codec vs HAProxy on {what}");
    }
    // A correct hello still works afterwards.
    let mut peer = Peer::dial(lab.peers).await;
    peer.answer_startup_resync().await;
    lab.assert_established();
}
