//! Datasets: CSV import, normalisation, duplicate handling, rejection reports and
//! persistence of a node's contact lists.
//!
//! # Import
//!
//! [`import`] streams a CSV file (never holding it in memory): bytes are hashed
//! (SHA-256, for the audit log) and decoded to UTF-8 on the fly (UTF-8 or GB18030; a
//! byte-order mark selects UTF-8 or UTF-16 whatever was asked), the header row names
//! the columns, and every identifier cell is normalised by
//! [`blindmatch_protocol::ident`], in parallel batches. Rows are numbered from 1 = the
//! first row after the header; that number is also the record id when no id column is
//! given. Reports also give the line of the file where a row starts (the header is
//! line 1; a quoted cell may span lines), which is the row number a spreadsheet shows.
//! Header names match exactly after trimming, or else ignoring ASCII case.
//!
//! - An empty (or all-whitespace) identifier cell is no identifier, not an error.
//! - An invalid identifier is dropped and reported; the rest of its row still counts.
//! - A row left with no valid identifier is a rejected row.
//! - A row with an empty or overlong (over 256 bytes) record id, or with a field count
//!   other than the header's (an unquoted comma or line break), is a rejected row.
//! - A row whose record id is already held by an accepted record is a duplicate: it is
//!   dropped (the first row wins) and reported, so consent or provenance recorded on
//!   different rows is never merged into one record. A rejected row claims no id.
//! - The same identifier in several records is kept in each: the prepared set sends it
//!   once and maps a match back to every record holding it.
//! - Every rejection is written to `<data>/datasets/<name>.rejects.csv` with its row,
//!   line, column and reason — never the value.
//!
//! Fatal problems (a missing column, bytes that are not valid in the chosen encoding,
//! an empty file, no valid record at all, an I/O error) abort the import and leave the
//! stored dataset of that name untouched.
//!
//! Memory: the CSV is streamed; the encoded records (about the size of the stored
//! file), the set of record ids and the rejects report are held until the final write.
//!
//! # Storage
//!
//! One file per dataset, `<data>/datasets/<name>.bmds` (the `store` submodule documents
//! the format), written atomically (temporary file, fsync, rename, fsync directory) as the
//! very last step of an import. The rejects report is written just before it; the
//! dataset's metadata holds the report's SHA-256 so a report left over from an import
//! that failed at the final rename can be told apart. Dataset files hold normalised
//! personal data and are created owner-only (0600). Writers take turns on a lock
//! ([`LOCK_FILE`]), and the temporary files of a writer that was killed are deleted by
//! the next one (the `guard` submodule).

mod codec;
mod columns;
mod command;
mod guard;
mod header;
mod import;
mod input;
mod report;
mod revoke;
mod store;
mod stream;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

use std::path::{Path, PathBuf};

use blindmatch_protocol::ident::IdentKind;
use serde::{Deserialize, Serialize};

pub use command::{DatasetCommand, DatasetOutcome, ImportArgs, import_with_progress_bar, run};
pub use guard::LOCK_FILE;
pub use header::HeaderSummary;
pub use import::{
    ImportOptions, ImportProgress, MAX_ID_BYTES, MAX_PROVENANCE_BYTES, MAX_RECORDS, import,
};
pub use input::file_sha256_hex;
pub use report::{ImportReport, RejectionCount};
pub use revoke::{RevokeReport, revoke};
pub use stream::DatasetReader;

pub use store::{
    Dataset, DatasetEntry, FORMAT_VERSION, MAGIC, RecordIds, StoredRecord, list, remove,
    stored_meta,
};

/// Name of the datasets directory inside the data directory.
pub const DATASETS_DIR: &str = "datasets";
/// File extension of a stored dataset.
pub const DATASET_EXTENSION: &str = "bmds";
/// Suffix of a dataset's rejects report (`<name>.rejects.csv`).
pub const REJECTS_SUFFIX: &str = ".rejects.csv";

/// Character encoding of an input CSV file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum InputEncoding {
    /// UTF-8, with or without a byte-order mark.
    #[default]
    #[value(alias = "utf-8")]
    Utf8,
    /// GB18030 (a superset of GBK and GB2312), as saved by Excel on Chinese Windows;
    /// `gbk` and `gb2312` name it too, since it decodes both.
    #[value(alias = "gbk", alias = "gb2312")]
    Gb18030,
}

