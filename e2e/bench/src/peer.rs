//! A fake HAProxy on a peers session: it dials, says hello, answers resync requests with an
//! empty lesson, confirms lessons, acks updates, and either streams updates (load generator) or
//! counts them (sink). Updates carry their send time in `gpc0` (µs since [`Peer::epoch`]), so a
//! sink in the same process measures end-to-end latency.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use haproxy_peers_sidecar::codec::{
    Ack, Control, DataType, DataTypeSet, FreqCounter, Hello, IdForm, Key, KeyType, Message,
    ParamBlock, RxState, TableDefinition, TxState, Update, Value,
};
use haproxy_peers_sidecar::codec::{Frame, FrameCodec};
use tokio_util::codec::Decoder;

/// Updates per write while filling.
const FILL_BATCH: u64 = 4096;

/// The benchmark table: `type ip size 2m expire 1h store http_req_rate(10s),gpc0`, named `st`.
pub fn table() -> TableDefinition {
    TableDefinition {
        table_id: 1,
        name: Bytes::from_static(b"st"),
        key_type: KeyType::Ipv4,
        key_len: 4,
        data_types: DataTypeSet::of(&[DataType::Gpc0, DataType::HttpReqRate]),
        expire_ms: Some(3_600_000),
        params: vec![ParamBlock {
            data_type: DataType::HttpReqRate,
            count: None,
            period_ms: Some(10_000),
        }],
        trailing: Bytes::new(),
    }
}

/// What the reader side has seen.
#[derive(Debug, Default)]
pub struct Counters {
    pub updates: AtomicU64,
    /// Set once the other side confirmed our (empty) lesson or sent its own end of lesson.
    pub ready: AtomicBool,
    pub closed: AtomicBool,
}

/// One session as a fake HAProxy.
pub struct Peer {
    writer: Arc<Mutex<(TcpStream, TxState)>>,
    pub counters: Arc<Counters>,
    latencies: Arc<Mutex<Option<Vec<u64>>>>,
    epoch: Instant,
    reader: Option<JoinHandle<()>>,
    next_id: u32,
}

