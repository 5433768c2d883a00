//! The publish step: Kubernetes Events about a PeerGroup, from render (membership, mistakes),
//! the certificate plan (issues, rotations) and the certificate inventory (unreadable data).
//!
//! Each event is published with its own `Recorder`: kube's recorder folds events of the same
//! reason into one series that keeps the first note, which would hide e.g. which member joined
//! second. Our events are already transitions (render compares with the previous status), so
//! there is nothing to fold.

use kube::runtime::events::{Event, EventType as KubeEventType, Recorder};
use kube::Resource;

use super::context::Context;
use crate::api::PeerGroup;
use crate::certs::{CertEvent, EventType, InventoryProblem, Remedy};
use crate::render::events::truncate;
use crate::render::EventSpec;

/// Event reasons the controller itself uses.
pub mod reasons {
    /// A Secret holds certificate material the operator cannot use (it replaces it).
    pub const INVALID_CERTIFICATE_DATA: &str = "InvalidCertificateData";
    /// A reconcile failed; the note says why and what to do.
    pub const RECONCILE_FAILED: &str = "ReconcileFailed";
}

/// Event `action`s: what the operator was doing.
pub mod actions {
    pub const RECONCILE: &str = "Reconcile";
    pub const CERTIFICATES: &str = "ManageCertificates";
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: String,
    pub action: &'static str,
    pub text: String,
}

impl From<&EventSpec> for Note {
    fn from(e: &EventSpec) -> Self {
        Note {
            warning: e.type_ == EventType::Warning,
            reason: e.reason.clone(),
            action: actions::RECONCILE,
            text: e.note.clone(),
        }
    }
}

impl From<&CertEvent> for Note {
    fn from(e: &CertEvent) -> Self {
        Note {
            warning: e.event_type == EventType::Warning,
            reason: e.reason.to_string(),
            action: actions::CERTIFICATES,
            text: truncate(e.message.clone()),
        }
    }
}

/// One warning for every inventory problem the plan acts on (those left alone are not news).
pub fn inventory_note(problems: &[InventoryProblem]) -> Option<Note> {
    let texts: Vec<String> = problems
        .iter()
        .filter(|p| p.remedy != Remedy::Ignore)
        .map(ToString::to_string)
        .collect();
    (!texts.is_empty()).then(|| Note {
        warning: true,
        reason: reasons::INVALID_CERTIFICATE_DATA.to_string(),
        action: actions::CERTIFICATES,
        text: truncate(texts.join("; ")),
    })
}

pub fn failure_note(error: &crate::Error) -> Note {
    Note {
        warning: true,
        reason: reasons::RECONCILE_FAILED.to_string(),
        action: actions::RECONCILE,
        text: truncate(error.to_string()),
    }
}

/// Publishes the notes about `pg`. A failure is logged and counted, not returned: the state
/// is written already, and the events are derived from it, so a retry would not repeat them.
pub async fn publish(ctx: &Context, pg: &PeerGroup, notes: &[Note]) -> usize {
    let reference = pg.object_ref(&());
    let mut published = 0;
    for note in notes {
        let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
        let event = Event {
            type_: if note.warning {
                KubeEventType::Warning
            } else {
                KubeEventType::Normal
            },
            reason: note.reason.clone(),
            note: Some(note.text.clone()),
            action: note.action.to_string(),
            secondary: None,
        };
        match recorder.publish(&event, &reference).await {
            Ok(()) => published += 1,
            Err(e) => {
                ctx.metrics.event_failed();
                tracing::warn!(
                    namespace = reference.namespace.as_deref().unwrap_or_default(),
                    group = reference.name.as_deref().unwrap_or_default(),
                    reason = %note.reason,
                    error = %e,
                    "cannot publish an event; grant the operator create on events.k8s.io events \
                     if the API refused it"
                );
            }
        }
    }
    published
}
