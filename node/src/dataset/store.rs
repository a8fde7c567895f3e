//! The stored form of a dataset: one `.bmds` file, written once, read whole.
//!
//! # Format (version 1)
//!
//! All integers little-endian; `varint` is unsigned LEB128.
//!
//! | bytes | contents |
//! |---|---|
//! | 8 | magic [`MAGIC`] (`\x89BMDS\r\n\x1a`: catches text-mode transfers) |
//! | 2 | format version, [`FORMAT_VERSION`] |
//! | 2 | normalisation version of the identifiers ([`NORMALISATION_VERSION`]) |
//! | 4 | length `m` of the metadata (at most 1 MiB) |
//! | m | metadata: [`DatasetMeta`] as JSON |
//! | … | `counts.accepted` records, back to back |
//! | 32 | SHA-256 of every byte before it |
//!
//! A record: `varint` id length, id (UTF-8); one flag byte (bit 0 legal basis, bit 1
//! consent, bit 2 source), then each present field as `varint` length + UTF-8; `varint`
//! identifier count (at least 1), then per identifier one kind code byte
//! ([`IdentKind::code`]), `varint` length, normalised value (UTF-8).
//!
//! Loading reads the file whole, checks magic, version and checksum before trusting
//! any length, and bounds every length by the bytes that remain: a damaged or
//! truncated file is a [`DatasetError::Corrupt`], never a panic or a huge allocation.
//! A newer format version or other normalisation rules are errors of their own, since
//! matching identifiers normalised under different rules would silently miss.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use blindmatch_protocol::ident::{IdentKind, NORMALISATION_VERSION};
use blindmatch_protocol::session::{PreparedSet, PreparedSetBuilder};
use sha2::{Digest, Sha256};

use super::codec::{Reader, index_records};
use super::guard::DatasetsLock;
use super::{
    DATASET_EXTENSION, DatasetError, DatasetMeta, check_name, dataset_path, datasets_dir,
    rejects_path,
};
use crate::files::{Access, sync_dir, write_file_with as write_file_atomic_with};

/// First bytes of every dataset file.
pub const MAGIC: [u8; 8] = *b"\x89BMDS\r\n\x1a";
/// Version of the file layout written by this build.
pub const FORMAT_VERSION: u16 = 1;

pub(super) const PREAMBLE_LEN: usize = 16;
pub(super) const CHECKSUM_LEN: usize = 32;
const MAX_META_LEN: usize = 1 << 20;

/// One stored record: the caller's id, its normalised identifiers and its provenance.
///
/// Holds personal data: `Debug` shows the id and the identifier kinds only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The record id from the id column (or the row number); what results report.
    pub id: String,
    /// Normalised identifiers, sorted and distinct, at least one.
    pub identifiers: Vec<(IdentKind, String)>,
    /// Legal basis for processing, if the import had a legal-basis column.
    pub legal_basis: Option<String>,
    /// Consent value, if the import had a consent column.
    pub consent: Option<String>,
    /// Where the record came from, if the import had a source column.
    pub source: Option<String>,
}

impl fmt::Debug for StoredRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<IdentKind> = self.identifiers.iter().map(|(kind, _)| *kind).collect();
        f.debug_struct("StoredRecord")
            .field("id", &self.id)
            .field("identifier_kinds", &kinds)
            .field("legal_basis", &self.legal_basis)
            .field("consent", &self.consent)
            .field("source", &self.source)
            .finish()
    }
}

/// A stored dataset, loaded whole and checked, kept in its compact stored form.
///
/// The record bytes stay encoded (about 30 bytes per identifier) with one offset per
/// record; records are decoded on demand. Holding a million records as
/// [`StoredRecord`]s would cost several allocations and ~300 bytes each, more than a
/// whole session's working set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    meta: DatasetMeta,
    /// The encoded records, back to back (validated at load).
    bytes: Vec<u8>,
    /// Where each record starts in `bytes`.
    offsets: Vec<u64>,
}

