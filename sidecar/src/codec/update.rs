//! Update bodies (§4.3, §5, §6): optional id and lifetime, the key, then one value per known data
//! type of the table definition, in ascending id. Which table applies is session state, handled
//! by [`super::RxState`] / [`super::TxState`].

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

use super::cursor::Cursor;
use super::dict::{RxDict, TxDict};
use super::entry::{DataType, DictValue, FreqCounter, Key, KeyType, Shape, Value};
use super::error::{EncodeError, Field, MessageError};
use super::message::{TableDefinition, Update};
use super::varint;

/// Largest key length a string definition can declare usefully; keeps `key_len - 1` sane.
fn string_keep(key_len: u64) -> u64 {
    key_len.saturating_sub(1)
}

pub(crate) fn decode_key(
    cur: &mut Cursor<'_>,
    key_type: KeyType,
    key_len: u64,
) -> Result<Key, MessageError> {
    let field = Field::Key;
    Ok(match key_type {
        KeyType::Integer => Key::Integer(cur.be32(field)?),
        KeyType::Ipv4 => Key::Ipv4(Ipv4Addr::from(cur.array::<4>(field)?)),
        KeyType::Ipv6 => Key::Ipv6(Ipv6Addr::from(cur.array::<16>(field)?)),
        KeyType::String => {
            let len = cur.varint(field)?;
            let bytes = cur.take(len, field)?;
            // Like HAProxy: read the whole string, keep at most key length − 1 bytes.
            let keep = usize::try_from(string_keep(key_len).min(len)).unwrap_or(bytes.len());
            Key::String(bytes.slice(..keep.min(bytes.len())))
        }
        KeyType::Binary => Key::Binary(cur.take(key_len, field)?),
    })
}

fn encode_key(key: &Key, def: &TableDefinition, dst: &mut BytesMut) -> Result<(), EncodeError> {
    if key.key_type() != def.key_type {
        return Err(EncodeError::KeyType {
            expected: def.key_type,
            found: key.key_type(),
        });
    }
    match key {
        Key::Integer(v) => dst.put_u32(*v),
        Key::Ipv4(a) => dst.put_slice(&a.octets()),
        Key::Ipv6(a) => dst.put_slice(&a.octets()),
        Key::String(s) => {
            if s.len() as u64 > string_keep(def.key_len) {
                return Err(EncodeError::KeyLength {
                    len: s.len(),
                    key_len: def.key_len,
                });
            }
            varint::encode(s.len() as u64, dst);
            dst.put_slice(s);
        }
        Key::Binary(b) => {
            if b.len() as u64 != def.key_len {
                return Err(EncodeError::KeyLength {
                    len: b.len(),
                    key_len: def.key_len,
                });
            }
            dst.put_slice(b);
        }
    }
    Ok(())
}

fn low32(v: u64) -> u32 {
    (v & u64::from(u32::MAX)) as u32
}

fn decode_freq(cur: &mut Cursor<'_>, field: Field) -> Result<FreqCounter, MessageError> {
    Ok(FreqCounter {
        elapsed: low32(cur.varint(field)?),
        curr: low32(cur.varint(field)?),
        prev: low32(cur.varint(field)?),
    })
}

fn encode_freq(f: &FreqCounter, dst: &mut BytesMut) {
    varint::encode(u64::from(f.elapsed), dst);
    varint::encode(u64::from(f.curr), dst);
    varint::encode(u64::from(f.prev), dst);
}

/// An element count from a definition, capped by what the body can hold (each element takes at
/// least one byte), so that an absurd count cannot reserve memory.
fn bounded_capacity(count: u64, cur: &Cursor<'_>) -> usize {
    usize::try_from(count)
        .unwrap_or(usize::MAX)
        .min(cur.remaining())
}

fn decode_dict(
    cur: &mut Cursor<'_>,
    dict: &mut RxDict,
    field: Field,
) -> Result<DictValue, MessageError> {
    let declared = cur.varint(field)?;
    if declared == 0 {
        return Ok(DictValue::Absent);
    }
    let inner = cur.take(declared, field)?;
    let mut sub = Cursor::new(&inner);
    let id = sub.varint(Field::DictId)?;
    let slot = u8::try_from(id)
        .ok()
        .filter(|i| (1..=128).contains(i))
        .ok_or(MessageError::DictId { id })?;
    if sub.is_empty() {
        let value = dict.get(id).ok_or(MessageError::DictId { id })?;
        return Ok(DictValue::Ref { id: slot, value });
    }
    let len = sub.varint(Field::DictString)?;
    let value = sub.take(len, Field::DictString)?;
    if !sub.is_empty() {
        return Err(MessageError::DictLength {
            declared,
            used: declared.saturating_sub(sub.remaining() as u64),
        });
    }
    dict.set(id, value.clone());
    Ok(DictValue::Define { id: slot, value })
}

fn decode_value(
    cur: &mut Cursor<'_>,
    t: DataType,
    def: &TableDefinition,
    dict: &mut RxDict,
) -> Result<Value, MessageError> {
    let field = Field::Value(t);
    Ok(match t.shape() {
        // HAProxy stores the low 32 bits of the 64-bit varint.
        Shape::Sint => Value::Sint(low32(cur.varint(field)?) as i32),
        Shape::Uint => Value::Uint(low32(cur.varint(field)?)),
        Shape::Ull => Value::Ull(cur.varint(field)?),
        Shape::Freq => Value::Freq(decode_freq(cur, field)?),
        Shape::Dict => Value::Dict(decode_dict(cur, dict, field)?),
        Shape::UintArray => {
            let count = def.array_len(t).unwrap_or(0);
            let mut out = Vec::with_capacity(bounded_capacity(count, cur));
            for _ in 0..count {
                out.push(low32(cur.varint(field)?));
            }
            Value::UintArray(out)
        }
        Shape::FreqArray => {
            let count = def.array_len(t).unwrap_or(0);
            let mut out = Vec::with_capacity(bounded_capacity(count, cur));
            for _ in 0..count {
                out.push(decode_freq(cur, field)?);
            }
            Value::FreqArray(out)
        }
    })
}

