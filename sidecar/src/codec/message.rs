//! Typed peers-protocol messages (§3.3, §4) and the stateless parts of their wire format:
//! control, error, definition, switch and ack. Updates need session state: see [`super::RxState`]
//! and [`super::TxState`].

use bytes::{BufMut, Bytes, BytesMut};

use super::cursor::Cursor;
use super::entry::{DataType, DataTypeSet, DictValue, Key, KeyType, Shape, Value};
use super::error::{DefinitionProblem, EncodeError, Field, MessageError};
use super::framing::Frame;
use super::varint;

/// Message classes (first byte).
pub mod class {
    pub const CONTROL: u8 = 0x00;
    pub const ERROR: u8 = 0x01;
    pub const STICK_TABLE: u8 = 0x0a;
    pub const RESERVED: u8 = 0xff;
}

/// Stick-table message types (second byte of class `0a`).
pub mod stkt {
    pub const UPDATE: u8 = 0x80;
    pub const INCREMENTAL: u8 = 0x81;
    pub const DEFINE: u8 = 0x82;
    pub const SWITCH: u8 = 0x83;
    pub const ACK: u8 = 0x84;
    pub const UPDATE_TIMED: u8 = 0x85;
    pub const INCREMENTAL_TIMED: u8 = 0x86;
}

/// Class `00` messages. They have no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// `00 00`: send me a lesson (the whole table).
    ResyncRequest,
    /// `00 01`: end of a lesson; the teacher considers its data complete.
    ResyncFinished,
    /// `00 02`: end of a lesson; the teacher was not up to date itself.
    ResyncPartial,
    /// `00 03`: the learner's answer to each `00 01` / `00 02`.
    ResyncConfirm,
    /// `00 04`: sent after 3 s without updates.
    Heartbeat,
}

impl Control {
    pub fn wire_type(self) -> u8 {
        match self {
            Control::ResyncRequest => 0,
            Control::ResyncFinished => 1,
            Control::ResyncPartial => 2,
            Control::ResyncConfirm => 3,
            Control::Heartbeat => 4,
        }
    }

    pub fn from_wire(kind: u8) -> Option<Control> {
        match kind {
            0 => Some(Control::ResyncRequest),
            1 => Some(Control::ResyncFinished),
            2 => Some(Control::ResyncPartial),
            3 => Some(Control::ResyncConfirm),
            4 => Some(Control::Heartbeat),
            _ => None,
        }
    }
}

/// Class `01` messages: sent just before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorMessage {
    /// `01 00`: malformed message.
    Protocol,
    /// `01 01`: message longer than the receiver's buffer.
    SizeLimit,
}

impl ErrorMessage {
    pub fn wire_type(self) -> u8 {
        match self {
            ErrorMessage::Protocol => 0,
            ErrorMessage::SizeLimit => 1,
        }
    }
}

/// HAProxy's configuration accepts `gpt(n)`, `gpc(n)` and `gpc_rate(n,p)` with n up to 100
/// (§6.1). A definition announcing more did not come from a HAProxy; refusing it keeps a hostile
/// element count from sizing arrays built from the definition.
pub const MAX_ARRAY_LEN: u64 = 100;

/// The parameter block a definition carries for a frequency-counter or array type (§4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamBlock {
    pub data_type: DataType,
    /// Element count, for array types.
    pub count: Option<u64>,
    /// Period in ms, for frequency counters (also `gpc_rate`). Receivers ignore it.
    pub period_ms: Option<u64>,
}

