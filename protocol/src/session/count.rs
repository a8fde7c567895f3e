//! Intersecting: which of our elements (or record bundles) came back among the peer's
//! doubly-blinded values, and what that means for our records.

use super::plan::SendPlan;
use super::{MatchedRecord, PreparedSet};
use crate::ident::{IdentKind, KindSet};
use crate::wire::{DOUBLE_LEN, DoubleBytes, PointBytes};

/// The first [`DOUBLE_LEN`] bytes of a doubly-blinded point, for comparison.
pub(super) fn truncate(bytes: &PointBytes) -> DoubleBytes {
    let mut out = [0u8; DOUBLE_LEN];
    out.copy_from_slice(&bytes[..DOUBLE_LEN]);
    out
}

/// What a side counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Distinct identifiers in the intersection.
    pub identifiers: u64,
    /// Our records with at least one of them.
    pub records: u64,
    /// Which records, with the kinds that matched (when we learn which).
    pub matches: Option<Vec<MatchedRecord>>,
}

/// Our answers in send order (`own_double[p]` answers slot `p` of `plan`) against the
/// peer's values, sorted: the matched records and the counts.
pub(super) fn in_order(
    own_double: &[DoubleBytes],
    peer_sorted: &[DoubleBytes],
    plan: &SendPlan,
    set: &PreparedSet,
) -> Counts {
    let matched = own_double
        .iter()
        .enumerate()
        .filter(|(_, value)| peer_sorted.binary_search(value).is_ok())
        .filter_map(|(position, _)| plan.element(position));
    of_elements(set, matched)
}

/// The records holding the matched unique identifiers `elements` of `set`, each with
/// the kinds that matched, and the counts.
pub(crate) fn of_elements(set: &PreparedSet, elements: impl Iterator<Item = usize>) -> Counts {
    let mut matched: Vec<(u32, u8)> = Vec::new();
    let mut identifiers = 0;
    for element in elements {
        identifiers += 1;
        let kind = set.kind_code(element);
        matched.extend(set.owners(element).iter().map(|&r| (r, kind)));
    }
    matched.sort_unstable();
    let mut records: Vec<MatchedRecord> = Vec::new();
    for (record, kind_code) in matched {
        let Some(kind) = IdentKind::from_code(kind_code) else {
            continue;
        };
        match records.last_mut() {
            Some(last) if last.record == record => {
                last.kinds.insert(kind);
            }
            _ => {
                let mut kinds = KindSet::empty();
                kinds.insert(kind);
                records.push(MatchedRecord { record, kinds });
            }
        }
    }
    Counts {
        identifiers,
        records: records.len() as u64,
        matches: Some(records),
    }
}

/// Our answers as shuffled bundles of `width` values against the peer's values, sorted:
/// how many bundles (records) have a match, and how many distinct values matched. Which
/// records matched is not knowable here, by design.
pub(super) fn bundles(
    own_double: &[DoubleBytes],
    width: usize,
    peer_sorted: &[DoubleBytes],
) -> Counts {
    let mut matched_values: Vec<DoubleBytes> = Vec::new();
    let mut records = 0;
    for bundle in own_double.chunks(width.max(1)) {
        let before = matched_values.len();
        matched_values.extend(
            bundle
                .iter()
                .filter(|v| peer_sorted.binary_search(v).is_ok())
                .copied(),
        );
        if matched_values.len() > before {
            records += 1;
        }
    }
    matched_values.sort_unstable();
    matched_values.dedup();
    Counts {
        identifiers: matched_values.len() as u64,
        records,
        matches: None,
    }
}
