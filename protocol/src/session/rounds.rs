//! The round schedule both sides derive from the `Hello` and `Accept` alone.
//!
//! Each side's elements are grouped into *units* (one identifier each, or in
//! `cardinality` mode one record bundle of `width` slots). Both sides' units are split
//! into the same number of rounds `R`, round `k` of a side covering its units
//! `⌊k·u/R⌋ .. ⌊(k+1)·u/R⌋`, so that round `k` is the same *share* of either set however
//! different their sizes. `R` is the smallest count that keeps every round within
//! `round_size` slots on both sides. Rounds pace fair release: a side that learns from the
//! peer's replies answers round `k` of the peer only once it holds the peer's answers to
//! its rounds before `k` (see `exchange`), so neither side is ever more than one round
//! (a `1/R` share) ahead. A round may be empty for the smaller side; empty rounds carry no
//! message and count as done.

use std::ops::Range;

/// One side's units and slots per unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Units {
    /// Identifiers, or record bundles in `cardinality` mode.
    pub count: u64,
    /// Slots per unit: 1, or the bundle width.
    pub width: u64,
}

impl Units {
    /// Slots (elements on the wire) in all.
    pub(crate) fn slots(self) -> u64 {
        self.count * self.width
    }
}

/// The shared schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rounds {
    count: u64,
}

impl Rounds {
    /// The schedule for two sides' units with at most `round_size` slots per round
    /// (`round_size` ≥ every width, which the wire limits guarantee).
    pub(crate) fn new(a: Units, b: Units, round_size: u64) -> Self {
        let needed = |u: Units| {
            let per_round = (round_size / u.width.max(1)).max(1);
            u.count.div_ceil(per_round)
        };
        Self {
            count: needed(a).max(needed(b)).max(1),
        }
    }

    /// Number of rounds.
    pub(crate) fn count(self) -> u64 {
        self.count
    }

    /// The slots round `k` covers for a side with `units` (empty past the last round).
    pub(crate) fn slots(self, units: Units, k: u64) -> Range<u64> {
        if k >= self.count {
            return units.slots()..units.slots();
        }
        let start = unit_boundary(units.count, k, self.count);
        let end = unit_boundary(units.count, k + 1, self.count);
        start * units.width..end * units.width
    }

    /// The first round at or after `k` that is not empty for `units`, or the round count.
    pub(crate) fn next_nonempty(self, units: Units, mut k: u64) -> u64 {
        while k < self.count && self.slots(units, k).is_empty() {
            k += 1;
        }
        k.min(self.count)
    }
}

/// `⌊k·u/R⌋` without overflow (u ≤ 2^32, k ≤ R ≤ 2^32).
fn unit_boundary(units: u64, k: u64, rounds: u64) -> u64 {
    ((u128::from(units) * u128::from(k)) / u128::from(rounds)) as u64
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn units(count: u64, width: u64) -> Units {
        Units { count, width }
    }

    #[test]
    fn equal_sets_split_into_equal_rounds() {
        let a = units(10_000, 1);
        let rounds = Rounds::new(a, a, 4096);
        assert_eq!(rounds.count(), 3);
        assert_eq!(rounds.slots(a, 0), 0..3333);
        assert_eq!(rounds.slots(a, 2), 6666..10_000);
        assert!(rounds.slots(a, 3).is_empty());
    }

    #[test]
    fn a_small_set_is_spread_over_the_large_sets_rounds() {
        let small = units(3, 1);
        let large = units(1_000_000, 1);
        let rounds = Rounds::new(small, large, 4096);
        assert_eq!(rounds.count(), 245);
        let nonempty: Vec<u64> = (0..rounds.count())
            .filter(|&k| !rounds.slots(small, k).is_empty())
            .collect();
        assert_eq!(nonempty.len(), 3);
        assert_eq!(rounds.next_nonempty(small, 0), nonempty[0]);
        assert_eq!(rounds.next_nonempty(small, nonempty[2] + 1), rounds.count());
    }

    #[test]
    fn empty_sets_have_one_empty_round() {
        let none = units(0, 1);
        let rounds = Rounds::new(none, none, 4096);
        assert_eq!(rounds.count(), 1);
        assert!(rounds.slots(none, 0).is_empty());
        assert_eq!(rounds.next_nonempty(none, 0), 1);
    }

    proptest! {
        #[test]
        fn rounds_tile_each_side_and_fit_the_round_size(
            a in 0u64..50_000, wa in 1u64..17, b in 0u64..50_000, wb in 1u64..17, size in 16u64..9000,
        ) {
            let (ua, ub) = (units(a, wa), units(b, wb));
            let rounds = Rounds::new(ua, ub, size);
            for u in [ua, ub] {
                let mut next = 0;
                for k in 0..rounds.count() {
                    let r = rounds.slots(u, k);
                    prop_assert_eq!(r.start, next);
                    prop_assert!(r.end - r.start <= size);
                    prop_assert_eq!((r.end - r.start) % u.width, 0);
                    next = r.end;
                }
                prop_assert_eq!(next, u.slots());
            }
        }
    }
}
