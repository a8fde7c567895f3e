//! Identifier kinds and their versioned normalisation: the one rule set both nodes apply
//! before an identifier is hashed into the group.
//!
//! Two records match only if they normalise to the same bytes, so these rules are part
//! of the protocol: they are pinned by [`NORMALISATION_VERSION`] (which enters the
//! transcript) and by the golden table in `protocol/tests/golden/ident.json`. Any change
//! to an output, however small, needs a new version.
//!
//! An [`Identifier`] is personal data. It has no `Display` and no `Serialize`, its
//! `Debug` shows only the kind and the length, and no [`InvalidIdentifier`] message ever
//! contains the input.
//!
//! # Rules common to every kind
//!
//! 1. Raw input over 4096 bytes is rejected ([`InvalidIdentifier::TooLong`]).
//! 2. Invisible characters are removed: U+00AD soft hyphen, U+180E, U+200B–U+200D
//!    (zero-width space, non-joiner, joiner), U+2060–U+2064, U+FEFF byte-order mark, and
//!    variation selectors U+FE00–U+FE0F and U+E0100–U+E01EF.
//! 3. Unicode NFKC: full-width letters, digits and punctuation become ASCII
//!    (`ＺＨＡＮＧ＠ＥＸＡＭＰＬＥ．ＣＮ` → `ZHANG@EXAMPLE.CN`), the ideographic space
//!    U+3000 becomes a space, compatibility ideographs become unified ones.
//! 4. For emails, names and companies: Unicode lowercase (Rust `str::to_lowercase`) then
//!    NFKC again, repeated until nothing changes (at most 4 rounds, else
//!    [`InvalidIdentifier::UnstableNormalisation`]).
//! 5. Leading and trailing Unicode whitespace (tabs, newlines, U+3000, …) is trimmed;
//!    an empty result is [`InvalidIdentifier::Empty`].
//! 6. Any remaining control character (C0, C1 — including a tab or newline inside the
//!    value), bidirectional formatting character (U+061C, U+200E, U+200F,
//!    U+202A–U+202E, U+2066–U+2069) or tag character (U+E0000–U+E007F) is rejected
//!    ([`InvalidIdentifier::ControlCharacter`]), as is a code point unassigned in the
//!    Unicode version of the `unicode-normalization` tables
//!    ([`InvalidIdentifier::UnassignedCharacter`]; private-use characters are allowed).
//! 7. Length limits are in UTF-8 bytes of the normalised value.
//!
//! The Unicode data comes from the `unicode-normalization` crate (NFKC, assigned code
//! points) and the Rust standard library (lowercase), both pinned by `Cargo.lock` and the
//! toolchain. An upgrade that changes their data for assigned characters changes outputs
//! and so needs a new version; the golden table is the canary.
//!
//! # Email ([`Normaliser::email`])
//!
//! After the common steps: one pair of enclosing angle brackets (`<a@b.cn>`) and then a
//! leading `mailto:` (any case) are removed. The address must contain no whitespace,
//! exactly one `@`, a local part of 1–64 bytes without the characters `"(),:;<>[\]` and
//! without leading, trailing or doubled dots, and a domain of at least two labels. The
//! ideographic full stop `。` (and `｡`, `．`) in the domain becomes `.`, as in IDNA. Each
//! label is 1–63 bytes of letters, digits and inner hyphens (non-ASCII letters allowed)
//! and the last label is not all digits. The whole address is at most 254 bytes.
//!
//! The local part is lowercased although RFC 5321 lets it be case-sensitive: no mail
//! provider treats it so. No provider-specific rewriting is done: Gmail dots and
//! `+tags` are kept, so `z.hang+crm@gmail.com` and `zhang@gmail.com` do not match.
//! Quoted local parts and address literals are rejected. Internationalised domains are
//! compared as written: `例子.中国` and its Punycode form `xn--fsqu00a.xn--fiqs8s` do
//! not match.
//!
//! # Phone ([`Normaliser::phone`])
//!
//! Output: E.164 (`+8613800138000`), with `;ext=DIGITS` appended if an extension was
//! given.
//!
//! 1. Common steps (no lowercasing), then ASCII lowercase for the markers below.
//! 2. A leading label followed by `:` is removed: `tel` (so RFC 3966 `tel:` URIs work),
//!    `phone`, `mobile`, `mob`, `cell`, `电话`, `手机`, `座机`, `固话`, `電話`, `手機`.
//! 3. An extension starts at the first of `;ext=`, `extension`, `ext`, `x`, `#`, `分机`,
//!    `分機`, `转`, `轉`, may be followed by spaces, `.`, `:`, `=` or `-`, and must then
//!    be 1–10 digits ending the input ([`InvalidIdentifier::InvalidExtension`]). Other
//!    letters are [`InvalidIdentifier::InvalidPhoneCharacter`]. The
//!    `010-12345678-8001` form of an extension is not recognised (it reads as one
//!    overlong number and is rejected).
//! 4. Separators are removed: whitespace, `-` `.` `(` `)` `/`, and dashes U+2010–U+2015
//!    and U+2212 (full-width forms are ASCII after NFKC). A `+` is allowed only before
//!    the first digit.
//! 5. A leading `00` (the international prefix of China and most countries) becomes `+`.
//!    3–17 digits are required ([`InvalidIdentifier::PhoneDigitCount`]).
//! 6. The default region's own international prefix (e.g. `011` for the US; `00` for
//!    China) also becomes `+`, unless a `0` follows it.
//! 7. A number starting with `+` is parsed with no default region, so every node reads
//!    it the same way; any other number is parsed in the normaliser's default region by
//!    the `phonenumber` crate (libphonenumber's rules and metadata), which drops the
//!    national trunk prefix (`010-12345678` → `+861012345678`).
//! 8. The number must be valid for its country (`phonenumber::is_valid`: length and
//!    number ranges), else [`InvalidIdentifier::InvalidPhone`]; the E.164 result must
//!    read back as itself.
//!
//! The trunk prefix written in parentheses in international form is dropped too
//! (`+86 (0)10 1234 5678` → `+861012345678`). A bare `8613800138000` (country code
//! without `+` or `00`) is left to libphonenumber: with default region CN, a leading `86`
//! is taken as the country code when the digits are not a plausible national number,
//! which holds for an 86-prefixed 11-digit mobile (and `861012345678` for a Beijing
//! landline), so it gives `+8613800138000`.
//!
//! # Name + company ([`Normaliser::name_company`])
//!
//! Each part: the common steps with lowercasing; internal whitespace runs become one
//! space; the interpuncts U+2022, U+2027, U+2219, U+22C5 and U+30FB (`・`) become
//! U+00B7 `·` (约翰·史密斯); a space with a CJK character (Han, kana, bopomofo, Hangul,
//! CJK punctuation) on either side is removed, so `张 三` = `张三` and
//! `华为 Technologies` = `华为technologies`. Name order, titles, diacritics and pinyin
//! versus characters are not reconciled (`Zhang San` ≠ `San Zhang` ≠ `张三`).
//!
//! The company then loses, repeatedly from its end, until nothing changes: its trailing
//! junk, then the first of the following that ends it (tried in this order):
//!
//! - trailing junk: whitespace and `.` `,` `;` `:` `-` `&` `/` `·` `、` `。`;
//! - one of these decorations: `(中国)` `(中國)` `(china)` `(集团)` `(集團)` `(group)`
//!   (full-width brackets are ASCII after NFKC);
//! - one of these Chinese suffixes, longest first: `股份有限公司`, `有限责任公司`,
//!   `有限責任公司`, `集团公司`, `集團公司`, `有限公司`, `股份公司`, `集团`, `集團`, `公司`;
//! - one of these Latin words, when the character before it is not a letter or digit
//!   (or is CJK): `incorporated`, `corporation`, `limited`, `company`, `group`, `l.l.c`,
//!   `gmbh`, `corp`, `inc`, `llc`, `ltd`, `plc`, `pte`, `ag`, `co`.
//!
//! If removing that suffix would leave nothing (or only junk), the company is left as it
//! is, so `有限公司` alone stays `有限公司` (not `有限`). Examples:
//! `西门子（中国）有限公司` → `西门子`; `Huawei Technologies Co., Ltd.` →
//! `huawei technologies`; `阿里巴巴集团控股有限公司` → `阿里巴巴集团控股`. Parts are at
//! most 256 bytes each; an empty part is [`InvalidIdentifier::EmptyName`] or
//! [`InvalidIdentifier::EmptyCompany`]. The value is `name` U+001F `company`.
//!
//! # Custom ([`Normaliser::custom`])
//!
//! The common steps without lowercasing; at most 256 bytes; otherwise opaque.

