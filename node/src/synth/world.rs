//! The underlying population: companies and the key persons working there.
//!
//! Two different persons never share an identifier, whichever forms the two lists use,
//! so the only matches between the lists are those of shared persons. (This is what
//! makes construction agree with the computed ground truth; the truth itself is still
//! computed from the normalised records.) To that end:
//!
//! - each written form of a company (Chinese and English, with and without the city) and
//!   each domain is claimed in a world-wide set of 64-bit keys when the company is
//!   created, and a candidate with a taken key is drawn again;
//! - each written form of a person's name and their work-email handle are claimed the
//!   same way in their company's own set (small sets keep this fast);
//! - private addresses are claimed in a world-wide set;
//! - mobiles are unique by construction: the last eight digits are an affine
//!   permutation of the person's index.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use rand::RngExt;
use rand::rngs::StdRng;

use super::tables::{
    BRAND_CHARS, CITIES, CN_FORMS, ENGLISH_NAMES, FREE_MAIL, GIVEN_CHARS, INDUSTRIES,
    MOBILE_PREFIXES, SURNAMES, TITLES,
};

/// Most companies the generator creates; more persons share them beyond that.
const MAX_COMPANIES: usize = 60_000;
/// Average number of key persons per company (before the cap).
const PERSONS_PER_COMPANY: usize = 16;

/// A company and the ways it is written.
#[derive(Clone, Debug)]
pub(super) struct Company {
    /// Registered Chinese name without legal form: `上海云帆信息科技`.
    pub cn_full: String,
    /// Without the city: `云帆信息科技`.
    pub cn_short: String,
    /// Legal form of the registered name: `有限公司`.
    pub cn_form: &'static str,
    /// English name without legal form: `Shanghai Yunfan Information Technology`.
    pub en_full: String,
    /// Without the city: `Yunfan Information Technology`.
    pub en_short: String,
    /// Whether people write the company in English first (a foreign-facing company).
    pub english_first: bool,
    /// Email domain: `yunfan-tech.cn`.
    pub domain: String,
    /// How the company builds email handles (see [`World::handle`]).
    pub handle_style: u8,
    /// Whether staff with an English name use it in their handle.
    pub english_handles: bool,
    /// Claimed name forms and email handles of the company's staff.
    keys: Keys,
}

impl Company {
    /// The form people at this company write most: the registered Chinese name, or the
    /// short English name for an English-first company.
    pub fn canonical_core(&self) -> (&str, bool) {
        if self.english_first {
            (&self.en_short, false)
        } else {
            (&self.cn_full, true)
        }
    }
}

/// How a person's name is usually written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NameStyle {
    /// `张晓明`
    Hanzi,
    /// `Zhang Xiaoming`
    Pinyin,
    /// `Emily Zhang`
    English,
}

/// One key person.
#[derive(Clone, Debug)]
pub(super) struct Person {
    /// `张晓明`
    pub hanzi: String,
    /// `Zhang Xiaoming`
    pub pinyin: String,
    /// `Xiaoming Zhang`
    pub pinyin_reversed: String,
    /// `Emily Zhang`, if the person uses an English name.
    pub english: Option<String>,
    /// The usual form.
    pub style: NameStyle,
    /// Job title.
    pub title: &'static str,
    /// The 11-digit mobile number.
    pub mobile: u64,
    /// Work email.
    pub work_email: String,
    /// Private email, if the person has one that lists use.
    pub private_email: Option<String>,
}

impl Person {
    /// The usual written name and whether it is in Chinese characters.
    pub fn canonical_name(&self) -> (&str, bool) {
        match (self.style, &self.english) {
            (NameStyle::Hanzi, _) => (&self.hanzi, true),
            (NameStyle::English, Some(english)) => (english, false),
            (NameStyle::Pinyin | NameStyle::English, _) => (&self.pinyin, false),
        }
    }

