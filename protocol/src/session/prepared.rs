//! A party's set, prepared for a session: identifiers deduplicated across records,
//! each unique identifier mapped back to every record that holds it.
//!
//! Layout is flat (one byte buffer, offset arrays in CSR form) so a million-element
//! set costs a few dozen bytes per element and no per-element allocation. The buffers
//! are shared between clones, so several sessions run from one set.

use std::sync::Arc;

use curve25519_dalek::ristretto::RistrettoPoint;
use rayon::prelude::*;

use crate::group::hash_identifier;
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

        let mut values = Values::default();
        let mut owners = Owners {
            records,
            ..Owners::default()
        };
        let mut previous: Option<Entry> = None;
        for entry in entries {
            let same = previous.is_some_and(|p| p.kind == entry.kind && value(&p) == value(&entry));
            if !same {
                owners.kinds.push(entry.kind);
                values.bytes.extend_from_slice(value(&entry));
                values.ends.push(values.bytes.len());
                owners.ends.push(owners.owners.len() as u32);
            }
            let last_owner = owners.owners.last().copied();
            if !(same && last_owner == Some(entry.record)) {
                owners.owners.push(entry.record);
                if let Some(end) = owners.ends.last_mut() {
                    *end += 1;
                }
            }
            previous = Some(entry);
        }
        values.bytes.shrink_to_fit();
        values.ends.shrink_to_fit();
        owners.kinds.shrink_to_fit();
        owners.ends.shrink_to_fit();
        owners.owners.shrink_to_fit();
        PreparedSet {
            values: Some(Arc::new(values)),
            owners: Arc::new(owners),
            hashed: None,
        }
    }
}

/// A deduplicated set of identifiers with their owning records.
///
/// Cloning is cheap: the buffers are shared, so one set serves any number of sessions
/// (one `match` against several peers) without a copy per session.
#[derive(Clone)]
pub struct PreparedSet {
    /// The identifier bytes; `None` once a session has blinded every element.
    values: Option<Arc<Values>>,
    /// What maps an element back to its kind and records.
    owners: Arc<Owners>,
    /// `H(x)` of every element, in element order, when [`PreparedSet::hash_to_group`]
    /// was called: sessions then blind these instead of hashing again.
    hashed: Option<Arc<[RistrettoPoint]>>,
}

/// Identifier bytes in CSR form: element `i` is `bytes[ends[i-1]..ends[i]]`.
#[derive(Default)]
struct Values {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

/// Per element its kind code and (CSR) owning records.
#[derive(Default)]
struct Owners {
    kinds: Vec<u8>,
    ends: Vec<u32>,
    owners: Vec<u32>,
    records: u32,
}

impl Default for PreparedSet {
    fn default() -> Self {
        PreparedSetBuilder::new().build()
    }
}

impl PreparedSet {
    /// Number of unique identifiers: the set size declared to the peer.
    pub fn len(&self) -> usize {
        self.owners.kinds.len()
    }

    /// True when there is no identifier at all.
    pub fn is_empty(&self) -> bool {
        self.owners.kinds.is_empty()
    }

    /// One more than the highest record index added.
    pub fn record_count(&self) -> u32 {
        self.owners.records
    }

    /// The identifier kinds present.
    pub fn kinds(&self) -> KindSet {
        let mut set = KindSet::empty();
        for kind in IdentKind::ALL {
            if self.owners.kinds.contains(&kind.code()) {
                set.insert(kind);
            }
        }
        set
    }

    /// Hashes every identifier to the group, on all cores, and keeps the points, so
    /// that every session started from this set (or a clone of it) blinds them without
    /// hashing again: with several peers in one run, `H(x)` is computed once per
    /// identifier, not once per peer. Costs [`HASHED_POINT_BYTES`] of memory per element,
    /// shared by the clones. Does nothing if already done, or if the identifier bytes
    /// were dropped (a set that has been through a session).
    pub fn hash_to_group(&mut self) {
        if self.hashed.is_some() {
            return;
        }
        let Some(values) = self.values.as_ref() else {
            return;
        };
        let owners = &self.owners;
        let points: Vec<RistrettoPoint> = (0..owners.kinds.len())
            .into_par_iter()
            .with_min_len(256)
            .map(|i| hash_identifier(owners.kinds[i], values.value(i)))
            .collect();
        self.hashed = Some(points.into());
    }

    /// Whether [`PreparedSet::hash_to_group`] has been done.
    pub fn is_hashed(&self) -> bool {
        self.hashed.is_some()
    }

    /// Unique identifier `i` as `(kind code, normalised bytes)`, the form hash-to-group
    /// takes; empty bytes once the values were dropped (only after every element was
    /// blinded, so no caller asks then).
    pub(crate) fn element(&self, i: usize) -> (u8, &[u8]) {
        let value = self.values.as_ref().map_or(&[][..], |v| v.value(i));
        (self.owners.kinds[i], value)
    }

    /// `H(x)` of unique identifier `i`, if the set was hashed.
    pub(crate) fn hashed_point(&self, i: usize) -> Option<&RistrettoPoint> {
        self.hashed.as_ref().map(|points| &points[i])
    }

    /// The kind code of unique identifier `i`.
    pub(crate) fn kind_code(&self, i: usize) -> u8 {
        self.owners.kinds[i]
    }

    /// The records holding unique identifier `i`.
    pub(crate) fn owners(&self, i: usize) -> &[u32] {
        let ends = &self.owners.ends;
        let start = if i == 0 { 0 } else { ends[i - 1] as usize };
        &self.owners.owners[start..ends[i] as usize]
    }

    /// Drops this session's hold on the identifier bytes (and hashed points) once every
    /// element has been blinded, keeping only what maps results back to records. The
    /// memory is freed when the last clone lets go.
    pub(crate) fn forget_values(&mut self) {
        self.values = None;
        self.hashed = None;
    }

    /// Approximate heap bytes held (shared buffers counted in full).
    pub fn heap_bytes(&self) -> usize {
        let values = self.values.as_ref().map_or(0, |v| {
            v.bytes.capacity() + v.ends.capacity() * size_of::<usize>()
        });
        let hashed = self
            .hashed
            .as_ref()
            .map_or(0, |points| points.len() * HASHED_POINT_BYTES);
        let owners = &self.owners;
        values
            + hashed
            + owners.kinds.capacity()
            + (owners.ends.capacity() + owners.owners.capacity()) * 4
    }
}

#[cfg(test)]
impl PreparedSet {
    /// The set without its identifier bytes: a session can then only blind from the
    /// points [`PreparedSet::hash_to_group`] kept (tests of that cache).
    pub(crate) fn without_values(mut self) -> Self {
        self.values = None;
        self
    }
}

/// Memory per element of [`PreparedSet::hash_to_group`]'s cache (one group element in
/// extended coordinates).
pub const HASHED_POINT_BYTES: usize = size_of::<RistrettoPoint>();

impl Values {
    fn value(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
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
