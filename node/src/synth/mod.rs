//! Synthetic key-person (KP) contact lists for `demo`, `bench` and tests: realistic,
//! messy and deterministic for a seed.
//!
//! [`generate_pair`] builds two lists — A, an enterprise CRM export (`crm-000123`), and
//! B, a data provider's list (`prov-004567`) — in which exactly
//! [`SynthSpec::overlap`] persons appear in both, and computes the [`Truth`] a correct
//! PSI must output from the records themselves, with the protocol's normalisation.
//!
//! # The population
//!
//! Companies have registered Chinese names (`上海云帆信息科技有限公司`, city + brand +
//! industry + legal form), an English name (`Yunfan Information Technology Co., Ltd.`;
//! about 8% of companies are written in English first) and an email domain
//! (`yunfan-tech.cn`). Key persons have Chinese names drawn from frequency-weighted
//! surnames (王 李 张 刘 陈 …, and 欧阳, 司马 …) and given-name characters, a romanised
//! form (`Zhang Xiaoming`), sometimes an English name (`Emily Chen`), a KP title
//! (CTO, 市场总监, 采购经理 …), a +86 mobile (13x/15x/16x/17x/18x/19x), a work email
//! following their company's convention (`zhang.xiaoming@`, `xmzhang@`, `emily.chen@`,
//! with `2`, `3`, … on clashes) and sometimes a private one (`12345678@qq.com`).
//! Different persons never share an identifier in any written form, so the only matches
//! between the lists are those of shared persons.
//!
//! # Messiness ([`SynthSpec::messy`])
//!
//! When `messy` is false, both lists hold clean values: every field present, each
//! person written the same way in both lists (A writes mobiles `13800138000`, B
//! `+8613800138000`); no duplicates, no invalid rows. Every shared person then matches
//! on all three kinds.
//!
//! When `messy` is true each list writes values its own way, noisily:
//!
//! - mobiles in A: `13800138000`, `138-0013-8000`, `138 0013 8000`,
//!   `+86 138 0013 8000`, `(+86)13800138000`, `１３８００１３８０００`,
//!   `手机：13800138000`, `0086 13800138000`, surrounding spaces; in B: `+8613800138000`,
//!   `+86 138-0013-8000`, `0086-138-0013-8000`, `8613800138000`,
//!   `tel:+86-138-0013-8000`, …;
//! - emails: upper or mixed case, surrounding spaces, full-width `＠` or a wholly
//!   full-width address, `mailto:`, `<…>`, `。` in the domain, a trailing zero-width
//!   space; a private address instead of the work one;
//! - names: `张 伟`, `张　伟`, a leading BOM, `ZHANG Xiaoming`, `emily chen`, full-width
//!   Latin, double spaces; sometimes another form (`张晓明` in one list, `Zhang Xiaoming`
//!   or `Emily Zhang` in the other);
//! - companies: with or without `有限公司`/`Co., Ltd.`, another legal form, `（中国）`,
//!   `(集团)`, trailing `。` or space, upper case; sometimes without the city
//!   (`云帆信息科技`) or in the other language;
//! - missing emails, phones, names or companies; a few mistyped values that are not
//!   identifiers at all (`zhang.wei@@yunfan-tech.cn`, `Zhang Wei <…>`, `138O0138000`,
//!   two numbers in one cell);
//! - duplicates: about 1% of rows are the same person again under another id,
//!   formatted afresh;
//! - invalid rows: about 0.5% of rows carry no usable identifier (an empty row,
//!   `wang@@x` with phone `12345`, `N/A`, whitespace, Excel `#N/A`/`#VALUE!`).
//!
//! Each shared person keeps one identifier kind (email, phone or name+company) whose
//! written forms in both lists normalise equal, in every one of their records, so each
//! record of a shared person matches; their other identifiers may or may not match. The
//! truth is not assumed from this: [`compute_truth`] normalises every record.
//!
//! # Determinism and speed
//!
//! Output depends only on the spec: the generators are `StdRng`s seeded from
//! [`SynthSpec::seed`], so the same seed gives the same lists (with the same `rand`
//! version), whatever the number of threads. Generation is linear — hash sets of
//! claimed identifiers per company, no scan of the other list — and runs batches of
//! companies in parallel (rayon): about 3.5 s for 1,000,000 rows per side on two busy
//! cores. [`compute_truth`] normalises every value, in parallel, and intersects with
//! hash sets; phone normalisation (about 10 µs a number) dominates its cost, so for
//! large lists it takes much longer than generation (about 4.5 s for 100,000 rows per
//! side on two cores). Use [`generate_lists`] when the truth is not needed.