/// `0a 82`: a table definition; it also selects the table for the updates that follow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableDefinition {
    /// The sender's id for the table (used by its acks and switches).
    pub table_id: u64,
    /// The wire name: the proxy name, or `/<table>` for a table declared in a peers section.
    pub name: Bytes,
    pub key_type: KeyType,
    /// 4 for integer/ip, 16 for ipv6, `len`+1 for strings, `len` for binary.
    pub key_len: u64,
    pub data_types: DataTypeSet,
    /// The table's expire in ms (0 = none). `None`: the field is absent (allowed on input; then
    /// no parameter blocks follow).
    pub expire_ms: Option<u64>,
    /// One block per known frequency-counter or array type stored, ascending id.
    pub params: Vec<ParamBlock>,
    /// Bytes after the known blocks (blocks of types this codec does not know), kept verbatim.
    pub trailing: Bytes,
}

impl TableDefinition {
    /// The element count of an array type, from its parameter block.
    pub fn array_len(&self, t: DataType) -> Option<u64> {
        self.params
            .iter()
            .find(|p| p.data_type == t)
            .and_then(|p| p.count)
    }

    /// The period of a frequency-counter type, from its parameter block.
    pub fn period_ms(&self, t: DataType) -> Option<u64> {
        self.params
            .iter()
            .find(|p| p.data_type == t)
            .and_then(|p| p.period_ms)
    }

    /// The name as text, when it is UTF-8.
    pub fn name_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.name).ok()
    }

    /// The value of `t` HAProxy would store if it received nothing for it (zero counters; for
    /// arrays, this definition's element count). Useful to build complete updates.
    pub fn default_value(&self, t: DataType) -> Value {
        let count = self
            .array_len(t)
            .and_then(|c| usize::try_from(c).ok())
            .unwrap_or(0);
        match t.shape() {
            Shape::Sint => Value::Sint(0),
            Shape::Uint => Value::Uint(0),
            Shape::Ull => Value::Ull(0),
            Shape::Freq => Value::Freq(Default::default()),
            Shape::Dict => Value::Dict(DictValue::Absent),
            Shape::UintArray => Value::UintArray(vec![0; count]),
            Shape::FreqArray => Value::FreqArray(vec![Default::default(); count]),
        }
    }
}

/// A decoded or to-be-sent entry update (`0a 80/81/85/86`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Update {
    /// The sender's id of the table it applies to (the selected table).
    pub table_id: u64,
    /// The update id, resolved for incremental forms (previous id of the table + 1).
    pub update_id: u32,
    /// Whether the id is on the wire (`80`/`85`) or implied (`81`/`86`).
    pub id_on_wire: bool,
    /// Remaining lifetime in ms: `Some` for the timed forms `85`/`86`.
    pub expire_ms: Option<u32>,
    pub key: Key,
    /// Values of every known data type of the definition, ascending id.
    pub values: Vec<(DataType, Value)>,
    /// Bytes after the known values (values of types this codec does not know), verbatim.
    pub trailing: Bytes,
}

impl Update {
    /// The wire type byte of this form.
    pub fn wire_type(&self) -> u8 {
        update_wire_type(self.id_on_wire, self.expire_ms.is_some())
    }

    /// An explicit-id, untimed update of `key` carrying every known type of `def` at its zero
    /// value (arrays with `def`'s element count): a base to set values on.
    pub fn zeroed(def: &TableDefinition, update_id: u32, key: Key) -> Update {
        Update {
            table_id: def.table_id,
            update_id,
            id_on_wire: true,
            expire_ms: None,
            key,
            values: def
                .data_types
                .known()
                .map(|t| (t, def.default_value(t)))
                .collect(),
            trailing: Bytes::new(),
        }
    }

    /// The value of `t`, if present.
    pub fn value(&self, t: DataType) -> Option<&Value> {
        self.values.iter().find(|(dt, _)| *dt == t).map(|(_, v)| v)
    }

    /// The value of `t` to change in place, if present.
    pub fn value_mut(&mut self, t: DataType) -> Option<&mut Value> {
        self.values
            .iter_mut()
            .find(|(dt, _)| *dt == t)
            .map(|(_, v)| v)
    }
}

/// `0a 84`: the receiver of updates acknowledges the last update id of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ack {
    /// The id the **update sender** gave the table in its definition.
    pub table_id: u64,
    pub update_id: u32,
}