impl Peer {
    /// Dials `addr` with hello `HAProxyS 2.1\n<remote>\n<local> <pid> 1\n` and waits for `200`.
    pub fn connect(
        addr: SocketAddr,
        remote: &str,
        local: &str,
        epoch: Instant,
    ) -> crate::Result<Peer> {
        let mut tcp = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut hello = Vec::new();
        Hello::new(remote, local, std::process::id())
            .encode(&mut hello)
            .map_err(|e| e.to_string())?;
        tcp.write_all(&hello)
            .map_err(|e| format!("hello to {addr}: {e}"))?;
        let mut status = [0u8; 4];
        tcp.read_exact(&mut status)
            .map_err(|e| format!("status from {addr}: {e}"))?;
        if &status != b"200\n" {
            return Err(format!(
                "{addr} answered {:?} to hello {remote}/{local}, expected 200",
                String::from_utf8_lossy(&status)
            ));
        }
        tcp.set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| e.to_string())?;
        let read_half = tcp.try_clone().map_err(|e| e.to_string())?;
        let writer = Arc::new(Mutex::new((tcp, TxState::new())));
        let counters = Arc::new(Counters::default());
        let latencies = Arc::new(Mutex::new(None));
        let reader = {
            let (writer, counters, latencies) = (
                Arc::clone(&writer),
                Arc::clone(&counters),
                Arc::clone(&latencies),
            );
            std::thread::spawn(move || read_loop(read_half, writer, counters, latencies, epoch))
        };
        Ok(Peer {
            writer,
            counters,
            latencies,
            epoch,
            reader: Some(reader),
            next_id: 0,
        })
    }

    /// Waits until the session finished its lesson exchange.
    pub fn wait_ready(&self, timeout: Duration) -> crate::Result<()> {
        let start = Instant::now();
        while !self.counters.ready.load(Ordering::Relaxed) {
            if start.elapsed() > timeout || self.counters.closed.load(Ordering::Relaxed) {
                return Err("peer session did not finish its lesson exchange".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts (or stops, with `false`) recording per-update latency in µs.
    pub fn record_latency(&self, on: bool) -> Vec<u64> {
        let mut slot = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let taken = slot.take().unwrap_or_default();
        if on {
            *slot = Some(Vec::with_capacity(1 << 22));
        }
        taken
    }

    /// Sends `count` updates for keys `first_key..` (wrapping within `key_space`), `gpc0` = now.
    pub fn send_batch(&mut self, first_key: u64, count: u64, key_space: u64) -> crate::Result<()> {
        let def = table();
        let mut buf = BytesMut::with_capacity(count as usize * 24 + 64);
        let mut guard = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let (tcp, tx) = &mut *guard;
        let stamp = u32::try_from(self.epoch.elapsed().as_micros() % (1 << 32)).unwrap_or(0);
        for i in 0..count {
            self.next_id = self.next_id.wrapping_add(1);
            let key = ((first_key + i) % key_space) as u32;
            let mut update = Update::zeroed(&def, self.next_id, Key::Ipv4(Ipv4Addr::from(key)));
            update.values = vec![
                (DataType::Gpc0, Value::Uint(stamp)),
                (
                    DataType::HttpReqRate,
                    Value::Freq(FreqCounter {
                        elapsed: 0,
                        curr: 1,
                        prev: 0,
                    }),
                ),
            ];
            tx.encode_update(&def, &update, IdForm::IncrementalWhenNext, &mut buf)
                .map_err(|e| format!("encode update: {e}"))?;
        }
        tcp.write_all(&buf)
            .map_err(|e| format!("send updates: {e}"))
    }

    /// Streams `entries` distinct keys (`0.0.0.0` up), as fast as the socket takes them.
    pub fn fill(&mut self, entries: u64) -> crate::Result<()> {
        let mut sent = 0;
        while sent < entries {
            let count = FILL_BATCH.min(entries - sent);
            self.send_batch(sent, count, entries)?;
            sent += count;
        }
        Ok(())
    }

    pub fn is_closed(&self) -> bool {
        self.counters.closed.load(Ordering::Relaxed)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(guard) = self.writer.lock() {
            let _ = guard.0.shutdown(std::net::Shutdown::Both);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

fn send(writer: &Mutex<(TcpStream, TxState)>, messages: &[Message]) -> bool {
    let mut guard = writer.lock().unwrap_or_else(|p| p.into_inner());
    let (tcp, tx) = &mut *guard;
    let mut buf = BytesMut::new();
    for msg in messages {
        if tx.encode(msg, &mut buf).is_err() {
            return false;
        }
    }
    tcp.write_all(&buf).is_ok()
}

fn read_loop(
    mut tcp: TcpStream,
    writer: Arc<Mutex<(TcpStream, TxState)>>,
    counters: Arc<Counters>,
    latencies: Arc<Mutex<Option<Vec<u64>>>>,
    epoch: Instant,
) {
    let (mut frames, mut rx) = (FrameCodec::new(), RxState::new());
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 1 << 18];
    let mut stamps: Vec<u32> = Vec::new();
    loop {
        let n = match tcp.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !send(&writer, &[Message::Control(Control::Heartbeat)]) {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut replies = Vec::new();
        let mut last_update: Option<(u64, u32)> = None;
        loop {
            let frame: Frame = match frames.decode(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => return counters.closed.store(true, Ordering::Relaxed),
            };
            match rx.decode(&frame) {
                Ok(Message::Update(update)) => {
                    counters.updates.fetch_add(1, Ordering::Relaxed);
                    last_update = Some((update.table_id, update.update_id));
                    if let Some((_, Value::Uint(stamp))) =
                        update.values.iter().find(|(t, _)| *t == DataType::Gpc0)
                    {
                        stamps.push(*stamp);
                    }
                }
                Ok(Message::Control(Control::ResyncRequest)) => {
                    replies.push(Message::Definition(table()));
                    replies.push(Message::Control(Control::ResyncFinished));
                }
                Ok(Message::Control(Control::ResyncFinished | Control::ResyncPartial)) => {
                    replies.push(Message::Control(Control::ResyncConfirm));
                    counters.ready.store(true, Ordering::Relaxed);
                }
                Ok(Message::Control(Control::ResyncConfirm)) => {
                    counters.ready.store(true, Ordering::Relaxed);
                }
                Ok(Message::Error(_)) | Err(_) => {
                    return counters.closed.store(true, Ordering::Relaxed);
                }
                Ok(_) => {}
            }
        }
        if !stamps.is_empty() {
            let now = u32::try_from(epoch.elapsed().as_micros() % (1 << 32)).unwrap_or(0);
            let mut slot = latencies.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(samples) = slot.as_mut() {
                samples.extend(stamps.iter().map(|s| u64::from(now.wrapping_sub(*s))));
            }
            stamps.clear();
        }
        // Acks like HAProxy: the last update id of the table, once per read.
        if let Some((table_id, update_id)) = last_update {
            replies.push(Message::Ack(Ack {
                table_id,
                update_id,
            }));
        }
        if !replies.is_empty() && !send(&writer, &replies) {
            break;
        }
    }
    counters.closed.store(true, Ordering::Relaxed);
}
