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

pub(crate) const SECTION: &str = "pg";
/// HAProxy's local peer name (`-L hap`).
pub(crate) const HAP: &str = "hap";
/// This test's peer name in HAProxy's section.
pub(crate) const TESTER: &str = "tester";
/// Longest wait for one expected message; a broken exchange fails instead of hanging.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(8);

mod definitions;
mod handshake;
mod idle;
mod lab;
mod peer;
mod receive;
mod refusals;
mod resync;
mod send;
mod tables;
mod values;

use lab::*;
use peer::*;
use receive::*;
use send::*;
#[allow(unused_imports)]
use tables::*;
use values::*;