impl Dataset {
    /// Loads `<data>/datasets/<name>.bmds`, checking its format, checksum and
    /// normalisation version.
    pub fn load(data_dir: &Path, name: &str) -> Result<Self, DatasetError> {
        check_name(name)?;
        let path = dataset_path(data_dir, name);
        let bytes = fs::read(&path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => DatasetError::NotFound {
                name: name.to_owned(),
            },
            _ => DatasetError::Storage {
                action: "reading",
                path: path.clone(),
                source,
            },
        })?;
        let dataset = decode(&path, bytes)?;
        if dataset.meta.name != name {
            return Err(corrupt(
                &path,
                format!(
                    "it holds dataset `{}`, not `{name}` (was the file renamed?)",
                    dataset.meta.name
                ),
            ));
        }
        Ok(dataset)
    }

    /// The metadata of dataset `name` in `data_dir`, from its header alone (the records
    /// are neither read nor checksummed): cheap checks before a full load.
    pub fn read_meta(data_dir: &Path, name: &str) -> Result<DatasetMeta, DatasetError> {
        check_name(name)?;
        read_meta(&dataset_path(data_dir, name))
    }

    /// The dataset's metadata.
    pub fn meta(&self) -> &DatasetMeta {
        &self.meta
    }

    /// The records, in input order, decoded one at a time.
    pub fn records(&self) -> impl ExactSizeIterator<Item = StoredRecord> + '_ {
        (0..self.offsets.len()).map(|i| self.record(i))
    }

    /// Record `index`. Panics if `index` is out of range, like slice indexing.
    pub fn record(&self, index: usize) -> StoredRecord {
        let mut reader = Reader {
            bytes: &self.bytes,
            pos: self.offset(index),
        };
        // Every record was decoded once by `load`, so this cannot fail.
        reader
            .record()
            .unwrap_or_else(|problem| unreachable!("record validated at load: {problem}"))
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when there is no record (never for a dataset stored by an import).
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The id of record `index` (a record index from a [`PreparedSet`] result).
    /// Panics if `index` is out of range, like slice indexing.
    pub fn record_id(&self, index: usize) -> &str {
        let mut reader = Reader {
            bytes: &self.bytes,
            pos: self.offset(index),
        };
        reader
            .str()
            .unwrap_or_else(|problem| unreachable!("record validated at load: {problem}"))
    }

    /// Every identifier of every record, ready for a session; record index `i` in the
    /// results is `self.record(i)`.
    pub fn prepared_set(&self) -> PreparedSet {
        self.prepared_set_where(|_| true)
    }

    /// Like [`prepared_set`](Self::prepared_set) but only with the records `keep`
    /// accepts (e.g. those with a legal basis); indices still refer to `records()`.
    pub fn prepared_set_where(&self, keep: impl Fn(&StoredRecord) -> bool) -> PreparedSet {
        let mut builder = PreparedSetBuilder::new();
        // `decode` and `import` both cap the record count at u32::MAX + 1.
        for (index, record) in (0u32..).zip(self.records()) {
            if keep(&record) {
                for (kind, value) in &record.identifiers {
                    builder.add_normalised(index, *kind, value.as_bytes());
                }
            }
        }
        builder.build()
    }

    /// Splits the dataset into its metadata and decoded records.
    pub fn into_parts(self) -> (DatasetMeta, Vec<StoredRecord>) {
        let records = self.records().collect();
        (self.meta, records)
    }

    /// Keeps only the record ids, which is all a session needs once its prepared set
    /// is built (results name records by id).
    pub fn into_record_ids(self) -> RecordIds {
        let mut ids = RecordIds {
            bytes: Vec::new(),
            ends: Vec::with_capacity(self.len()),
        };
        for index in 0..self.len() {
            ids.bytes
                .extend_from_slice(self.record_id(index).as_bytes());
            ids.ends.push(ids.bytes.len() as u64);
        }
        ids.bytes.shrink_to_fit();
        ids
    }

    fn offset(&self, index: usize) -> usize {
        // Offsets index into `bytes`, which is in memory, so they fit in usize.
        self.offsets[index] as usize
    }
}

/// The ids of a dataset's records, by record index: one buffer, one end offset each.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordIds {
    bytes: Vec<u8>,
    ends: Vec<u64>,
}

impl RecordIds {
    /// The id of record `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)? as usize;
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] as usize,
        };
        std::str::from_utf8(self.bytes.get(start..end)?).ok()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is no record.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// A stored dataset as seen by [`list`]: its name and its metadata, or why the
/// metadata could not be read.
#[derive(Debug)]
pub struct DatasetEntry {
    /// The dataset's name (from the file name).
    pub name: String,
    /// Its metadata, or the error reading it.
    pub meta: Result<DatasetMeta, DatasetError>,
}

