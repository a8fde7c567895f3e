//! Streaming CSV import: header resolution, per-row validation and normalisation,
//! duplicate handling, and the final atomic write (see the module docs of
//! [`dataset`](super) for the rules).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use blindmatch_protocol::ident::{IdentKind, NORMALISATION_VERSION, Normaliser};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::columns::{Checked, Column, Plan, cell};
use super::guard::DatasetsLock;
use super::input::{DecodingReader, HashingReader, MALFORMED_MARKER, RawProgress};
use super::report::{ImportReport, Rejects, summarise};
use super::store::{self, StoredRecord};
use super::{
    ColumnMapping, DatasetError, DatasetMeta, ImportCounts, InputEncoding, ProvenanceCounts,
    check_name, dataset_path, datasets_dir, rejects_path,
};
use crate::files::{Access, write_file as write_file_atomic};

/// Longest accepted record id, in UTF-8 bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest accepted legal-basis, consent or source value, in UTF-8 bytes.
pub const MAX_PROVENANCE_BYTES: usize = 1024;
/// Most records one dataset can hold (record indices are `u32`).
pub const MAX_RECORDS: u64 = u32::MAX as u64 + 1;
/// Rows read, checked in parallel and applied at a time (also the progress step).
const BATCH_ROWS: usize = 4096;

/// What to import and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// The CSV file.
    pub input: PathBuf,
    /// Name of the dataset to create or replace.
    pub name: String,
    /// Column holding the record id; `None` uses the row number (1 = first data row).
    pub id_col: Option<String>,
    /// Columns holding email addresses.
    pub email_cols: Vec<String>,
    /// Columns holding phone numbers.
    pub phone_cols: Vec<String>,
    /// Column holding a person's name; needs `company_col`.
    pub name_col: Option<String>,
    /// Column holding the person's company; needs `name_col`.
    pub company_col: Option<String>,
    /// Columns holding custom identifiers agreed with partners.
    pub custom_cols: Vec<String>,
    /// Default phone region (ISO 3166-1 alpha-2) for numbers without a country code.
    pub region: String,
    /// Encoding of the file.
    pub encoding: InputEncoding,
    /// Column holding each record's legal basis.
    pub legal_basis_col: Option<String>,
    /// Column holding each record's consent.
    pub consent_col: Option<String>,
    /// Column holding each record's source.
    pub source_col: Option<String>,
    /// No progress output (see [`import_with_progress_bar`](super::import_with_progress_bar)).
    pub quiet: bool,
}

impl ImportOptions {
    /// Options with no columns chosen yet, region `CN`, UTF-8.
    pub fn new(input: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        Self {
            input: input.into(),
            name: name.into(),
            id_col: None,
            email_cols: Vec::new(),
            phone_cols: Vec::new(),
            name_col: None,
            company_col: None,
            custom_cols: Vec::new(),
            region: "CN".to_owned(),
            encoding: InputEncoding::Utf8,
            legal_basis_col: None,
            consent_col: None,
            source_col: None,
            quiet: false,
        }
    }

    fn mapping(&self) -> ColumnMapping {
        ColumnMapping {
            id: self.id_col.clone(),
            email: self.email_cols.clone(),
            phone: self.phone_cols.clone(),
            name: self.name_col.clone(),
            company: self.company_col.clone(),
            custom: self.custom_cols.clone(),
            legal_basis: self.legal_basis_col.clone(),
            consent: self.consent_col.clone(),
            source: self.source_col.clone(),
        }
    }
}

/// Where an import is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportProgress {
    /// Data rows processed.
    pub rows: u64,
    /// Bytes of the input file read.
    pub bytes_read: u64,
    /// Size of the input file.
    pub total_bytes: u64,
}