/// Why a message is ignored (HAProxy does nothing with it and the session stays up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Neither control, error, stick-table nor reserved.
    UnknownClass,
    UnknownControlType,
    UnknownErrorType,
    UnknownStickTableType,
    /// An update while no table is selected (no definition yet, an ignored definition, or a
    /// switch to an unknown id).
    NoTableSelected,
    /// A definition HAProxy would ignore; no table is selected until the next definition.
    UnusableDefinition {
        table_id: u64,
        name: Bytes,
        problem: DefinitionProblem,
    },
}

/// A message kept verbatim because it is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub frame: Frame,
    pub reason: IgnoreReason,
}

/// The update type byte for an id on the wire or implied, with or without a lifetime.
pub(crate) fn update_wire_type(id_on_wire: bool, timed: bool) -> u8 {
    match (id_on_wire, timed) {
        (true, false) => stkt::UPDATE,
        (false, false) => stkt::INCREMENTAL,
        (true, true) => stkt::UPDATE_TIMED,
        (false, true) => stkt::INCREMENTAL_TIMED,
    }
}

/// A peers-protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Control(Control),
    Error(ErrorMessage),
    Definition(TableDefinition),
    /// `0a 83`: select a table defined earlier by its sender-side id. HAProxy never sends it.
    Switch {
        table_id: u64,
    },
    Update(Update),
    Ack(Ack),
    Ignored(Ignored),
}

impl Message {
    /// `(class, type)` bytes of this message.
    pub fn wire_header(&self) -> (u8, u8) {
        match self {
            Message::Control(c) => (class::CONTROL, c.wire_type()),
            Message::Error(e) => (class::ERROR, e.wire_type()),
            Message::Definition(_) => (class::STICK_TABLE, stkt::DEFINE),
            Message::Switch { .. } => (class::STICK_TABLE, stkt::SWITCH),
            Message::Update(u) => (class::STICK_TABLE, u.wire_type()),
            Message::Ack(_) => (class::STICK_TABLE, stkt::ACK),
            Message::Ignored(i) => (i.frame.class, i.frame.kind),
        }
    }
}

/// What a definition body decodes to.
pub(crate) enum DefinitionOutcome {
    Usable(TableDefinition),
    Unusable {
        table_id: u64,
        name: Bytes,
        problem: DefinitionProblem,
    },
}

/// Decodes a definition body following HAProxy's `peer_treat_definemsg()`: truncation up to the
/// bitfield and empty names are protocol errors; an absent or cut expire means "no expire";
/// problems with key type/length and parameter blocks make the definition ignored.
pub(crate) fn decode_definition(body: &Bytes) -> Result<DefinitionOutcome, MessageError> {
    let mut cur = Cursor::new(body);
    let table_id = cur.varint(Field::TableId)?;
    let name_len = cur.varint(Field::TableNameLength)?;
    if name_len == 0 {
        return Err(MessageError::EmptyTableName);
    }
    let name = cur.take(name_len, Field::TableName)?;
    if cur.is_empty() {
        return Err(MessageError::Truncated {
            field: Field::KeyType,
        });
    }
    let key_code = cur.varint(Field::KeyType)?;
    let key_len = cur.varint(Field::KeyLength)?;
    let data_types = DataTypeSet(cur.varint(Field::DataTypes)?);
    let unusable = |problem| {
        Ok(DefinitionOutcome::Unusable {
            table_id,
            name: name.clone(),
            problem,
        })
    };
    let Some(key_type) = KeyType::from_wire(key_code) else {
        return unusable(DefinitionProblem::UnknownKeyType(key_code));
    };
    let len_ok = match key_type.fixed_len() {
        Some(fixed) => key_len == fixed,
        None => key_type != KeyType::String || key_len > 0,
    };
    if !len_ok {
        return unusable(DefinitionProblem::KeyLength {
            key_type,
            len: key_len,
        });
    }
    let Some(expire_ms) = cur.try_varint() else {
        if let Some(t) = data_types.known().find(|t| t.is_array()) {
            return unusable(DefinitionProblem::ArrayWithoutParams(t));
        }
        return Ok(DefinitionOutcome::Usable(TableDefinition {
            table_id,
            name,
            key_type,
            key_len,
            data_types,
            expire_ms: None,
            params: Vec::new(),
            trailing: cur.take_rest(),
        }));
    };
    let mut params = Vec::new();
    for t in data_types.known().filter(|t| t.has_param_block()) {
        let block = decode_param_block(&mut cur, t);
        match block {
            Some(ParamBlock {
                count: Some(count), ..
            }) if count > MAX_ARRAY_LEN => {
                return unusable(DefinitionProblem::ArrayLength {
                    data_type: t,
                    count,
                })
            }
            Some(b) => params.push(b),
            None => return unusable(DefinitionProblem::BadParamBlock(t)),
        }
    }
    Ok(DefinitionOutcome::Usable(TableDefinition {
        table_id,
        name,
        key_type,
        key_len,
        data_types,
        expire_ms: Some(expire_ms),
        params,
        trailing: cur.take_rest(),
    }))
}

