//! Counts the updates a session sends, per table, for the `updates_sent` metric. The session
//! reports only a total, so the shell reads its own output: definitions and table switches
//! name the table, update frames are counted without being decoded.

use bytes::Bytes;

use crate::codec::framing::peek_frame;
use crate::codec::message::{class, stkt};
use crate::codec::{Frame, RxState};

#[derive(Debug, Default)]
pub(crate) struct TxCount {
    tables: RxState,
}

impl TxCount {
    /// Updates per table name in `bytes`, which hold whole messages (as a session's
    /// `Output::Send` does).
    pub(crate) fn count(&mut self, bytes: &[u8]) -> Vec<(String, u64)> {
        // Counted by selected table id; names are resolved once per table at the end, not
        // once per update (this runs for every buffer a session sends).
        let mut by_id: Vec<(Option<u64>, u64)> = Vec::new();
        let mut at = 0usize;
        while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
            let Ok(Some((header, body_len))) = peek_frame(rest, usize::MAX) else {
                break;
            };
            let end = header.saturating_add(body_len);
            let (Some(&cls), Some(&kind), Some(body)) =
                (rest.first(), rest.get(1), rest.get(header..end))
            else {
                break;
            };
            at = at.saturating_add(end);
            if cls != class::STICK_TABLE {
                continue;
            }
            match kind {
                stkt::DEFINE | stkt::SWITCH => {
                    let frame = Frame {
                        class: cls,
                        kind,
                        body: Bytes::copy_from_slice(body),
                    };
                    let _ = self.tables.decode(&frame);
                }
                stkt::UPDATE | stkt::INCREMENTAL | stkt::UPDATE_TIMED | stkt::INCREMENTAL_TIMED => {
                    let id = self.tables.selected_table();
                    match by_id.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, c)) => *c = c.saturating_add(1),
                        None => by_id.push((id, 1)),
                    }
                }
                _ => {}
            }
        }
        let mut counts: Vec<(String, u64)> = Vec::new();
        for (id, n) in by_id {
            let name = id.and_then(|id| self.tables.definition(id)).map_or_else(
                || "?".to_owned(),
                |d| String::from_utf8_lossy(&d.name).into_owned(),
            );
            match counts.iter_mut().find(|(existing, _)| *existing == name) {
                Some((_, c)) => *c = c.saturating_add(n),
                None => counts.push((name, n)),
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{
        Control, DataType, DataTypeSet, IdForm, Key, KeyType, Message, TableDefinition, TxState,
        Update, Value,
    };
    use bytes::BytesMut;

    fn def(id: u64, name: &str) -> TableDefinition {
        TableDefinition {
            table_id: id,
            name: Bytes::copy_from_slice(name.as_bytes()),
            key_type: KeyType::Integer,
            key_len: 4,
            data_types: DataTypeSet::of(&[DataType::Gpt0]),
            expire_ms: Some(0),
            params: Vec::new(),
            trailing: Bytes::new(),
        }
    }

    fn update(table_id: u64, id: u32, key: u32) -> Update {
        Update {
            table_id,
            update_id: id,
            id_on_wire: true,
            expire_ms: None,
            key: Key::Integer(key),
            values: vec![(DataType::Gpt0, Value::Uint(key))],
            trailing: Bytes::new(),
        }
    }

    #[test]
    fn counts_updates_per_table_across_batches() {
        let mut tx = TxState::new();
        let (a, b) = (def(1, "be"), def(2, "/t1"));
        let mut buf = BytesMut::new();
        tx.encode(&Message::Definition(a.clone()), &mut buf)
            .unwrap();
        for i in 1..=3 {
            tx.encode_update(&a, &update(1, i, i), IdForm::IncrementalWhenNext, &mut buf)
                .unwrap();
        }
        tx.encode(&Message::Definition(b.clone()), &mut buf)
            .unwrap();
        tx.encode_update(&b, &update(2, 9, 9), IdForm::Explicit, &mut buf)
            .unwrap();
        tx.encode(&Message::Control(Control::Heartbeat), &mut buf)
            .unwrap();
        let mut count = TxCount::default();
        assert_eq!(
            count.count(&buf),
            [("be".to_owned(), 3), ("/t1".to_owned(), 1)]
        );
        // A later batch switches back to `be` without a new definition.
        let mut more = BytesMut::new();
        tx.encode_update(&a, &update(1, 4, 4), IdForm::Explicit, &mut more)
            .unwrap();
        assert_eq!(count.count(&more), [("be".to_owned(), 1)]);
        assert!(count.count(&[0x0a]).is_empty());
    }
}