impl InputEncoding {
    /// The name users type: `utf8` or `gb18030`.
    pub fn name(self) -> &'static str {
        match self {
            InputEncoding::Utf8 => "utf8",
            InputEncoding::Gb18030 => "gb18030",
        }
    }
}

/// Which input columns fed which part of a dataset (recorded in its metadata).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMapping {
    /// Record id column; `None` means the row number is the id.
    pub id: Option<String>,
    /// Email columns.
    pub email: Vec<String>,
    /// Phone columns.
    pub phone: Vec<String>,
    /// Person name column (with `company`).
    pub name: Option<String>,
    /// Company column (with `name`).
    pub company: Option<String>,
    /// Custom identifier columns.
    pub custom: Vec<String>,
    /// Legal basis column.
    pub legal_basis: Option<String>,
    /// Consent column.
    pub consent: Option<String>,
    /// Source (provenance) column.
    pub source: Option<String>,
}

/// Counts from an import.
///
/// `rows = accepted + rejected_rows + duplicates`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    /// Data rows read (the header excluded).
    pub rows: u64,
    /// Records stored.
    pub accepted: u64,
    /// Rows stored as no record: no valid identifier, no record id, or a malformed row.
    pub rejected_rows: u64,
    /// Individual values rejected (invalid identifiers, overlong provenance values),
    /// in accepted and rejected rows alike.
    pub rejected_values: u64,
    /// Rows dropped because an accepted record already had their record id.
    pub duplicates: u64,
    /// Identifiers stored, summed over records (after removing repeats within a record).
    pub identifiers: u64,
}

/// What is known about a stored dataset without reading its records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// The dataset's name.
    pub name: String,
    /// When it was imported, RFC 3339 UTC.
    pub imported_at: String,
    /// File name (without directories) of the imported CSV.
    pub input_file: String,
    /// SHA-256 (hex) of the imported CSV's bytes.
    pub input_sha256: String,
    /// Encoding the CSV was read as.
    pub encoding: InputEncoding,
    /// Default phone region used for numbers without a country code.
    pub region: String,
    /// Version of the identifier normalisation rules applied.
    pub normalisation_version: u16,
    /// Which columns were used.
    pub columns: ColumnMapping,
    /// Import counts.
    pub counts: ImportCounts,
    /// Identifier kinds present in the stored records.
    pub kinds: Vec<IdentKind>,
    /// Records that carry a legal basis, a consent value and a source.
    pub provenance: ProvenanceCounts,
    /// SHA-256 (hex) of the rejects report written with this dataset.
    pub rejects_sha256: String,
    /// Version tag (32 hex digits): drawn at random at every write (import, revocation),
    /// so that sessions and receipts name the exact version matched without saying
    /// anything about its records. Empty for datasets written before tags existed.
    #[serde(default)]
    pub version: String,
}

/// A fresh random version tag for a dataset write.
pub fn new_version_tag() -> String {
    use rand::Rng;
    let mut tag = [0u8; 16];
    rand::rng().fill_bytes(&mut tag);
    hex::encode(tag)
}

impl DatasetMeta {
    /// The version tag as the protocol carries it (all zero when the dataset has none).
    pub fn version_bytes(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        if let Ok(bytes) = hex::decode(&self.version)
            && bytes.len() == 16
        {
            out.copy_from_slice(&bytes);
        }
        out
    }
}

/// How many stored records carry each provenance field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceCounts {
    /// Records with a legal basis.
    pub legal_basis: u64,
    /// Records with a consent value.
    pub consent: u64,
    /// Records with a source.
    pub source: u64,
}

