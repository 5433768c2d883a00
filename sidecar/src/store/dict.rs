//! `server_key` strings (§6.5), interned once per replica: an entry stores a 4-byte id. Server
//! names are few; the interner is bounded anyway so that a hostile peer cannot grow it forever.

use std::collections::HashMap;

use bytes::Bytes;

/// Most distinct strings kept; later new strings are not stored (the value is left as it was).
pub const MAX_DICT_STRINGS: usize = 65_536;

#[derive(Debug, Default, Clone)]
pub(crate) struct Interner {
    strings: Vec<Bytes>,
    ids: HashMap<Bytes, u32>,
}

impl Interner {
    /// The id of `s` (1-based; 0 means "no value"), interning a copy on first sight. The copy
    /// matters: `s` usually points into a whole received message.
    pub(crate) fn id(&mut self, s: &[u8]) -> Option<u32> {
        if let Some(id) = self.ids.get(s) {
            return Some(*id);
        }
        if self.strings.len() >= MAX_DICT_STRINGS {
            return None;
        }
        let owned = Bytes::copy_from_slice(s);
        let id = u32::try_from(self.strings.len().checked_add(1)?).ok()?;
        self.strings.push(owned.clone());
        self.ids.insert(owned, id);
        Some(id)
    }

    pub(crate) fn get(&self, id: u32) -> Option<&Bytes> {
        self.strings.get(usize::try_from(id).ok()?.checked_sub(1)?)
    }

    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_one_based() {
        let mut d = Interner::default();
        assert_eq!(d.id(b"s1"), Some(1));
        assert_eq!(d.id(b"s2"), Some(2));
        assert_eq!(d.id(b"s1"), Some(1));
        assert_eq!(d.get(2).map(|b| &b[..]), Some(&b"s2"[..]));
        assert_eq!(d.get(0), None);
        assert_eq!(d.len(), 2);
    }
}
