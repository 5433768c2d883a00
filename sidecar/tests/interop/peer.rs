//! The test's side of a session, built on the codec.

use super::*;

pub(crate) struct Peer {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
    pub(crate) frames: FrameCodec,
    pub(crate) rx: RxState,
    pub(crate) tx: TxState,
    /// Decodes what we send, as HAProxy would, to see the wire forms the codec chose.
    pub(crate) mirror: RxState,
}

pub(crate) fn hello_bytes(hello: &Hello) -> Vec<u8> {
    let mut out = BytesMut::new();
    hello.encode(&mut out).unwrap();
    out.to_vec()
}

impl Peer {
    pub(crate) fn new(stream: TcpStream, leftover: BytesMut) -> Peer {
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
    pub(crate) async fn accept(listener: &TcpListener) -> (Peer, Hello) {
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
    pub(crate) async fn dial_raw(
        addr: SocketAddr,
        hello: &[u8],
    ) -> (StatusCode, TcpStream, BytesMut) {
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
    pub(crate) async fn dial(addr: SocketAddr) -> Peer {
        let hello = hello_bytes(&Hello::new(HAP, TESTER, std::process::id()));
        let (status, stream, rest) = Peer::dial_raw(addr, &hello).await;
        assert_eq!(status, StatusCode::Success);
        Peer::new(stream, rest)
    }

    pub(crate) async fn send(&mut self, msg: &Message) {
        let mut out = BytesMut::new();
        self.tx.encode(msg, &mut out).unwrap();
        self.write(out).await;
    }

    /// Writes encoded messages and returns them as the receiver decodes them.
    pub(crate) async fn write(&mut self, mut out: BytesMut) -> Vec<Message> {
        self.stream.write_all(&out).await.unwrap();
        let mut frames = FrameCodec::new();
        let mut sent = Vec::new();
        while let Some(frame) = frames.decode(&mut out).unwrap() {
            sent.push(self.mirror.decode(&frame).unwrap());
        }
        assert!(out.is_empty(), "the codec wrote a partial frame: {out:?}");
        sent
    }

    pub(crate) async fn send_control(&mut self, control: Control) {
        self.send(&Message::Control(control)).await;
    }

    /// Sends one update, with the definition first when the table is not selected. Returns
    /// the update as the receiver decodes it (with the wire forms the codec chose).
    pub(crate) async fn send_update(
        &mut self,
        def: &TableDefinition,
        update: &Update,
        ids: IdForm,
    ) -> Update {
        let mut out = BytesMut::new();
        self.tx.encode_update(def, update, ids, &mut out).unwrap();
        let sent = self.write(out).await;
        match sent.last() {
            Some(Message::Update(wire)) => wire.clone(),
            other => panic!("the codec sent {other:?} for an update"),
        }
    }

    /// The next message, or `None` if nothing arrives within `wait`.
    pub(crate) async fn try_recv(&mut self, wait: Duration) -> Option<Message> {
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

    pub(crate) async fn recv(&mut self, what: &str) -> Message {
        self.try_recv(READ_TIMEOUT).await.unwrap_or_else(|| {
            panic!("nothing from HAProxy within {READ_TIMEOUT:?} while waiting for {what}")
        })
    }

    /// Messages up to and including the first that `done` accepts, skipping heartbeats.
    pub(crate) async fn recv_until(
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
    pub(crate) async fn drain(&mut self, quiet: Duration) -> Vec<Message> {
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
    pub(crate) async fn answer_startup_resync(&mut self) {
        let first = self.recv("HAProxy's start-up resync request").await;
        assert_eq!(first, Message::Control(Control::ResyncRequest));
        self.send_control(Control::ResyncFinished).await;
        let confirm = self.recv("the confirm of our (empty) lesson").await;
        assert_eq!(confirm, Message::Control(Control::ResyncConfirm));
    }

    /// Sends `00 00` and returns the lesson up to its end, which must be "finished" (HAProxy
    /// finished its own start-up resync with our empty lesson); then confirms it.
    pub(crate) async fn request_lesson(&mut self) -> Vec<Message> {
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
    pub(crate) async fn recv_ack(&mut self) -> Ack {
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
    pub(crate) async fn ack(&mut self, updates: &[Update]) -> BTreeMap<u64, u32> {
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

pub(crate) async fn read_more(stream: &mut TcpStream, buf: &mut BytesMut) {
    let n = tokio::time::timeout(READ_TIMEOUT, stream.read_buf(buf))
        .await
        .unwrap_or_else(|_| panic!("HAProxy sent nothing for {READ_TIMEOUT:?}; have {buf:?}"))
        .unwrap();
    assert!(n > 0, "HAProxy closed the connection; have {buf:?}");
}

/// The definitions and the updates among `messages`, in order.
pub(crate) fn tables_and_updates(messages: &[Message]) -> (Vec<TableDefinition>, Vec<Update>) {
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
pub(crate) fn key_text(key: &Key) -> String {
    match key {
        Key::Integer(v) => v.to_string(),
        Key::Ipv4(a) => a.to_string(),
        Key::Ipv6(a) => a.to_string(),
        Key::String(s) => String::from_utf8_lossy(s).into_owned(),
        Key::Binary(b) => b.iter().map(|x| format!("{x:02X}")).collect(),
    }
}

/// The table a received update belongs to, by HAProxy's definition.
pub(crate) fn spec_of(rx: &RxState, update: &Update) -> TableSpec {
    let def = rx
        .definition(update.table_id)
        .expect("update after a definition");
    *TABLES
        .iter()
        .find(|s| s.wire.as_bytes() == def.name.as_ref())
        .unwrap_or_else(|| panic!("update for unknown table {:?}", def.name))
}