mod email;
mod kind;
mod name;
mod phone;
mod text;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id as Region;

pub use kind::{IdentKind, KindSet, UnknownIdentKind};

/// Version of the rules in this module. Enters the transcript hash so that two nodes
/// with different rules never match silently.
pub const NORMALISATION_VERSION: u16 = 1;

/// Longest accepted custom identifier, in UTF-8 bytes.
pub const MAX_CUSTOM_BYTES: usize = 256;

/// A normalised identifier of one kind. Personal data: never logged, never displayed,
/// never serialised; `Debug` shows only the kind and the length.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identifier {
    kind: IdentKind,
    value: String,
}

impl Identifier {
    /// The kind.
    pub fn kind(&self) -> IdentKind {
        self.kind
    }

    /// The normalised value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The normalised value as UTF-8 bytes (what is hashed).
    pub fn as_bytes(&self) -> &[u8] {
        self.value.as_bytes()
    }

    /// The `(name, company)` parts of a [`IdentKind::NameCompany`] identifier; `None`
    /// for other kinds.
    pub fn name_company_parts(&self) -> Option<(&str, &str)> {
        match self.kind {
            IdentKind::NameCompany => name::split(&self.value),
            _ => None,
        }
    }
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identifier")
            .field("kind", &self.kind)
            .field("len", &self.value.len())
            .finish_non_exhaustive()
    }
}

