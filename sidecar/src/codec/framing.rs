//! Binary framing (peers protocol §3.1): `class`, `type`, and — when bit 7 of the type is set,
//! whatever the class — a varint body length and the body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::varint::{self, VarintError};

/// HAProxy's `tune.bufsize` default: a longer body makes it answer `01 01` and close.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024;

/// HAProxy reads the length from at most 5 bytes (`PEER_MSG_ENC_LENGTH_MAXLEN`).
pub const MAX_LENGTH_BYTES: usize = 5;

/// Bit 7 of the type byte: a length and a body follow.
pub const BODY_BIT: u8 = 0x80;

/// The bytes to send before closing on a decoding error (§3.4).
pub const REPLY_PROTOCOL_ERROR: [u8; 2] = [0x01, 0x00];
/// See [`REPLY_PROTOCOL_ERROR`].
pub const REPLY_SIZE_LIMIT: [u8; 2] = [0x01, 0x01];

/// One raw message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    pub class: u8,
    /// The type byte; bit 7 set ⇔ the frame has a length and a (possibly empty) body.
    pub kind: u8,
    pub body: Bytes,
}

impl Frame {
    /// A frame without body (`kind` < 0x80), e.g. control messages.
    pub fn bare(class: u8, kind: u8) -> Frame {
        Frame {
            class,
            kind,
            body: Bytes::new(),
        }
    }

    pub fn has_body(&self) -> bool {
        self.kind & BODY_BIT != 0
    }

    /// Bytes this frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        if self.has_body() {
            2usize
                .saturating_add(varint::encoded_len(self.body.len() as u64))
                .saturating_add(self.body.len())
        } else {
            2
        }
    }
}

/// Why bytes cannot be framed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The declared body length exceeds the limit: answer `01 01` and close.
    #[error("message body of {len} bytes exceeds the limit of {max} bytes")]
    TooLong { len: u64, max: usize },
    /// The length field is not a valid varint of at most 5 bytes: answer `01 00` and close.
    #[error("malformed message length: {0}")]
    BadLength(#[from] VarintError),
    /// Encoding only: a frame whose type has bit 7 clear cannot carry a body.
    #[error("type {kind:#04x} has bit 7 clear but the frame carries {len} body bytes")]
    BodyWithoutLengthBit { kind: u8, len: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// The error message to send the peer before closing, if any.
    pub fn reply(&self) -> Option<[u8; 2]> {
        match self {
            FrameError::TooLong { .. } => Some(REPLY_SIZE_LIMIT),
            FrameError::BadLength(_) => Some(REPLY_PROTOCOL_ERROR),
            FrameError::BodyWithoutLengthBit { .. } | FrameError::Io(_) => None,
        }
    }
}

/// Where the next frame lies in `src`, without consuming: `Ok(None)` if more bytes are needed,
/// else `(header length, body length)`. Checks the limit before anything is buffered for the body.
pub fn peek_frame(src: &[u8], max_body: usize) -> Result<Option<(usize, usize)>, FrameError> {
    let Some(&kind) = src.get(1) else {
        return Ok(None);
    };
    if kind & BODY_BIT == 0 {
        return Ok(Some((2, 0)));
    }
    let len_bytes = src.get(2..).unwrap_or_default();
    let window = len_bytes.get(..MAX_LENGTH_BYTES).unwrap_or(len_bytes);
    match varint::decode(window)? {
        None if window.len() < MAX_LENGTH_BYTES => Ok(None),
        None => Err(FrameError::BadLength(VarintError::TooLong)),
        Some((len, used)) => {
            let body = usize::try_from(len)
                .ok()
                .filter(|&l| l <= max_body)
                .ok_or(FrameError::TooLong { len, max: max_body })?;
            Ok(Some((2usize.saturating_add(used), body)))
        }
    }
}

/// Appends `frame` to `dst`.
pub fn encode_frame(frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
    if !frame.has_body() && !frame.body.is_empty() {
        return Err(FrameError::BodyWithoutLengthBit {
            kind: frame.kind,
            len: frame.body.len(),
        });
    }
    dst.reserve(frame.encoded_len());
    dst.put_u8(frame.class);
    dst.put_u8(frame.kind);
    if frame.has_body() {
        varint::encode(frame.body.len() as u64, dst);
        dst.put_slice(&frame.body);
    }
    Ok(())
}

/// Writes a frame with a body produced by `body` straight into `dst` (no intermediate buffer):
/// the body is written after a one-byte length guess and moved if the length needs more bytes.
pub(crate) fn put_frame_with<E>(
    dst: &mut BytesMut,
    class: u8,
    kind: u8,
    body: impl FnOnce(&mut BytesMut) -> Result<(), E>,
) -> Result<usize, E> {
    let start = dst.len();
    dst.put_u8(class);
    dst.put_u8(kind | BODY_BIT);
    dst.put_u8(0);
    let body_start = dst.len();
    if let Err(e) = body(dst) {
        dst.truncate(start);
        return Err(e);
    }
    let body_len = dst.len().saturating_sub(body_start);
    let (len_bytes, n) = varint::encode_array(body_len as u64);
    let len_bytes = len_bytes.get(..n).unwrap_or_default();
    let extra = n.saturating_sub(1);
    if extra > 0 {
        dst.put_bytes(0, extra);
        dst.copy_within(
            body_start..body_start.saturating_add(body_len),
            body_start.saturating_add(extra),
        );
    }
    let len_at = start.saturating_add(2);
    if let Some(slot) = dst.get_mut(len_at..len_at.saturating_add(n)) {
        slot.copy_from_slice(len_bytes);
    }
    Ok(body_len)
}

/// tokio-util codec for [`Frame`]s with a body-length limit.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_body: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new()
    }
}

