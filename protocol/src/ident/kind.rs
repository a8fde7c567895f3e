//! Identifier kinds and sets of kinds.
//!
//! The numeric codes are part of the wire format and of the hash-to-group input: a code
//! is never reused or renumbered.

use std::fmt;
use std::str::FromStr;

/// What an identifier is. Each kind has its own normalisation rules and is hashed with
/// its own code, so an email and a phone number never collide.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IdentKind {
    /// An email address (code 1).
    Email,
    /// A phone number in E.164 form (code 2).
    Phone,
    /// A person's name together with their company (code 3).
    NameCompany,
    /// An opaque identifier agreed between the parties (code 4).
    Custom,
}

impl IdentKind {
    /// Every kind, in code order.
    pub const ALL: [IdentKind; 4] = [
        IdentKind::Email,
        IdentKind::Phone,
        IdentKind::NameCompany,
        IdentKind::Custom,
    ];

    /// The stable numeric code (1..=4) used on the wire and in hashing.
    pub const fn code(self) -> u8 {
        match self {
            IdentKind::Email => 1,
            IdentKind::Phone => 2,
            IdentKind::NameCompany => 3,
            IdentKind::Custom => 4,
        }
    }

    /// The kind with this code, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        IdentKind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The stable lower-case name: `email`, `phone`, `name_company` or `custom`.
    pub fn name(self) -> &'static str {
        match self {
            IdentKind::Email => "email",
            IdentKind::Phone => "phone",
            IdentKind::NameCompany => "name_company",
            IdentKind::Custom => "custom",
        }
    }
}

impl fmt::Display for IdentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no identifier kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown identifier kind (expected email, phone, name_company or custom)")]
pub struct UnknownIdentKind;

impl FromStr for IdentKind {
    type Err = UnknownIdentKind;

    /// Parses the exact name returned by [`IdentKind::name`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdentKind::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or(UnknownIdentKind)
    }
}

/// A set of identifier kinds, as a bitmask with bit `1 << kind.code()`.
///
/// Bit 0 and bits above the highest code are never set; [`KindSet::from_bits`] rejects
/// them, so a set decoded from the wire only ever names known kinds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct KindSet(u8);

impl KindSet {
    /// Bits that correspond to a known kind.
    const KNOWN_BITS: u8 = {
        let mut bits = 0u8;
        let mut i = 0;
        while i < IdentKind::ALL.len() {
            bits |= 1 << IdentKind::ALL[i].code();
            i += 1;
        }
        bits
    };

    /// The empty set.
    pub const fn empty() -> Self {
        KindSet(0)
    }

    /// The set of every kind.
    pub const fn all() -> Self {
        KindSet(Self::KNOWN_BITS)
    }

    /// This set with `kind` added (for building constants).
    pub const fn with(self, kind: IdentKind) -> Self {
        KindSet(self.0 | (1 << kind.code()))
    }

    /// Adds `kind`; returns whether it was newly added.
    pub fn insert(&mut self, kind: IdentKind) -> bool {
        let added = !self.contains(kind);
        *self = self.with(kind);
        added
    }

    /// Removes `kind`; returns whether it was present.
    pub fn remove(&mut self, kind: IdentKind) -> bool {
        let present = self.contains(kind);
        self.0 &= !(1 << kind.code());
        present
    }

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: IdentKind) -> bool {
        self.0 & (1 << kind.code()) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many kinds the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The raw bitmask.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set with this bitmask, or `None` if a bit names no known kind.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::KNOWN_BITS != 0 {
            None
        } else {
            Some(KindSet(bits))
        }
    }

    /// Kinds in both sets.
    pub const fn intersection(self, other: KindSet) -> Self {
        KindSet(self.0 & other.0)
    }

    /// Kinds in either set.
    pub const fn union(self, other: KindSet) -> Self {
        KindSet(self.0 | other.0)
    }

    /// Whether every kind in `self` is also in `other`.
    pub const fn is_subset(self, other: KindSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The kinds in the set, in code order.
    pub fn iter(self) -> impl Iterator<Item = IdentKind> {
        IdentKind::ALL
            .into_iter()
            .filter(move |kind| self.contains(*kind))
    }
}

impl FromIterator<IdentKind> for KindSet {
    fn from_iter<I: IntoIterator<Item = IdentKind>>(iter: I) -> Self {
        iter.into_iter().fold(KindSet::empty(), KindSet::with)
    }
}

impl From<IdentKind> for KindSet {
    fn from(kind: IdentKind) -> Self {
        KindSet::empty().with(kind)
    }
}

impl fmt::Display for KindSet {
    /// Kind names joined by `+` in code order (`email+phone`); `none` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, kind) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            f.write_str(kind.name())?;
        }
        Ok(())
    }
}

impl FromStr for KindSet {
    type Err = UnknownIdentKind;

    /// Parses the [`Display`](fmt::Display) form: kind names joined by `+` (any order,
    /// repeats allowed), or `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "none" {
            return Ok(KindSet::empty());
        }
        s.split('+').map(IdentKind::from_str).collect()
    }
}
