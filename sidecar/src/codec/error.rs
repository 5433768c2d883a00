//! Errors of message decoding and encoding. Decoding errors are protocol errors: the session
//! answers `01 00` and closes. Encoding errors are bugs or bad input on our side.

use std::fmt;

use super::entry::{DataType, KeyType, Shape};
use super::framing::{FrameError, REPLY_PROTOCOL_ERROR};
use super::varint::VarintError;

/// The field of a message body a decoding error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    TableId,
    TableNameLength,
    TableName,
    KeyType,
    KeyLength,
    DataTypes,
    UpdateId,
    Expire,
    /// The key of an update (string length, or the fixed-size bytes).
    Key,
    /// The value of this data type in an update.
    Value(DataType),
    /// The dictionary slot id of a `server_key` value.
    DictId,
    /// The string of a `server_key` dictionary definition.
    DictString,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::TableId => f.write_str("table id"),
            Field::TableNameLength => f.write_str("table name length"),
            Field::TableName => f.write_str("table name"),
            Field::KeyType => f.write_str("key type"),
            Field::KeyLength => f.write_str("key length"),
            Field::DataTypes => f.write_str("data-type bitfield"),
            Field::UpdateId => f.write_str("update id"),
            Field::Expire => f.write_str("expire"),
            Field::Key => f.write_str("key"),
            Field::Value(t) => write!(f, "value of {}", t.name()),
            Field::DictId => f.write_str("server_key dictionary id"),
            Field::DictString => f.write_str("server_key dictionary string"),
        }
    }
}

/// A message HAProxy would treat as a protocol error (`01 00`, close).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// Class `0xff` is reserved.
    #[error("reserved message class 0xff (type {kind:#04x})")]
    ReservedClass { kind: u8 },
    /// The body ended inside a field.
    #[error("message body ends inside the {field}")]
    Truncated { field: Field },
    /// A varint field longer than 10 bytes or above 64 bits.
    #[error("invalid varint in the {field}: {source}")]
    BadVarint { field: Field, source: VarintError },
    /// A definition with an empty table name.
    #[error("table definition with an empty name")]
    EmptyTableName,
    /// A `server_key` slot id outside 1..=128.
    #[error("server_key dictionary id {id} is outside 1..=128")]
    DictId { id: u64 },
    /// A `server_key` value whose declared length does not match its content.
    #[error("server_key value declares {declared} bytes but its content uses {used}")]
    DictLength { declared: u64, used: u64 },
}

impl MessageError {
    /// What to send the peer before closing.
    pub fn reply(&self) -> [u8; 2] {
        REPLY_PROTOCOL_ERROR
    }
}

/// Why HAProxy would ignore a table definition (and drop the updates that follow it until the
/// next definition selects a table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionProblem {
    /// Key type code other than 2, 4, 5, 6, 7.
    UnknownKeyType(u64),
    /// A fixed-size key type with another length, or a string key of length 0.
    KeyLength { key_type: KeyType, len: u64 },
    /// An array type without the expire field, hence without its element count.
    ArrayWithoutParams(DataType),
    /// The parameter block of this type is missing, truncated, or names another type.
    BadParamBlock(DataType),
    /// An array element count over 100, which no HAProxy configuration can produce.
    ArrayLength { data_type: DataType, count: u64 },
}

impl fmt::Display for DefinitionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefinitionProblem::UnknownKeyType(c) => write!(f, "unknown key type code {c}"),
            DefinitionProblem::KeyLength { key_type, len } => {
                write!(
                    f,
                    "key length {len} is impossible for {} keys",
                    key_type.name()
                )
            }
            DefinitionProblem::ArrayWithoutParams(t) => {
                write!(f, "array type {} without parameter blocks", t.name())
            }
            DefinitionProblem::BadParamBlock(t) => {
                write!(f, "missing or malformed parameter block for {}", t.name())
            }
            DefinitionProblem::ArrayLength { data_type, count } => write!(
                f,
                "{} has {count} elements; HAProxy allows at most 100",
                data_type.name()
            ),
        }
    }
}

/// A message that cannot be encoded as asked.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// An update for a table that is not the one selected on the wire (send its definition first).
    #[error("update for table {table_id} but the selected table is {selected:?}: send its definition first")]
    TableNotSelected {
        table_id: u64,
        selected: Option<u64>,
    },
    /// An incremental update whose id is not the previous id of the table + 1.
    #[error(
        "incremental update {update_id} of table {table_id} does not follow the last id {last}"
    )]
    NotIncremental {
        table_id: u64,
        update_id: u32,
        last: u32,
    },
    #[error("key of type {found} for a table of {expected} keys", found = .found.name(), expected = .expected.name())]
    KeyType { expected: KeyType, found: KeyType },
    #[error("key of {len} bytes does not fit key length {key_len} of the definition")]
    KeyLength { len: usize, key_len: u64 },
    #[error("the definition stores {} but the update has no value for it", .0.name())]
    MissingValue(DataType),
    #[error("value for {} which the definition does not store, or out of id order", .0.name())]
    UnexpectedValue(DataType),
    #[error("value of {} has the wrong shape (expected {expected:?})", .data_type.name())]
    Shape {
        data_type: DataType,
        expected: Shape,
    },
    #[error("{} has {found} elements but the definition declares {expected}", .data_type.name())]
    ArrayLength {
        data_type: DataType,
        expected: u64,
        found: usize,
    },
    #[error("server_key slot {id} is not usable here (ids 1..=128; a reference needs the slot to hold the same string)")]
    DictSlot { id: u8 },
    #[error("definition stores {} but has no parameter block for it", .0.name())]
    MissingParam(DataType),
    #[error("definition has a parameter block for {} which it does not store, or blocks out of order", .0.name())]
    UnexpectedParam(DataType),
    #[error("definition stores array type {} and must then carry the expire field", .0.name())]
    ArrayNeedsExpire(DataType),
    #[error("definition with an empty table name")]
    EmptyTableName,
    #[error("message body of {len} bytes exceeds the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
    #[error(transparent)]
    Frame(#[from] FrameError),
}
