//! Keys and data types of stick-table entries (peers protocol §5, §6).

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;

/// Key type codes of a table definition (`PEER_KT_*`, §5). Codes 0, 1, 3 and ≥ 8 do not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `type integer`: 4 bytes big-endian.
    Integer,
    /// `type ip` / `ipv4`: 4 bytes, network order.
    Ipv4,
    /// `type ipv6`: 16 bytes, network order.
    Ipv6,
    /// `type string [len N]`: varint length + bytes; key length in the definition is N + 1.
    String,
    /// `type binary [len N]`: exactly key-length bytes.
    Binary,
}

impl KeyType {
    /// The code carried in a definition.
    pub fn wire_code(self) -> u64 {
        match self {
            KeyType::Integer => 2,
            KeyType::Ipv4 => 4,
            KeyType::Ipv6 => 5,
            KeyType::String => 6,
            KeyType::Binary => 7,
        }
    }

    /// The key type for a definition code, if it is one of the five that exist.
    pub fn from_wire(code: u64) -> Option<KeyType> {
        match code {
            2 => Some(KeyType::Integer),
            4 => Some(KeyType::Ipv4),
            5 => Some(KeyType::Ipv6),
            6 => Some(KeyType::String),
            7 => Some(KeyType::Binary),
            _ => None,
        }
    }

    /// The key length a definition of this type must carry, for fixed-size types.
    pub fn fixed_len(self) -> Option<u64> {
        match self {
            KeyType::Integer | KeyType::Ipv4 => Some(4),
            KeyType::Ipv6 => Some(16),
            KeyType::String | KeyType::Binary => None,
        }
    }

    /// Name as in the HAProxy configuration.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Integer => "integer",
            KeyType::Ipv4 => "ip",
            KeyType::Ipv6 => "ipv6",
            KeyType::String => "string",
            KeyType::Binary => "binary",
        }
    }
}

/// A stick-table key as carried in an update.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// `integer` tables: a 32-bit value, shown unsigned by HAProxy.
    Integer(u32),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    /// `string` tables: the bytes without NUL. A receiver keeps at most key length − 1 bytes.
    String(Bytes),
    /// `binary` tables: exactly key-length bytes (HAProxy zero-pads).
    Binary(Bytes),
}

impl Key {
    /// The key type this key belongs to.
    pub fn key_type(&self) -> KeyType {
        match self {
            Key::Integer(_) => KeyType::Integer,
            Key::Ipv4(_) => KeyType::Ipv4,
            Key::Ipv6(_) => KeyType::Ipv6,
            Key::String(_) => KeyType::String,
            Key::Binary(_) => KeyType::Binary,
        }
    }
}

/// How a data type's value is laid out on the wire (§6.1 "wire shape").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Signed 32-bit, sent sign-extended to 64 bits as a varint.
    Sint,
    /// Unsigned 32-bit varint.
    Uint,
    /// Unsigned 64-bit varint.
    Ull,
    /// Frequency counter: three varints `elapsed`, `curr`, `prev`.
    Freq,
    /// Dictionary reference (`server_key`, §6.5).
    Dict,
    /// Array of `Uint`, element count from the definition.
    UintArray,
    /// Array of `Freq`, element count from the definition.
    FreqArray,
}

/// HAProxy version line in which a data type first exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Since {
    /// Known to 2.6 (ids 0..=24).
    V2_6,
    /// Added in 3.0 (`glitch_cnt`, `glitch_rate`); 2.6 skips them as trailing bytes.
    V3_0,
}

/// Number of data types known (ids 0..=26).
pub const DATA_TYPE_COUNT: u8 = 27;

macro_rules! data_types {
    ($($variant:ident = $id:literal, $name:literal, $shape:ident, $since:ident;)*) => {
        /// The 27 stick-table data types; the discriminant is the wire id (bit number in the
        /// definition bitfield, position in the value sequence).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(u8)]
        pub enum DataType { $($variant = $id,)* }

        /// Every data type in id order.
        pub const ALL_DATA_TYPES: [DataType; DATA_TYPE_COUNT as usize] = [$(DataType::$variant,)*];

        impl DataType {
            /// The data type with this wire id, if known.
            pub fn from_id(id: u64) -> Option<DataType> {
                match id { $($id => Some(DataType::$variant),)* _ => None }
            }
            /// The `store` keyword (array types without their `(n)`).
            pub fn name(self) -> &'static str {
                match self { $(DataType::$variant => $name,)* }
            }
            /// The wire shape of the value.
            pub fn shape(self) -> Shape {
                match self { $(DataType::$variant => Shape::$shape,)* }
            }
            /// First HAProxy version that knows this type.
            pub fn since(self) -> Since {
                match self { $(DataType::$variant => Since::$since,)* }
            }
        }
    };
}

