//! HAProxy's "encoded integer" (peers protocol §3.2). Not LEB128: every continuation byte is added
//! with its full value (high bit included) at its shift, and the encoder subtracts the offsets, so
//! each value has exactly one encoding.

use bytes::BufMut;

/// Longest encoding of a `u64` (values ≥ 1 161 999 626 690 365 680 take 10 bytes).
pub const MAX_LEN: usize = 10;

/// A first byte below this is the whole value.
const ONE_BYTE_LIMIT: u64 = 240;
/// A continuation byte below this ends the number.
const CONTINUATION: u64 = 128;

/// Why bytes are not a valid varint. Running out of input is not an error here (`Ok(None)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    /// More than [`MAX_LEN`] bytes without a terminating byte.
    #[error("varint longer than {MAX_LEN} bytes")]
    TooLong,
    /// The value does not fit in 64 bits.
    #[error("varint value exceeds 64 bits")]
    Overflow,
}

/// Number of bytes [`encode`] writes for `v`.
pub fn encoded_len(v: u64) -> usize {
    let (_, len) = encode_array(v);
    len
}

/// Encodes `v` into a stack buffer; returns the buffer and the number of bytes used.
pub fn encode_array(mut v: u64) -> ([u8; MAX_LEN], usize) {
    let mut out = [0u8; MAX_LEN];
    let mut len = 0usize;
    let mut push = |b: u8| {
        if let Some(slot) = out.get_mut(len) {
            *slot = b;
        }
        len = len.saturating_add(1);
    };
    if v < ONE_BYTE_LIMIT {
        push(low_byte(v));
        return (out, len);
    }
    push(low_byte(v) | 0xF0);
    v = v.saturating_sub(ONE_BYTE_LIMIT) >> 4;
    while v >= CONTINUATION {
        push(low_byte(v) | 0x80);
        v = v.saturating_sub(CONTINUATION) >> 7;
    }
    push(low_byte(v));
    (out, len)
}

/// Appends the encoding of `v` to `dst`.
pub fn encode(v: u64, dst: &mut impl BufMut) {
    let (buf, len) = encode_array(v);
    dst.put_slice(buf.get(..len).unwrap_or(&buf));
}

/// Decodes one varint from the start of `src`.
///
/// `Ok(None)` when `src` ends before the number does (read more bytes); otherwise the value and
/// the number of bytes it used.
pub fn decode(src: &[u8]) -> Result<Option<(u64, usize)>, VarintError> {
    let Some(&first) = src.first() else {
        return Ok(None);
    };
    let mut value = u128::from(first);
    if u64::from(first) < ONE_BYTE_LIMIT {
        return Ok(Some((u64::from(first), 1)));
    }
    let mut shift: u32 = 4;
    for (i, &b) in src.iter().enumerate().skip(1) {
        if i >= MAX_LEN {
            return Err(VarintError::TooLong);
        }
        // u128 holds byte << 60 plus the sum so far; the u64 bound is checked on every step.
        value = value.saturating_add(u128::from(b) << shift);
        if value > u128::from(u64::MAX) {
            return Err(VarintError::Overflow);
        }
        if u64::from(b) < CONTINUATION {
            let v = u64::try_from(value).map_err(|_| VarintError::Overflow)?;
            return Ok(Some((v, i.saturating_add(1))));
        }
        shift = shift.saturating_add(7);
    }
    if src.len() >= MAX_LEN {
        return Err(VarintError::TooLong);
    }
    Ok(None)
}

fn low_byte(v: u64) -> u8 {
    (v & 0xFF) as u8
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, &mut out);
        out
    }

    #[test]
    fn worked_examples_from_the_protocol_doc() {
        let cases: &[(u64, &[u8])] = &[
            (5, &[0x05]),
            (239, &[0xef]),
            (240, &[0xf0, 0x00]),
            (1000, &[0xf8, 0x2f]),
            (2287, &[0xff, 0x7f]),
            (2288, &[0xf0, 0x80, 0x00]),
            (4660, &[0xf4, 0x94, 0x01]),
            (10000, &[0xf0, 0xe2, 0x03]),
            (16384, &[0xf0, 0xf1, 0x06]),
            (60000, &[0xf0, 0x97, 0x1c]),
            (264_431, &[0xff, 0xff, 0x7f]),
            (264_432, &[0xf0, 0x80, 0x80, 0x00]),
            (33_818_864, &[0xf0, 0x80, 0x80, 0x80, 0x00]),
            (166_553_104, &[0xf0, 0xd2, 0xab, 0xfa, 0x03]),
            (u64::from(u32::MAX), &[0xff, 0xf0, 0xfe, 0xfe, 0x7e]),
            (
                (1u64 << 63) - 1,
                &[0xff, 0xf0, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x06],
            ),
            (
                u64::MAX,
                &[0xff, 0xf0, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x0e],
            ),
        ];
        for &(v, bytes) in cases {
            assert_eq!(enc(v), bytes, "encode {v}");
            assert_eq!(decode(bytes), Ok(Some((v, bytes.len()))), "decode {v}");
            assert_eq!(encoded_len(v), bytes.len());
        }
    }

    #[test]
    fn length_table_boundaries() {
        // (smallest value of n bytes) from §3.2; the value before it takes n-1 bytes.
        let firsts: &[(u64, usize)] = &[
            (240, 2),
            (2288, 3),
            (264_432, 4),
            (33_818_864, 5),
            (4_328_786_160, 6),
            (554_084_600_048, 7),
            (1_161_999_626_690_365_680, 10),
        ];
        for &(v, n) in firsts {
            assert_eq!(encoded_len(v), n, "{v}");
            assert_eq!(encoded_len(v - 1), n - 1, "{}", v - 1);
        }
        assert_eq!(encoded_len(4_328_786_159), 5);
        assert_eq!(encoded_len(554_084_600_047), 6);
    }

    #[test]
    fn truncated_is_incomplete_not_error() {
        let full = enc(u64::MAX);
        for n in 0..full.len() {
            assert_eq!(decode(&full[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn rejects_eleven_bytes_and_overflow() {
        let mut long = vec![0xf0];
        long.extend(std::iter::repeat_n(0x80, 10));
        // The tenth byte of a longer encoding is >= 0x80 at shift 60: past 2^64 already.
        assert!(decode(&long).is_err());
        // Ten bytes whose last one pushes past 2^64.
        let over = [0xff, 0xf0, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0x0f];
        assert_eq!(decode(&over), Err(VarintError::Overflow));
        // Ten bytes, all continuation: no eleventh byte may follow.
        let ten = [0xf0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80];
        assert!(decode(&ten).is_err());
    }
}