    /// Another written form of the name (which normalises differently).
    pub fn other_name(&self, rng: &mut StdRng) -> (&str, bool) {
        let (usual, _) = self.canonical_name();
        let mut forms: Vec<(&str, bool)> = vec![
            (&self.hanzi, true),
            (&self.pinyin, false),
            (&self.pinyin_reversed, false),
        ];
        if let Some(english) = &self.english {
            forms.push((english, false));
        }
        forms.retain(|(form, _)| *form != usual);
        let at = rng.random_range(0..forms.len());
        forms[at]
    }
}

/// The companies and the read-only tables persons are drawn from.
pub(super) struct World {
    pub companies: Vec<Company>,
    pub tables: Tables,
}

/// Read-only sampling tables and permutations, shared by every generating thread.
pub(super) struct Tables {
    surname_cumulative: Vec<u32>,
    mobile_cumulative: Vec<u32>,
    /// Affine permutation of mobile suffixes (modulo 10^8).
    mobile_affine: (u64, u64),
    /// Affine permutation of the numbers in private addresses (modulo 10^7).
    private_affine: (u64, u64),
    /// Affine permutation of QQ numbers (modulo 10^9).
    qq_affine: (u64, u64),
}

/// Mobile suffixes are eight digits.
const MOBILE_SUFFIXES: u64 = 100_000_000;
/// Numbers in private addresses other than QQ are below this.
const PRIVATE_NUMBERS: u64 = 10_000_000;
/// QQ numbers are nine digits after a leading digit.
const QQ_NUMBERS: u64 = 1_000_000_000;

/// `(index · multiplier + offset) mod modulus`: a permutation of `0..modulus` when the
/// multiplier is coprime to the modulus, so distinct indices below the modulus give
/// distinct results.
fn affine(index: usize, (multiplier, offset): (u64, u64), modulus: u64) -> u64 {
    let index = u128::from(u64::try_from(index).unwrap_or(u64::MAX)) % u128::from(modulus);
    let value = (index * u128::from(multiplier) + u128::from(offset)) % u128::from(modulus);
    // Below the modulus, a u64.
    u64::try_from(value).unwrap_or(0)
}

/// A hasher for keys that already are uniform 64-bit hashes: it passes them through.
#[derive(Clone, Copy, Debug, Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; this fallback just folds the bytes in.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A set of claimed keys.
#[derive(Clone, Debug, Default)]
struct Keys(HashSet<u64, BuildHasherDefault<PreHashed>>);

impl Keys {
    fn with_capacity(capacity: usize) -> Keys {
        Keys(HashSet::with_capacity_and_hasher(
            capacity,
            BuildHasherDefault::default(),
        ))
    }

    /// Claims every key, or none if one is already taken. (Two claims of one candidate
    /// may be equal; that is harmless.)
    fn claim_all<const N: usize>(&mut self, claims: [Claim<'_>; N]) -> bool {
        let keys = claims.map(|claim| key(&claim));
        if keys.iter().any(|k| self.0.contains(k)) {
            return false;
        }
        self.0.extend(keys);
        true
    }
}

/// Namespaces of claimed keys, so that, say, a domain and a company never clash.
#[derive(Hash)]
enum Claim<'a> {
    Company(&'a str),
    Domain(&'a str),
    Email(&'a str),
    Name(&'a str),
}

fn key(claim: &Claim<'_>) -> u64 {
    let mut hasher = KeyHasher(0x243F_6A88_85A3_08D3);
    claim.hash(&mut hasher);
    hasher.finish()
}

/// A fast, fixed (so the generated data is the same on every run) 64-bit hash for claim
/// keys. Not collision-resistant, which is fine: a collision only makes the generator
/// draw another candidate.
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        // splitmix64 finaliser: spreads every input bit over the whole output.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let mut word = [0u8; 8];
        let rest = chunks.remainder();
        word[..rest.len()].copy_from_slice(rest);
        // The length of the tail keeps "ab" and "ab\0" apart.
        self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
    }
}

impl KeyHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x5851_F42D_4C95_7F2D);
    }
}

/// Weights → running totals, for [`pick_cumulative`].
fn cumulative(weights: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut total = 0u32;
    weights
        .into_iter()
        .map(|weight| {
            total += weight;
            total
        })
        .collect()
}