data_types! {
    ServerId = 0, "server_id", Sint, V2_6;
    Gpt0 = 1, "gpt0", Uint, V2_6;
    Gpc0 = 2, "gpc0", Uint, V2_6;
    Gpc0Rate = 3, "gpc0_rate", Freq, V2_6;
    ConnCnt = 4, "conn_cnt", Uint, V2_6;
    ConnRate = 5, "conn_rate", Freq, V2_6;
    ConnCur = 6, "conn_cur", Uint, V2_6;
    SessCnt = 7, "sess_cnt", Uint, V2_6;
    SessRate = 8, "sess_rate", Freq, V2_6;
    HttpReqCnt = 9, "http_req_cnt", Uint, V2_6;
    HttpReqRate = 10, "http_req_rate", Freq, V2_6;
    HttpErrCnt = 11, "http_err_cnt", Uint, V2_6;
    HttpErrRate = 12, "http_err_rate", Freq, V2_6;
    BytesInCnt = 13, "bytes_in_cnt", Ull, V2_6;
    BytesInRate = 14, "bytes_in_rate", Freq, V2_6;
    BytesOutCnt = 15, "bytes_out_cnt", Ull, V2_6;
    BytesOutRate = 16, "bytes_out_rate", Freq, V2_6;
    Gpc1 = 17, "gpc1", Uint, V2_6;
    Gpc1Rate = 18, "gpc1_rate", Freq, V2_6;
    ServerKey = 19, "server_key", Dict, V2_6;
    HttpFailCnt = 20, "http_fail_cnt", Uint, V2_6;
    HttpFailRate = 21, "http_fail_rate", Freq, V2_6;
    Gpt = 22, "gpt", UintArray, V2_6;
    Gpc = 23, "gpc", UintArray, V2_6;
    GpcRate = 24, "gpc_rate", FreqArray, V2_6;
    GlitchCnt = 25, "glitch_cnt", Uint, V3_0;
    GlitchRate = 26, "glitch_rate", Freq, V3_0;
}

impl DataType {
    /// The wire id.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// The bit of this type in a definition bitfield.
    pub fn bit(self) -> u64 {
        1u64 << self.id()
    }

    /// The data type with this `store` name (`gpt`, not `gpt(3)`).
    pub fn from_name(name: &str) -> Option<DataType> {
        ALL_DATA_TYPES.iter().copied().find(|t| t.name() == name)
    }

    /// Frequency counters, including the `gpc_rate` array: their definition block has a period.
    pub fn is_freq(self) -> bool {
        matches!(self.shape(), Shape::Freq | Shape::FreqArray)
    }

    /// Array types: their definition block has an element count.
    pub fn is_array(self) -> bool {
        matches!(self.shape(), Shape::UintArray | Shape::FreqArray)
    }

    /// Whether a definition carries a parameter block for this type (§4.1).
    pub fn has_param_block(self) -> bool {
        self.is_freq() || self.is_array()
    }

    /// `conn_cur`: sent, but a receiver does not store it (local-only; 3.2+ `recv-only` tables
    /// excepted).
    pub fn is_local_only(self) -> bool {
        self == DataType::ConnCur
    }
}

/// The data-type bitfield of a definition: bit *n* set ⇔ type *n* is stored. Bits ≥ 27 are types
/// this codec does not know; they are kept so that a definition re-encodes to the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DataTypeSet(pub u64);

impl DataTypeSet {
    /// Mask of the bits of known types.
    pub const KNOWN_MASK: u64 = (1u64 << DATA_TYPE_COUNT) - 1;

    /// The set holding exactly these types.
    pub fn of(types: &[DataType]) -> DataTypeSet {
        DataTypeSet(types.iter().fold(0, |acc, t| acc | t.bit()))
    }

    pub fn contains(self, t: DataType) -> bool {
        self.0 & t.bit() != 0
    }

    /// Known types in the set, ascending id.
    pub fn known(self) -> impl Iterator<Item = DataType> {
        // Runs twice per relayed update (decode, encode): visit the set bits only.
        let mut bits = self.0 & Self::KNOWN_MASK;
        std::iter::from_fn(move || {
            let id = bits.trailing_zeros();
            bits &= bits.wrapping_sub(1);
            ALL_DATA_TYPES.get(usize::try_from(id).ok()?).copied()
        })
    }

    /// Whether bits of types unknown to this codec are set.
    pub fn has_unknown(self) -> bool {
        self.0 & !Self::KNOWN_MASK != 0
    }
}

/// A frequency counter exactly as on the wire (§6.3): the age of the current period in ms on the
/// sender's clock (u32 arithmetic), and the events of the current and previous periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FreqCounter {
    pub elapsed: u32,
    pub curr: u32,
    pub prev: u32,
}

/// A `server_key` value and the wire form it used (§6.5). Slot ids are 1..=128.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DictValue {
    /// `L = 0`: the entry has no server key.
    Absent,
    /// Reference to a string sent earlier in this session under `id`. `value` is the string the
    /// slot held when decoded (`None`: empty slot, which HAProxy treats as "store nothing").
    Ref { id: u8, value: Option<Bytes> },
    /// The string itself, stored into slot `id` and used.
    Define { id: u8, value: Bytes },
}

