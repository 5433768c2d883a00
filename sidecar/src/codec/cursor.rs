//! Bounded reading of a message body: every read checks what is left and names its field.

use bytes::Bytes;

use super::error::{Field, MessageError};
use super::varint;

/// A read position in a body. Slices share the body's allocation.
pub(crate) struct Cursor<'a> {
    body: &'a Bytes,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(body: &'a Bytes) -> Cursor<'a> {
        Cursor { body, pos: 0 }
    }

    fn rest(&self) -> &[u8] {
        self.body.get(self.pos..).unwrap_or_default()
    }

    pub(crate) fn remaining(&self) -> usize {
        self.body.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn varint(&mut self, field: Field) -> Result<u64, MessageError> {
        match varint::decode(self.rest()) {
            Ok(Some((v, used))) => {
                self.pos = self.pos.saturating_add(used);
                Ok(v)
            }
            Ok(None) => Err(MessageError::Truncated { field }),
            Err(source) => Err(MessageError::BadVarint { field, source }),
        }
    }

    /// A varint that may be absent or cut short; `None` leaves the position unchanged.
    pub(crate) fn try_varint(&mut self) -> Option<u64> {
        let (v, used) = varint::decode(self.rest()).ok().flatten()?;
        self.pos = self.pos.saturating_add(used);
        Some(v)
    }

    pub(crate) fn be32(&mut self, field: Field) -> Result<u32, MessageError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// The next `N` bytes, copied.
    pub(crate) fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], MessageError> {
        let end = self
            .pos
            .checked_add(N)
            .ok_or(MessageError::Truncated { field })?;
        let arr: [u8; N] = self
            .body
            .get(self.pos..end)
            .and_then(|b| b.try_into().ok())
            .ok_or(MessageError::Truncated { field })?;
        self.pos = end;
        Ok(arr)
    }

    /// The next `len` bytes (`len` is untrusted: nothing is allocated).
    pub(crate) fn take(&mut self, len: u64, field: Field) -> Result<Bytes, MessageError> {
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.remaining())
            .ok_or(MessageError::Truncated { field })?;
        let end = self.pos.saturating_add(len);
        let out = self.body.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    /// Everything left.
    pub(crate) fn take_rest(&mut self) -> Bytes {
        let out = self.body.slice(self.pos.min(self.body.len())..);
        self.pos = self.body.len();
        out
    }
}
