//! Receiving side of one session: turns frames into [`Message`]s, keeping what updates need
//! (definitions by the sender's table id, the selected table, the last update id per table, the
//! `server_key` dictionary). Create one per connection direction; drop it when the session ends.

use std::collections::HashMap;

use super::dict::RxDict;
use super::error::MessageError;
use super::framing::Frame;
use super::message::{
    class, decode_ack, decode_definition, decode_switch, stkt, Control, DefinitionOutcome,
    ErrorMessage, IgnoreReason, Ignored, Message, TableDefinition,
};
use super::update::decode_update;

/// Decoding state of one direction of a session.
#[derive(Debug, Clone, Default)]
pub struct RxState {
    tables: HashMap<u64, TableDefinition>,
    selected: Option<u64>,
    last_ids: HashMap<u64, u32>,
    dict: RxDict,
}

impl RxState {
    pub fn new() -> RxState {
        RxState::default()
    }

    /// The sender's id of the table updates currently apply to.
    pub fn selected_table(&self) -> Option<u64> {
        self.selected
    }

    /// The last definition received for a sender table id.
    pub fn definition(&self, table_id: u64) -> Option<&TableDefinition> {
        self.tables.get(&table_id)
    }

    /// The last update id received for a sender table id (what an ack should carry).
    pub fn last_update_id(&self, table_id: u64) -> Option<u32> {
        self.last_ids.get(&table_id).copied()
    }

    /// Decodes one frame. Errors are protocol errors (answer `01 00`, close); ignorable messages
    /// come back as [`Message::Ignored`].
    pub fn decode(&mut self, frame: &Frame) -> Result<Message, MessageError> {
        let ignored = |reason| {
            Ok(Message::Ignored(Ignored {
                frame: frame.clone(),
                reason,
            }))
        };
        match frame.class {
            class::CONTROL => match Control::from_wire(frame.kind) {
                Some(c) => Ok(Message::Control(c)),
                None => ignored(IgnoreReason::UnknownControlType),
            },
            class::ERROR => match frame.kind {
                0 => Ok(Message::Error(ErrorMessage::Protocol)),
                1 => Ok(Message::Error(ErrorMessage::SizeLimit)),
                _ => ignored(IgnoreReason::UnknownErrorType),
            },
            class::STICK_TABLE => self.decode_stick_table(frame),
            class::RESERVED => Err(MessageError::ReservedClass { kind: frame.kind }),
            _ => ignored(IgnoreReason::UnknownClass),
        }
    }

    fn decode_stick_table(&mut self, frame: &Frame) -> Result<Message, MessageError> {
        let ignored = |reason| {
            Ok(Message::Ignored(Ignored {
                frame: frame.clone(),
                reason,
            }))
        };
        match frame.kind {
            stkt::DEFINE => match decode_definition(&frame.body)? {
                DefinitionOutcome::Usable(def) => {
                    self.selected = Some(def.table_id);
                    self.tables.insert(def.table_id, def.clone());
                    Ok(Message::Definition(def))
                }
                DefinitionOutcome::Unusable {
                    table_id,
                    name,
                    problem,
                } => {
                    // HAProxy forgets the id's earlier association and selects nothing.
                    self.tables.remove(&table_id);
                    self.selected = None;
                    ignored(IgnoreReason::UnusableDefinition {
                        table_id,
                        name,
                        problem,
                    })
                }
            },
            stkt::SWITCH => {
                let table_id = decode_switch(&frame.body)?;
                self.selected = self.tables.contains_key(&table_id).then_some(table_id);
                Ok(Message::Switch { table_id })
            }
            stkt::ACK => Ok(Message::Ack(decode_ack(&frame.body)?)),
            stkt::UPDATE | stkt::INCREMENTAL | stkt::UPDATE_TIMED | stkt::INCREMENTAL_TIMED => {
                let Some(def) = self.selected.and_then(|id| self.tables.get(&id)) else {
                    return ignored(IgnoreReason::NoTableSelected);
                };
                let has_id = matches!(frame.kind, stkt::UPDATE | stkt::UPDATE_TIMED);
                let timed = matches!(frame.kind, stkt::UPDATE_TIMED | stkt::INCREMENTAL_TIMED);
                let last = self.last_ids.entry(def.table_id).or_insert(0);
                let update = decode_update(&frame.body, has_id, timed, def, last, &mut self.dict)?;
                Ok(Message::Update(update))
            }
            _ => ignored(IgnoreReason::UnknownStickTableType),
        }
    }
}