/// An index drawn with the weights whose running totals are `cumulative`.
pub(super) fn pick_cumulative(rng: &mut StdRng, cumulative: &[u32]) -> usize {
    let total = cumulative.last().copied().unwrap_or(0);
    if total == 0 {
        return 0;
    }
    let ticket = rng.random_range(0..total);
    cumulative.partition_point(|&upto| upto <= ticket)
}

/// An index drawn with `weights`.
pub(super) fn pick_weighted(rng: &mut StdRng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    if total == 0 {
        return 0;
    }
    let mut ticket = rng.random_range(0..total);
    for (at, &weight) in weights.iter().enumerate() {
        if ticket < weight {
            return at;
        }
        ticket -= weight;
    }
    weights.len() - 1
}

/// A uniformly drawn element of a non-empty table.
pub(super) fn pick<'t, T>(rng: &mut StdRng, table: &'t [T]) -> &'t T {
    &table[rng.random_range(0..table.len())]
}

/// Share of persons working at the first `first` of `n` companies: persons pick the
/// company `⌊n·u^1.6⌋` for a uniform `u`.
fn company_share(first: usize, n: usize) -> f64 {
    (first as f64 / n as f64).powf(1.0 / 1.6)
}

/// `yunfan` → `Yunfan`.
pub(super) fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl World {
    /// A world with enough companies for `persons` key persons.
    pub fn new(rng: &mut StdRng, persons: usize) -> World {
        let n_companies = (persons / PERSONS_PER_COMPANY).clamp(8, MAX_COMPANIES);
        let tables = Tables {
            // Surnames weighted by rank: 王 is about 35 times as common as the last.
            surname_cumulative: cumulative((0..SURNAMES.len()).map(|rank| {
                // The table is small, so the rank fits in a u32.
                2_000 / (u32::try_from(rank).unwrap_or(u32::MAX / 4) + 3)
            })),
            mobile_cumulative: cumulative(MOBILE_PREFIXES.iter().map(|&(_, weight)| weight)),
            mobile_affine: affine_parameters(rng, MOBILE_SUFFIXES),
            private_affine: affine_parameters(rng, PRIVATE_NUMBERS),
            qq_affine: affine_parameters(rng, QQ_NUMBERS),
        };
        let mut company_keys = Keys::with_capacity(n_companies * 6);
        for host in FREE_MAIL {
            company_keys.claim_all([Claim::Domain(host)]);
        }
        let mut companies = Vec::with_capacity(n_companies);
        for index in 0..n_companies {
            let mut company = new_company(&mut company_keys, rng, index);
            // Room for the keys of the staff the company can expect (four name forms
            // and a handle each), so its set seldom grows.
            let expected = persons as f64
                * (company_share(index + 1, n_companies) - company_share(index, n_companies));
            // A non-negative count well within usize.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let capacity = (expected * 5.5) as usize + 8;
            company.keys = Keys::with_capacity(capacity);
            companies.push(company);
        }
        World { companies, tables }
    }
}

/// A company (of `n`) for a new key person, drawn with a skew (a few large accounts
/// hold many key persons): the inverse of [`company_share`].
pub(super) fn draw_company(rng: &mut StdRng, n: usize) -> usize {
    let u: f64 = rng.random();
    // `u` is in [0, 1), so the product is in [0, n) and the cast truncates.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let company = (u.powf(1.6) * n as f64) as usize;
    company.min(n.saturating_sub(1))
}

/// Multiplier and offset of an affine permutation modulo `modulus` (a power of ten):
/// the multiplier is odd and not a multiple of 5, so coprime to the modulus.
fn affine_parameters(rng: &mut StdRng, modulus: u64) -> (u64, u64) {
    let mut multiplier = rng.random_range(modulus / 10 + 1..modulus);
    while multiplier.is_multiple_of(2) || multiplier.is_multiple_of(5) {
        multiplier += 1;
    }
    (multiplier, rng.random_range(0..modulus))
}

