//! The hasher of the maps looked up for every update (per-session table ids, the replica's
//! entry index). Their keys come from peers, so the hash must not be predictable (a peer that
//! can pick colliding keys degrades every look-up), but std's SipHash costs ~140 instructions
//! per `u64` look-up, a fifth of the receiving sidecar's work per relayed update. foldhash is
//! fast; seeding it from std's `RandomState` (keyed from the OS's randomness) keeps it keyed.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::OnceLock;

use foldhash::fast::{FoldHasher, SeedableRandomState};
use foldhash::SharedSeed;

/// A map keyed by [`SeededState`].
pub(crate) type FastMap<K, V> = HashMap<K, V, SeededState>;

/// foldhash with a per-process seed and a per-map seed, both from the OS's randomness.
#[derive(Debug, Clone)]
pub(crate) struct SeededState(SeedableRandomState);

impl Default for SeededState {
    fn default() -> Self {
        // Hashing under std's secret SipHash key turns it into seeds; each RandomState::new()
        // differs, so each map gets its own seed.
        let os = RandomState::new();
        static SHARED: OnceLock<SharedSeed> = OnceLock::new();
        let shared = SHARED.get_or_init(|| SharedSeed::from_u64(os.hash_one(0u64)));
        SeededState(SeedableRandomState::with_seed(os.hash_one(1u64), shared))
    }
}

impl BuildHasher for SeededState {
    type Hasher = FoldHasher<'static>;

    fn build_hasher(&self) -> FoldHasher<'static> {
        self.0.build_hasher()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_get_their_own_seed() {
        let (a, b) = (SeededState::default(), SeededState::default());
        let differs = (0u64..8).any(|k| a.hash_one(k) != b.hash_one(k));
        assert!(
            differs,
            "two maps hash every key alike: the seed is not per map"
        );
        assert_eq!(a.hash_one(42u64), a.clone().hash_one(42u64));
    }
}
