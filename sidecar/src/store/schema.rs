//! A table's schema and the word layout of its entry records.
//!
//! Every entry of a table is one fixed-size record of `u32` words (see [`super::arena`]):
//!
//! ```text
//! [seq lo, seq hi, deadline lo, deadline hi, origin] [key words] [value words, schema order]
//! ```
//!
//! Keys: integer/IPv4 one word, IPv6 four, binary `ceil(len / 4)`, strings one length word and
//! `ceil((len − 1) / 4)` words (HAProxy also reserves the full key length per entry). Values:
//! `sint`/`uint`/dictionary one word, `ull` two, a frequency counter three (`period_start` on the
//! local clock, `curr`, `prev`, §6.3), arrays that many times their element count. Dictionary
//! values are ids into the replica's string interner.

use std::ops::Range;

use bytes::Bytes;

use crate::codec::{
    DataType, DataTypeSet, Key, KeyType, ParamBlock, Shape, TableDefinition, DATA_TYPE_COUNT,
};

/// Words of per-entry metadata before the key.
pub(crate) const META_WORDS: usize = 5;
pub(crate) const SEQ_AT: usize = 0;
pub(crate) const DEADLINE_AT: usize = 2;
pub(crate) const ORIGIN_AT: usize = 4;

/// Longest key length accepted in a definition (bytes). HAProxy has no lower limit than its
/// buffer size; 64 KiB per entry is far beyond any sane `string len`.
pub const MAX_KEY_LEN: u64 = 65_536;
/// Largest array element count accepted (HAProxy allows 1…100).
pub const MAX_ARRAY_LEN: u64 = 1_024;

/// Why a definition cannot become a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("key length {len} exceeds the replica's limit of {MAX_KEY_LEN} bytes")]
    KeyTooLong { len: u64 },
    #[error("{} has {count} elements, more than the replica's limit of {MAX_ARRAY_LEN}", .data_type.name())]
    ArrayTooLong { data_type: DataType, count: u64 },
}

/// Why a key does not fit a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a {found} key for a table of {expected} keys", found = .found.name(), expected = .expected.name())]
    Type { expected: KeyType, found: KeyType },
    #[error("a key of {len} bytes for a table of key length {key_len}")]
    Length { len: usize, key_len: u64 },
}

/// Where one data type lives in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) data_type: DataType,
    /// Word offset from the start of the record.
    pub(crate) offset: usize,
    /// Elements (1 for scalars).
    pub(crate) count: usize,
    /// Period of frequency counters, from the definition (0 if unknown).
    pub(crate) period_ms: u64,
}

impl Field {
    /// Words per element.
    pub(crate) fn element_words(&self) -> usize {
        match self.data_type.shape() {
            Shape::Ull => 2,
            Shape::Freq | Shape::FreqArray => 3,
            Shape::Sint | Shape::Uint | Shape::Dict | Shape::UintArray => 1,
        }
    }

