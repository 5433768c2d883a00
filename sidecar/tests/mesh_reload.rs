//! A reload's old worker and new worker on the HAProxy link, scripted with the byte sequences
//! of fixture f_reload (the order in which they reach the sidecar cannot be chosen with a real
//! HAProxy): the new worker's call replaces the old worker's session, and what the old worker
//! sent before it closed still reaches the replica.

#[path = "mesh_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use haproxy_peers_sidecar::codec::{
    Control, DataType, DataTypeSet, FrameCodec, Key, KeyType, Message, RxState, TableDefinition,
    TxState, Update, Value,
};
use haproxy_peers_testkit::wait_until;
use support::{Group, Sidecar};
use tokio_util::codec::Decoder;

const WAIT: Duration = Duration::from_secs(20);

/// One HAProxy worker process on the sidecar's local port.
struct Worker {
    tcp: TcpStream,
    tx: TxState,
    frames: FrameCodec,
    rx: RxState,
    inbox: BytesMut,
}

impl Worker {
    /// Calls the sidecar as pod `edge-0`'s HAProxy with `pid` and reads the `200`.
    fn call(addr: SocketAddr, pid: u32) -> Worker {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(format!("HAProxyS 2.1\nhaproxy_peers_sidecar\nedge-0 {pid} 1\n").as_bytes())
            .unwrap();
        let mut status = [0u8; 4];
        tcp.read_exact(&mut status).unwrap();
        assert_eq!(&status, b"200\n");
        Worker {
            tcp,
            tx: TxState::new(),
            frames: FrameCodec::new(),
            rx: RxState::new(),
            inbox: BytesMut::new(),
        }
    }

    /// Reads what the sidecar sends until `control`.
    fn read_until(&mut self, control: Control) {
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(frame) = self.frames.decode(&mut self.inbox).unwrap() {
                if self.rx.decode(&frame).unwrap() == Message::Control(control) {
                    return;
                }
            }
            let n = self.tcp.read(&mut chunk).unwrap();
            assert!(n > 0, "the sidecar closed before sending {control:?}");
            self.inbox.extend_from_slice(&chunk[..n]);
        }
    }

    fn send(&mut self, msgs: &[Message]) {
        let mut buf = BytesMut::new();
        for m in msgs {
            self.tx.encode(m, &mut buf).unwrap();
        }
        self.tcp.write_all(&buf).unwrap();
    }
}

fn definition() -> TableDefinition {
    TableDefinition {
        table_id: 1,
        name: Bytes::from_static(b"t"),
        key_type: KeyType::Ipv4,
        key_len: 4,
        data_types: DataTypeSet::of(&[DataType::Gpc0]),
        expire_ms: Some(60_000),
        params: Vec::new(),
        trailing: Bytes::new(),
    }
}

/// `gpc0 = value` for 10.0.0.1, with explicit id `id` (`0a 80`, as HAProxy pushes).
fn push(id: u32, value: u32) -> Message {
    Message::Update(Update {
        table_id: 1,
        update_id: id,
        id_on_wire: true,
        expire_ms: None,
        key: Key::Ipv4(Ipv4Addr::new(10, 0, 0, 1)),
        values: vec![(DataType::Gpc0, Value::Uint(value))],
        trailing: Bytes::new(),
    })
}

/// 10.0.0.1's `gpc0` in the sidecar's replica.
fn replica_gpc0(side: &Sidecar) -> Option<u64> {
    let (status, body) = side.get("/tables/t?key=10.0.0.1&format=text");
    if status != 200 {
        return None;
    }
    let at = body.find("gpc0=")? + "gpc0=".len();
    let digits: String = body[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn wait_gpc0(side: &Sidecar, want: u64) {
    let mut last = None;
    let found = wait_until(&format!("gpc0 = {want} in the replica"), WAIT, || {
        last = replica_gpc0(side);
        Ok((last == Some(want)).then_some(()))
    });
    assert!(found.is_ok(), "the replica shows {last:?}, not {want}");
}

#[test]
fn what_the_old_worker_pushed_before_closing_survives_its_replacement() {
    let group = Group::new(&["edge-0"], &[], false, 1);
    let side = group.sidecar("edge-0", 0);

    // The old worker: its lesson (the answer to the sidecar's 00 00), its confirm of the
    // sidecar's lesson, a first push.
    let mut old = Worker::call(side.addrs.local, 3881);
    old.read_until(Control::ResyncRequest);
    old.send(&[
        Message::Definition(definition()),
        Message::Control(Control::ResyncFinished),
    ]);
    old.read_until(Control::ResyncFinished);
    old.send(&[Message::Control(Control::ResyncConfirm), push(1, 1)]);
    wait_gpc0(&side, 1);

    // The new worker calls while the old one's session is still open: its session replaces
    // the old one (f_reload: the new worker connected within a few ms).
    let _new = Worker::call(side.addrs.local, 3891);
    side.wait_for("the new worker's session", WAIT, |s| {
        s.peer("edge-0").pid == Some(3891)
    });
    // What the old worker sends from now on is what it pushed before it closed, in the
    // sidecar's view: its bytes were still unread when the new session replaced it.
    old.send(&[push(2, 2)]);
    drop(old);
    wait_gpc0(&side, 2);
}