mod format;
mod tables;
mod truth;
mod world;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::io::{self, Write};
use std::path::Path;

use blindmatch_protocol::ident::{IdentKind, KindSet};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use format::Side;
use rayon::prelude::*;
use world::{Person, Tables, World, pick};

pub use truth::{ListTruth, Truth, compute_truth, record_identifiers};

/// The identifier kinds the ground truth of [`generate_pair`] uses: email, phone and
/// name+company.
pub const SYNTH_KINDS: KindSet = KindSet::empty()
    .with(IdentKind::Email)
    .with(IdentKind::Phone)
    .with(IdentKind::NameCompany);

/// The CSV header [`write_csv`] writes.
pub const CSV_HEADER: [&str; 6] = ["id", "name", "company", "title", "email", "mobile"];

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthSpec {
    /// Rows in list A (including duplicates and invalid rows).
    pub n_a: usize,
    /// Rows in list B (including duplicates and invalid rows).
    pub n_b: usize,
    /// Persons in both lists; at most `min(n_a, n_b)` (larger values are capped).
    pub overlap: usize,
    /// Seed: the same spec always gives the same lists.
    pub seed: u64,
    /// Whether the lists are written messily (see the module documentation).
    pub messy: bool,
}

/// Where a record comes from (known by construction; not written to CSV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A person's record. Persons `0..shared_persons` appear in both lists.
    Person {
        /// The person's index.
        person: usize,
        /// Whether this is a further record of a person already in the list.
        duplicate: bool,
    },
    /// An injected row with no usable identifier.
    Invalid,
}

/// One row of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthRecord {
    /// Unique within its list: `crm-000123` (A) or `prov-004567` (B).
    pub id: String,
    /// The person's name as written: `张伟`, `Zhang Wei`, `Emily Chen`, ….
    pub name: String,
    /// The company as written.
    pub company: String,
    /// Job title (never matched on).
    pub title: String,
    /// Email as written (may be empty or invalid).
    pub email: String,
    /// Mobile as written (may be empty or invalid).
    pub mobile: String,
    /// Where the record comes from.
    pub origin: Origin,
}

impl SynthRecord {
    /// The CSV fields, in [`CSV_HEADER`] order.
    pub fn fields(&self) -> [&str; 6] {
        [
            &self.id,
            &self.name,
            &self.company,
            &self.title,
            &self.email,
            &self.mobile,
        ]
    }

    /// The person behind the record, if any.
    pub fn person(&self) -> Option<usize> {
        match self.origin {
            Origin::Person { person, .. } => Some(person),
            Origin::Invalid => None,
        }
    }
}

/// Two generated lists, without the ground truth ([`generate_lists`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthLists {
    /// List A, the CRM export.
    pub a: Vec<SynthRecord>,
    /// List B, the provider's list.
    pub b: Vec<SynthRecord>,
    /// Persons in both lists: `min(overlap, n_a, n_b)`. They are persons
    /// `0..shared_persons` in [`Origin::Person`].
    pub shared_persons: usize,
}

/// Two generated lists and their ground truth ([`generate_pair`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthPair {
    /// List A, the CRM export.
    pub a: Vec<SynthRecord>,
    /// List B, the provider's list.
    pub b: Vec<SynthRecord>,
    /// Persons in both lists (see [`SynthLists::shared_persons`]).
    pub shared_persons: usize,
    /// What a correct PSI over [`SYNTH_KINDS`] outputs, computed from the records.
    pub truth: Truth,
}

/// Generates the two lists of `spec` and computes their ground truth over
/// [`SYNTH_KINDS`].
pub fn generate_pair(spec: &SynthSpec) -> SynthPair {
    let lists = generate_lists(spec);
    let truth = compute_truth(&lists.a, &lists.b, SYNTH_KINDS);
    SynthPair {
        a: lists.a,
        b: lists.b,
        shared_persons: lists.shared_persons,
        truth,
    }
}