/// Imports a CSV file as dataset `opts.name` under `<data_dir>/datasets/`, replacing
/// any dataset of that name only once everything has succeeded.
///
/// `progress` is called every few thousand rows and at the end.
pub fn import(
    data_dir: &Path,
    opts: &ImportOptions,
    progress: &dyn Fn(ImportProgress),
) -> Result<ImportReport, DatasetError> {
    check_name(&opts.name)?;
    let normaliser = check_options(opts)?;
    let path = &opts.input;
    let read_err = |source| DatasetError::ReadInput {
        path: path.clone(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let total_bytes = file.metadata().map_err(read_err)?.len();
    let raw = Rc::new(RefCell::new(RawProgress::default()));
    let decoded = DecodingReader::new(HashingReader::new(file, raw.clone()), opts.encoding);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(256 * 1024)
        .from_reader(decoded);

    let mut record = csv::ByteRecord::new();
    if !reader
        .read_byte_record(&mut record)
        .map_err(|err| csv_error(path, err))?
    {
        return Err(DatasetError::EmptyInput { path: path.clone() });
    }
    let header_line = start_line(&reader, &record);
    let header = header_names(path, opts.encoding, &record, header_line)?;
    let plan = Plan::resolve(path, opts, &header)?;

    let dir = datasets_dir(data_dir);
    crate::files::create_private_dir_all(&dir).map_err(|source| DatasetError::Storage {
        action: "creating",
        path: dir.clone(),
        source,
    })?;
    // Accepted records stream to an unnamed temporary file (gone with the process,
    // however it ends), so memory does not grow with the input.
    let body_err = |source| DatasetError::Storage {
        action: "writing a temporary file in",
        path: dir.clone(),
        source,
    };
    let mut body_file =
        BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(&dir).map_err(body_err)?);
    let mut state = State {
        plan: &plan,
        rejects: Rejects::new(),
        counts: ImportCounts::default(),
        seen: HashMap::new(),
        kinds: BTreeSet::new(),
        provenance: ProvenanceCounts::default(),
        body: Vec::new(),
    };
    let report_progress = |rows| {
        progress(ImportProgress {
            rows,
            bytes_read: raw.borrow().bytes(),
            total_bytes,
        })
    };
    // Rows are read in batches; each batch is checked and normalised in parallel
    // (the costly part), then applied in input order.
    let mut batch: Vec<(csv::ByteRecord, u64)> = Vec::new();
    let mut done = false;
    let mut table_sized = false;
    while !done {
        let mut len = 0;
        while len < BATCH_ROWS {
            if len == batch.len() {
                batch.push((csv::ByteRecord::new(), 0));
            }
            let (record, line) = &mut batch[len];
            if !reader
                .read_byte_record(record)
                .map_err(|err| csv_error(path, err))?
            {
                done = true;
                break;
            }
            *line = start_line(&reader, record);
            if record.as_slice().contains(&MALFORMED_MARKER) {
                return Err(DatasetError::InvalidEncoding {
                    path: path.clone(),
                    encoding: opts.encoding,
                    row: Some(state.counts.rows + len as u64 + 1),
                    line: *line,
                });
            }
            len += 1;
        }
        let checked: Vec<Checked> = batch[..len]
            .par_iter()
            .map(|(record, _)| plan.check(&normaliser, record))
            .collect();
        for ((record, line), checked) in batch.iter().zip(checked) {
            let row = state.counts.rows + 1;
            state.counts.rows = row;
            state.apply(row, *line, record, checked);
        }
        body_file.write_all(&state.body).map_err(body_err)?;
        state.body.clear();
        if state.counts.accepted > MAX_RECORDS {
            return Err(DatasetError::TooManyRecords {
                path: path.clone(),
                max: MAX_RECORDS,
            });
        }
        if !table_sized {
            table_sized = true;
            let bytes_read = raw.borrow().bytes();
            let expected = estimated_rows(total_bytes, bytes_read, state.counts.rows);
            state
                .seen
                .reserve(expected.saturating_sub(state.seen.len()));
        }
        report_progress(state.counts.rows);
    }
    drop(reader);
    let input_sha256 = raw.borrow().sha256_hex();

    let State {
        rejects,
        counts,
        kinds,
        provenance,
        ..
    } = state;
    let rejection_reasons = rejects.reasons();
    if counts.rows == 0 {
        return Err(DatasetError::NoDataRows { path: path.clone() });
    }
    if counts.accepted == 0 {
        return Err(DatasetError::NoValidRecords {
            path: path.clone(),
            rows: counts.rows,
            reasons: summarise(&rejection_reasons),
        });
    }

    let report_path = rejects_path(data_dir, &opts.name);
    let report_bytes = rejects
        .into_bytes()
        .map_err(|source| DatasetError::Storage {
            action: "writing",
            path: report_path.clone(),
            source,
        })?;
    let meta = DatasetMeta {
        name: opts.name.clone(),
        imported_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        input_file: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        input_sha256: input_sha256.clone(),
        encoding: opts.encoding,
        region: normaliser.default_region().to_owned(),
        normalisation_version: NORMALISATION_VERSION,
        columns: opts.mapping(),
        counts,
        kinds: kinds.into_iter().collect(),
        provenance,
        rejects_sha256: hex::encode(Sha256::digest(&report_bytes)),
        version: super::new_version_tag(),
    };
    // The report first, the dataset last: the dataset's rename is the commit point,
    // and its metadata names the report that belongs to it.
    let _lock = DatasetsLock::acquire(data_dir, &opts.name)?;
    write_file_atomic(&report_path, &report_bytes, Access::OwnerOnly).map_err(|source| {
        DatasetError::Storage {
            action: "writing",
            path: report_path.clone(),
            source,
        }
    })?;
    let dataset_path = dataset_path(data_dir, &opts.name);
    let mut body = body_file
        .into_inner()
        .map_err(|err| body_err(err.into_error()))?;
    body.seek(SeekFrom::Start(0)).map_err(body_err)?;
    store::write_streamed(
        &dataset_path,
        &meta,
        &mut BufReader::with_capacity(1 << 20, body),
    )?;
    tracing::info!(
        dataset = %opts.name,
        rows = counts.rows,
        accepted = counts.accepted,
        rejected_rows = counts.rejected_rows,
        duplicates = counts.duplicates,
        "dataset imported"
    );

    Ok(ImportReport {
        name: opts.name.clone(),
        input: path.clone(),
        rows: counts.rows,
        accepted: counts.accepted,
        rejected_rows: counts.rejected_rows,
        rejected_values: counts.rejected_values,
        duplicates: counts.duplicates,
        identifiers: counts.identifiers,
        input_sha256,
        normalisation_version: NORMALISATION_VERSION,
        dataset_path,
        report_path,
        rejection_reasons,
    })
}

fn check_options(opts: &ImportOptions) -> Result<Normaliser, DatasetError> {
    if opts.email_cols.is_empty()
        && opts.phone_cols.is_empty()
        && opts.name_col.is_none()
        && opts.custom_cols.is_empty()
    {
        return Err(DatasetError::InvalidOptions(
            "no identifier column given: name at least one with --email-col, --phone-col, --name-col with --company-col, or --custom-col".to_owned(),
        ));
    }
    match (&opts.name_col, &opts.company_col) {
        (Some(_), None) => {
            return Err(DatasetError::InvalidOptions(
                "--name-col needs --company-col: a name is matched together with its company"
                    .to_owned(),
            ));
        }
        (None, Some(_)) => {
            return Err(DatasetError::InvalidOptions(
                "--company-col needs --name-col: a company alone does not identify a person"
                    .to_owned(),
            ));
        }
        _ => {}
    }
    Normaliser::new(&opts.region).map_err(|_| {
        DatasetError::InvalidOptions(format!(
            "unknown phone region `{}`: give an ISO 3166-1 alpha-2 code such as CN, HK or US",
            opts.region
        ))
    })
}

fn header_names(
    path: &Path,
    encoding: InputEncoding,
    record: &csv::ByteRecord,
    line: u64,
) -> Result<Vec<String>, DatasetError> {
    let invalid = || DatasetError::InvalidEncoding {
        path: path.to_owned(),
        encoding,
        row: None,
        line,
    };
    record
        .iter()
        .map(|field| {
            std::str::from_utf8(field)
                .map(|name| name.trim().to_owned())
                .map_err(|_| invalid())
        })
        .collect()
}

/// The line of the file (1-based) where the record just read starts.
///
/// The reader has consumed the record's terminating LF (the decoder guarantees one,
/// and turns CRLF into LF), so its line count is one past the record's last line;
/// line breaks inside quoted cells are in the record's bytes.
fn start_line<R: std::io::Read>(reader: &csv::Reader<R>, record: &csv::ByteRecord) -> u64 {
    let embedded = record
        .as_slice()
        .iter()
        .filter(|&&byte| byte == b'\n')
        .count() as u64;
    reader.position().line().saturating_sub(embedded + 1).max(1)
}

fn csv_error(path: &Path, err: csv::Error) -> DatasetError {
    let line = err.position().map_or(0, |position| position.line());
    let detail = err.to_string();
    match err.into_kind() {
        csv::ErrorKind::Io(source) => DatasetError::ReadInput {
            path: path.to_owned(),
            source,
        },
        _ => DatasetError::Csv {
            path: path.to_owned(),
            line,
            detail,
        },
    }
}

/// What duplicate detection keeps of a record id: 12 bytes of its SHA-256, a fixed
/// size whatever the id's length (two distinct ids colliding among 10^9 has
/// probability below 10^-11). Record ids are the caller's keys, not personal
/// identifiers. With the row as `u32`, an entry is 16 bytes.
fn id_key(id: &str) -> [u8; 12] {
    let digest = Sha256::digest(id.as_bytes());
    let mut key = [0u8; 12];
    key.copy_from_slice(&digest[..12]);
    key
}

/// Rows the whole input probably holds, judged from the bytes the first batch took,
/// so the duplicate-id table is sized once instead of doubling (a doubling holds old
/// and new tables at once, the import's peak memory).
fn estimated_rows(total_bytes: u64, bytes_read: u64, rows_read: u64) -> usize {
    if bytes_read == 0 || rows_read == 0 {
        return 0;
    }
    let estimate = (total_bytes as f64 / bytes_read as f64 * rows_read as f64 * 1.05) as u64;
    usize::try_from(estimate.min(MAX_RECORDS)).unwrap_or(0)
}

/// Everything accumulated while reading rows.
struct State<'a> {
    plan: &'a Plan,
    rejects: Rejects,
    counts: ImportCounts,
    /// Record id (as [`id_key`]) → row of the accepted record holding it (saturated
    /// at `u32::MAX`: it only names the row in the rejects report).
    seen: HashMap<[u8; 12], u32>,
    kinds: BTreeSet<IdentKind>,
    provenance: ProvenanceCounts,
    /// Accepted records of the current batch in the stored encoding.
    body: Vec<u8>,
}