    pub(crate) fn words(&self) -> Range<usize> {
        let len = self.element_words().saturating_mul(self.count);
        self.offset..self.offset.saturating_add(len)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Schema {
    /// The definition this replica sends for the table: the authority's name, key and data
    /// types (known ones only), our table id, an expire field and a parameter block for every
    /// frequency-counter and array type (the codec requires them once expire is present).
    pub(crate) def: TableDefinition,
    pub(crate) key_type: KeyType,
    pub(crate) key_len: u64,
    key_words: usize,
    pub(crate) fields: Vec<Field>,
    /// Index + 1 into `fields` per data type id; 0 = not stored.
    by_type: [u8; DATA_TYPE_COUNT as usize],
    /// Words per record.
    pub(crate) stride: usize,
    /// The table's expire in ms; 0 = entries never expire.
    pub(crate) expire_ms: u64,
}

fn words_for(bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(4)).unwrap_or(usize::MAX)
}

impl Schema {
    pub(crate) fn new(def: &TableDefinition, table_id: u64) -> Result<Schema, SchemaError> {
        let key_words = match def.key_type {
            KeyType::Integer | KeyType::Ipv4 => 1,
            KeyType::Ipv6 => 4,
            KeyType::Binary | KeyType::String if def.key_len > MAX_KEY_LEN => {
                return Err(SchemaError::KeyTooLong { len: def.key_len })
            }
            KeyType::Binary => words_for(def.key_len),
            KeyType::String => 1usize.saturating_add(words_for(def.key_len.saturating_sub(1))),
        };
        let types = DataTypeSet(def.data_types.0 & DataTypeSet::KNOWN_MASK);
        let mut fields = Vec::new();
        let mut params = Vec::new();
        let mut by_type = [0u8; DATA_TYPE_COUNT as usize];
        let mut offset = META_WORDS.saturating_add(key_words);
        for t in types.known() {
            let count = if t.is_array() {
                let n = def.array_len(t).unwrap_or(0);
                if n > MAX_ARRAY_LEN {
                    return Err(SchemaError::ArrayTooLong {
                        data_type: t,
                        count: n,
                    });
                }
                n
            } else {
                1
            };
            let period_ms = if t.is_freq() {
                def.period_ms(t).unwrap_or(0)
            } else {
                0
            };
            if t.has_param_block() {
                params.push(ParamBlock {
                    data_type: t,
                    count: t.is_array().then_some(count),
                    period_ms: t.is_freq().then_some(period_ms),
                });
            }
            let field = Field {
                data_type: t,
                offset,
                count: usize::try_from(count).unwrap_or(0),
                period_ms,
            };
            offset = field.words().end;
            if let Some(slot) = by_type.get_mut(usize::from(t.id())) {
                *slot = u8::try_from(fields.len().saturating_add(1)).unwrap_or(0);
            }
            fields.push(field);
        }
        let expire_ms = def.expire_ms.unwrap_or(0);
        Ok(Schema {
            def: TableDefinition {
                table_id,
                name: def.name.clone(),
                key_type: def.key_type,
                key_len: def.key_len,
                data_types: types,
                expire_ms: Some(expire_ms),
                params,
                trailing: Bytes::new(),
            },
            key_type: def.key_type,
            key_len: def.key_len,
            key_words,
            fields,
            by_type,
            stride: offset,
            expire_ms,
        })
    }

    pub(crate) fn key_range(&self) -> Range<usize> {
        META_WORDS..META_WORDS.saturating_add(self.key_words)
    }

    pub(crate) fn field(&self, t: DataType) -> Option<&Field> {
        let i = usize::from(*self.by_type.get(usize::from(t.id()))?).checked_sub(1)?;
        self.fields.get(i)
    }

    /// Whether updates sent under `other` can be stored here (and ours sent there): HAProxy
    /// ignores a definition whose key type or length differs (§7.7).
    pub(crate) fn same_key(&self, other: &TableDefinition) -> bool {
        self.key_type == other.key_type && self.key_len == other.key_len
    }

    /// The key as record words, into `out` (cleared first).
    pub(crate) fn encode_key(&self, key: &Key, out: &mut Vec<u32>) -> Result<(), KeyError> {
        out.clear();
        if key.key_type() != self.key_type {
            return Err(KeyError::Type {
                expected: self.key_type,
                found: key.key_type(),
            });
        }
        match key {
            Key::Integer(v) => out.push(*v),
            Key::Ipv4(a) => out.push(u32::from_be_bytes(a.octets())),
            Key::Ipv6(a) => pack(&a.octets(), out),
            Key::String(s) => {
                if s.len() as u64 > self.key_len.saturating_sub(1) {
                    return Err(KeyError::Length {
                        len: s.len(),
                        key_len: self.key_len,
                    });
                }
                out.push(u32::try_from(s.len()).unwrap_or(u32::MAX));
                pack(s, out);
            }
            Key::Binary(b) => {
                if b.len() as u64 != self.key_len {
                    return Err(KeyError::Length {
                        len: b.len(),
                        key_len: self.key_len,
                    });
                }
                pack(b, out);
            }
        }
        out.resize(self.key_words, 0);
        Ok(())
    }