/// Rows of one list by origin.
#[derive(Clone, Copy, Debug)]
struct Plan {
    persons: usize,
    duplicates: usize,
    invalid: usize,
}

impl Plan {
    /// Splits `rows` into persons, duplicates and invalid rows, keeping at least
    /// `shared` persons.
    fn new(rows: usize, shared: usize, messy: bool) -> Plan {
        let (mut duplicates, mut invalid) = if messy {
            let at_least_one = usize::from(rows >= 20);
            (
                (rows / 100).max(at_least_one),
                (rows / 200).max(at_least_one),
            )
        } else {
            (0, 0)
        };
        let spare = rows - shared;
        invalid = invalid.min(spare);
        duplicates = duplicates.min(spare - invalid);
        let persons = rows - invalid - duplicates;
        if persons == 0 {
            // Nobody to duplicate.
            invalid += duplicates;
            duplicates = 0;
        }
        Plan {
            persons,
            duplicates,
            invalid,
        }
    }
}

/// Generates the two lists of `spec` (without computing the truth). Linear in
/// `n_a + n_b`.
pub fn generate_lists(spec: &SynthSpec) -> SynthLists {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let shared = spec.overlap.min(spec.n_a).min(spec.n_b);
    let plan_a = Plan::new(spec.n_a, shared, spec.messy);
    let plan_b = Plan::new(spec.n_b, shared, spec.messy);
    // Persons 0..shared are in both lists, shared..plan_a.persons only in A, the rest
    // only in B.
    let persons = plan_a.persons + plan_b.persons - shared;
    let World {
        mut companies,
        tables,
    } = World::new(&mut rng, persons);
    let layout = Layout {
        shared,
        a_persons: plan_a.persons,
        extra_a: extra_copies(&mut rng, plan_a.persons, plan_a.duplicates),
        extra_b: extra_copies(&mut rng, plan_b.persons, plan_b.duplicates),
        messy: spec.messy,
    };

    // Persons are created company by company, which keeps each company's data in cache
    // and lets batches of companies be generated in parallel (each batch with its own
    // seeded generator, so the output does not depend on scheduling). The lists are
    // shuffled at the end anyway.
    let mut order: Vec<(usize, usize)> = (0..persons)
        .map(|p| (world::draw_company(&mut rng, companies.len()), p))
        .collect();
    // The pairs are distinct, so the unstable sort is deterministic.
    order.sort_unstable();
    let mut batches = Vec::new();
    let mut rest_companies = companies.as_mut_slice();
    let mut first_company = 0;
    let mut rest_order = order.as_slice();
    while !rest_order.is_empty() {
        // At least BATCH persons, and whole companies.
        let mut end = rest_order.len().min(BATCH);
        while end < rest_order.len() && rest_order[end].0 == rest_order[end - 1].0 {
            end += 1;
        }
        let (persons, later) = rest_order.split_at(end);
        let last_company = if later.is_empty() {
            first_company + rest_companies.len()
        } else {
            later[0].0
        };
        let (batch_companies, others) = rest_companies.split_at_mut(last_company - first_company);
        batches.push(Batch {
            seed: rng.random(),
            first_company,
            companies: batch_companies,
            persons,
        });
        rest_companies = others;
        first_company = last_company;
        rest_order = later;
    }
    let written: Vec<(Vec<SynthRecord>, Vec<SynthRecord>)> = batches
        .into_par_iter()
        .map(|batch| batch.write(&tables, &layout))
        .collect();
    let mut a = Vec::with_capacity(spec.n_a);
    let mut b = Vec::with_capacity(spec.n_b);
    for (batch_a, batch_b) in written {
        a.extend(batch_a);
        b.extend(batch_b);
    }

    for _ in 0..plan_a.invalid {
        a.push(invalid_record(&mut rng));
    }
    for _ in 0..plan_b.invalid {
        b.push(invalid_record(&mut rng));
    }

    a.shuffle(&mut rng);
    b.shuffle(&mut rng);
    for (n, record) in a.iter_mut().enumerate() {
        record.id = format!("crm-{:06}", n + 1);
    }
    // A provider's ids have gaps (deleted or filtered rows) but stay increasing.
    let mut next = rng.random_range(1_000..9_000u64);
    for record in &mut b {
        record.id = format!("prov-{next:06}");
        next += rng.random_range(1..4u64);
    }
    SynthLists {
        a,
        b,
        shared_persons: shared,
    }
}

