//! Receiving side of one session: turns frames into [`Message`]s, keeping what updates need
//! (definitions by the sender's table id, the selected table, the last update id per table, the
//! `server_key` dictionary). Create one per connection direction; drop it when the session ends.

use super::dict::RxDict;
use super::error::MessageError;
use super::framing::Frame;
use super::hashing::FastMap;
use super::message::{
    class, decode_ack, decode_definition, decode_switch, stkt, Control, DefinitionOutcome,
    ErrorMessage, IgnoreReason, Ignored, Message, TableDefinition,
};
use super::update::decode_update;

/// Decoding state of one direction of a session.
#[derive(Debug, Clone, Default)]
pub struct RxState {
    /// By sender table id: one look-up per update finds both the definition and the last id.
    tables: FastMap<u64, RxTable>,
    selected: Option<u64>,
    dict: RxDict,
}

/// What a sender table id stands for. The last id outlives a forgotten definition.
#[derive(Debug, Clone, Default)]
struct RxTable {
    def: Option<TableDefinition>,
    last_id: Option<u32>,
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
        self.tables.get(&table_id).and_then(|t| t.def.as_ref())
    }

    /// The last update id received for a sender table id (what an ack should carry).
    pub fn last_update_id(&self, table_id: u64) -> Option<u32> {
        self.tables.get(&table_id).and_then(|t| t.last_id)
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
                    self.tables.entry(def.table_id).or_default().def = Some(def.clone());
                    Ok(Message::Definition(def))
                }
                DefinitionOutcome::Unusable {
                    table_id,
                    name,
                    problem,
                } => {
                    // HAProxy forgets the id's earlier association and selects nothing.
                    if let Some(t) = self.tables.get_mut(&table_id) {
                        t.def = None;
                    }
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
                self.selected = self.definition(table_id).is_some().then_some(table_id);
                Ok(Message::Switch { table_id })
            }
            stkt::ACK => Ok(Message::Ack(decode_ack(&frame.body)?)),
            stkt::UPDATE | stkt::INCREMENTAL | stkt::UPDATE_TIMED | stkt::INCREMENTAL_TIMED => {
                let table = self.selected.and_then(|id| self.tables.get_mut(&id));
                let Some(RxTable {
                    def: Some(def),
                    last_id,
                }) = table
                else {
                    return ignored(IgnoreReason::NoTableSelected);
                };
                let has_id = matches!(frame.kind, stkt::UPDATE | stkt::UPDATE_TIMED);
                let timed = matches!(frame.kind, stkt::UPDATE_TIMED | stkt::INCREMENTAL_TIMED);
                let last = last_id.get_or_insert(0);
                let update = decode_update(&frame.body, has_id, timed, def, last, &mut self.dict)?;
                Ok(Message::Update(update))
            }
            _ => ignored(IgnoreReason::UnknownStickTableType),
        }
    }
}
