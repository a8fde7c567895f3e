//! The 16-byte prefixes of every blinded element we sent, to catch a peer that
//! reflects them back as its own or returns them without re-blinding.
//!
//! A general-purpose hash set costs ~34 bytes per 16-byte entry here (power-of-two
//! bucket counts at 7/8 load plus a control byte), which was the largest single item
//! of a session's memory. The set size is known before the first element is sent, so
//! this table is sized once at 2/3 load: 24 bytes per element, no rehashing, and
//! lookups probe ~5 adjacent slots on average. Entries are outputs of a group
//! operation under our fresh random key, hence uniform: the first eight bytes serve as
//! the hash, and the all-zero prefix (probability 2^-128) marks an empty slot.

use crate::wire::DoubleBytes;

const EMPTY: DoubleBytes = [0; 16];

/// An insert-only open-addressing set of blinded-element prefixes.
pub(super) struct SentSet {
    slots: Vec<DoubleBytes>,
    len: usize,
}

impl SentSet {
    /// A set that holds `expected` entries at 2/3 load without growing.
    pub(super) fn with_capacity(expected: usize) -> Self {
        Self {
            slots: vec![EMPTY; slot_count(expected)],
            len: 0,
        }
    }

    /// Adds `value` (ignored if already present, or the empty marker).
    pub(super) fn insert(&mut self, value: DoubleBytes) {
        if value == EMPTY {
            return;
        }
        if (self.len + 1) * 3 > self.slots.len() * 2 {
            self.grow();
        }
        let mut i = self.home(&value);
        loop {
            let slot = &mut self.slots[i];
            if *slot == value {
                return;
            }
            if *slot == EMPTY {
                *slot = value;
                self.len += 1;
                return;
            }
            i = self.next(i);
        }
    }

    /// Whether `value` was inserted.
    pub(super) fn contains(&self, value: &DoubleBytes) -> bool {
        if *value == EMPTY {
            return false;
        }
        let mut i = self.home(value);
        loop {
            let slot = &self.slots[i];
            if slot == value {
                return true;
            }
            if *slot == EMPTY {
                return false;
            }
            i = self.next(i);
        }
    }

    /// Heap bytes held.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<DoubleBytes>()
    }

    /// The slot a value starts probing from: its first eight bytes scaled to the table
    /// (multiply-shift, so the table size need not be a power of two).
    fn home(&self, value: &DoubleBytes) -> usize {
        let mut word = [0u8; 8];
        word.copy_from_slice(&value[..8]);
        let hash = u64::from_le_bytes(word);
        ((u128::from(hash) * self.slots.len() as u128) >> 64) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// Only reached if more entries arrive than announced (never, in a session).
    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; slot_count(self.len * 2)]);
        self.len = 0;
        for value in old.into_iter().filter(|v| *v != EMPTY) {
            self.insert(value);
        }
    }
}

fn slot_count(expected: usize) -> usize {
    (expected.saturating_mul(3) / 2).max(16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use rand_core::Rng;

    fn random_values(n: usize) -> Vec<DoubleBytes> {
        let mut rng = StdRng::seed_from_u64(n as u64);
        (0..n)
            .map(|_| {
                let mut v = [0u8; 16];
                rng.fill_bytes(&mut v);
                v
            })
            .collect()
    }

    #[test]
    fn finds_exactly_what_was_inserted() {
        let values = random_values(20_000);
        let (inserted, absent) = values.split_at(10_000);
        let mut set = SentSet::with_capacity(inserted.len());
        for v in inserted {
            set.insert(*v);
        }
        assert!(inserted.iter().all(|v| set.contains(v)));
        assert!(absent.iter().all(|v| !set.contains(v)));
        assert_eq!(set.len, inserted.len());
        assert_eq!(set.heap_bytes(), 15_000 * 16, "sized once at 2/3 load");
    }

    #[test]
    fn grows_past_the_announced_size_and_ignores_repeats_and_the_empty_marker() {
        let values = random_values(1_000);
        let mut set = SentSet::with_capacity(10);
        for v in values.iter().chain(values.iter()) {
            set.insert(*v);
        }
        set.insert(EMPTY);
        assert_eq!(set.len, values.len());
        assert!(values.iter().all(|v| set.contains(v)));
        assert!(!set.contains(&EMPTY));
    }

    #[test]
    fn values_sharing_a_hash_word_are_told_apart() {
        let mut set = SentSet::with_capacity(4);
        let a = [7u8; 16];
        let mut b = a;
        b[15] = 8;
        set.insert(a);
        assert!(set.contains(&a));
        assert!(!set.contains(&b));
        set.insert(b);
        assert!(set.contains(&b));
    }
}
