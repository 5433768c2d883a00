//! Hostile and random input for the handshake, frame and message decoders (no panic, a typed
//! error or "incomplete", bounded memory), and round-trip properties of the encoders.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Bytes, BytesMut};
use haproxy_peers_sidecar::codec::framing::{REPLY_PROTOCOL_ERROR, REPLY_SIZE_LIMIT};
use haproxy_peers_sidecar::codec::handshake::MAX_LINE_LEN;
use haproxy_peers_sidecar::codec::{
    check_hello, decode_hello, decode_status, early_status, varint, Ack, Control, DataType,
    DataTypeSet, DefinitionProblem, DictValue, EncodeError, Frame, FrameCodec, FrameError,
    FreqCounter, HandshakeError, IdForm, IgnoreReason, Ignored, Key, KeyType, Message,
    MessageError, ParamBlock, RxState, Shape, StatusCode, TableDefinition, TxState, Update, Value,
    ALL_DATA_TYPES, DEFAULT_MAX_BODY,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn decode_frames(bytes: &[u8], max: usize) -> (Vec<Frame>, Result<(), FrameError>, BytesMut) {
    let mut codec = FrameCodec::with_max_body(max);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return (out, Ok(()), buf),
            Err(e) => return (out, Err(e), buf),
        }
    }
}

fn frame(class: u8, kind: u8, body: &[u8]) -> Frame {
    Frame {
        class,
        kind,
        body: Bytes::copy_from_slice(body),
    }
}

// ---------------------------------------------------------------------------------------------
// Generators of valid messages.

fn key_strategy(key_type: KeyType, key_len: u64) -> BoxedStrategy<Key> {
    match key_type {
        KeyType::Integer => any::<u32>().prop_map(Key::Integer).boxed(),
        KeyType::Ipv4 => any::<[u8; 4]>()
            .prop_map(|o| Key::Ipv4(Ipv4Addr::from(o)))
            .boxed(),
        KeyType::Ipv6 => any::<[u8; 16]>()
            .prop_map(|o| Key::Ipv6(Ipv6Addr::from(o)))
            .boxed(),
        KeyType::String => proptest::collection::vec(any::<u8>(), 0..key_len as usize)
            .prop_map(|v| Key::String(Bytes::from(v)))
            .boxed(),
        KeyType::Binary => proptest::collection::vec(any::<u8>(), key_len as usize)
            .prop_map(|v| Key::Binary(Bytes::from(v)))
            .boxed(),
    }
}

fn key_type_and_len() -> impl Strategy<Value = (KeyType, u64)> {
    prop_oneof![
        Just((KeyType::Integer, 4)),
        Just((KeyType::Ipv4, 4)),
        Just((KeyType::Ipv6, 16)),
        (1u64..40).prop_map(|n| (KeyType::String, n)),
        (1u64..40).prop_map(|n| (KeyType::Binary, n)),
    ]
}

prop_compose! {
    fn definition_strategy()(
        table_id in 0u64..300,
        name in proptest::collection::vec(any::<u8>(), 1..40),
        (key_type, key_len) in key_type_and_len(),
        bits in any::<u32>(),
        with_expire in any::<bool>(),
        expire in any::<u64>(),
        counts in proptest::collection::vec(0u64..6, 3),
        periods in proptest::collection::vec(any::<u64>(), 27),
    ) -> TableDefinition {
        let mut types = DataTypeSet(u64::from(bits) & DataTypeSet::KNOWN_MASK);
        let has_array = types.known().any(|t| t.is_array());
        let expire_ms = (with_expire || has_array).then_some(expire);
        if expire_ms.is_none() {
            types = DataTypeSet(types.0 & !DataType::Gpt.bit() & !DataType::Gpc.bit() & !DataType::GpcRate.bit());
        }
        let params = if expire_ms.is_some() {
            types
                .known()
                .filter(|t| t.has_param_block())
                .map(|t| ParamBlock {
                    data_type: t,
                    count: t.is_array().then(|| counts[usize::from(t.id()) - 22]),
                    period_ms: t.is_freq().then(|| periods[usize::from(t.id())]),
                })
                .collect()
        } else {
            Vec::new()
        };
        TableDefinition {
            table_id,
            name: Bytes::from(name),
            key_type,
            key_len,
            data_types: types,
            expire_ms,
            params,
            trailing: Bytes::new(),
        }
    }
}

fn freq_strategy() -> impl Strategy<Value = FreqCounter> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(elapsed, curr, prev)| FreqCounter {
        elapsed,
        curr,
        prev,
    })
}

