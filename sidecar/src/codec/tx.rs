//! Sending side of one session: encodes [`Message`]s, keeping the receiver's view in step (the
//! selected table, the last update id per table, the `server_key` dictionary).

use bytes::BytesMut;

use super::dict::TxDict;
use super::error::EncodeError;
use super::framing::{encode_frame, put_frame_with, Frame, DEFAULT_MAX_BODY};
use super::hashing::FastMap;
use super::message::{
    class, encode_definition_body, stkt, update_wire_type, Message, TableDefinition, Update,
};
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

/// How the update form of one update is decided.
#[derive(Debug, Clone, Copy)]
enum IdChoice {
    /// As the message says (`update.id_on_wire`), checked.
    AsGiven,
    /// Per [`IdForm`], from the table's last id.
    Pick(IdForm),
}

/// Encoding state of one direction of a session.
#[derive(Debug, Clone)]
pub struct TxState {
    /// By table id: one look-up per update finds both the definition and the last id.
    tables: FastMap<u64, TxTable>,
    selected: Option<u64>,
    dict: TxDict,
    max_body: usize,
}

/// What the receiver knows of a table id. The last id outlives a withdrawn definition.
#[derive(Debug, Clone, Default)]
struct TxTable {
    def: Option<TableDefinition>,
    last_id: Option<u32>,
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
            tables: FastMap::default(),
            selected: None,
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
        self.tables.get(&table_id).and_then(|t| t.last_id)
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
                self.selected = self.defined(*table_id).is_some().then_some(*table_id);
            }
            Message::Ack(ack) => self.put_body(dst, class::STICK_TABLE, stkt::ACK, |d| {
                varint::encode(ack.table_id, d);
                bytes::BufMut::put_u32(d, ack.update_id);
                Ok(())
            })?,
            Message::Update(update) => {
                let id = update.table_id;
                self.put_update(id, update, IdChoice::AsGiven, DictMode::AsGiven, dst)?;
            }
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
        let sent = self.defined(def.table_id);
        if self.selected != Some(def.table_id) || sent != Some(def) {
            undo = Some((self.selected, sent.cloned()));
            self.put_definition(def, dst)?;
        }
        let id = def.table_id;
        let result = self.put_update(id, update, IdChoice::Pick(ids), DictMode::Choose, dst);
        if result.is_err() {
            // Neither the definition nor the update went out: the receiver's view is unchanged.
            dst.truncate(start);
            if let Some((selected, previous)) = undo {
                self.selected = selected;
                if let Some(t) = self.tables.get_mut(&id) {
                    t.def = previous;
                }
            }
        }
        result
    }

    /// The definition the receiver holds for `table_id`.
    fn defined(&self, table_id: u64) -> Option<&TableDefinition> {
        self.tables.get(&table_id).and_then(|t| t.def.as_ref())
    }

    fn put_definition(
        &mut self,
        def: &TableDefinition,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        self.put_body(dst, class::STICK_TABLE, stkt::DEFINE, |d| {
            encode_definition_body(def, d)
        })?;
        self.tables.entry(def.table_id).or_default().def = Some(def.clone());
        self.selected = Some(def.table_id);
        Ok(())
    }

    /// Appends `update` as an update of table `table_id` (whatever `update.table_id` says),
    /// which must be the selected table.
    fn put_update(
        &mut self,
        table_id: u64,
        update: &Update,
        ids: IdChoice,
        mode: DictMode,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let selected = self.selected;
        let table = selected
            .filter(|&s| s == table_id)
            .and_then(|s| self.tables.get_mut(&s));
        let Some(TxTable {
            def: Some(def),
            last_id,
        }) = table
        else {
            return Err(EncodeError::TableNotSelected { table_id, selected });
        };
        let follows = |last: u32| last.wrapping_add(1) == update.update_id;
        let id_on_wire = match ids {
            IdChoice::AsGiven => update.id_on_wire,
            IdChoice::Pick(IdForm::Explicit) => true,
            IdChoice::Pick(IdForm::IncrementalWhenNext) => !last_id.is_some_and(follows),
        };
        let last = last_id.unwrap_or(0);
        if !id_on_wire && !follows(last) {
            return Err(EncodeError::NotIncremental {
                table_id,
                update_id: update.update_id,
                last,
            });
        }
        // Dictionary changes are undone when the message is not sent.
        let dict = &mut self.dict;
        dict.begin();
        let max = self.max_body;
        let start = dst.len();
        let kind = update_wire_type(id_on_wire, update.expire_ms.is_some());
        let written = put_frame_with(dst, class::STICK_TABLE, kind, |d| {
            encode_update_body(update, id_on_wire, def, mode, dict, d)
        });
        match written {
            Ok(len) if len <= max => {
                *last_id = Some(update.update_id);
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
