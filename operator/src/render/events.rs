//! Events to publish for what changed between the previous status and the new one. The
//! controller publishes them (and adds its own, e.g. for certificate rotations).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::names::GroupRef;
use super::status::conditions;
use crate::api::{MemberStatus, PeerGroupStatus};
pub use crate::certs::EventType;

/// Event reasons (CamelCase, what happened).
pub mod reasons {
    pub const MEMBER_JOINED: &str = "MemberJoined";
    pub const MEMBER_LEFT: &str = "MemberLeft";
}

/// An event about the PeerGroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub type_: EventType,
    pub reason: String,
    /// At most [`MAX_NOTE`] bytes (the API's limit).
    pub note: String,
}

/// events.k8s.io/v1 refuses longer notes.
pub const MAX_NOTE: usize = 1024;

/// Members that joined or left, then a warning when `Degraded` turned true or changed reason.
pub fn events(
    group: &GroupRef,
    previous: Option<&PeerGroupStatus>,
    members: &[MemberStatus],
    conditions: &[Condition],
) -> Vec<EventSpec> {
    let before: BTreeSet<&str> = previous
        .into_iter()
        .flat_map(|s| &s.members)
        .map(|m| m.name.as_str())
        .collect();
    let after: BTreeSet<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let mut out = Vec::new();
    for name in after.difference(&before) {
        out.push(event(
            EventType::Normal,
            reasons::MEMBER_JOINED,
            format!(
                "pod {name} joined the group as peer {name} ({})",
                group.member_address(name)
            ),
        ));
    }
    for name in before.difference(&after) {
        out.push(event(
            EventType::Normal,
            reasons::MEMBER_LEFT,
            format!("pod {name} left the group"),
        ));
    }
    let degraded = |conds: &[Condition]| {
        conds
            .iter()
            .find(|c| c.type_ == conditions::DEGRADED && c.status == "True")
            .map(|c| c.reason.clone())
    };
    if let Some(new) = conditions
        .iter()
        .find(|c| c.type_ == conditions::DEGRADED && c.status == "True")
    {
        let old = previous.and_then(|s| degraded(&s.conditions));
        if old.as_deref() != Some(new.reason.as_str()) {
            out.push(event(EventType::Warning, &new.reason, new.message.clone()));
        }
    }
    out
}

fn event(type_: EventType, reason: &str, note: String) -> EventSpec {
    EventSpec {
        type_,
        reason: reason.to_string(),
        note: truncate(note),
    }
}

/// Cuts a note to [`MAX_NOTE`] bytes on a char boundary, marking the cut with "...".
pub fn truncate(mut note: String) -> String {
    if note.len() > MAX_NOTE {
        let mut end = MAX_NOTE - 3;
        while !note.is_char_boundary(end) {
            end -= 1;
        }
        note.truncate(end);
        note.push_str("...");
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let note = truncate("é".repeat(600));
        assert!(
            note.len() <= MAX_NOTE && note.ends_with("..."),
            "{}",
            note.len()
        );
        assert_eq!(truncate("short".into()), "short");
    }
}
