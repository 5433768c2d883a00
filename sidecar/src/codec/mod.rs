//! Bytes ⇄ HAProxy peers protocol v2.1 messages. No sockets, no clock.
//!
//! Three layers, each usable alone:
//! * [`handshake`]: the text hello / status lines. [`decode_hello`] and [`decode_status`] say how
//!   many bytes they used, because binary messages may follow in the same read (§2.6).
//!   [`check_hello`] is the one place that decides the status code to answer.
//! * [`framing`]: [`FrameCodec`] (tokio-util `Decoder`/`Encoder`) cuts the stream into raw
//!   [`Frame`]s with a body-length limit; [`FrameError::reply`] says whether to send `01 01` or
//!   `01 00` before closing.
//! * messages: [`RxState::decode`] turns frames into [`Message`]s, with the per-session state
//!   updates need (definitions, selected table, last update ids, `server_key` dictionary);
//!   [`TxState`] encodes, either exactly as a message says ([`TxState::encode`]) or choosing the
//!   wire forms itself ([`TxState::encode_update`]).
//!
//! Decoding follows HAProxy 2.6's parser (peers-protocol.md §3.4, §4, §6) with these choices where
//! HAProxy's handling of malformed input is accidental: a string key or `server_key` value must
//! be as long as announced, a `server_key` definition must fill its declared length exactly, and
//! dictionary ids outside 1..=128 are errors in both forms (as in 3.4+). Decoders never panic
//! (the lints below make it mechanical) and never reserve memory from a declared length beyond
//! the frame limit.
//!
//! Typical receive loop for one connection direction:
//! ```
//! use bytes::BytesMut;
//! use haproxy_peers_sidecar::codec::{decode_status, FrameCodec, Message, RxState, StatusCode};
//! use tokio_util::codec::Decoder;
//!
//! let mut buf = BytesMut::from(&b"200\n\x00\x00"[..]);
//! let (status, used) = decode_status(&buf).unwrap().unwrap();
//! assert_eq!(status, StatusCode::Success);
//! let _ = buf.split_to(used);
//! let (mut frames, mut rx) = (FrameCodec::new(), RxState::new());
//! while let Some(frame) = frames.decode(&mut buf).unwrap() {
//!     let msg = rx.decode(&frame).unwrap();
//!     assert_eq!(msg, Message::Control(haproxy_peers_sidecar::codec::Control::ResyncRequest));
//! }
//! ```
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

mod cursor;
mod dict;
pub mod entry;
mod error;
pub mod framing;
pub mod handshake;
pub(crate) mod hashing;
pub mod message;
mod rx;
mod tx;
mod update;
pub mod varint;

pub use entry::{
    DataType, DataTypeSet, DictValue, FreqCounter, Key, KeyType, Shape, Since, Value,
    ALL_DATA_TYPES, DATA_TYPE_COUNT, DICT_SLOTS,
};
pub use error::{DefinitionProblem, EncodeError, Field, MessageError};
pub use framing::{Frame, FrameCodec, FrameError, DEFAULT_MAX_BODY};
pub use handshake::{
    check_hello, decode_hello, decode_status, early_status, HandshakeError, Hello, HelloLines,
    StatusCode, Version,
};
pub use message::{
    Ack, Control, ErrorMessage, IgnoreReason, Ignored, Message, ParamBlock, TableDefinition, Update,
};
pub use rx::RxState;
pub use tx::{IdForm, TxState};
pub use varint::VarintError;