/// A value of type `t` for definition `def`. Dictionary values are strings to be sent with
/// their definition form in slot `slot`, or absent.
fn value_strategy(t: DataType, def: &TableDefinition, slot: u8) -> BoxedStrategy<Value> {
    let n = def.array_len(t).unwrap_or(0) as usize;
    match t.shape() {
        Shape::Sint => any::<i32>().prop_map(Value::Sint).boxed(),
        Shape::Uint => any::<u32>().prop_map(Value::Uint).boxed(),
        Shape::Ull => any::<u64>().prop_map(Value::Ull).boxed(),
        Shape::Freq => freq_strategy().prop_map(Value::Freq).boxed(),
        Shape::Dict => proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30))
            .prop_map(move |v| {
                Value::Dict(match v {
                    None => DictValue::Absent,
                    Some(s) => DictValue::Define {
                        id: slot,
                        value: Bytes::from(s),
                    },
                })
            })
            .boxed(),
        Shape::UintArray => proptest::collection::vec(any::<u32>(), n)
            .prop_map(Value::UintArray)
            .boxed(),
        Shape::FreqArray => proptest::collection::vec(freq_strategy(), n)
            .prop_map(Value::FreqArray)
            .boxed(),
    }
}

fn update_strategy(def: TableDefinition) -> BoxedStrategy<(TableDefinition, Update)> {
    let values: Vec<BoxedStrategy<(DataType, Value)>> = def
        .data_types
        .known()
        .map(|t| value_strategy(t, &def, 1).prop_map(move |v| (t, v)).boxed())
        .collect();
    (
        key_strategy(def.key_type, def.key_len),
        values,
        any::<u32>(),
        any::<bool>(),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(move |(key, values, update_id, id_on_wire, expire_ms)| {
            let update = Update {
                table_id: def.table_id,
                update_id,
                id_on_wire,
                expire_ms,
                key,
                values,
                trailing: Bytes::new(),
            };
            (def.clone(), update)
        })
        .boxed()
}

fn def_and_update() -> impl Strategy<Value = (TableDefinition, Update)> {
    definition_strategy().prop_flat_map(update_strategy)
}

/// Encodes a definition then its update exactly (an incremental update gets the id its
/// receiver will compute: first update of the table, so 1).
fn encode_pair(def: &TableDefinition, update: &mut Update) -> BytesMut {
    if !update.id_on_wire {
        update.update_id = 1;
    }
    let mut tx = TxState::new();
    let mut out = BytesMut::new();
    tx.encode(&Message::Definition(def.clone()), &mut out)
        .unwrap();
    tx.encode(&Message::Update(update.clone()), &mut out)
        .unwrap();
    out
}

fn decode_stream(bytes: &[u8]) -> Result<Vec<Message>, String> {
    let (frames, res, rest) = decode_frames(bytes, DEFAULT_MAX_BODY);
    res.map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes left", rest.len()));
    }
    let mut rx = RxState::new();
    frames
        .iter()
        .map(|f| rx.decode(f).map_err(|e| e.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Properties.

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn varint_roundtrips_every_u64(v in any::<u64>()) {
        let mut out = Vec::new();
        varint::encode(v, &mut out);
        prop_assert_eq!(out.len(), varint::encoded_len(v));
        prop_assert!(out.len() <= varint::MAX_LEN);
        prop_assert_eq!(varint::decode(&out), Ok(Some((v, out.len()))));
        for n in 0..out.len() {
            prop_assert_eq!(varint::decode(&out[..n]), Ok(None));
        }
    }

    #[test]
    fn varint_decode_of_random_bytes_is_bounded(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
        match varint::decode(&bytes) {
            Ok(Some((v, used))) => {
                prop_assert!(used <= varint::MAX_LEN && used <= bytes.len());
                // The encoding is unique: it re-encodes to the same bytes.
                let mut out = Vec::new();
                varint::encode(v, &mut out);
                prop_assert_eq!(&out[..], &bytes[..used]);
            }
            Ok(None) => prop_assert!(bytes.len() < varint::MAX_LEN),
            Err(_) => prop_assert!(bytes.len() >= 2),
        }
    }

    #[test]
    fn handshake_decoders_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        match decode_hello(&bytes) {
            Ok(Some((lines, used))) => {
                prop_assert!(used <= bytes.len() && bytes[used - 1] == b'\n');
                for l in [&lines.version, &lines.remote_name, &lines.peer] {
                    prop_assert!(l.len() <= MAX_LINE_LEN);
                }
                let _ = check_hello(&lines, "A", |n| n == "B");
            }
            Ok(None) => prop_assert!(bytes.iter().filter(|b| **b == b'\n').count() < 3),
            Err(HandshakeError::LineTooLong { max, .. }) => {
                prop_assert_eq!(max, MAX_LINE_LEN);
                prop_assert!(bytes.len() > MAX_LINE_LEN);
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
        let _ = early_status(&bytes, "A");
        match decode_status(&bytes) {
            Ok(Some((_, used))) => prop_assert!(used <= bytes.len()),
            Ok(None) | Err(HandshakeError::LineTooLong { .. } | HandshakeError::BadStatusLine { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn wrong_versions_get_502(major in any::<u32>(), minor in any::<u32>(), garbage in "[ .a-z]{0,6}") {
        let hello = format!("HAProxyS {major}.{minor}{garbage}\nA\nB 1 1\n");
        let (lines, _) = decode_hello(hello.as_bytes()).unwrap().unwrap();
        let supported = major == 2 && minor <= 1 && garbage.is_empty();
        match check_hello(&lines, "A", |n| n == "B") {
            Ok(h) => prop_assert!(supported && h.version.minor == minor),
            Err(code) => {
                prop_assert!(!supported);
                prop_assert_eq!(code, StatusCode::BadVersion);
            }
        }
    }

    #[test]
    fn truncated_hellos_are_incomplete(cut in 0usize..30) {
        let hello = b"HAProxyS 2.1\nA\nB 1234 1\n";
        let cut = cut.min(hello.len() - 1);
        prop_assert_eq!(decode_hello(&hello[..cut]), Ok(None));
    }

    #[test]
    fn frame_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000), max in 0usize..3000) {
        let cap_before = bytes.len();
        let (frames, res, rest) = decode_frames(&bytes, max);
        let consumed: usize = frames.iter().map(Frame::encoded_len).sum();
        prop_assert_eq!(consumed + rest.len(), bytes.len());
        for f in &frames {
            prop_assert!(f.body.len() <= max);
            prop_assert_eq!(f.has_body(), f.kind & 0x80 != 0);
        }
        // Reservation is bounded by the limit, never by a declared length.
        prop_assert!(rest.capacity() <= 2 * (cap_before + max + 16));
        match res {
            Ok(()) => {}
            Err(FrameError::TooLong { len, max: m }) => {
                prop_assert!(len > max as u64 && m == max);
            }
            Err(FrameError::BadLength(_)) => {}
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }

    #[test]
    fn huge_declared_lengths_never_reserve(len in (DEFAULT_MAX_BODY as u64 + 1)..=u64::MAX, class in any::<u8>(), kind in 0x80u8..=0xff) {
        let mut bytes = vec![class, kind];
        varint::encode(len, &mut bytes);
        let mut buf = BytesMut::with_capacity(bytes.len());
        buf.extend_from_slice(&bytes);
        let cap = buf.capacity();
        let err = FrameCodec::new().decode(&mut buf).unwrap_err();
        prop_assert_eq!(buf.capacity(), cap);
        match err {
            FrameError::TooLong { .. } => prop_assert_eq!(err.reply(), Some(REPLY_SIZE_LIMIT)),
            // Lengths of 6+ bytes are malformed before they are too long.
            FrameError::BadLength(_) => {
                prop_assert!(varint::encoded_len(len) > 5);
                prop_assert_eq!(err.reply(), Some(REPLY_PROTOCOL_ERROR));
            }
            other => prop_assert!(false, "unexpected {other}"),
        }
    }

    #[test]
    fn message_decoder_takes_any_frame(
        prelude in proptest::collection::vec(def_and_update(), 0..3),
        frames in proptest::collection::vec((any::<u8>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..200)), 1..20),
    ) {
        let mut rx = RxState::new();
        for (def, _) in &prelude {
            let mut body = BytesMut::new();
            TxState::new().encode(&Message::Definition(def.clone()), &mut body).unwrap();
            let (f, res, _) = decode_frames(&body, DEFAULT_MAX_BODY);
            res.unwrap();
            prop_assert!(matches!(rx.decode(&f[0]), Ok(Message::Definition(_))));
        }
        for (class, kind, body) in frames {
            // Pick mostly stick-table frames so that the update paths are exercised.
            let class = if class < 200 { 0x0a } else { class };
            let kind = kind | if body.is_empty() { 0 } else { 0x80 };
            let f = frame(class, kind, if kind & 0x80 != 0 { &body } else { &[] });
            match rx.decode(&f) {
                Ok(Message::Ignored(i)) => prop_assert_eq!(i.frame, f),
                Ok(_) => {}
                Err(e) => {
                    prop_assert_eq!(e.reply(), REPLY_PROTOCOL_ERROR);
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic((def, mut update) in def_and_update(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let bytes = encode_pair(&def, &mut update);
        let mut bytes = bytes.to_vec();
        for (at, x) in flips {
            let i = at % bytes.len();
            bytes[i] ^= x;
        }
        let _ = decode_stream(&bytes);
    }

    #[test]
    fn truncated_update_bodies_are_protocol_errors((def, mut update) in def_and_update()) {
        let bytes = encode_pair(&def, &mut update);
        let (frames, res, _) = decode_frames(&bytes, DEFAULT_MAX_BODY);
        res.unwrap();
        let body = frames[1].body.clone();
        for cut in 0..body.len() {
            let mut rx = RxState::new();
            rx.decode(&frames[0]).unwrap();
            let short = Frame { class: frames[1].class, kind: frames[1].kind, body: body.slice(..cut) };
            match rx.decode(&short) {
                Err(MessageError::Truncated { .. }) => {}
                other => prop_assert!(false, "cut {cut} of {}: {other:?}", body.len()),
            }
        }
    }

    #[test]
    fn valid_messages_roundtrip((def, mut update) in def_and_update(), ack in (any::<u64>(), any::<u32>())) {
        let mut out = encode_pair(&def, &mut update);
        let mut tx = TxState::new();
        let extra = [
            Message::Ack(Ack { table_id: ack.0, update_id: ack.1 }),
            Message::Control(Control::ResyncFinished),
            Message::Switch { table_id: def.table_id },
        ];
        for m in &extra {
            tx.encode(m, &mut out).unwrap();
        }
        let decoded = decode_stream(&out).unwrap();
        let mut expected = vec![Message::Definition(def), Message::Update(update)];
        expected.extend(extra);
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn chosen_forms_decode_to_the_same_entries(
        (def, updates) in definition_strategy().prop_flat_map(|d| {
            let one = update_strategy(d.clone()).prop_map(|(_, u)| u);
            (Just(d), proptest::collection::vec(one, 1..12))
        }),
        names in proptest::collection::vec(0usize..4, 12),
        incremental in any::<bool>(),
    ) {
        let mut tx = TxState::new();
        let mut out = BytesMut::new();
        let form = if incremental { IdForm::IncrementalWhenNext } else { IdForm::Explicit };
        let mut sent = Vec::new();
        for (i, mut u) in updates.into_iter().enumerate() {
            // Few distinct server names, so that references are used.
            for (t, v) in &mut u.values {
                if *t == DataType::ServerKey {
                    *v = Value::Dict(DictValue::Define { id: 99, value: Bytes::from(format!("srv{}", names[i])) });
                }
            }
            u.update_id = i as u32 + 7;
            tx.encode_update(&def, &u, form, &mut out).unwrap();
            sent.push(u);
        }
        let decoded = decode_stream(&out).unwrap();
        // One definition first, then only updates.
        prop_assert!(matches!(&decoded[0], Message::Definition(d) if *d == def));
        prop_assert_eq!(decoded.len(), sent.len() + 1);
        let mut seen = std::collections::HashSet::new();
        for (m, u) in decoded[1..].iter().zip(&sent) {
            let Message::Update(got) = m else { panic!("{m:?}") };
            prop_assert_eq!(got.update_id, u.update_id);
            prop_assert_eq!(got.id_on_wire, !incremental || got.update_id == 7);
            prop_assert_eq!(&got.key, &u.key);
            prop_assert_eq!(got.values.len(), u.values.len());
            for ((t1, v1), (t2, v2)) in got.values.iter().zip(&u.values) {
                prop_assert_eq!(t1, t2);
                match (v1, v2) {
                    (Value::Dict(a), Value::Dict(b)) => {
                        prop_assert_eq!(a.value(), b.value());
                        if let Some(s) = a.value() {
                            // The second use of a string is a reference.
                            prop_assert_eq!(matches!(a, DictValue::Ref { .. }), !seen.insert(s.clone()));
                        }
                    }
                    _ => prop_assert_eq!(v1, v2),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Specific hostile cases (§3.4, §4.1, §6.5).

fn rx_with(def: &TableDefinition) -> RxState {
    let mut out = BytesMut::new();
    TxState::new()
        .encode(&Message::Definition(def.clone()), &mut out)
        .unwrap();
    let (f, ..) = decode_frames(&out, DEFAULT_MAX_BODY);
    let mut rx = RxState::new();
    rx.decode(&f[0]).unwrap();
    rx
}

/// An explicit-id update of key "k" in a string table.
fn update_k(table_id: u64, update_id: u32, values: Vec<(DataType, Value)>) -> Update {
    Update {
        table_id,
        update_id,
        id_on_wire: true,
        expire_ms: None,
        key: Key::String(Bytes::from_static(b"k")),
        values,
        trailing: Bytes::new(),
    }
}

fn string_table(types: &[DataType]) -> TableDefinition {
    TableDefinition {
        table_id: 3,
        name: Bytes::from_static(b"t_str"),
        key_type: KeyType::String,
        key_len: 33,
        data_types: DataTypeSet::of(types),
        expire_ms: Some(60_000),
        params: Vec::new(),
        trailing: Bytes::new(),
    }
}

#[test]
fn unknown_classes_and_types_are_ignored_class_ff_is_an_error() {
    let mut rx = RxState::new();
    for (f, reason) in [
        (frame(0x00, 0x09, &[]), IgnoreReason::UnknownControlType),
        (frame(0x05, 0x01, &[]), IgnoreReason::UnknownClass),
        (
            frame(0x0a, 0x87, b"abc"),
            IgnoreReason::UnknownStickTableType,
        ),
        (frame(0x01, 0x07, &[]), IgnoreReason::UnknownErrorType),
        (
            frame(0x0a, 0x80, &[0, 0, 0, 1, 1]),
            IgnoreReason::NoTableSelected,
        ),
    ] {
        let Message::Ignored(i) = rx.decode(&f).unwrap() else {
            panic!("{f:?} not ignored")
        };
        assert_eq!((i.frame, i.reason), (f, reason));
    }
    assert_eq!(
        rx.decode(&frame(0xff, 0x00, &[])),
        Err(MessageError::ReservedClass { kind: 0 })
    );
    assert_eq!(
        rx.decode(&frame(0x01, 0x00, &[])),
        Ok(Message::Error(
            haproxy_peers_sidecar::codec::ErrorMessage::Protocol
        ))
    );
}

#[test]
fn definitions_haproxy_would_ignore_deselect_the_table() {
    let def = string_table(&[DataType::Gpc0]);
    let mut rx = rx_with(&def);
    let update = [0x0a, 0x80];
    let body = [0, 0, 0, 1, 2, b'k', b'1', 5];
    assert!(matches!(
        rx.decode(&frame(update[0], update[1], &body)),
        Ok(Message::Update(_))
    ));
    // Key type 9 does not exist: ignored, and nothing is selected any more.
    let bad = [3, 5, b't', b'_', b's', b't', b'r', 9, 4, 4, 0];
    assert_eq!(
        unusable(&mut rx, &bad),
        (3, DefinitionProblem::UnknownKeyType(9))
    );
    assert_eq!(rx.selected_table(), None);
    assert!(matches!(
        rx.decode(&frame(0x0a, 0x80, &body)),
        Ok(Message::Ignored(Ignored {
            reason: IgnoreReason::NoTableSelected,
            ..
        }))
    ));
    for (def_body, problem) in [
        // An array type without the expire field cannot be parsed.
        (
            &[4, 1, b'x', 6, 33, 0xf0, 0xf1, 0xfe, 0x0e][..],
            DefinitionProblem::ArrayWithoutParams(DataType::Gpt),
        ),
        // A frequency counter without its block after the expire.
        (
            &[4, 1, b'x', 6, 33, 0x20, 0x00][..],
            DefinitionProblem::BadParamBlock(DataType::ConnRate),
        ),
        // A block naming another type.
        (
            &[4, 1, b'x', 6, 33, 0x20, 0x00, 0x03, 0x10][..],
            DefinitionProblem::BadParamBlock(DataType::ConnRate),
        ),
        // An IPv4 table of key length 8.
        (
            &[4, 1, b'x', 4, 8, 4, 0][..],
            DefinitionProblem::KeyLength {
                key_type: KeyType::Ipv4,
                len: 8,
            },
        ),
    ] {
        assert_eq!(unusable(&mut rx, def_body), (4, problem));
    }
}

#[test]
fn absurd_array_lengths_make_a_definition_unusable() {
    // A definition is trusted to size every array of every later update; HAProxy's own
    // configuration stops at 100 elements, so more is refused before anything is sized by it.
    for (count, usable) in [
        (100u64, true),
        (101, false),
        (1 << 40, false),
        (u64::MAX, false),
    ] {
        let mut body = BytesMut::from(&[4, 1, b'x', 6, 33][..]);
        varint::encode(DataType::Gpt.bit(), &mut body);
        varint::encode(0, &mut body); // expire
        varint::encode(u64::from(DataType::Gpt.id()), &mut body);
        varint::encode(count, &mut body);
        let mut rx = RxState::new();
        let decoded = rx.decode(&frame(0x0a, 0x82, &body));
        if usable {
            assert!(
                matches!(decoded, Ok(Message::Definition(ref d)) if d.array_len(DataType::Gpt) == Some(count)),
                "{decoded:?}"
            );
        } else {
            assert_eq!(
                unusable(&mut RxState::new(), &body),
                (
                    4,
                    DefinitionProblem::ArrayLength {
                        data_type: DataType::Gpt,
                        count
                    }
                )
            );
        }
    }
}

/// Decodes a definition that must come back as ignored; its table id and problem.
fn unusable(rx: &mut RxState, body: &[u8]) -> (u64, DefinitionProblem) {
    match rx.decode(&frame(0x0a, 0x82, body)) {
        Ok(Message::Ignored(Ignored {
            reason:
                IgnoreReason::UnusableDefinition {
                    table_id, problem, ..
                },
            ..
        })) => (table_id, problem),
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_and_empty_definitions_are_protocol_errors() {
    let mut rx = RxState::new();
    assert_eq!(
        rx.decode(&frame(0x0a, 0x82, &[1, 0, 6, 33, 0])),
        Err(MessageError::EmptyTableName)
    );
    // The name must be followed by something (HAProxy: name end >= message end).
    assert!(matches!(
        rx.decode(&frame(0x0a, 0x82, &[1, 2, b'a', b'b'])),
        Err(MessageError::Truncated { .. })
    ));
    assert!(matches!(
        rx.decode(&frame(0x0a, 0x82, &[1, 2, b'a', b'b', 6, 33])),
        Err(MessageError::Truncated {
            field: haproxy_peers_sidecar::codec::Field::DataTypes
        })
    ));
    // The expire is optional: a definition ending after the bitfield is fine.
    let Message::Definition(d) = rx
        .decode(&frame(0x0a, 0x82, &[1, 2, b'a', b'b', 6, 33, 4]))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(d.expire_ms, None);
}

#[test]
fn unknown_high_types_are_kept_as_trailing_bytes() {
    // 2.6.12 accepted a definition with bit 40 set and an update with one extra byte.
    let mut def = string_table(&[DataType::Gpc0]);
    def.data_types.0 |= 1 << 40;
    def.trailing = Bytes::from_static(&[0x28, 0x07]);
    let mut out = BytesMut::new();
    let mut tx = TxState::new();
    tx.encode(&Message::Definition(def.clone()), &mut out)
        .unwrap();
    let update = Update {
        trailing: Bytes::from_static(&[0x2a]),
        ..update_k(3, 1, vec![(DataType::Gpc0, Value::Uint(5))])
    };
    tx.encode(&Message::Update(update.clone()), &mut out)
        .unwrap();
    let decoded = decode_stream(&out).unwrap();
    assert_eq!(decoded, [Message::Definition(def), Message::Update(update)]);
}

#[test]
fn string_keys_longer_than_the_table_are_cut_like_haproxy() {
    let mut rx = rx_with(&TableDefinition {
        key_len: 4,
        ..string_table(&[])
    });
    let Message::Update(u) = rx
        .decode(&frame(0x0a, 0x80, b"\0\0\0\x01\x06abcdef"))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(u.key, Key::String(Bytes::from_static(b"abc")));
    // The announced bytes must all be there, though.
    assert!(matches!(
        rx.decode(&frame(0x0a, 0x80, b"\0\0\0\x01\x06abc")),
        Err(MessageError::Truncated { .. })
    ));
}

#[test]
fn dictionary_ids_outside_1_to_128_are_protocol_errors() {
    let def = string_table(&[DataType::ServerKey]);
    for (value, err) in [
        (&[0x02, 0xf0, 0x10][..], MessageError::DictId { id: 496 }),
        (&[0x01, 0x00][..], MessageError::DictId { id: 0 }),
        (
            &[0x04, 0x81, 0x02, b's', b'1'][..],
            MessageError::DictId { id: 129 },
        ),
        (
            &[0x05, 0x01, 0x02, b's', b'1', 0x00][..],
            MessageError::DictLength {
                declared: 5,
                used: 4,
            },
        ),
    ] {
        let mut rx = rx_with(&def);
        let mut body = b"\0\0\0\x01\x01k".to_vec();
        body.extend_from_slice(value);
        assert_eq!(rx.decode(&frame(0x0a, 0x80, &body)), Err(err));
    }
    // A reference to a slot never defined resolves to nothing (HAProxy stores nothing).
    let mut rx = rx_with(&def);
    let Message::Update(u) = rx
        .decode(&frame(0x0a, 0x80, b"\0\0\0\x01\x01k\x01\x05"))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        u.values,
        [(
            DataType::ServerKey,
            Value::Dict(DictValue::Ref { id: 5, value: None })
        )]
    );
}

#[test]
fn incremental_ids_follow_the_table_and_wrap() {
    let def = string_table(&[]);
    let mut rx = rx_with(&def);
    let ids: Vec<u32> = [
        frame(0x0a, 0x80, b"\xff\xff\xff\xfe\x01a"),
        frame(0x0a, 0x81, b"\x01b"),
        frame(0x0a, 0x86, b"\0\0\0\x05\x01c"),
    ]
    .iter()
    .map(|f| match rx.decode(f).unwrap() {
        Message::Update(u) => u.update_id,
        other => panic!("{other:?}"),
    })
    .collect();
    assert_eq!(ids, [u32::MAX - 1, u32::MAX, 0]);
    assert_eq!(rx.last_update_id(3), Some(0));
}

#[test]
fn encoder_refuses_what_the_receiver_would_decode_differently() {
    let def = string_table(&[DataType::Gpt0]);
    let mut tx = TxState::new();
    let mut out = BytesMut::new();
    let update = update_k(3, 5, vec![(DataType::Gpt0, Value::Uint(1))]);
    assert!(matches!(
        tx.encode(&Message::Update(update.clone()), &mut out),
        Err(EncodeError::TableNotSelected { .. })
    ));
    tx.encode(&Message::Definition(def.clone()), &mut out)
        .unwrap();
    let len = out.len();
    let incremental = Update {
        id_on_wire: false,
        ..update.clone()
    };
    assert!(matches!(
        tx.encode(&Message::Update(incremental), &mut out),
        Err(EncodeError::NotIncremental { last: 0, .. })
    ));
    let wrong_shape = Update {
        values: vec![(DataType::Gpt0, Value::Ull(1))],
        ..update.clone()
    };
    assert!(matches!(
        tx.encode(&Message::Update(wrong_shape), &mut out),
        Err(EncodeError::Shape { .. })
    ));
    let missing = Update {
        values: vec![],
        ..update.clone()
    };
    assert!(matches!(
        tx.encode(&Message::Update(missing), &mut out),
        Err(EncodeError::MissingValue(DataType::Gpt0))
    ));
    let long_key = Update {
        key: Key::String(Bytes::from(vec![b'x'; 33])),
        ..update.clone()
    };
    assert!(matches!(
        tx.encode(&Message::Update(long_key), &mut out),
        Err(EncodeError::KeyLength {
            len: 33,
            key_len: 33
        })
    ));
    assert_eq!(out.len(), len, "nothing written on error");
    // A reference to a slot that does not hold the string is refused.
    let dict_def = TableDefinition {
        table_id: 4,
        ..string_table(&[DataType::ServerKey])
    };
    tx.encode(&Message::Definition(dict_def), &mut out).unwrap();
    let with_ref = Update {
        table_id: 4,
        values: vec![(
            DataType::ServerKey,
            Value::Dict(DictValue::Ref {
                id: 1,
                value: Some(Bytes::from_static(b"s1")),
            }),
        )],
        ..update
    };
    assert!(matches!(
        tx.encode(&Message::Update(with_ref), &mut out),
        Err(EncodeError::DictSlot { id: 1 })
    ));
}

#[test]
fn oversized_messages_are_refused_by_the_encoder_and_the_dictionary_is_not_touched() {
    let def = string_table(&[DataType::ServerKey]);
    let mut tx = TxState::with_max_body(64);
    let mut out = BytesMut::new();
    let big = update_k(
        3,
        1,
        vec![(
            DataType::ServerKey,
            Value::Dict(DictValue::Define {
                id: 1,
                value: Bytes::from(vec![b's'; 100]),
            }),
        )],
    );
    assert!(matches!(
        tx.encode_update(&def, &big, IdForm::Explicit, &mut out),
        Err(EncodeError::TooLong { max: 64, .. })
    ));
    assert!(out.is_empty());
    // The slot was not taken: a small string now gets slot 1.
    let small = Update {
        values: vec![(
            DataType::ServerKey,
            Value::Dict(DictValue::Define {
                id: 9,
                value: Bytes::from_static(b"s1"),
            }),
        )],
        ..big
    };
    tx.encode_update(&def, &small, IdForm::Explicit, &mut out)
        .unwrap();
    let decoded = decode_stream(&out).unwrap();
    let Message::Update(u) = &decoded[1] else {
        panic!()
    };
    assert_eq!(
        u.values[0].1,
        Value::Dict(DictValue::Define {
            id: 1,
            value: Bytes::from_static(b"s1")
        })
    );
    // Frames over the limit are refused by the frame encoder as well.
    let mut codec = FrameCodec::with_max_body(4);
    let mut dst = BytesMut::new();
    assert!(matches!(
        codec.encode(frame(0x0a, 0x87, b"12345"), &mut dst),
        Err(FrameError::TooLong { len: 5, max: 4 })
    ));
    assert!(matches!(
        codec.encode(frame(0x00, 0x01, b"x"), &mut dst),
        Err(FrameError::BodyWithoutLengthBit { .. })
    ));
}

#[test]
fn dictionary_slots_are_reused_round_robin_after_128_strings() {
    let def = string_table(&[DataType::ServerKey]);
    let mut tx = TxState::new();
    let mut out = BytesMut::new();
    let make = |i: u32, name: String| Update {
        table_id: 3,
        update_id: i,
        id_on_wire: true,
        expire_ms: None,
        key: Key::String(Bytes::from(format!("k{i}"))),
        values: vec![(
            DataType::ServerKey,
            Value::Dict(DictValue::Define {
                id: 1,
                value: Bytes::from(name),
            }),
        )],
        trailing: Bytes::new(),
    };
    for i in 0..129u32 {
        tx.encode_update(
            &def,
            &make(i, format!("srv{i}")),
            IdForm::Explicit,
            &mut out,
        )
        .unwrap();
    }
    // srv128 took slot 1 from srv0; srv1 is still in slot 2 and is referenced; srv0 comes back
    // into the next slot in turn (2), evicting srv1 although it was just used, like HAProxy.
    tx.encode_update(&def, &make(200, "srv1".into()), IdForm::Explicit, &mut out)
        .unwrap();
    tx.encode_update(&def, &make(201, "srv0".into()), IdForm::Explicit, &mut out)
        .unwrap();
    let decoded = decode_stream(&out).unwrap();
    let forms: Vec<&Value> = decoded[1..]
        .iter()
        .map(|m| match m {
            Message::Update(u) => &u.values[0].1,
            other => panic!("{other:?}"),
        })
        .collect();
    let slot = |v: &Value| match v {
        Value::Dict(DictValue::Define { id, .. }) => (*id, true),
        Value::Dict(DictValue::Ref { id, .. }) => (*id, false),
        other => panic!("{other:?}"),
    };
    assert_eq!(slot(forms[0]), (1, true));
    assert_eq!(slot(forms[127]), (128, true));
    assert_eq!(slot(forms[128]), (1, true));
    assert_eq!(slot(forms[129]), (2, false));
    assert_eq!(
        forms[130],
        &Value::Dict(DictValue::Define {
            id: 2,
            value: Bytes::from_static(b"srv0")
        })
    );
    assert_eq!(forms.len(), 131);
}

#[test]
fn a_definition_storing_every_type_roundtrips() {
    let mut def = string_table(&ALL_DATA_TYPES);
    def.params = ALL_DATA_TYPES
        .iter()
        .filter(|t| t.has_param_block())
        .map(|t| ParamBlock {
            data_type: *t,
            count: t.is_array().then_some(3),
            period_ms: t.is_freq().then_some(1000),
        })
        .collect();
    let mut update = Update::zeroed(&def, 9, Key::String(Bytes::from_static(b"all")));
    update.expire_ms = Some(1);
    assert_eq!(update.values.len(), 27);
    *update.value_mut(DataType::GpcRate).unwrap() = Value::FreqArray(vec![
        FreqCounter {
            elapsed: u32::MAX,
            curr: 1,
            prev: 2
        };
        3
    ]);
    let bytes = encode_pair(&def, &mut update);
    let decoded = decode_stream(&bytes).unwrap();
    assert_eq!(decoded, [Message::Definition(def), Message::Update(update)]);
}