/// Applies the rules of [`NORMALISATION_VERSION`]. Holds the default region used to
/// read phone numbers written without a country code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normaliser {
    region: Region,
}

impl Default for Normaliser {
    /// Default region `CN`.
    fn default() -> Self {
        Normaliser { region: Region::CN }
    }
}

impl Normaliser {
    /// A normaliser reading national phone numbers in `default_region`, an ISO 3166-1
    /// alpha-2 code such as `CN` (any case).
    pub fn new(default_region: &str) -> Result<Self, InvalidIdentifier> {
        let code = default_region.trim().to_ascii_uppercase();
        let region = Region::from_str(&code).map_err(|_| InvalidIdentifier::UnknownRegion)?;
        // The phone parser looks the region up and panics if it has no metadata, so
        // only regions it knows are accepted.
        if phonenumber::metadata::DATABASE
            .by_id(region.as_ref())
            .is_none()
        {
            return Err(InvalidIdentifier::UnknownRegion);
        }
        Ok(Normaliser { region })
    }

    /// The default phone region, e.g. `CN`.
    pub fn default_region(&self) -> &str {
        self.region.as_ref()
    }

    /// Normalises an email address.
    pub fn email(&self, raw: &str) -> Result<Identifier, InvalidIdentifier> {
        email::normalise(raw).map(|value| Identifier {
            kind: IdentKind::Email,
            value,
        })
    }

    /// Normalises a phone number to E.164.
    pub fn phone(&self, raw: &str) -> Result<Identifier, InvalidIdentifier> {
        phone::normalise(raw, self.region).map(|value| Identifier {
            kind: IdentKind::Phone,
            value,
        })
    }

    /// Normalises a person's name and company into one identifier.
    pub fn name_company(&self, name: &str, company: &str) -> Result<Identifier, InvalidIdentifier> {
        name::normalise(name, company).map(|value| Identifier {
            kind: IdentKind::NameCompany,
            value,
        })
    }

    /// Normalises an opaque custom identifier.
    pub fn custom(&self, raw: &str) -> Result<Identifier, InvalidIdentifier> {
        let value = text::canonical(raw, text::Case::Keep, MAX_CUSTOM_BYTES)?;
        if value.len() > MAX_CUSTOM_BYTES {
            return Err(InvalidIdentifier::TooLong {
                max: MAX_CUSTOM_BYTES,
            });
        }
        Ok(Identifier {
            kind: IdentKind::Custom,
            value,
        })
    }

    /// Normalises `raw` as `kind`. For [`IdentKind::NameCompany`], `raw` is the name and
    /// the company joined by U+001F, the form of [`Identifier::value`], so a stored value
    /// can be checked or re-normalised.
    pub fn normalise(&self, kind: IdentKind, raw: &str) -> Result<Identifier, InvalidIdentifier> {
        match kind {
            IdentKind::Email => self.email(raw),
            IdentKind::Phone => self.phone(raw),
            IdentKind::NameCompany => {
                let (name, company) =
                    name::split(raw).ok_or(InvalidIdentifier::MissingNameCompanySeparator)?;
                self.name_company(name, company)
            }
            IdentKind::Custom => self.custom(raw),
        }
    }
}