fn decode_param_block(cur: &mut Cursor<'_>, t: DataType) -> Option<ParamBlock> {
    if cur.try_varint()? != u64::from(t.id()) {
        return None;
    }
    let count = if t.is_array() {
        Some(cur.try_varint()?)
    } else {
        None
    };
    let period_ms = if t.is_freq() {
        Some(cur.try_varint()?)
    } else {
        None
    };
    Some(ParamBlock {
        data_type: t,
        count,
        period_ms,
    })
}

/// Writes a definition body, checking it is one HAProxy would accept.
pub(crate) fn encode_definition_body(
    def: &TableDefinition,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    if def.name.is_empty() {
        return Err(EncodeError::EmptyTableName);
    }
    varint::encode(def.table_id, dst);
    varint::encode(def.name.len() as u64, dst);
    dst.put_slice(&def.name);
    varint::encode(def.key_type.wire_code(), dst);
    varint::encode(def.key_len, dst);
    varint::encode(def.data_types.0, dst);
    let Some(expire) = def.expire_ms else {
        if let Some(t) = def.data_types.known().find(|t| t.is_array()) {
            return Err(EncodeError::ArrayNeedsExpire(t));
        }
        if let Some(p) = def.params.first() {
            return Err(EncodeError::UnexpectedParam(p.data_type));
        }
        dst.put_slice(&def.trailing);
        return Ok(());
    };
    varint::encode(expire, dst);
    let mut blocks = def.params.iter();
    for t in def.data_types.known().filter(|t| t.has_param_block()) {
        let block = blocks.next().ok_or(EncodeError::MissingParam(t))?;
        if block.data_type != t {
            return Err(EncodeError::UnexpectedParam(block.data_type));
        }
        varint::encode(u64::from(t.id()), dst);
        if t.is_array() {
            varint::encode(block.count.ok_or(EncodeError::MissingParam(t))?, dst);
        }
        if t.is_freq() {
            varint::encode(block.period_ms.ok_or(EncodeError::MissingParam(t))?, dst);
        }
    }
    if let Some(extra) = blocks.next() {
        return Err(EncodeError::UnexpectedParam(extra.data_type));
    }
    dst.put_slice(&def.trailing);
    Ok(())
}

pub(crate) fn decode_ack(body: &Bytes) -> Result<Ack, MessageError> {
    let mut cur = Cursor::new(body);
    let table_id = cur.varint(Field::TableId)?;
    let update_id = cur.be32(Field::UpdateId)?;
    Ok(Ack {
        table_id,
        update_id,
    })
}

pub(crate) fn decode_switch(body: &Bytes) -> Result<u64, MessageError> {
    Cursor::new(body).varint(Field::TableId)
}
