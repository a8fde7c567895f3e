//! Golden table for identifier normalisation (`golden/ident.json`).
//!
//! The table is the specification of normalisation version 1, written by hand from the
//! rules in `blindmatch_protocol::ident`; it is not generated from the code. Each case
//! gives a raw input and either the expected normalised value or the expected error code
//! (`InvalidIdentifier::code`). Changing any expected value changes which records match
//! across nodes, so it requires a new `NORMALISATION_VERSION` (and the
//! `normalisation_version` field below). Run with
//! `cargo test --release -p blindmatch-protocol --test ident_golden`.

use std::collections::BTreeMap;

use blindmatch_protocol::ident::{
    IdentKind, Identifier, InvalidIdentifier, NORMALISATION_VERSION, Normaliser,
};
use serde::Deserialize;

const TABLE: &str = include_str!("golden/ident.json");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    normalisation_version: u16,
    default_region: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    kind: IdentKind,
    #[serde(default)]
    note: Option<String>,
    /// The raw input (every kind but name_company).
    #[serde(default)]
    input: Option<String>,
    /// The raw name and company (name_company only).
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    company: Option<String>,
    /// Expected value (every kind but name_company).
    #[serde(default)]
    expect: Option<String>,
    /// Expected parts (name_company only).
    #[serde(default)]
    expect_name: Option<String>,
    #[serde(default)]
    expect_company: Option<String>,
    /// Expected `InvalidIdentifier::code`.
    #[serde(default)]
    error: Option<String>,
}

impl Case {
    fn run(&self, normaliser: &Normaliser) -> Result<Identifier, InvalidIdentifier> {
        let input = || self.input.as_deref().expect("case needs `input`");
        match self.kind {
            IdentKind::Email => normaliser.email(input()),
            IdentKind::Phone => normaliser.phone(input()),
            IdentKind::Custom => normaliser.custom(input()),
            IdentKind::NameCompany => normaliser.name_company(
                self.name
                    .as_deref()
                    .expect("name_company case needs `name`"),
                self.company
                    .as_deref()
                    .expect("name_company case needs `company`"),
            ),
        }
    }

    fn expected(&self) -> Result<String, String> {
        if let Some(code) = &self.error {
            return Err(code.clone());
        }
        match (
            self.kind,
            &self.expect,
            &self.expect_name,
            &self.expect_company,
        ) {
            (IdentKind::NameCompany, None, Some(name), Some(company)) => {
                Ok(format!("{name}\u{1F}{company}"))
            }
            (kind, Some(value), None, None) if kind != IdentKind::NameCompany => Ok(value.clone()),
            _ => panic!("malformed case: {}", self.describe()),
        }
    }

    fn describe(&self) -> String {
        let input = match (&self.input, &self.name, &self.company) {
            (Some(input), _, _) => format!("{input:?}"),
            (None, name, company) => format!("name {name:?}, company {company:?}"),
        };
        match &self.note {
            Some(note) => format!("{} {input} ({note})", self.kind),
            None => format!("{} {input}", self.kind),
        }
    }
}

fn table() -> Table {
    serde_json::from_str(TABLE).expect("golden/ident.json parses")
}

#[test]
fn table_is_for_this_normalisation_version() {
    assert_eq!(table().normalisation_version, NORMALISATION_VERSION);
}

#[test]
fn every_case_matches() {
    let table = table();
    let normaliser = Normaliser::new(&table.default_region).expect("known region");
    let mut failures = Vec::new();
    for case in &table.cases {
        let actual = case
            .run(&normaliser)
            .map(|id| id.value().to_owned())
            .map_err(|e| e.code().to_owned());
        let expected = case.expected();
        if actual != expected {
            failures.push(format!(
                "{}\n    expected {expected:?}\n    got      {actual:?}",
                case.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        table.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn expected_values_renormalise_to_themselves() {
    let table = table();
    let normaliser = Normaliser::new(&table.default_region).expect("known region");
    for case in &table.cases {
        let Ok(expected) = case.expected() else {
            continue;
        };
        let again = normaliser
            .normalise(case.kind, &expected)
            .unwrap_or_else(|e| panic!("{}: expected value rejected: {e}", case.describe()));
        assert_eq!(again.value(), expected, "{}", case.describe());
    }
}

#[test]
fn table_covers_every_kind_with_values_and_errors() {
    let mut counts: BTreeMap<(IdentKind, bool), usize> = BTreeMap::new();
    for case in table().cases {
        *counts.entry((case.kind, case.error.is_none())).or_default() += 1;
    }
    for kind in IdentKind::ALL {
        for accepted in [true, false] {
            let n = counts.get(&(kind, accepted)).copied().unwrap_or(0);
            assert!(
                n >= 3,
                "only {n} golden cases for {kind} (accepted: {accepted})"
            );
        }
    }
}

#[test]
fn error_messages_never_contain_the_input() {
    let table = table();
    let normaliser = Normaliser::new(&table.default_region).expect("known region");
    for case in &table.cases {
        let Err(error) = case.run(&normaliser) else {
            continue;
        };
        let message = error.to_string();
        for raw in [&case.input, &case.name, &case.company]
            .into_iter()
            .flatten()
        {
            let raw = raw.trim();
            if raw.chars().count() >= 3 {
                assert!(
                    !message.contains(raw),
                    "{}: message {message:?} repeats the input",
                    case.describe()
                );
            }
        }
    }
}