/// Every stored dataset, sorted by name. Reads only each file's metadata (no
/// checksum check); an unreadable file is listed with its error.
pub fn list(data_dir: &Path) -> Result<Vec<DatasetEntry>, DatasetError> {
    let dir = datasets_dir(data_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(DatasetError::Storage {
                action: "listing",
                path: dir,
                source,
            });
        }
    };
    let mut listed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| DatasetError::Storage {
            action: "listing",
            path: dir.clone(),
            source,
        })?;
        let file_name = entry.file_name();
        let Some(name) = file_name
            .to_str()
            .and_then(|file| file.strip_suffix(&format!(".{DATASET_EXTENSION}")))
        else {
            continue;
        };
        // Temporary files of an import in progress start with a dot.
        if check_name(name).is_err() {
            continue;
        }
        listed.push(DatasetEntry {
            name: name.to_owned(),
            meta: read_meta(&entry.path()),
        });
    }
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listed)
}

/// The metadata of stored dataset `name`, without reading its records (no checksum
/// check): what a server needs to see whether an index is of the current version.
pub fn stored_meta(data_dir: &Path, name: &str) -> Result<DatasetMeta, DatasetError> {
    check_name(name)?;
    let path = dataset_path(data_dir, name);
    if !path.exists() {
        return Err(DatasetError::NotFound {
            name: name.to_owned(),
        });
    }
    read_meta(&path)
}

/// Removes a stored dataset and its rejects report. A report without its dataset (left
/// by a first import killed between the two renames) is removed too; only when neither
/// exists is the dataset [`DatasetError::NotFound`].
pub fn remove(data_dir: &Path, name: &str) -> Result<(), DatasetError> {
    check_name(name)?;
    let _lock = DatasetsLock::acquire(data_dir, name)?;
    let mut removed_any = false;
    for path in [dataset_path(data_dir, name), rejects_path(data_dir, name)] {
        match fs::remove_file(&path) {
            Ok(()) => removed_any = true,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DatasetError::Storage {
                    action: "removing",
                    path,
                    source,
                });
            }
        }
    }
    if !removed_any {
        return Err(DatasetError::NotFound {
            name: name.to_owned(),
        });
    }
    let dir = datasets_dir(data_dir);
    sync_dir(&dir).map_err(|source| DatasetError::Storage {
        action: "syncing",
        path: dir,
        source,
    })
}

/// Writes a dataset file atomically from its metadata and encoded records.
pub(crate) fn write(path: &Path, meta: &DatasetMeta, records: Vec<u8>) -> Result<(), DatasetError> {
    write_streamed(path, meta, &mut records.as_slice())
}

