//! Ground truth: what a correct PSI over two lists must output, computed from the
//! records themselves with the protocol's own normalisation (never from how the lists
//! were built).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use blindmatch_protocol::ident::{IdentKind, Identifier, KindSet, Normaliser};
use rayon::prelude::*;

use super::{Origin, SynthRecord};

/// What a correct intersection of two lists yields, and what the lists hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truth {
    /// The identifier kinds the truth was computed for.
    pub kinds: KindSet,
    /// Ids of A records holding at least one identifier some B record also holds.
    pub a_matched_ids: BTreeSet<String>,
    /// Ids of B records holding at least one identifier some A record also holds.
    pub b_matched_ids: BTreeSet<String>,
    /// Distinct normalised identifiers (kind, value) held by both lists: what a
    /// cardinality-only PSI over the deduplicated sets outputs.
    pub unique_intersection: u64,
    /// [`Truth::unique_intersection`] by kind (every kind of [`Truth::kinds`] is
    /// present, possibly with 0).
    pub intersection_by_kind: BTreeMap<IdentKind, u64>,
    /// Facts about list A.
    pub a: ListTruth,
    /// Facts about list B.
    pub b: ListTruth,
}

/// Facts about one list, computed from its records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListTruth {
    /// Number of records (rows).
    pub records: usize,
    /// Distinct normalised identifiers in the list (its deduplicated PSI set size).
    pub distinct_identifiers: u64,
    /// Distinct identifiers by kind.
    pub identifiers_by_kind: BTreeMap<IdentKind, u64>,
    /// Records with no valid identifier of the chosen kinds.
    pub rows_without_identifier: usize,
    /// Non-blank values (an email, a phone, a name with its company) that fail
    /// normalisation: what the dataset importer reports as rejected values.
    pub invalid_values: usize,
    /// Duplicate rows injected (further records of a person already in the list),
    /// from the records' [`Origin`].
    pub duplicate_rows_injected: usize,
    /// Invalid rows injected (rows with no usable identifier), from the records'
    /// [`Origin`].
    pub invalid_rows_injected: usize,
}

/// The valid identifiers of `record` for `kinds`, and how many non-blank values failed,
/// read as the dataset importer reads a row: a blank (empty or whitespace-only) email or
/// mobile is skipped; a non-blank name is normalised with the company (and is invalid
/// if the company is blank).
pub fn record_identifiers(
    normaliser: &Normaliser,
    record: &SynthRecord,
    kinds: KindSet,
) -> (Vec<Identifier>, usize) {
    let blank = |s: &str| s.trim().is_empty();
    let mut identifiers = Vec::with_capacity(3);
    let mut invalid = 0;
    let mut take = |result: Result<Identifier, _>| match result {
        Ok(identifier) => identifiers.push(identifier),
        Err(_) => invalid += 1,
    };
    if kinds.contains(IdentKind::Email) && !blank(&record.email) {
        take(normaliser.email(&record.email));
    }
    if kinds.contains(IdentKind::Phone) && !blank(&record.mobile) {
        take(normaliser.phone(&record.mobile));
    }
    // As the dataset importer does: a name makes a name+company value, which is
    // invalid if the company is blank.
    if kinds.contains(IdentKind::NameCompany) && !blank(&record.name) {
        take(normaliser.name_company(&record.name, &record.company));
    }
    (identifiers, invalid)
}

/// Normalises every record of a list (in parallel; the result is in record order).
fn normalise_list(
    normaliser: &Normaliser,
    records: &[SynthRecord],
    kinds: KindSet,
) -> Vec<(Vec<Identifier>, usize)> {
    records
        .par_iter()
        .with_min_len(1024)
        .map(|record| record_identifiers(normaliser, record, kinds))
        .collect()
}

/// Counts by kind, with every kind of `kinds` present.
fn by_kind<'a>(
    kinds: KindSet,
    identifiers: impl Iterator<Item = &'a Identifier>,
) -> BTreeMap<IdentKind, u64> {
    let mut counts: BTreeMap<IdentKind, u64> = kinds.iter().map(|kind| (kind, 0)).collect();
    for identifier in identifiers {
        *counts.entry(identifier.kind()).or_insert(0) += 1;
    }
    counts
}

fn list_truth(
    kinds: KindSet,
    records: &[SynthRecord],
    normalised: &[(Vec<Identifier>, usize)],
    distinct: &HashSet<&Identifier>,
) -> ListTruth {
    ListTruth {
        records: records.len(),
        distinct_identifiers: distinct.len() as u64,
        identifiers_by_kind: by_kind(kinds, distinct.iter().copied()),
        rows_without_identifier: normalised.iter().filter(|(ids, _)| ids.is_empty()).count(),
        invalid_values: normalised.iter().map(|(_, invalid)| invalid).sum(),
        duplicate_rows_injected: records
            .iter()
            .filter(|r| {
                matches!(
                    r.origin,
                    Origin::Person {
                        duplicate: true,
                        ..
                    }
                )
            })
            .count(),
        invalid_rows_injected: records
            .iter()
            .filter(|r| r.origin == Origin::Invalid)
            .count(),
    }
}

/// The ground truth for lists `a` and `b` over the identifier `kinds` (email, phone and
/// name+company; custom is ignored), with the protocol's default normaliser (region CN).
///
/// Every record is normalised (in parallel); the intersection uses hash sets, so the
/// cost is linear in the number of records.
pub fn compute_truth(a: &[SynthRecord], b: &[SynthRecord], kinds: KindSet) -> Truth {
    let normaliser = Normaliser::default();
    let a_norm = normalise_list(&normaliser, a, kinds);
    let b_norm = normalise_list(&normaliser, b, kinds);
    let a_set: HashSet<&Identifier> = a_norm.iter().flat_map(|(ids, _)| ids).collect();
    let b_set: HashSet<&Identifier> = b_norm.iter().flat_map(|(ids, _)| ids).collect();

    let common: Vec<&Identifier> = a_set
        .iter()
        .copied()
        .filter(|id| b_set.contains(id))
        .collect();
    let matched = |records: &[SynthRecord],
                   normalised: &[(Vec<Identifier>, usize)],
                   other: &HashSet<&Identifier>| {
        records
            .iter()
            .zip(normalised)
            .filter(|(_, (ids, _))| ids.iter().any(|id| other.contains(id)))
            .map(|(record, _)| record.id.clone())
            .collect::<BTreeSet<String>>()
    };

    Truth {
        kinds,
        a_matched_ids: matched(a, &a_norm, &b_set),
        b_matched_ids: matched(b, &b_norm, &a_set),
        unique_intersection: common.len() as u64,
        intersection_by_kind: by_kind(kinds, common.iter().copied()),
        a: list_truth(kinds, a, &a_norm, &a_set),
        b: list_truth(kinds, b, &b_norm, &b_set),
    }
}