/// How many extra copies each of `persons` persons gets, `duplicates` in all.
fn extra_copies(rng: &mut StdRng, persons: usize, duplicates: usize) -> Vec<u8> {
    let mut extra = vec![0u8; persons];
    if persons == 0 {
        return extra;
    }
    // Plan::new keeps duplicates well below twice the persons; the bound only makes
    // the loop's end obvious.
    let mut left = duplicates.min(2 * persons);
    while left > 0 {
        let at = rng.random_range(0..persons);
        // At most three copies of one person; the loop ends because duplicates are at
        // most a small fraction of persons.
        if extra[at] < 2 {
            extra[at] += 1;
            left -= 1;
        }
    }
    extra
}

/// Persons per batch generated on one thread.
const BATCH: usize = 16_384;

/// Which persons go to which list.
struct Layout {
    /// Persons `0..shared` are in both lists.
    shared: usize,
    /// Persons `shared..a_persons` are only in A, the others only in B.
    a_persons: usize,
    /// Extra copies of each person in A (by person).
    extra_a: Vec<u8>,
    /// Extra copies of each person in B (by position in B: shared persons, then the
    /// B-only ones).
    extra_b: Vec<u8>,
    messy: bool,
}

/// The persons of a run of consecutive companies.
struct Batch<'w> {
    seed: u64,
    /// Index of `companies[0]`.
    first_company: usize,
    companies: &'w mut [world::Company],
    /// `(company, person)` pairs, by company.
    persons: &'w [(usize, usize)],
}

impl Batch<'_> {
    /// Creates the batch's persons and writes their records for A and B.
    fn write(self, tables: &Tables, layout: &Layout) -> (Vec<SynthRecord>, Vec<SynthRecord>) {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for &(employer, p) in self.persons {
            let company = &mut self.companies[employer - self.first_company];
            let person = tables.new_person(&mut rng, company, p);
            let guaranteed =
                (layout.messy && p < layout.shared).then(|| {
                    match world::pick_weighted(&mut rng, &[45, 40, 15]) {
                        0 => IdentKind::Email,
                        1 => IdentKind::Phone,
                        _ => IdentKind::NameCompany,
                    }
                });
            let writer = Writer {
                person: &person,
                company,
                index: p,
                guaranteed,
                messy: layout.messy,
            };
            if p < layout.a_persons {
                for copy in 0..=layout.extra_a[p] {
                    a.push(writer.record(&mut rng, Side::A, copy > 0));
                }
            }
            if p < layout.shared || p >= layout.a_persons {
                let in_b = if p < layout.shared {
                    p
                } else {
                    layout.shared + (p - layout.a_persons)
                };
                for copy in 0..=layout.extra_b[in_b] {
                    b.push(writer.record(&mut rng, Side::B, copy > 0));
                }
            }
        }
        (a, b)
    }
}

/// Writes one person's records.
struct Writer<'w> {
    person: &'w Person,
    company: &'w world::Company,
    index: usize,
    guaranteed: Option<IdentKind>,
    messy: bool,
}