    /// The key of a record's key words.
    pub(crate) fn decode_key(&self, words: &[u32]) -> Key {
        let first = words.first().copied().unwrap_or(0);
        match self.key_type {
            KeyType::Integer => Key::Integer(first),
            KeyType::Ipv4 => Key::Ipv4(first.to_be_bytes().into()),
            KeyType::Ipv6 => {
                let mut octets = [0u8; 16];
                for (dst, w) in octets.chunks_mut(4).zip(words) {
                    dst.copy_from_slice(&w.to_be_bytes());
                }
                Key::Ipv6(octets.into())
            }
            KeyType::String => {
                let len = usize::try_from(first).unwrap_or(0);
                Key::String(unpack(words.get(1..).unwrap_or_default(), len))
            }
            KeyType::Binary => {
                Key::Binary(unpack(words, usize::try_from(self.key_len).unwrap_or(0)))
            }
        }
    }
}

fn pack(bytes: &[u8], out: &mut Vec<u32>) {
    for chunk in bytes.chunks(4) {
        let mut w = [0u8; 4];
        for (d, s) in w.iter_mut().zip(chunk) {
            *d = *s;
        }
        out.push(u32::from_be_bytes(w));
    }
}

fn unpack(words: &[u32], len: usize) -> Bytes {
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    bytes.truncate(len);
    Bytes::from(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn def(key_type: KeyType, key_len: u64, types: &[DataType]) -> TableDefinition {
        crate::store::tests::def("t", key_type, key_len, types)
    }

    #[test]
    fn layout_of_ipv4_rate_and_counter() {
        let s = Schema::new(
            &def(KeyType::Ipv4, 4, &[DataType::Gpc0, DataType::HttpReqRate]),
            1,
        )
        .unwrap();
        // 5 meta + 1 key + gpc0 1 + http_req_rate 3.
        assert_eq!(s.stride, 10);
        assert_eq!(s.field(DataType::Gpc0).unwrap().offset, 6);
        assert_eq!(s.field(DataType::HttpReqRate).unwrap().words(), 7..10);
        assert!(s.field(DataType::ConnCur).is_none());
        assert_eq!(s.def.table_id, 1);
        assert_eq!(s.def.params.len(), 1);
    }

    #[test]
    fn keys_roundtrip_through_words() {
        let cases = [
            (KeyType::Integer, 4, Key::Integer(0xdead_beef)),
            (KeyType::Ipv4, 4, Key::Ipv4(Ipv4Addr::new(10, 0, 0, 1))),
            (KeyType::Ipv6, 16, Key::Ipv6(Ipv6Addr::LOCALHOST)),
            (
                KeyType::String,
                33,
                Key::String(Bytes::from_static(b"hello")),
            ),
            (KeyType::String, 33, Key::String(Bytes::new())),
            (
                KeyType::Binary,
                6,
                Key::Binary(Bytes::from_static(b"\0ab\xffc\0")),
            ),
        ];
        for (kt, len, key) in cases {
            let s = Schema::new(&def(kt, len, &[]), 1).unwrap();
            let mut words = Vec::new();
            s.encode_key(&key, &mut words).unwrap();
            assert_eq!(words.len(), s.key_range().len());
            assert_eq!(s.decode_key(&words), key);
        }
        let s = Schema::new(&def(KeyType::String, 4, &[]), 1).unwrap();
        let mut words = Vec::new();
        assert!(s
            .encode_key(&Key::String(Bytes::from_static(b"abcd")), &mut words)
            .is_err());
        assert!(s.encode_key(&Key::Integer(1), &mut words).is_err());
        // "ab" and "ab\0" must differ: the length word is part of the key.
        s.encode_key(&Key::String(Bytes::from_static(b"ab")), &mut words)
            .unwrap();
        let ab = words.clone();
        s.encode_key(&Key::String(Bytes::from_static(b"ab\0")), &mut words)
            .unwrap();
        assert_ne!(ab, words);
    }

    #[test]
    fn limits() {
        assert!(matches!(
            Schema::new(&def(KeyType::String, MAX_KEY_LEN + 1, &[]), 1),
            Err(SchemaError::KeyTooLong { .. })
        ));
        let mut d = def(KeyType::Integer, 4, &[DataType::Gpt]);
        d.params[0].count = Some(MAX_ARRAY_LEN + 1);
        assert!(matches!(
            Schema::new(&d, 1),
            Err(SchemaError::ArrayTooLong { .. })
        ));
    }
}
