//! Who wrote an entry, and who an entry is relayed to: the local HAProxy or a remote member.

use std::collections::HashMap;

/// A remote member, numbered by the replica in order of first sight (names are stable, numbers
/// are not: never persist them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u16);

/// The two ends an entry can come from or go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// The local HAProxy (over loopback).
    Local,
    /// A remote sidecar.
    Peer(PeerId),
}

impl Link {
    /// Whether an entry written by `origin` is pushed to `to` (docs/sidecar.md "Who gets what"):
    /// local HAProxy → every remote; a remote → the local HAProxy only. Never back to its origin,
    /// never from one remote to another (every member pushes its own HAProxy's changes to every
    /// other member itself, §7.8). Lessons ignore this rule: they carry everything.
    pub fn relays(origin: Link, to: Link) -> bool {
        match to {
            Link::Local => origin != Link::Local,
            Link::Peer(_) => origin == Link::Local,
        }
    }

    /// One word in an entry record: 0 for the local HAProxy, the peer number otherwise.
    pub(crate) fn word(self) -> u32 {
        match self {
            Link::Local => 0,
            Link::Peer(PeerId(n)) => u32::from(n),
        }
    }

    pub(crate) fn from_word(word: u32) -> Link {
        match u16::try_from(word & !(TO_EVERY_LINK | LOCAL_HAS_IT)) {
            Ok(0) | Err(_) => Link::Local,
            Ok(n) => Link::Peer(PeerId(n)),
        }
    }

    /// [`Link::relays`] for the origin word of a record, which may carry [`TO_EVERY_LINK`] and
    /// [`LOCAL_HAS_IT`].
    pub(crate) fn relays_word(word: u32, to: Link) -> bool {
        let writer = Link::from_word(word);
        if word & TO_EVERY_LINK == 0 {
            return Link::relays(writer, to);
        }
        match to {
            Link::Local => word & LOCAL_HAS_IT == 0,
            // Never back to the member that wrote it: it holds this value or a newer one, and
            // an echo arrives with a write time inflated by two transits, which can beat the
            // writer's next write and undo it.
            Link::Peer(_) => to != writer,
        }
    }
}

/// Flag in a record's origin word: the entry won a conflict and is re-sent to every link but
/// its writer (whose number the word keeps). See `Table::resend`.
pub(crate) const TO_EVERY_LINK: u32 = 1 << 31;

/// Flag beside [`TO_EVERY_LINK`]: the local HAProxy was already sent this value, skip it.
pub(crate) const LOCAL_HAS_IT: u32 = 1 << 30;

/// Label used for the local HAProxy in views and logs.
pub const LOCAL_LABEL: &str = "local haproxy";

/// Peer names ⇄ numbers.
#[derive(Debug, Default, Clone)]
pub(crate) struct PeerNames {
    names: Vec<String>,
    ids: HashMap<String, PeerId>,
}

impl PeerNames {
    /// The number of `name`, registering it on first sight. `None` once 65535 names exist.
    pub(crate) fn id(&mut self, name: &str) -> Option<PeerId> {
        if let Some(id) = self.ids.get(name) {
            return Some(*id);
        }
        let n = u16::try_from(self.names.len().checked_add(1)?).ok()?;
        let id = PeerId(n);
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        Some(id)
    }

    pub(crate) fn get(&self, name: &str) -> Option<PeerId> {
        self.ids.get(name).copied()
    }

    pub(crate) fn label(&self, link: Link) -> &str {
        match link {
            Link::Local => LOCAL_LABEL,
            Link::Peer(PeerId(n)) => usize::from(n)
                .checked_sub(1)
                .and_then(|i| self.names.get(i))
                .map_or("?", String::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_rules() {
        let mut names = PeerNames::default();
        let (x, y) = (
            Link::Peer(names.id("x").unwrap_or(PeerId(0))),
            Link::Peer(names.id("y").unwrap_or(PeerId(0))),
        );
        assert_ne!(x, y);
        assert!(Link::relays(Link::Local, x));
        assert!(Link::relays(Link::Local, y));
        assert!(!Link::relays(Link::Local, Link::Local));
        assert!(Link::relays(x, Link::Local));
        assert!(!Link::relays(x, x));
        assert!(!Link::relays(x, y));
        for l in [Link::Local, x, y] {
            assert_eq!(Link::from_word(l.word()), l);
            assert_eq!(Link::from_word(l.word() | TO_EVERY_LINK), l);
            assert_eq!(Link::from_word(l.word() | TO_EVERY_LINK | LOCAL_HAS_IT), l);
            assert!(Link::relays_word(TO_EVERY_LINK, l));
            assert_eq!(Link::relays_word(x.word(), l), Link::relays(x, l));
        }
        // A re-sent entry written by x: every link but x, and HAProxy unless it has it.
        let resent = x.word() | TO_EVERY_LINK;
        assert!(!Link::relays_word(resent, x));
        assert!(Link::relays_word(resent, y));
        assert!(Link::relays_word(resent, Link::Local));
        assert!(!Link::relays_word(resent | LOCAL_HAS_IT, Link::Local));
        assert!(Link::relays_word(resent | LOCAL_HAS_IT, y));
        assert_eq!(names.label(x), "x");
        assert_eq!(names.label(Link::Local), LOCAL_LABEL);
        assert_eq!(names.id("x"), names.get("x"));
    }
}
