//! What a side sends, in which order: its send plan.
//!
//! Outside `cardinality` mode a side sends each distinct identifier once, in a uniformly
//! random order, so the order says nothing about its records. In `cardinality` mode it
//! sends one *bundle* per record: the record's identifiers followed by padding up to a
//! fixed width (the widest record's identifier count, at most [`MAX_BUNDLE_WIDTH`]),
//! bundles in a uniformly random order. The peer returns the bundles shuffled and each
//! sorted, so the counting side can tell how many *records* matched without learning
//! which. Padding slots carry random points that match nothing.
//!
//! A record with more than [`MAX_BUNDLE_WIDTH`] identifiers sends only its first
//! [`MAX_BUNDLE_WIDTH`] (in identifier order) in `cardinality` mode; real contact records
//! have one identifier per kind, four at most.

use rand_core::CryptoRng;

use super::PreparedSet;
use super::rounds::Units;
use crate::wire::MAX_BUNDLE_WIDTH;

/// The slot value that marks padding.
const PADDING: u32 = u32::MAX;

/// A side's slots in send order: an element index, or padding.
pub(crate) struct SendPlan {
    slots: Vec<u32>,
    width: u8,
}

impl SendPlan {
    /// Every distinct identifier once, uniformly shuffled.
    pub(crate) fn elements<R: CryptoRng + ?Sized>(set: &PreparedSet, rng: &mut R) -> Self {
        let mut slots: Vec<u32> = (0..set.len() as u32).collect();
        shuffle(&mut slots, &mut || rng.next_u64());
        Self { slots, width: 1 }
    }

    /// One bundle per record that holds an identifier, bundles uniformly shuffled.
    pub(crate) fn bundles<R: CryptoRng + ?Sized>(set: &PreparedSet, rng: &mut R) -> Self {
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(set.len());
        for element in 0..set.len() {
            for &record in set.owners(element) {
                pairs.push((record, element as u32));
            }
        }
        pairs.sort_unstable();
        let mut bundles: Vec<Vec<u32>> = Vec::new();
        let mut current: Option<u32> = None;
        for (record, element) in pairs {
            if current != Some(record) {
                bundles.push(Vec::new());
                current = Some(record);
            }
            if let Some(bundle) = bundles.last_mut()
                && bundle.len() < usize::from(MAX_BUNDLE_WIDTH)
            {
                bundle.push(element);
            }
        }
        let width = bundles.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut order: Vec<u32> = (0..bundles.len() as u32).collect();
        shuffle(&mut order, &mut || rng.next_u64());
        let mut slots = Vec::with_capacity(bundles.len() * width);
        for &b in &order {
            let bundle = &bundles[b as usize];
            slots.extend_from_slice(bundle);
            slots.extend(std::iter::repeat_n(PADDING, width - bundle.len()));
        }
        Self {
            slots,
            // At most MAX_BUNDLE_WIDTH by construction.
            width: width as u8,
        }
    }

    /// Slots in all: the set size declared to the peer.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slots per unit.
    pub(crate) fn width(&self) -> u8 {
        self.width
    }

    /// Units (identifiers or bundles) and their width, for the round schedule.
    pub(crate) fn units(&self) -> Units {
        let width = u64::from(self.width);
        Units {
            count: self.slots.len() as u64 / width,
            width,
        }
    }

    /// The element sent at `position`, or `None` for padding.
    pub(crate) fn element(&self, position: usize) -> Option<usize> {
        match self.slots[position] {
            PADDING => None,
            element => Some(element as usize),
        }
    }
}

/// Uniform shuffle (Fisher–Yates with rejection sampling) driven by `next_u64`, a source
/// of uniformly random words.
pub(crate) fn shuffle<T>(items: &mut [T], next_u64: &mut impl FnMut() -> u64) {
    for i in (1..items.len()).rev() {
        let j = uniform_below((i + 1) as u64, next_u64) as usize;
        items.swap(i, j);
    }
}

fn uniform_below(bound: u64, next_u64: &mut impl FnMut() -> u64) -> u64 {
    // Reject the top partial zone so every residue is equally likely.
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let x = next_u64();
        if x < zone {
            return x % bound;
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::ident::Normaliser;
    use crate::session::PreparedSetBuilder;

    fn set() -> PreparedSet {
        let n = Normaliser::default();
        let mut b = PreparedSetBuilder::new();
        b.add(0, &n.email("a@x.cn").expect("valid"));
        b.add(0, &n.phone("13800138000").expect("valid"));
        b.add(1, &n.email("b@x.cn").expect("valid"));
        b.add(2, &n.email("a@x.cn").expect("valid")); // shared with record 0
        b.build()
    }

    #[test]
    fn elements_are_a_permutation() {
        let set = set();
        let plan = SendPlan::elements(&set, &mut StdRng::seed_from_u64(1));
        let mut seen: Vec<usize> = (0..plan.len()).filter_map(|p| plan.element(p)).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..set.len()).collect::<Vec<_>>());
        assert_eq!(plan.units(), Units { count: 3, width: 1 });
    }

    #[test]
    fn bundles_hold_each_records_identifiers_padded_to_the_widest() {
        let set = set();
        let plan = SendPlan::bundles(&set, &mut StdRng::seed_from_u64(2));
        assert_eq!(plan.width(), 2);
        assert_eq!(plan.units(), Units { count: 3, width: 2 });
        let mut bundles: Vec<Vec<usize>> = (0..3)
            .map(|b| {
                let mut v: Vec<usize> =
                    (2 * b..2 * b + 2).filter_map(|p| plan.element(p)).collect();
                v.sort_unstable();
                v
            })
            .collect();
        bundles.sort();
        let email_a = (0..set.len())
            .find(|&i| set.owners(i) == [0, 2])
            .expect("shared");
        assert!(
            bundles.contains(&vec![email_a]),
            "record 2: one identifier and padding"
        );
        assert_eq!(bundles.iter().map(Vec::len).sum::<usize>(), 4);
    }

    #[test]
    fn empty_sets_plan_nothing() {
        let empty = PreparedSetBuilder::new().build();
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(SendPlan::bundles(&empty, &mut rng).len(), 0);
        assert_eq!(SendPlan::elements(&empty, &mut rng).len(), 0);
    }
}
