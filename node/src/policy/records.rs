//! Which records of a dataset may be matched at all: a dataset's `[datasets.NAME]`
//! policy leaves out records without a legal basis, consent or source, or with a
//! legal basis not on its list. Left-out records never enter the prepared set, so not
//! one of their identifiers is blinded or sent.

use blindmatch_protocol::session::PreparedSet;

use crate::config::{DatasetPolicy, same_label};
use crate::dataset::{Dataset, StoredRecord};

/// How many records a dataset policy keeps and why the others are left out. A record
/// can lack several fields; it is counted under the first missing one, in this order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Eligibility {
    /// Records in the dataset.
    pub records: u64,
    /// Records kept.
    pub kept: u64,
    /// Left out: no legal basis.
    pub no_legal_basis: u64,
    /// Left out: a legal basis not in the policy's list.
    pub legal_basis_not_accepted: u64,
    /// Left out: no consent value.
    pub no_consent: u64,
    /// Left out: no source.
    pub no_source: u64,
}

impl Eligibility {
    /// Records left out.
    pub fn excluded(&self) -> u64 {
        self.records - self.kept
    }

    /// "120 left out: 100 without a legal basis, 20 without a source", or `None`.
    pub fn summary(&self) -> Option<String> {
        if self.excluded() == 0 {
            return None;
        }
        let parts: Vec<String> = [
            (self.no_legal_basis, "without a legal basis"),
            (
                self.legal_basis_not_accepted,
                "with a legal basis not accepted",
            ),
            (self.no_consent, "without consent"),
            (self.no_source, "without a source"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
        Some(format!(
            "{} left out: {}",
            self.excluded(),
            parts.join(", ")
        ))
    }
}

/// The prepared set of the records `policy` keeps, and the counts.
pub fn eligible_set(dataset: &Dataset, policy: &DatasetPolicy) -> (PreparedSet, Eligibility) {
    let eligibility = count(dataset.records(), policy);
    let set = if policy.is_open() {
        dataset.prepared_set()
    } else {
        dataset.prepared_set_where(|record| keeps(policy, record))
    };
    (set, eligibility)
}

/// Counts what `policy` keeps of `records`.
pub fn count(
    records: impl ExactSizeIterator<Item = StoredRecord>,
    policy: &DatasetPolicy,
) -> Eligibility {
    let mut counts = Eligibility {
        records: records.len() as u64,
        ..Eligibility::default()
    };
    for record in records {
        match exclusion(policy, &record) {
            None => counts.kept += 1,
            Some(Exclusion::NoLegalBasis) => counts.no_legal_basis += 1,
            Some(Exclusion::LegalBasisNotAccepted) => counts.legal_basis_not_accepted += 1,
            Some(Exclusion::NoConsent) => counts.no_consent += 1,
            Some(Exclusion::NoSource) => counts.no_source += 1,
        }
    }
    counts
}

/// Whether `policy` keeps `record`.
pub fn keeps(policy: &DatasetPolicy, record: &StoredRecord) -> bool {
    exclusion(policy, record).is_none()
}

enum Exclusion {
    NoLegalBasis,
    LegalBasisNotAccepted,
    NoConsent,
    NoSource,
}

fn exclusion(policy: &DatasetPolicy, record: &StoredRecord) -> Option<Exclusion> {
    let present = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    let needs_basis = policy.require_legal_basis || !policy.legal_bases.is_empty();
    if needs_basis && !present(&record.legal_basis) {
        return Some(Exclusion::NoLegalBasis);
    }
    if let Some(basis) = &record.legal_basis
        && !policy.legal_bases.is_empty()
        && !policy.legal_bases.iter().any(|b| same_label(b, basis))
    {
        return Some(Exclusion::LegalBasisNotAccepted);
    }
    if policy.require_consent && !present(&record.consent) {
        return Some(Exclusion::NoConsent);
    }
    if policy.require_source && !present(&record.source) {
        return Some(Exclusion::NoSource);
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use blindmatch_protocol::ident::IdentKind;

    use super::*;

    fn record(
        id: &str,
        basis: Option<&str>,
        consent: Option<&str>,
        source: Option<&str>,
    ) -> StoredRecord {
        StoredRecord {
            id: id.into(),
            identifiers: vec![(IdentKind::Email, format!("{id}@example.cn"))],
            legal_basis: basis.map(Into::into),
            consent: consent.map(Into::into),
            source: source.map(Into::into),
        }
    }

    #[test]
    fn counts_and_keeps() {
        let records = [
            record("a", Some("consent"), Some("yes"), Some("expo 2024")),
            record("b", None, Some("yes"), Some("web")),
            record("c", Some("Contract"), None, Some("web")),
            record("d", Some("marketing"), Some("yes"), None),
            record("e", Some(" "), None, None),
        ];
        let open = DatasetPolicy::default();
        assert_eq!(count(records.iter().cloned(), &open).kept, 5);
        let policy = DatasetPolicy {
            require_legal_basis: true,
            require_source: true,
            legal_bases: vec!["consent".into(), "contract".into()],
            ..DatasetPolicy::default()
        };
        let counts = count(records.iter().cloned(), &policy);
        assert_eq!(
            counts,
            Eligibility {
                records: 5,
                kept: 2,
                no_legal_basis: 2,
                legal_basis_not_accepted: 1,
                no_consent: 0,
                no_source: 0,
            }
        );
        assert_eq!(
            counts.summary().unwrap(),
            "3 left out: 2 without a legal basis, 1 with a legal basis not accepted"
        );
        assert!(keeps(&policy, &records[2]) && !keeps(&policy, &records[3]));
    }
}
