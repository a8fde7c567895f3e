//! Reading a stored dataset record by record, never whole: for work over every record
//! of a large dataset (an index build) whose memory must not grow with it.
//!
//! A [`DatasetReader`] keeps the file open, so every pass reads the same version even if
//! an import replaces the file meanwhile (the rename leaves the open file as it was).
//! Each pass checks what `Dataset::load` checks — magic, versions, every record, the
//! record count and the checksum — but the checksum only at its end: a caller must
//! treat what it did with the records as void when a pass fails.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::codec::Reader;
use super::store::{
    CHECKSUM_LEN, PREAMBLE_LEN, check_normalisation, check_preamble, corrupt, parse_meta,
};
use super::{DatasetError, DatasetMeta, StoredRecord, check_name, dataset_path};

/// Bytes read at a time.
const BLOCK: usize = 4 << 20;
/// Longest record accepted: far above any the importer writes (ids and provenance
/// values are capped, identifiers are short), so a damaged length cannot make a pass
/// hold the rest of the file.
const MAX_RECORD: usize = 16 << 20;

/// A stored dataset open for passes over its records.
pub struct DatasetReader {
    file: File,
    path: PathBuf,
    meta: DatasetMeta,
    /// Bytes before the first record.
    head_len: u64,
    /// Bytes of records.
    records_len: u64,
}

impl DatasetReader {
    /// Opens `<data>/datasets/<name>.bmds` and reads its metadata.
    pub fn open(data_dir: &Path, name: &str) -> Result<Self, DatasetError> {
        check_name(name)?;
        let path = dataset_path(data_dir, name);
        let storage = |source| DatasetError::Storage {
            action: "reading",
            path: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => DatasetError::NotFound {
                name: name.to_owned(),
            },
            _ => storage(source),
        })?;
        let len = file.metadata().map_err(storage)?.len();
        let mut preamble = vec![0u8; PREAMBLE_LEN];
        file.read_exact(&mut preamble)
            .map_err(|_| corrupt(&path, "the file is truncated".to_owned()))?;
        let meta_len = check_preamble(&path, &preamble)?;
        check_normalisation(&path, &preamble)?;
        let mut json = vec![0u8; meta_len];
        file.read_exact(&mut json)
            .map_err(|_| corrupt(&path, "the file is truncated".to_owned()))?;
        let meta = parse_meta(&path, &json)?;
        if meta.name != name {
            return Err(corrupt(
                &path,
                format!("it holds dataset `{}`, not `{name}`", meta.name),
            ));
        }
        let head_len = (PREAMBLE_LEN + meta_len) as u64;
        let records_len = len
            .checked_sub(head_len + CHECKSUM_LEN as u64)
            .ok_or_else(|| corrupt(&path, "the file is truncated".to_owned()))?;
        Ok(Self {
            file,
            path,
            meta,
            head_len,
            records_len,
        })
    }

    /// The dataset's metadata.
    pub fn meta(&self) -> &DatasetMeta {
        &self.meta
    }

    /// Calls `each` with every record in order, then checks the count and checksum.
    pub fn for_each<E: From<DatasetError>>(
        &mut self,
        mut each: impl FnMut(StoredRecord) -> Result<(), E>,
    ) -> Result<(), E> {
        let path = self.path.clone();
        let storage = |source| DatasetError::Storage {
            action: "reading",
            path: path.clone(),
            source,
        };
        self.file.seek(SeekFrom::Start(0)).map_err(storage)?;
        let mut hasher = Sha256::new();
        let mut head = vec![0u8; self.head_len as usize];
        self.file.read_exact(&mut head).map_err(storage)?;
        hasher.update(&head);
        let mut remaining = self.records_len;
        let mut buffer: Vec<u8> = Vec::with_capacity(BLOCK);
        let mut records = 0u64;
        loop {
            if remaining > 0 {
                let start = buffer.len();
                let take = remaining.min(BLOCK as u64) as usize;
                buffer.resize(start + take, 0);
                self.file
                    .read_exact(&mut buffer[start..])
                    .map_err(storage)?;
                hasher.update(&buffer[start..]);
                remaining -= take as u64;
            }
            let mut reader = Reader {
                bytes: &buffer,
                pos: 0,
            };
            while reader.pos < buffer.len() {
                let start = reader.pos;
                match reader.record() {
                    Ok(record) => {
                        records += 1;
                        if records > self.meta.counts.accepted {
                            return Err(corrupt(
                                &path,
                                "more records than its metadata says".into(),
                            )
                            .into());
                        }
                        each(record)?;
                    }
                    // The record goes on in the bytes not read yet.
                    Err(_) if remaining > 0 => {
                        reader.pos = start;
                        break;
                    }
                    Err(problem) => {
                        return Err(
                            corrupt(&path, format!("record {}: {problem}", records + 1)).into()
                        );
                    }
                }
            }
            let consumed = reader.pos;
            if consumed == 0 && buffer.len() > MAX_RECORD {
                return Err(corrupt(&path, format!("record {} is too long", records + 1)).into());
            }
            buffer.drain(..consumed);
            if remaining == 0 && buffer.is_empty() {
                break;
            }
        }
        let mut checksum = [0u8; CHECKSUM_LEN];
        self.file.read_exact(&mut checksum).map_err(storage)?;
        if records != self.meta.counts.accepted || hasher.finalize().as_slice() != checksum {
            return Err(corrupt(
                &path,
                "checksum or record count mismatch (the file was truncated or modified)".into(),
            )
            .into());
        }
        Ok(())
    }
}