impl FrameCodec {
    /// Limit [`DEFAULT_MAX_BODY`].
    pub fn new() -> FrameCodec {
        FrameCodec::with_max_body(DEFAULT_MAX_BODY)
    }

    pub fn with_max_body(max_body: usize) -> FrameCodec {
        FrameCodec { max_body }
    }

    pub fn max_body(&self) -> usize {
        self.max_body
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some((header, body_len)) = peek_frame(src, self.max_body)? else {
            return Ok(None);
        };
        let total = header.saturating_add(body_len);
        if src.len() < total {
            // Bounded by max_body, checked above.
            src.reserve(total.saturating_sub(src.len()));
            return Ok(None);
        }
        // peek_frame saw both bytes; one advance over the header is cheaper than three.
        let (Some(&class), Some(&kind)) = (src.first(), src.get(1)) else {
            return Ok(None);
        };
        src.advance(header);
        let body = src.split_to(body_len).freeze();
        Ok(Some(Frame { class, kind, body }))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&frame, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        if frame.body.len() > self.max_body {
            return Err(FrameError::TooLong {
                len: frame.body.len() as u64,
                max: self.max_body,
            });
        }
        encode_frame(frame, dst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn control_frames_are_two_bytes() {
        let mut buf = BytesMut::from(&[0x00, 0x00, 0x00, 0x04, 0x00][..]);
        let mut codec = FrameCodec::new();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::bare(0, 0)));
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::bare(0, 4)));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), 1);
    }

    #[test]
    fn any_class_with_bit_7_has_a_body() {
        let bytes = [0x05, 0x81, 0x02, 0xaa, 0xbb, 0x0a, 0x84];
        let mut buf = BytesMut::from(&bytes[..]);
        let mut codec = FrameCodec::new();
        let f = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.class, 5);
        assert_eq!(&f.body[..], &[0xaa, 0xbb]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn limit_is_inclusive_and_checked_before_buffering() {
        let mut codec = FrameCodec::with_max_body(16384);
        // 16384 = f0 f1 06: allowed (HAProxy refuses only len > bufsize).
        let mut ok = BytesMut::from(&[0x0a, 0x80, 0xf0, 0xf1, 0x06][..]);
        assert!(codec.decode(&mut ok).unwrap().is_none());
        // 2^32 - 1 declared: refused without reserving.
        let mut huge = BytesMut::from(&[0x0a, 0x80, 0xff, 0xf0, 0xfe, 0xfe, 0x7e][..]);
        let cap = huge.capacity();
        let err = codec.decode(&mut huge).unwrap_err();
        assert!(matches!(
            err,
            FrameError::TooLong {
                len: 4_294_967_295,
                ..
            }
        ));
        assert_eq!(err.reply(), Some(REPLY_SIZE_LIMIT));
        assert_eq!(huge.capacity(), cap);
    }

    #[test]
    fn six_byte_length_is_malformed() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&[0x0a, 0x80, 0xf0, 0x80, 0x80, 0x80, 0x80][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert_eq!(err.reply(), Some(REPLY_PROTOCOL_ERROR));
        let mut short = BytesMut::from(&[0x0a, 0x80, 0xf0, 0x80, 0x80, 0x80][..]);
        assert!(codec.decode(&mut short).unwrap().is_none());
    }

    #[test]
    fn put_frame_with_moves_long_bodies() {
        for len in [0usize, 1, 239, 240, 3000] {
            let mut dst = BytesMut::from(&b"xy"[..]);
            let n = put_frame_with::<()>(&mut dst, 0x0a, 0x80, |d| {
                d.put_bytes(0x5a, len);
                Ok(())
            })
            .unwrap();
            assert_eq!(n, len);
            let mut expected = BytesMut::from(&b"xy"[..]);
            encode_frame(
                &Frame {
                    class: 0x0a,
                    kind: 0x80,
                    body: Bytes::from(vec![0x5a; len]),
                },
                &mut expected,
            )
            .unwrap();
            assert_eq!(dst, expected, "len {len}");
        }
    }
}