/// Everything that can go wrong importing, storing or loading a dataset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// The dataset name is not acceptable.
    #[error("invalid dataset name `{name}`: {problem}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The import options are inconsistent.
    #[error("{0}")]
    InvalidOptions(String),
    /// The input file could not be opened or read.
    #[error("cannot read {}: {source}", .path.display())]
    ReadInput {
        /// The input file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The input has no bytes at all.
    #[error("{} is empty: expected a header row naming the columns, then data rows", .path.display())]
    EmptyInput {
        /// The input file.
        path: PathBuf,
    },
    /// The input has a header row but no data rows.
    #[error("{} has no data rows (only a header row)", .path.display())]
    NoDataRows {
        /// The input file.
        path: PathBuf,
    },
    /// Named columns are not in the header.
    #[error(
        "{} has no column{} {}; {header}",
        .path.display(),
        if .missing.len() == 1 { "" } else { "s" },
        quote_list(.missing)
    )]
    MissingColumns {
        /// The input file.
        path: PathBuf,
        /// Columns asked for but not found.
        missing: Vec<String>,
        /// The first row, as far as an error may describe it (never a data cell).
        header: HeaderSummary,
    },
    /// A named column appears more than once in the header.
    #[error(
        "{}: column `{column}` appears {count} times in the header; rename the duplicates",
        .path.display()
    )]
    AmbiguousColumn {
        /// The input file.
        path: PathBuf,
        /// The column asked for.
        column: String,
        /// How many header cells match it.
        count: usize,
    },
    /// Bytes that are not valid in the input encoding.
    #[error("{}: {}", .path.display(), encoding_message(*.encoding, .row, *.line))]
    InvalidEncoding {
        /// The input file.
        path: PathBuf,
        /// Encoding the file was read as.
        encoding: InputEncoding,
        /// Data row (1 = first after the header); `None` for the header row.
        row: Option<u64>,
        /// Line of the file where that row starts (the header is line 1).
        line: u64,
    },
    /// The CSV could not be parsed.
    #[error("{}: line {line}: {detail}", .path.display())]
    Csv {
        /// The input file.
        path: PathBuf,
        /// Line of the file.
        line: u64,
        /// What the parser said.
        detail: String,
    },
    /// Every data row was rejected.
    #[error(
        "{}: none of its {rows} rows has a valid identifier, so no dataset was stored; most common reasons: {reasons}. Check the column options (--email-col, --phone-col, ...)",
        .path.display()
    )]
    NoValidRecords {
        /// The input file.
        path: PathBuf,
        /// Data rows read.
        rows: u64,
        /// The most common rejection reasons, summarised.
        reasons: String,
    },
    /// More records than a dataset can hold.
    #[error("{}: more than {max} records; split the file", .path.display())]
    TooManyRecords {
        /// The input file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// No dataset of that name is stored.
    #[error("no dataset named `{name}`; `blindmatch dataset list` shows the stored datasets")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// Reading or writing a stored file failed.
    #[error("{action} {}: {source}", .path.display())]
    Storage {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A stored dataset file is damaged.
    #[error(
        "dataset file {} is corrupt: {problem}; re-import the dataset (or remove it with `blindmatch dataset remove`)",
        .path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A stored dataset was written in a format version this build does not read.
    #[error(
        "dataset file {} has format version {found}, this build reads version {supported}; use a matching blindmatch or re-import the dataset",
        .path.display()
    )]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// A stored dataset was normalised with other rules than this build's.
    #[error(
        "dataset file {} was normalised with rules version {found}, this build uses version {current}; re-import the dataset from its CSV",
        .path.display()
    )]
    NormalisationVersion {
        /// The file.
        path: PathBuf,
        /// Version found.
        found: u16,
        /// Version of this build.
        current: u16,
    },
}

/// `<data>/datasets`.
pub fn datasets_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DATASETS_DIR)
}

/// `<data>/datasets/<name>.bmds`.
pub fn dataset_path(data_dir: &Path, name: &str) -> PathBuf {
    datasets_dir(data_dir).join(format!("{name}.{DATASET_EXTENSION}"))
}

/// `<data>/datasets/<name>.rejects.csv`.
pub fn rejects_path(data_dir: &Path, name: &str) -> PathBuf {
    datasets_dir(data_dir).join(format!("{name}{REJECTS_SUFFIX}"))
}

/// Checks a dataset name: 1–64 characters of ASCII letters, digits, `-`, `_`, `.`,
/// starting with a letter or digit (so it is a safe file name).
pub fn check_name(name: &str) -> Result<(), DatasetError> {
    match crate::identity::name_problem(name) {
        Some(problem) => Err(DatasetError::InvalidName {
            name: name.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("`{}`", blindmatch_protocol::wire::printable(item)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn encoding_message(encoding: InputEncoding, row: &Option<u64>, line: u64) -> String {
    let place = match row {
        Some(row) => format!("row {row} (line {line})"),
        None => "the header row".to_owned(),
    };
    match encoding {
        InputEncoding::Utf8 => format!(
            "{place} is not valid UTF-8; if the file was saved as GBK/GB18030 (Excel on Chinese Windows does this), import it with `--encoding gb18030`"
        ),
        InputEncoding::Gb18030 => format!(
            "{place} is not valid GB18030; check the file's encoding (for UTF-8 use `--encoding utf8`)"
        ),
    }
}
