//! Which CSV columns feed what, and the per-row checks that need no other row (field
//! count, identifier normalisation), so that rows can be checked in parallel.

use std::path::Path;

use blindmatch_protocol::ident::{IdentKind, InvalidIdentifier, Normaliser};

use super::{DatasetError, HeaderSummary, ImportOptions};

/// The outcome of checking one row on its own.
pub(super) enum Checked {
    /// The row's field count disagrees with the header: the reason.
    Misaligned(String),
    /// The row's identifiers.
    Cells {
        /// Valid identifiers, sorted and distinct.
        identifiers: Vec<(IdentKind, String)>,
        /// Invalid ones: index into [`Plan::identifiers`] and why.
        invalid: Vec<(usize, InvalidIdentifier)>,
    },
}

/// Which header index feeds what.
pub(super) struct Plan {
    pub(super) id: Option<Column>,
    pub(super) identifiers: Vec<IdentifierColumn>,
    pub(super) legal_basis: Option<Column>,
    pub(super) consent: Option<Column>,
    pub(super) source: Option<Column>,
    header_len: usize,
}

/// A resolved column.
pub(super) struct Column {
    /// Index in the header.
    pub(super) index: usize,
    /// The header's name for it.
    pub(super) label: String,
}

/// A column (or name+company pair) holding identifiers.
pub(super) struct IdentifierColumn {
    kind: IdentKind,
    index: usize,
    /// The company column of a name+company identifier.
    company: Option<usize>,
    /// Header name(s), `name+company` for a pair.
    pub(super) label: String,
}

impl Plan {
    /// Finds every named column in the header; all missing ones are reported at once.
    pub(super) fn resolve(
        path: &Path,
        opts: &ImportOptions,
        header: &[String],
    ) -> Result<Self, DatasetError> {
        let mut missing = Vec::new();
        let mut find = |name: &str| -> Result<Option<Column>, DatasetError> {
            let wanted = name.trim();
            let exact: Vec<usize> = positions(header, |column| column == wanted);
            let matches = if exact.is_empty() {
                positions(header, |column| column.eq_ignore_ascii_case(wanted))
            } else {
                exact
            };
            match matches.as_slice() {
                [index] => Ok(Some(Column {
                    index: *index,
                    label: header[*index].clone(),
                })),
                [] => {
                    if !missing.iter().any(|m| m == name) {
                        missing.push(name.to_owned());
                    }
                    Ok(None)
                }
                several => Err(DatasetError::AmbiguousColumn {
                    path: path.to_owned(),
                    column: name.to_owned(),
                    count: several.len(),
                }),
            }
        };
        let find_opt =
            |find: &mut dyn FnMut(&str) -> Result<Option<Column>, DatasetError>,
             name: &Option<String>| { name.as_deref().map(&mut *find).transpose() };

        let id = find_opt(&mut find, &opts.id_col)?.flatten();
        let mut identifiers = Vec::new();
        let simple = [
            (IdentKind::Email, &opts.email_cols),
            (IdentKind::Phone, &opts.phone_cols),
            (IdentKind::Custom, &opts.custom_cols),
        ];
        for (kind, names) in simple {
            for name in names {
                let Some(column) = find(name)? else {
                    continue;
                };
                let repeated = identifiers
                    .iter()
                    .any(|c: &IdentifierColumn| c.kind == kind && c.index == column.index);
                if !repeated {
                    identifiers.push(IdentifierColumn {
                        kind,
                        index: column.index,
                        company: None,
                        label: column.label,
                    });
                }
            }
        }
        let name = find_opt(&mut find, &opts.name_col)?.flatten();
        let company = find_opt(&mut find, &opts.company_col)?.flatten();
        if let (Some(name), Some(company)) = (name, company) {
            identifiers.push(IdentifierColumn {
                kind: IdentKind::NameCompany,
                index: name.index,
                company: Some(company.index),
                label: format!("{}+{}", name.label, company.label),
            });
        }
        let legal_basis = find_opt(&mut find, &opts.legal_basis_col)?.flatten();
        let consent = find_opt(&mut find, &opts.consent_col)?.flatten();
        let source = find_opt(&mut find, &opts.source_col)?.flatten();
        if !missing.is_empty() {
            let some_found = id.is_some()
                || !identifiers.is_empty()
                || legal_basis.is_some()
                || consent.is_some()
                || source.is_some();
            return Err(DatasetError::MissingColumns {
                path: path.to_owned(),
                missing,
                header: HeaderSummary::of(header, some_found),
            });
        }
        Ok(Plan {
            id,
            identifiers,
            legal_basis,
            consent,
            source,
            header_len: header.len(),
        })
    }
}

fn positions(header: &[String], matches: impl Fn(&str) -> bool) -> Vec<usize> {
    header
        .iter()
        .enumerate()
        .filter(|(_, column)| matches(column))
        .map(|(index, _)| index)
        .collect()
}

impl Plan {
    /// Checks one row (valid UTF-8) against the header and normalises its identifiers.
    pub(super) fn check(&self, normaliser: &Normaliser, record: &csv::ByteRecord) -> Checked {
        // A row with fewer fields than the header, or with extra non-empty fields, is
        // misaligned (an unquoted comma or line break) and its cells cannot be trusted.
        let extra_non_empty = record
            .iter()
            .skip(self.header_len)
            .any(|field| !field.iter().all(u8::is_ascii_whitespace));
        if record.len() < self.header_len || extra_non_empty {
            return Checked::Misaligned(format!(
                "row has {} fields but the header has {} (an unquoted comma or line break?)",
                record.len(),
                self.header_len
            ));
        }
        let mut identifiers = Vec::with_capacity(self.identifiers.len());
        let mut invalid = Vec::new();
        for (position, column) in self.identifiers.iter().enumerate() {
            let raw = cell(record, column.index);
            if raw.trim().is_empty() {
                continue;
            }
            let result = match (column.kind, column.company) {
                (IdentKind::NameCompany, Some(company)) => {
                    normaliser.name_company(raw, cell(record, company))
                }
                (kind, _) => normaliser.normalise(kind, raw),
            };
            match result {
                Ok(identifier) => {
                    identifiers.push((identifier.kind(), identifier.value().to_owned()))
                }
                Err(err) => invalid.push((position, err)),
            }
        }
        identifiers.sort_unstable();
        identifiers.dedup();
        Checked::Cells {
            identifiers,
            invalid,
        }
    }
}

/// Cell `index` of a row already checked to be UTF-8 (empty if absent).
pub(super) fn cell(record: &csv::ByteRecord, index: usize) -> &str {
    record
        .get(index)
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .unwrap_or("")
}
