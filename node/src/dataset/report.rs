//! What an import tells its user: the rejects report file (one line per rejected value
//! or row, never the value itself) and the [`ImportReport`] summary.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::ImportCounts;

/// Header of the rejects report.
pub(crate) const REJECTS_HEADER: [&str; 5] = ["row", "line", "column", "code", "reason"];

/// How often one reason rejected something in one column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RejectionCount {
    /// The column (`name+company` columns joined with `+`; empty for a whole-row reason).
    pub column: String,
    /// Stable reason code, e.g. `invalid_domain`, `no_valid_identifier`.
    pub code: String,
    /// The reason in words.
    pub reason: String,
    /// How many times.
    pub count: u64,
}

/// The outcome of a successful import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// The dataset's name.
    pub name: String,
    /// The CSV that was imported.
    pub input: PathBuf,
    /// Data rows read (the header excluded).
    pub rows: u64,
    /// Records stored.
    pub accepted: u64,
    /// Rows stored as no record.
    pub rejected_rows: u64,
    /// Individual values rejected, in accepted and rejected rows alike.
    pub rejected_values: u64,
    /// Rows dropped because their record id was already taken.
    pub duplicates: u64,
    /// Identifiers stored, summed over records.
    pub identifiers: u64,
    /// Hex SHA-256 of the input file's bytes.
    pub input_sha256: String,
    /// Normalisation rules version applied.
    pub normalisation_version: u16,
    /// The stored dataset file.
    pub dataset_path: PathBuf,
    /// The rejects report file.
    pub report_path: PathBuf,
    /// Rejections grouped by column and reason, most frequent first.
    pub rejection_reasons: Vec<RejectionCount>,
}

impl ImportReport {
    /// The counts, in the form stored in the dataset's metadata.
    pub fn counts(&self) -> ImportCounts {
        ImportCounts {
            rows: self.rows,
            accepted: self.accepted,
            rejected_rows: self.rejected_rows,
            rejected_values: self.rejected_values,
            duplicates: self.duplicates,
            identifiers: self.identifiers,
        }
    }
}

/// How many reasons the summary shows.
const SUMMARY_REASONS: usize = 5;

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "imported dataset `{}` from {}",
            self.name,
            self.input.display()
        )?;
        writeln!(f, "  rows read        {:>10}", self.rows)?;
        writeln!(
            f,
            "  accepted         {:>10}  ({} identifiers)",
            self.accepted, self.identifiers
        )?;
        writeln!(f, "  rejected rows    {:>10}", self.rejected_rows)?;
        writeln!(f, "  duplicate ids    {:>10}", self.duplicates)?;
        writeln!(f, "  rejected values  {:>10}", self.rejected_values)?;
        if !self.rejection_reasons.is_empty() {
            writeln!(f, "  most common rejections:")?;
            for reason in self.rejection_reasons.iter().take(SUMMARY_REASONS) {
                let column = if reason.column.is_empty() {
                    "(row)"
                } else {
                    &reason.column
                };
                writeln!(f, "    {:>8} × {column}: {}", reason.count, reason.reason)?;
            }
            let more = self.rejection_reasons.len().saturating_sub(SUMMARY_REASONS);
            if more > 0 {
                writeln!(f, "    ({more} more in the rejects report)")?;
            }
        }
        writeln!(f, "  rejects report   {}", self.report_path.display())?;
        writeln!(f, "  dataset file     {}", self.dataset_path.display())?;
        write!(f, "  input sha256     {}", self.input_sha256)
    }
}

/// Collects rejections into the report file's bytes and per-reason counts.
pub(crate) struct Rejects {
    writer: csv::Writer<Vec<u8>>,
    error: Option<csv::Error>,
    counts: HashMap<(String, &'static str), (String, u64)>,
}

impl Rejects {
    pub(crate) fn new() -> Self {
        let mut rejects = Self {
            writer: csv::Writer::from_writer(Vec::new()),
            error: None,
            counts: HashMap::new(),
        };
        rejects.write(&REJECTS_HEADER);
        rejects
    }

    /// Records one rejection. `column` is empty for a reason about the whole row.
    pub(crate) fn add(
        &mut self,
        row: u64,
        line: u64,
        column: &str,
        code: &'static str,
        reason: &str,
    ) {
        self.add_detailed(row, line, column, code, reason, reason);
    }

    /// Records one rejection whose reason names this row's particulars (`detail`, for
    /// the report file) while the summary, which groups rejections by column and code,
    /// shows `summary`: a grouped line quoting one row's particulars would name the
    /// wrong rows for all the others.
    pub(crate) fn add_detailed(
        &mut self,
        row: u64,
        line: u64,
        column: &str,
        code: &'static str,
        detail: &str,
        summary: &str,
    ) {
        let (row, line) = (row.to_string(), line.to_string());
        self.write(&[row.as_str(), line.as_str(), column, code, detail]);
        self.counts
            .entry((column.to_owned(), code))
            .or_insert_with(|| (summary.to_owned(), 0))
            .1 += 1;
    }

    /// Rejections grouped by column and reason, most frequent first.
    pub(crate) fn reasons(&self) -> Vec<RejectionCount> {
        let mut reasons: Vec<RejectionCount> = self
            .counts
            .iter()
            .map(|((column, code), (reason, count))| RejectionCount {
                column: column.clone(),
                code: (*code).to_owned(),
                reason: reason.clone(),
                count: *count,
            })
            .collect();
        reasons.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.column.cmp(&b.column))
                .then_with(|| a.code.cmp(&b.code))
        });
        reasons
    }

    /// The report file's contents.
    pub(crate) fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        if let Some(err) = self.error {
            return Err(std::io::Error::other(err));
        }
        self.writer
            .into_inner()
            .map_err(|err| std::io::Error::other(err.to_string()))
    }

    fn write(&mut self, fields: &[&str]) {
        if self.error.is_none()
            && let Err(err) = self.writer.write_record(fields)
        {
            self.error = Some(err);
        }
    }
}

/// "12 × `email`: email domain is not valid; 3 × (row): …" for error messages.
pub(crate) fn summarise(reasons: &[RejectionCount]) -> String {
    let parts: Vec<String> = reasons
        .iter()
        .take(SUMMARY_REASONS)
        .map(|reason| {
            let column = if reason.column.is_empty() {
                "row".to_owned()
            } else {
                format!("`{}`", reason.column)
            };
            format!("{} × {column}: {}", reason.count, reason.reason)
        })
        .collect();
    if parts.is_empty() {
        "none recorded".to_owned()
    } else {
        parts.join("; ")
    }
}
