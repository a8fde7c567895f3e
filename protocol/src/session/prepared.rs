//! A party's set, prepared for a session: identifiers deduplicated across records,
//! each unique identifier mapped back to every record that holds it.
//!
//! Layout is flat (one byte buffer, offset arrays in CSR form) so a million-element
//! set costs a few dozen bytes per element and no per-element allocation.

use crate::ident::{IdentKind, Identifier, KindSet};

/// Builds a [`PreparedSet`] from `(record index, identifier)` pairs.
#[derive(Default)]
pub struct PreparedSetBuilder {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    records: u32,
}

#[derive(Clone, Copy)]
struct Entry {
    kind: u8,
    start: usize,
    len: u32,
    record: u32,
}

impl PreparedSetBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one normalised identifier held by record `record` (the caller's own index,
    /// returned in results). A record may hold several identifiers.
    pub fn add(&mut self, record: u32, identifier: &Identifier) {
        self.add_normalised(record, identifier.kind(), identifier.as_bytes());
    }

    /// Adds an identifier already normalised by [`crate::ident`] at the current
    /// [`NORMALISATION_VERSION`](crate::ident::NORMALISATION_VERSION), e.g. loaded from
    /// a stored dataset, without normalising it again.
    pub fn add_normalised(&mut self, record: u32, kind: IdentKind, value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.entries.push(Entry {
            kind: kind.code(),
            start,
            // Normalised identifiers are bounded far below 4 GiB by `ident`.
            len: u32::try_from(value.len()).unwrap_or(u32::MAX),
            record,
        });
        self.records = self.records.max(record.saturating_add(1));
    }

    /// Deduplicates and freezes the set.
    pub fn build(self) -> PreparedSet {
        let Self {
            bytes,
            mut entries,
            records,
        } = self;
        let value = |e: &Entry| &bytes[e.start..e.start + e.len as usize];
        entries.sort_unstable_by(|a, b| {
            (a.kind, value(a), a.record).cmp(&(b.kind, value(b), b.record))
        });

        let mut set = PreparedSet {
            records,
            ..PreparedSet::default()
        };
        let mut previous: Option<Entry> = None;
        for entry in entries {
            let same = previous.is_some_and(|p| p.kind == entry.kind && value(&p) == value(&entry));
            if !same {
                set.kinds.push(entry.kind);
                set.bytes.extend_from_slice(value(&entry));
                set.value_ends.push(set.bytes.len());
                set.owner_ends.push(set.owners.len() as u32);
            }
            let last_owner = set.owners.last().copied();
            if !(same && last_owner == Some(entry.record)) {
                set.owners.push(entry.record);
                if let Some(end) = set.owner_ends.last_mut() {
                    *end += 1;
                }
            }
            previous = Some(entry);
        }
        set.kinds.shrink_to_fit();
        set.bytes.shrink_to_fit();
        set.value_ends.shrink_to_fit();
        set.owner_ends.shrink_to_fit();
        set.owners.shrink_to_fit();
        set
    }
}

/// A deduplicated set of identifiers with their owning records.
#[derive(Default, Clone)]
pub struct PreparedSet {
    kinds: Vec<u8>,
    bytes: Vec<u8>,
    value_ends: Vec<usize>,
    owner_ends: Vec<u32>,
    owners: Vec<u32>,
    records: u32,
}

impl PreparedSet {
    /// Number of unique identifiers: the set size declared to the peer.
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// True when there is no identifier at all.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// One more than the highest record index added.
    pub fn record_count(&self) -> u32 {
        self.records
    }

    /// The identifier kinds present.
    pub fn kinds(&self) -> KindSet {
        let mut set = KindSet::empty();
        for kind in IdentKind::ALL {
            if self.kinds.contains(&kind.code()) {
                set.insert(kind);
            }
        }
        set
    }

    /// Unique identifier `i` as `(kind code, normalised bytes)`, the form hash-to-group takes.
    pub(crate) fn element(&self, i: usize) -> (u8, &[u8]) {
        let start = if i == 0 { 0 } else { self.value_ends[i - 1] };
        (self.kinds[i], &self.bytes[start..self.value_ends[i]])
    }

    /// The kind code of unique identifier `i`.
    pub(crate) fn kind_code(&self, i: usize) -> u8 {
        self.kinds[i]
    }

    /// The records holding unique identifier `i`.
    pub(crate) fn owners(&self, i: usize) -> &[u32] {
        let start = if i == 0 {
            0
        } else {
            self.owner_ends[i - 1] as usize
        };
        &self.owners[start..self.owner_ends[i] as usize]
    }

    /// Drops the identifier bytes once every element has been blinded, keeping only
    /// what maps results back to records.
    pub(crate) fn forget_values(&mut self) {
        self.bytes = Vec::new();
        self.value_ends = Vec::new();
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.kinds.capacity()
            + self.bytes.capacity()
            + self.value_ends.capacity() * std::mem::size_of::<usize>()
            + (self.owner_ends.capacity() + self.owners.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::Normaliser;

    #[test]
    fn duplicates_across_records_are_sent_once_and_map_to_all() {
        let n = Normaliser::default();
        let mut b = PreparedSetBuilder::new();
        let shared = n.email("li.lei@example.cn").expect("valid");
        b.add(0, &shared);
        b.add(0, &n.phone("13800138000").expect("valid"));
        b.add(3, &n.email(" LI.LEI@EXAMPLE.CN ").expect("valid"));
        b.add(3, &shared); // same record, same identifier twice
        let set = b.build();
        assert_eq!(set.len(), 2);
        assert_eq!(set.record_count(), 4);
        let email = (0..set.len())
            .find(|&i| set.kind_code(i) == IdentKind::Email.code())
            .expect("email present");
        assert_eq!(set.owners(email), &[0, 3]);
        assert_eq!(set.element(email).1, b"li.lei@example.cn");
    }

    #[test]
    fn same_value_of_different_kinds_stays_distinct() {
        let n = Normaliser::default();
        let mut b = PreparedSetBuilder::new();
        b.add(0, &n.custom("x@y.cn").expect("valid"));
        b.add(1, &n.email("x@y.cn").expect("valid"));
        assert_eq!(b.build().len(), 2);
    }
}
