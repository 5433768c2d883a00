//! Sending side of one session: encodes [`Message`]s, keeping the receiver's view in step (the
//! selected table, the last update id per table, the `server_key` dictionary).

use std::collections::HashMap;

use bytes::BytesMut;

use super::dict::TxDict;
use super::error::EncodeError;
use super::framing::{encode_frame, put_frame_with, Frame, DEFAULT_MAX_BODY};
use super::message::{class, encode_definition_body, stkt, Message, TableDefinition, Update};
use super::update::{encode_update_body, DictMode};
use super::varint;

/// How [`TxState::encode_update`] picks the update form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdForm {
    /// Always `0a 80` / `0a 85` with the id on the wire (what HAProxy 3.3+ acks correctly).
    Explicit,
    /// `0a 81` / `0a 86` when the id is the table's previous id + 1, like HAProxy within a batch.
    IncrementalWhenNext,
}

/// Encoding state of one direction of a session.
#[derive(Debug, Clone)]
pub struct TxState {
    tables: HashMap<u64, TableDefinition>,
    selected: Option<u64>,
    last_ids: HashMap<u64, u32>,
    dict: TxDict,
    max_body: usize,
}

impl Default for TxState {
    fn default() -> Self {
        TxState::new()
    }
}

impl TxState {
    /// Bodies limited to [`DEFAULT_MAX_BODY`].
    pub fn new() -> TxState {
        TxState::with_max_body(DEFAULT_MAX_BODY)
    }

    pub fn with_max_body(max_body: usize) -> TxState {
        TxState {
            tables: HashMap::new(),
            selected: None,
            last_ids: HashMap::new(),
            dict: TxDict::default(),
            max_body,
        }
    }

    /// The table the receiver applies updates to.
    pub fn selected_table(&self) -> Option<u64> {
        self.selected
    }

    /// The last update id sent for a table.
    pub fn last_update_id(&self, table_id: u64) -> Option<u32> {
        self.last_ids.get(&table_id).copied()
    }

    /// Appends `msg` with exactly the wire forms it carries (update form, dictionary reference or
    /// definition and slot), after checking that the receiver will decode it to the same message:
    /// an update must be for the selected table, an incremental id must follow the previous one,
    /// a dictionary reference must name a slot holding that string. Nothing is written on error.
    pub fn encode(&mut self, msg: &Message, dst: &mut BytesMut) -> Result<(), EncodeError> {
        match msg {
            Message::Control(c) => put_bare(dst, class::CONTROL, c.wire_type()),
            Message::Error(e) => put_bare(dst, class::ERROR, e.wire_type()),
            Message::Definition(def) => self.put_definition(def, dst)?,
            Message::Switch { table_id } => {
                self.put_body(dst, class::STICK_TABLE, stkt::SWITCH, |d| {
                    varint::encode(*table_id, d);
                    Ok(())
                })?;
                self.selected = self.tables.contains_key(table_id).then_some(*table_id);
            }
            Message::Ack(ack) => self.put_body(dst, class::STICK_TABLE, stkt::ACK, |d| {
                varint::encode(ack.table_id, d);
                bytes::BufMut::put_u32(d, ack.update_id);
                Ok(())
            })?,
            Message::Update(update) => self.put_update(update, DictMode::AsGiven, dst)?,
            Message::Ignored(ignored) => self.put_frame(&ignored.frame, dst)?,
        }
        Ok(())
    }

    /// Appends `update` for table `def`, choosing the wire forms: the definition first when `def`
    /// is not the selected table (or changed), the id form per `ids`, dictionary references for
    /// strings already sent and round-robin slots for new ones. `update.id_on_wire`, its
    /// dictionary forms and `update.table_id` are ignored (the table is `def.table_id`).
    pub fn encode_update(
        &mut self,
        def: &TableDefinition,
        update: &Update,
        ids: IdForm,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let start = dst.len();
        let mut undo = None;
        if self.selected != Some(def.table_id) || self.tables.get(&def.table_id) != Some(def) {
            undo = Some((self.selected, self.tables.get(&def.table_id).cloned()));
            self.put_definition(def, dst)?;
        }
        let follows = self
            .last_ids
            .get(&def.table_id)
            .is_some_and(|last| last.wrapping_add(1) == update.update_id);
        let shaped = Update {
            table_id: def.table_id,
            id_on_wire: ids == IdForm::Explicit || !follows,
            ..update.clone()
        };
        let result = self.put_update(&shaped, DictMode::Choose, dst);
        if result.is_err() {
            // Neither the definition nor the update went out: the receiver's view is unchanged.
            dst.truncate(start);
            if let Some((selected, previous)) = undo {
                self.selected = selected;
                match previous {
                    Some(d) => self.tables.insert(def.table_id, d),
                    None => self.tables.remove(&def.table_id),
                };
            }
        }
        result
    }

    fn put_definition(
        &mut self,
        def: &TableDefinition,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.put_body(dst, class::STICK_TABLE, stkt::DEFINE, |d| {
            encode_definition_body(def, d)
        })?;
        self.tables.insert(def.table_id, def.clone());
        self.selected = Some(def.table_id);
        Ok(())
    }

    fn put_update(
        &mut self,
        update: &Update,
        mode: DictMode,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let def = match self.selected.and_then(|id| self.tables.get(&id)) {
            Some(def) if def.table_id == update.table_id => def,
            _ => {
                return Err(EncodeError::TableNotSelected {
                    table_id: update.table_id,
                    selected: self.selected,
                })
            }
        };
        let last = self.last_ids.get(&update.table_id).copied().unwrap_or(0);
        if !update.id_on_wire && last.wrapping_add(1) != update.update_id {
            return Err(EncodeError::NotIncremental {
                table_id: update.table_id,
                update_id: update.update_id,
                last,
            });
        }
        // Dictionary changes are undone when the message is not sent.
        let dict = &mut self.dict;
        dict.begin();
        let max = self.max_body;
        let start = dst.len();
        let written = put_frame_with(dst, class::STICK_TABLE, update.wire_type(), |d| {
            encode_update_body(update, def, mode, dict, d)
        });
        match written {
            Ok(len) if len <= max => {
                self.last_ids.insert(update.table_id, update.update_id);
                Ok(())
            }
            Ok(len) => {
                dst.truncate(start);
                dict.rollback();
                Err(EncodeError::TooLong { len, max })
            }
            Err(e) => {
                dict.rollback();
                Err(e)
            }
        }
    }

    fn put_body(
        &self,
        dst: &mut BytesMut,
        class: u8,
        kind: u8,
        body: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let start = dst.len();
        let body_len = put_frame_with(dst, class, kind, body)?;
        if body_len > self.max_body {
            dst.truncate(start);
            return Err(EncodeError::TooLong {
                len: body_len,
                max: self.max_body,
            });
        }
        Ok(())
    }

    fn put_frame(&self, frame: &Frame, dst: &mut BytesMut) -> Result<(), EncodeError> {
        if frame.body.len() > self.max_body {
            return Err(EncodeError::TooLong {
                len: frame.body.len(),
                max: self.max_body,
            });
        }
        encode_frame(frame, dst)?;
        Ok(())
    }
}

fn put_bare(dst: &mut BytesMut, class: u8, kind: u8) {
    bytes::BufMut::put_u8(dst, class);
    bytes::BufMut::put_u8(dst, kind);
}