impl DictValue {
    /// The resolved string, whatever the wire form.
    pub fn value(&self) -> Option<&Bytes> {
        match self {
            DictValue::Absent => None,
            DictValue::Ref { value, .. } => value.as_ref(),
            DictValue::Define { value, .. } => Some(value),
        }
    }
}

/// Number of dictionary slots per direction of a session (`PEER_STKT_CACHE_MAX_ENTRIES`).
pub const DICT_SLOTS: usize = 128;

/// One data type's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// `server_id`: received as a 64-bit varint and truncated to 32 bits like HAProxy; sent
    /// sign-extended (−1 becomes the 10-byte varint of `u64::MAX`).
    Sint(i32),
    /// 32-bit counters (`gpt0`, `gpc0`, `conn_cnt`, …); wider varints are truncated on receipt.
    Uint(u32),
    /// 64-bit counters (`bytes_in_cnt`, `bytes_out_cnt`).
    Ull(u64),
    Freq(FreqCounter),
    Dict(DictValue),
    /// `gpt`, `gpc`: the sender's element count.
    UintArray(Vec<u32>),
    /// `gpc_rate`: the sender's element count.
    FreqArray(Vec<FreqCounter>),
}

impl Value {
    /// The wire shape this value has.
    pub fn shape(&self) -> Shape {
        match self {
            Value::Sint(_) => Shape::Sint,
            Value::Uint(_) => Shape::Uint,
            Value::Ull(_) => Shape::Ull,
            Value::Freq(_) => Shape::Freq,
            Value::Dict(_) => Shape::Dict,
            Value::UintArray(_) => Shape::UintArray,
            Value::FreqArray(_) => Shape::FreqArray,
        }
    }

    /// Element count for arrays, `None` otherwise.
    pub fn array_len(&self) -> Option<usize> {
        match self {
            Value::UintArray(v) => Some(v.len()),
            Value::FreqArray(v) => Some(v.len()),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn ids_names_and_shapes_match_the_protocol_table() {
        for (i, t) in ALL_DATA_TYPES.iter().enumerate() {
            assert_eq!(usize::from(t.id()), i);
            assert_eq!(DataType::from_id(i as u64), Some(*t));
            assert_eq!(DataType::from_name(t.name()), Some(*t));
        }
        assert_eq!(DataType::from_id(27), None);
        let freq: Vec<u8> = ALL_DATA_TYPES
            .iter()
            .filter(|t| t.shape() == Shape::Freq)
            .map(|t| t.id())
            .collect();
        assert_eq!(freq, [3, 5, 8, 10, 12, 14, 16, 18, 21, 26]);
        assert_eq!(DataType::BytesInCnt.shape(), Shape::Ull);
        assert_eq!(DataType::BytesOutCnt.shape(), Shape::Ull);
        assert_eq!(DataType::ServerId.shape(), Shape::Sint);
        assert_eq!(DataType::ServerKey.shape(), Shape::Dict);
        assert!(DataType::GpcRate.is_array() && DataType::GpcRate.is_freq());
        assert!(DataType::Gpt.is_array() && !DataType::Gpt.is_freq());
        assert!(DataType::ConnCur.is_local_only());
        assert_eq!(
            ALL_DATA_TYPES.iter().filter(|t| t.is_local_only()).count(),
            1
        );
        assert_eq!(DataType::GlitchRate.since(), Since::V3_0);
        assert_eq!(DataType::GpcRate.since(), Since::V2_6);
    }

    #[test]
    fn bitfields_from_the_fixtures() {
        // t_ip of §4.1: 550 = gpt0, gpc0, conn_rate, http_req_cnt.
        let set = DataTypeSet(550);
        let got: Vec<DataType> = set.known().collect();
        assert_eq!(
            got,
            [
                DataType::Gpt0,
                DataType::Gpc0,
                DataType::ConnRate,
                DataType::HttpReqCnt
            ]
        );
        assert!(!set.has_unknown());
        assert!(DataTypeSet(1 << 40).has_unknown());
        assert_eq!(DataTypeSet::of(&got), set);
    }

    #[test]
    fn known_skips_unknown_bits_and_keeps_id_order() {
        for bits in [
            0,
            1,
            550,
            DataTypeSet::KNOWN_MASK,
            u64::MAX,
            (1 << 26) | (1 << 40),
        ] {
            let set = DataTypeSet(bits);
            let expected: Vec<DataType> = ALL_DATA_TYPES
                .into_iter()
                .filter(|t| set.contains(*t))
                .collect();
            assert_eq!(set.known().collect::<Vec<_>>(), expected, "bits {bits:#x}");
        }
    }

    #[test]
    fn key_type_codes() {
        for code in 0..10 {
            match KeyType::from_wire(code) {
                Some(t) => assert_eq!(t.wire_code(), code),
                None => assert!(matches!(code, 0 | 1 | 3 | 8 | 9)),
            }
        }
    }
}