impl Writer<'_> {
    fn record(&self, rng: &mut StdRng, side: Side, duplicate: bool) -> SynthRecord {
        let person = self.person;
        let messy = self.messy;
        let keep = |kind| self.guaranteed == Some(kind);
        // Chance (in percent) that a field is missing, by side.
        let (email_missing, phone_missing, name_missing, company_missing) = match side {
            Side::A => (12, 18, 1, 3),
            Side::B => (22, 8, 1, 5),
        };
        let missing = |rng: &mut StdRng, kind, percent: u32| {
            messy && !keep(kind) && rng.random_range(0..100) < percent
        };
        let broken = |rng: &mut StdRng, kind| messy && !keep(kind) && rng.random_bool(0.02);

        let email = if missing(rng, IdentKind::Email, email_missing) {
            String::new()
        } else if broken(rng, IdentKind::Email) {
            format::broken_email(rng, &person.work_email, &person.hanzi)
        } else {
            let address = match &person.private_email {
                Some(private) if messy && !keep(IdentKind::Email) && rng.random_bool(0.3) => {
                    private
                }
                _ => &person.work_email,
            };
            format::email(rng, address, side, messy)
        };

        let mobile = if missing(rng, IdentKind::Phone, phone_missing) {
            String::new()
        } else if broken(rng, IdentKind::Phone) {
            format::broken_mobile(rng, person.mobile)
        } else {
            format::mobile(rng, person.mobile, side, messy)
        };

        let name_company_fixed = keep(IdentKind::NameCompany);
        let name = if missing(rng, IdentKind::NameCompany, name_missing) {
            String::new()
        } else {
            let (form, hanzi) = if messy && !name_company_fixed && rng.random_bool(0.12) {
                person.other_name(rng)
            } else {
                person.canonical_name()
            };
            format::name(rng, form, hanzi, side, messy)
        };
        let company = if missing(rng, IdentKind::NameCompany, company_missing) {
            String::new()
        } else {
            let company = self.company;
            let (core, chinese) = if messy && !name_company_fixed && rng.random_bool(0.15) {
                match rng.random_range(0..4) {
                    0 => (company.cn_full.as_str(), true),
                    1 => (company.cn_short.as_str(), true),
                    2 => (company.en_full.as_str(), false),
                    _ => (company.en_short.as_str(), false),
                }
            } else {
                company.canonical_core()
            };
            format::company(rng, company, core, chinese, side, messy)
        };

        // Providers' titles are often stale.
        let title = if side == Side::B && rng.random_bool(0.3) {
            (*pick(rng, tables::TITLES)).to_owned()
        } else {
            person.title.to_owned()
        };

        SynthRecord {
            id: String::new(),
            name,
            company,
            title,
            email,
            mobile,
            origin: Origin::Person {
                person: self.index,
                duplicate,
            },
        }
    }
}

/// A row with no usable identifier.
fn invalid_record(rng: &mut StdRng) -> SynthRecord {
    let (surname, surname_py) = *pick(rng, tables::SURNAMES);
    let (name, email, mobile): (String, String, String) = match rng.random_range(0..5) {
        0 => (String::new(), String::new(), String::new()),
        1 => (
            surname.to_owned(),
            format!("{surname_py}@@x"),
            "12345".to_owned(),
        ),
        2 => ("N/A".to_owned(), "N/A".to_owned(), "N/A".to_owned()),
        3 => (" ".to_owned(), " ".to_owned(), "-".to_owned()),
        _ => ("#N/A".to_owned(), "#VALUE!".to_owned(), "#N/A".to_owned()),
    };
    // The company is always blank, so the row has no name+company identifier either.
    let company = if rng.random_bool(0.5) {
        String::new()
    } else {
        "\u{3000}".to_owned()
    };
    SynthRecord {
        id: String::new(),
        name,
        company,
        title: String::new(),
        email,
        mobile,
        origin: Origin::Invalid,
    }
}

/// Writes `records` to `writer` as CSV with header [`CSV_HEADER`], UTF-8, preceded by a
/// byte-order mark if `bom` (as Excel writes "CSV UTF-8").
pub fn write_csv_to<W: Write>(records: &[SynthRecord], writer: W, bom: bool) -> io::Result<()> {
    let mut writer = writer;
    if bom {
        writer.write_all("\u{FEFF}".as_bytes())?;
    }
    let mut csv = csv::Writer::from_writer(writer);
    csv.write_record(CSV_HEADER)?;
    for record in records {
        csv.write_record(record.fields())?;
    }
    csv.flush()?;
    Ok(())
}

/// Writes `records` to the file at `path` (see [`write_csv_to`]), atomically: to a
/// temporary file in the same directory, synced, then renamed over `path`.
pub fn write_csv(records: &[SynthRecord], path: &Path, bom: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut buffered = io::BufWriter::new(file.as_file_mut());
        write_csv_to(records, &mut buffered, bom)?;
        buffered.flush()?;
    }
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