fn new_company(company_keys: &mut Keys, rng: &mut StdRng, index: usize) -> Company {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let city = pick(rng, CITIES);
        let industry = pick(rng, INDUSTRIES);
        // Two brand characters; three once two-character brands get crowded, and
        // the company's index as a last resort, so the loop always ends.
        let brand_len = if attempt > 32 { 3 } else { 2 };
        let mut brand = String::new();
        let mut brand_py = String::new();
        for _ in 0..brand_len {
            let (hanzi, py) = pick(rng, BRAND_CHARS);
            brand.push_str(hanzi);
            brand_py.push_str(py);
        }
        if attempt > 64 {
            brand.push_str(&index.to_string());
            brand_py.push_str(&index.to_string());
        }
        let cn_full = format!("{}{brand}{}", city.0, industry.0);
        let cn_short = format!("{brand}{}", industry.0);
        let en_short = format!("{} {}", capitalise(&brand_py), industry.1);
        let en_full = format!("{} {en_short}", city.1);
        if !company_keys.claim_all([
            Claim::Company(&cn_full),
            Claim::Company(&cn_short),
            // English names are always capitalised alike, so equal lowercase means
            // equal as written.
            Claim::Company(&en_full),
            Claim::Company(&en_short),
        ]) {
            continue;
        }
        let forms: Vec<u32> = CN_FORMS.iter().map(|&(_, weight)| weight).collect();
        let cn_form = CN_FORMS[pick_weighted(rng, &forms)].0;
        let domain = new_domain(company_keys, rng, &brand_py, industry.2, city.2, index);
        return Company {
            cn_full,
            cn_short,
            cn_form,
            en_full,
            en_short,
            english_first: rng.random_bool(0.08),
            domain,
            handle_style: rng.random_range(0..6),
            english_handles: rng.random_bool(0.4),
            keys: Keys::default(),
        };
    }
}

fn new_domain(
    company_keys: &mut Keys,
    rng: &mut StdRng,
    brand: &str,
    tag: &str,
    city: &str,
    index: usize,
) -> String {
    let mut candidates = [
        format!("{brand}.com"),
        format!("{brand}.cn"),
        format!("{brand}.com.cn"),
        format!("{brand}-{tag}.cn"),
        format!("{brand}{tag}.com"),
        format!("{brand}-{tag}.com"),
        format!("{city}{brand}.com"),
        format!("{brand}group.com"),
    ];
    // Start at a random pattern so domains do not all look alike.
    let start = rng.random_range(0..candidates.len());
    candidates.rotate_left(start);
    for candidate in candidates {
        if company_keys.claim_all([Claim::Domain(&candidate)]) {
            return candidate;
        }
    }
    let mut n = index;
    loop {
        let candidate = format!("{brand}{tag}{n}.com");
        if company_keys.claim_all([Claim::Domain(&candidate)]) {
            return candidate;
        }
        n += 1;
    }
}