impl State<'_> {
    /// Applies one checked data row (in input order): record id, duplicates,
    /// rejections, provenance, storage.
    fn apply(&mut self, row: u64, line: u64, record: &csv::ByteRecord, checked: Checked) {
        let (identifiers, invalid) = match checked {
            Checked::Misaligned(reason) => {
                self.reject_row(row, line, "", "field_count", &reason);
                return;
            }
            Checked::Cells {
                identifiers,
                invalid,
            } => (identifiers, invalid),
        };
        let plan = self.plan;
        let id = match &plan.id {
            None => row.to_string(),
            Some(column) => {
                let id = cell(record, column.index).trim();
                if id.is_empty() {
                    self.reject_row(row, line, &column.label, "empty_id", "record id is empty");
                    return;
                }
                if id.len() > MAX_ID_BYTES {
                    let reason = format!("record id is longer than {MAX_ID_BYTES} bytes");
                    self.reject_row(row, line, &column.label, "id_too_long", &reason);
                    return;
                }
                id.to_owned()
            }
        };
        let key = id_key(&id);
        if let Some(first) = self.seen.get(&key) {
            let label = plan.id.as_ref().map_or("", |c| c.label.as_str());
            let reason = format!("record id already used by row {first}; this row is dropped");
            let summary = "record id already used by an earlier row; the later row is dropped";
            self.rejects
                .add_detailed(row, line, label, "duplicate_id", &reason, summary);
            self.counts.duplicates += 1;
            return;
        }

        for (position, err) in &invalid {
            let label = &plan.identifiers[*position].label;
            self.rejects
                .add(row, line, label, err.code(), &err.to_string());
        }
        self.counts.rejected_values += invalid.len() as u64;
        if identifiers.is_empty() {
            if invalid.is_empty() {
                let reason = "every identifier column is empty";
                self.reject_row(row, line, "", "no_identifier", reason);
            } else {
                let reason = "no valid identifier in this row";
                self.reject_row(row, line, "", "no_valid_identifier", reason);
            }
            return;
        }

        let stored = StoredRecord {
            id,
            legal_basis: self.provenance_value(row, line, plan.legal_basis.as_ref(), record),
            consent: self.provenance_value(row, line, plan.consent.as_ref(), record),
            source: self.provenance_value(row, line, plan.source.as_ref(), record),
            identifiers,
        };
        super::codec::encode_record(&mut self.body, &stored);
        self.counts.accepted += 1;
        self.counts.identifiers += stored.identifiers.len() as u64;
        self.kinds
            .extend(stored.identifiers.iter().map(|(kind, _)| *kind));
        self.provenance.legal_basis += u64::from(stored.legal_basis.is_some());
        self.provenance.consent += u64::from(stored.consent.is_some());
        self.provenance.source += u64::from(stored.source.is_some());
        self.seen
            .insert(key, u32::try_from(row).unwrap_or(u32::MAX));
    }

    fn reject_row(&mut self, row: u64, line: u64, column: &str, code: &'static str, reason: &str) {
        self.rejects.add(row, line, column, code, reason);
        self.counts.rejected_rows += 1;
    }

    /// A legal-basis, consent or source cell; an overlong value is rejected (and
    /// reported) so a policy requiring the field excludes the record.
    fn provenance_value(
        &mut self,
        row: u64,
        line: u64,
        column: Option<&Column>,
        record: &csv::ByteRecord,
    ) -> Option<String> {
        let column = column?;
        let value = cell(record, column.index).trim();
        if value.is_empty() {
            return None;
        }
        if value.len() > MAX_PROVENANCE_BYTES {
            let reason = format!("value is longer than {MAX_PROVENANCE_BYTES} bytes");
            self.rejects
                .add(row, line, &column.label, "too_long", &reason);
            self.counts.rejected_values += 1;
            return None;
        }
        Some(value.to_owned())
    }
}