/// Writes a dataset file atomically from its metadata and encoded records read from
/// `records` (e.g. a temporary file an import streamed them to), hashing as it copies
/// so the records are never in memory whole.
pub(crate) fn write_streamed(
    path: &Path,
    meta: &DatasetMeta,
    records: &mut dyn Read,
) -> Result<(), DatasetError> {
    let storage = |source| DatasetError::Storage {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    let head = encode_head(meta).map_err(storage)?;
    write_file_atomic_with(path, Access::OwnerOnly, |out| {
        let mut hashing = HashingWriter {
            inner: out,
            hasher: Sha256::new(),
        };
        hashing.write_all(&head)?;
        io::copy(records, &mut hashing)?;
        let checksum = hashing.hasher.finalize();
        hashing.inner.write_all(&checksum)
    })
    .map_err(storage)
}

/// Passes writes through while hashing them.
struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The bytes of a dataset file. `records` (encoded by [`encode_record`](super::codec::encode_record), as many as
/// `meta.counts.accepted`) is reused as the file buffer, so no second copy is made.
#[cfg(test)]
pub(crate) fn encode_file(meta: &DatasetMeta, records: Vec<u8>) -> io::Result<Vec<u8>> {
    let head = encode_head(meta)?;
    let mut file = records;
    file.reserve_exact(head.len() + CHECKSUM_LEN);
    file.splice(0..0, head);
    let checksum = Sha256::digest(&file);
    file.extend_from_slice(&checksum);
    Ok(file)
}

/// Preamble and metadata: everything before the records.
fn encode_head(meta: &DatasetMeta) -> io::Result<Vec<u8>> {
    let meta_json = serde_json::to_vec(meta).map_err(io::Error::other)?;
    let meta_len = u32::try_from(meta_json.len())
        .ok()
        .filter(|len| (*len as usize) <= MAX_META_LEN)
        .ok_or_else(|| io::Error::other("dataset metadata over 1 MiB"))?;
    let mut head = Vec::with_capacity(PREAMBLE_LEN + meta_json.len());
    head.extend_from_slice(&MAGIC);
    head.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    head.extend_from_slice(&meta.normalisation_version.to_le_bytes());
    head.extend_from_slice(&meta_len.to_le_bytes());
    head.extend_from_slice(&meta_json);
    Ok(head)
}

/// Parses a whole dataset file, keeping its record bytes.
pub(crate) fn decode(path: &Path, mut bytes: Vec<u8>) -> Result<Dataset, DatasetError> {
    let meta_len = check_preamble(path, &bytes)?;
    let meta_end = PREAMBLE_LEN + meta_len;
    if bytes.len() < meta_end + CHECKSUM_LEN {
        return Err(corrupt(path, "the file is truncated".to_owned()));
    }
    let (content, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if Sha256::digest(content).as_slice() != checksum {
        return Err(corrupt(
            path,
            "checksum mismatch (the file was truncated or modified)".to_owned(),
        ));
    }
    check_normalisation(path, content)?;
    let meta = parse_meta(path, &content[PREAMBLE_LEN..meta_end])?;
    let offsets = index_records(&content[meta_end..], meta.counts.accepted)
        .map_err(|problem| corrupt(path, problem))?;
    // Keep only the records: drop the checksum, then the preamble and metadata.
    let content_len = content.len();
    bytes.truncate(content_len);
    bytes.drain(..meta_end);
    bytes.shrink_to_fit();
    Ok(Dataset {
        meta,
        bytes,
        offsets,
    })
}

/// Reads only the preamble and metadata of a dataset file.
fn read_meta(path: &Path) -> Result<DatasetMeta, DatasetError> {
    let io_err = |source| DatasetError::Storage {
        action: "reading",
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io_err)?;
    let mut head = Vec::with_capacity(PREAMBLE_LEN);
    (&mut file)
        .take(PREAMBLE_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_err)?;
    let meta_len = check_preamble(path, &head)?;
    check_normalisation(path, &head)?;
    let mut meta = Vec::with_capacity(meta_len);
    file.take(meta_len as u64)
        .read_to_end(&mut meta)
        .map_err(io_err)?;
    if meta.len() < meta_len {
        return Err(corrupt(path, "the file is truncated".to_owned()));
    }
    parse_meta(path, &meta)
}

/// Checks magic and format version; returns the metadata length.
pub(super) fn check_preamble(path: &Path, bytes: &[u8]) -> Result<usize, DatasetError> {
    if bytes.len() < PREAMBLE_LEN {
        return Err(
            if bytes.starts_with(&MAGIC[..bytes.len().min(MAGIC.len())]) {
                corrupt(path, "the file is truncated".to_owned())
            } else {
                corrupt(path, "not a blindmatch dataset file".to_owned())
            },
        );
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt(path, "not a blindmatch dataset file".to_owned()));
    }
    let format = u16::from_le_bytes([bytes[8], bytes[9]]);
    if format != FORMAT_VERSION {
        return Err(DatasetError::UnsupportedFormat {
            path: path.to_owned(),
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    let meta_len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize;
    if meta_len > MAX_META_LEN {
        return Err(corrupt(path, "metadata length is out of range".to_owned()));
    }
    Ok(meta_len)
}

pub(super) fn check_normalisation(path: &Path, preamble: &[u8]) -> Result<(), DatasetError> {
    let found = u16::from_le_bytes([preamble[10], preamble[11]]);
    if found != NORMALISATION_VERSION {
        return Err(DatasetError::NormalisationVersion {
            path: path.to_owned(),
            found,
            current: NORMALISATION_VERSION,
        });
    }
    Ok(())
}

pub(super) fn parse_meta(path: &Path, json: &[u8]) -> Result<DatasetMeta, DatasetError> {
    let meta: DatasetMeta = serde_json::from_slice(json)
        .map_err(|err| corrupt(path, format!("unreadable metadata: {err}")))?;
    if meta.normalisation_version != NORMALISATION_VERSION {
        return Err(corrupt(
            path,
            "metadata and header disagree on the normalisation version".to_owned(),
        ));
    }
    Ok(meta)
}

pub(super) fn corrupt(path: &Path, problem: String) -> DatasetError {
    DatasetError::Corrupt {
        path: PathBuf::from(path),
        problem,
    }
}