impl Tables {
    /// A new key person, the `index`-th overall (distinct persons have distinct
    /// indices), at `staff`'s company.
    pub fn new_person(&self, rng: &mut StdRng, staff: &mut Company, index: usize) -> Person {
        let (hanzi, pinyin, pinyin_reversed, english, surname_py, given_py) = loop {
            let (surname, surname_py) = SURNAMES[pick_cumulative(rng, &self.surname_cumulative)];
            let mut given = String::new();
            let mut given_py = Vec::new();
            let chars = if rng.random_bool(0.25) { 1 } else { 2 };
            for _ in 0..chars {
                let (hanzi, py) = pick(rng, GIVEN_CHARS);
                given.push_str(hanzi);
                given_py.push(*py);
            }
            let hanzi = format!("{surname}{given}");
            let pinyin = format!(
                "{} {}",
                capitalise(surname_py),
                capitalise(&given_py.concat())
            );
            let pinyin_reversed = format!(
                "{} {}",
                capitalise(&given_py.concat()),
                capitalise(surname_py)
            );
            let english = rng
                .random_bool(0.15)
                .then(|| format!("{} {}", pick(rng, ENGLISH_NAMES), capitalise(surname_py)));
            // Romanised names are always capitalised alike, so equal lowercase means
            // equal as written.
            if staff.keys.claim_all([
                Claim::Name(&hanzi),
                Claim::Name(&pinyin),
                Claim::Name(&pinyin_reversed),
                Claim::Name(english.as_deref().unwrap_or(&hanzi)),
            ]) {
                break (
                    hanzi,
                    pinyin,
                    pinyin_reversed,
                    english,
                    surname_py,
                    given_py,
                );
            }
        };

        let style = match (rng.random_range(0..100), &english) {
            (0..70, Some(_)) => NameStyle::English,
            (_, Some(_)) => NameStyle::Hanzi,
            (0..5, None) => NameStyle::Pinyin,
            (_, None) => NameStyle::Hanzi,
        };

        let english_given = english
            .as_deref()
            .and_then(|e| e.split(' ').next())
            .filter(|_| staff.english_handles)
            .map(str::to_lowercase);
        let handle = handle(
            staff.handle_style,
            surname_py,
            &given_py,
            english_given.as_deref(),
        );
        let work_email = claim_email(staff, rng, &handle);

        let private_email = rng
            .random_bool(0.3)
            .then(|| self.private_email(rng, index, surname_py, &given_py));

        // Distinct persons get distinct suffixes (for fewer than 10^8 persons), whatever
        // their prefixes.
        let prefix = u64::from(MOBILE_PREFIXES[pick_cumulative(rng, &self.mobile_cumulative)].0);
        let mobile = prefix * MOBILE_SUFFIXES + affine(index, self.mobile_affine, MOBILE_SUFFIXES);

        let title: &'static str = TITLES[rng.random_range(0..TITLES.len())];
        Person {
            hanzi,
            pinyin,
            pinyin_reversed,
            english,
            style,
            title,
            mobile,
            work_email,
            private_email,
        }
    }

    /// A private address, unique by construction: its number is a permutation of the
    /// person's index (for fewer than 10^7 persons).
    fn private_email(
        &self,
        rng: &mut StdRng,
        index: usize,
        surname: &str,
        given: &[&str],
    ) -> String {
        let host = *pick(rng, FREE_MAIL);
        if host == "qq.com" {
            let qq = QQ_NUMBERS + affine(index, self.qq_affine, QQ_NUMBERS);
            return format!("{qq}@qq.com");
        }
        let n = affine(index, self.private_affine, PRIVATE_NUMBERS);
        let given = given.concat();
        // Letters then digits: the digits alone tell persons apart.
        match rng.random_range(0..4) {
            0 => format!("{surname}{given}{n}@{host}"),
            1 => format!("{given}{surname}{n}@{host}"),
            2 => format!("{surname}_{given}{n}@{host}"),
            _ => format!("{surname}.{given}{n}@{host}"),
        }
    }
}

/// `handle@domain` at `company`, or `handle2@domain`, `handle3@domain`, … if taken.
fn claim_email(company: &mut Company, rng: &mut StdRng, handle: &str) -> String {
    if company.keys.claim_all([Claim::Email(handle)]) {
        return format!("{handle}@{}", company.domain);
    }
    let mut n = rng.random_range(2..4u32);
    loop {
        let candidate = format!("{handle}{n}");
        if company.keys.claim_all([Claim::Email(&candidate)]) {
            return format!("{candidate}@{}", company.domain);
        }
        n += 1;
    }
}

/// The email handle a company's convention gives a person.
fn handle(style: u8, surname: &str, given: &[&str], english: Option<&str>) -> String {
    let full_given = given.concat();
    let initials: String = given.iter().filter_map(|g| g.chars().next()).collect();
    if let Some(english) = english {
        return if style.is_multiple_of(2) {
            format!("{english}.{surname}")
        } else {
            english.to_owned()
        };
    }
    match style {
        0 => format!("{surname}.{full_given}"),
        1 => format!("{surname}{full_given}"),
        2 => format!("{full_given}.{surname}"),
        3 => format!("{initials}{surname}"),
        4 => format!("{surname}{initials}"),
        _ => format!("{surname}_{full_given}"),
    }
}