/// Decodes an update body of wire type `kind` for table `def`. `last_id` is the previous update
/// id of that table in this session, updated here (HAProxy updates it before reading the key).
pub(crate) fn decode_update(
    body: &Bytes,
    kind_has_id: bool,
    kind_timed: bool,
    def: &TableDefinition,
    last_id: &mut u32,
    dict: &mut RxDict,
) -> Result<Update, MessageError> {
    let mut cur = Cursor::new(body);
    let update_id = if kind_has_id {
        cur.be32(Field::UpdateId)?
    } else {
        last_id.wrapping_add(1)
    };
    *last_id = update_id;
    let expire_ms = if kind_timed {
        Some(cur.be32(Field::Expire)?)
    } else {
        None
    };
    let key = decode_key(&mut cur, def.key_type, def.key_len)?;
    let mut values = Vec::with_capacity(def.data_types.0.count_ones() as usize);
    for t in def.data_types.known() {
        values.push((t, decode_value(&mut cur, t, def, dict)?));
    }
    Ok(Update {
        table_id: def.table_id,
        update_id,
        id_on_wire: kind_has_id,
        expire_ms,
        key,
        values,
        trailing: cur.take_rest(),
    })
}

/// How dictionary values are put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DictMode {
    /// As given in the update (reference or definition, slot id), checked against the cache.
    AsGiven,
    /// Chosen from the cache by the resolved string.
    Choose,
}

fn encode_dict(
    d: &DictValue,
    mode: DictMode,
    dict: &mut TxDict,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let form = match mode {
        DictMode::AsGiven => d.clone(),
        DictMode::Choose => dict.choose(d.value()),
    };
    match &form {
        DictValue::Absent => varint::encode(0, dst),
        DictValue::Ref { id, value } => {
            if mode == DictMode::AsGiven && !dict.holds(*id, value.as_ref()) {
                return Err(EncodeError::DictSlot { id: *id });
            }
            varint::encode(varint::encoded_len(u64::from(*id)) as u64, dst);
            varint::encode(u64::from(*id), dst);
        }
        DictValue::Define { id, value } => {
            if mode == DictMode::AsGiven && !dict.store(*id, value.clone()) {
                return Err(EncodeError::DictSlot { id: *id });
            }
            let len = value.len() as u64;
            let inner = varint::encoded_len(u64::from(*id))
                .saturating_add(varint::encoded_len(len))
                .saturating_add(value.len());
            varint::encode(inner as u64, dst);
            varint::encode(u64::from(*id), dst);
            varint::encode(len, dst);
            dst.put_slice(value);
        }
    }
    Ok(())
}

fn shape_error(t: DataType) -> EncodeError {
    EncodeError::Shape {
        data_type: t,
        expected: t.shape(),
    }
}

fn check_array_len(t: DataType, def: &TableDefinition, found: usize) -> Result<(), EncodeError> {
    let expected = def.array_len(t).unwrap_or(0);
    if found as u64 != expected {
        return Err(EncodeError::ArrayLength {
            data_type: t,
            expected,
            found,
        });
    }
    Ok(())
}

fn encode_value(
    t: DataType,
    v: &Value,
    def: &TableDefinition,
    mode: DictMode,
    dict: &mut TxDict,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    if v.shape() != t.shape() {
        return Err(shape_error(t));
    }
    match v {
        // Sign extension to 64 bits, as HAProxy sends it.
        Value::Sint(i) => varint::encode(i64::from(*i) as u64, dst),
        Value::Uint(u) => varint::encode(u64::from(*u), dst),
        Value::Ull(u) => varint::encode(*u, dst),
        Value::Freq(f) => encode_freq(f, dst),
        Value::Dict(d) => encode_dict(d, mode, dict, dst)?,
        Value::UintArray(items) => {
            check_array_len(t, def, items.len())?;
            for u in items {
                varint::encode(u64::from(*u), dst);
            }
        }
        Value::FreqArray(items) => {
            check_array_len(t, def, items.len())?;
            for f in items {
                encode_freq(f, dst);
            }
        }
    }
    Ok(())
}

/// Writes an update body for table `def`, its values checked against the definition, with the
/// update id when `id_on_wire` (whatever `update.id_on_wire` says: the sender picks the form).
pub(crate) fn encode_update_body(
    update: &Update,
    id_on_wire: bool,
    def: &TableDefinition,
    mode: DictMode,
    dict: &mut TxDict,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    if id_on_wire {
        dst.put_u32(update.update_id);
    }
    if let Some(expire) = update.expire_ms {
        dst.put_u32(expire);
    }
    encode_key(&update.key, def, dst)?;
    let mut given = update.values.iter();
    for t in def.data_types.known() {
        match given.next() {
            Some((vt, v)) if *vt == t => encode_value(t, v, def, mode, dict, dst)?,
            Some((vt, _)) if *vt < t => return Err(EncodeError::UnexpectedValue(*vt)),
            _ => return Err(EncodeError::MissingValue(t)),
        }
    }
    if let Some((vt, _)) = given.next() {
        return Err(EncodeError::UnexpectedValue(*vt));
    }
    dst.put_slice(&update.trailing);
    Ok(())
}