/// Why an identifier was rejected. Messages say why and never contain the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidIdentifier {
    /// Nothing left after trimming.
    #[error("identifier is empty")]
    Empty,
    /// Over the length limit (in UTF-8 bytes).
    #[error("identifier is longer than {max} bytes")]
    TooLong {
        /// The limit for this kind.
        max: usize,
    },
    /// A control, bidirectional-formatting or tag character.
    #[error("identifier contains a control or invisible formatting character")]
    ControlCharacter,
    /// A code point not assigned in our Unicode version.
    #[error("identifier contains a character unassigned in Unicode")]
    UnassignedCharacter,
    /// Case folding and NFKC did not settle (pathological Unicode).
    #[error("identifier contains characters whose Unicode normalisation does not settle")]
    UnstableNormalisation,
    /// Whitespace inside an email address.
    #[error("email address contains whitespace")]
    ContainsWhitespace,
    /// No `@` in an email address.
    #[error("email address has no '@'")]
    MissingAt,
    /// More than one `@` (several addresses in one field, or a quoted local part).
    #[error("email address has more than one '@' (several addresses in one field?)")]
    MultipleAt,
    /// Nothing before the `@`.
    #[error("email address has nothing before the '@'")]
    EmptyLocalPart,
    /// Local part over the length limit.
    #[error("email address has more than {max} bytes before the '@'")]
    LocalPartTooLong {
        /// The limit.
        max: usize,
    },
    /// Local part with a forbidden character or misplaced dot.
    #[error(
        "email address has a forbidden character or a leading, trailing or doubled dot before the '@'"
    )]
    InvalidLocalPart,
    /// Domain not made of at least two valid labels.
    #[error(
        "email domain is not valid (it needs at least two dot-separated labels of letters, digits and inner hyphens)"
    )]
    InvalidDomain,
    /// A character that is not a digit, separator, leading `+` or extension marker.
    #[error(
        "phone number contains a character other than digits, separators, a leading '+' or an extension marker"
    )]
    InvalidPhoneCharacter,
    /// An extension marker not followed by 1–10 digits.
    #[error("phone extension must be 1 to 10 digits after the marker")]
    InvalidExtension,
    /// Too few or too many digits to be a phone number.
    #[error("phone number has too few or too many digits")]
    PhoneDigitCount,
    /// Not a valid number in its country's numbering plan.
    #[error(
        "not a valid phone number for its country (numbers without '+' or '00' are read in the default region)"
    )]
    InvalidPhone,
    /// The default phone region is not a known region code.
    #[error("unknown phone region (expected an ISO 3166-1 alpha-2 code such as CN)")]
    UnknownRegion,
    /// The name part is empty.
    #[error("name is empty")]
    EmptyName,
    /// The company part is empty.
    #[error("company is empty")]
    EmptyCompany,
    /// A combined name+company value without the U+001F separator.
    #[error("name+company value lacks the U+001F separator between name and company")]
    MissingNameCompanySeparator,
}

impl InvalidIdentifier {
    /// A stable snake_case code for counting and reporting rejections by reason.
    pub fn code(&self) -> &'static str {
        match self {
            InvalidIdentifier::Empty => "empty",
            InvalidIdentifier::TooLong { .. } => "too_long",
            InvalidIdentifier::ControlCharacter => "control_character",
            InvalidIdentifier::UnassignedCharacter => "unassigned_character",
            InvalidIdentifier::UnstableNormalisation => "unstable_normalisation",
            InvalidIdentifier::ContainsWhitespace => "contains_whitespace",
            InvalidIdentifier::MissingAt => "missing_at",
            InvalidIdentifier::MultipleAt => "multiple_at",
            InvalidIdentifier::EmptyLocalPart => "empty_local_part",
            InvalidIdentifier::LocalPartTooLong { .. } => "local_part_too_long",
            InvalidIdentifier::InvalidLocalPart => "invalid_local_part",
            InvalidIdentifier::InvalidDomain => "invalid_domain",
            InvalidIdentifier::InvalidPhoneCharacter => "invalid_phone_character",
            InvalidIdentifier::InvalidExtension => "invalid_extension",
            InvalidIdentifier::PhoneDigitCount => "phone_digit_count",
            InvalidIdentifier::InvalidPhone => "invalid_phone",
            InvalidIdentifier::UnknownRegion => "unknown_region",
            InvalidIdentifier::EmptyName => "empty_name",
            InvalidIdentifier::EmptyCompany => "empty_company",
            InvalidIdentifier::MissingNameCompanySeparator => "missing_name_company_separator",
        }
    }
}
