//! The index sessions' byte stores over files: the provider's index file as an
//! [`IndexSource`], and the client's cached copy as an [`IndexStore`] that grows as
//! chunks arrive (so a download cut short resumes from what reached the disk), is
//! checked whole by the protocol's verifier before use, and answers lookups by reading
//! only the buckets they need.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use blindmatch_protocol::Error as ProtocolError;
use blindmatch_protocol::index::{
    IndexSource, IndexStore, IndexSummary, SegmentHeader, VerifiedIndex, Verifier,
};
use blindmatch_protocol::wire::HeldIndex;

use super::{CACHE_DIR, IndexError};
use crate::identity::Fingerprint;

/// Bytes read at a time when checking a copy.
const READ_CHUNK: usize = 1 << 20;

/// The provider's index file, read for downloads.
pub struct FileIndexSource {
    file: File,
    len: u64,
}

impl FileIndexSource {
    /// Opens the index file at `path`.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let file = File::open(path).map_err(|source| IndexError::Io {
            action: "opening",
            path: path.to_path_buf(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| IndexError::Io {
                action: "reading",
                path: path.to_path_buf(),
                source,
            })?
            .len();
        Ok(Self { file, len })
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl IndexSource for FileIndexSource {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ProtocolError> {
        read_at(&mut self.file, offset, buf)
            .map_err(|err| ProtocolError::Storage(format!("reading the index file: {err}")))
    }
}

/// Where the client keeps the index of `peer`'s dataset `dataset` (empty: the one it
/// offers).
pub fn cache_path(data_dir: &Path, peer: &Fingerprint, dataset: &str) -> PathBuf {
    let name = if dataset.is_empty() {
        "offered"
    } else {
        dataset
    };
    data_dir
        .join(CACHE_DIR)
        .join(peer.to_string())
        .join(format!("{name}.bmix"))
}

/// A client's cached copy of a provider's index.
pub struct FileIndexStore {
    path: PathBuf,
    verified: Option<(VerifiedIndex, File)>,
}

impl FileIndexStore {
    /// The copy at `path` (which may not exist yet).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            verified: None,
        }
    }

    fn storage(&self, action: &str, err: std::io::Error) -> ProtocolError {
        ProtocolError::Storage(format!("{action} {}: {err}", self.path.display()))
    }

    fn append_file(&self) -> std::io::Result<File> {
        if let Some(dir) = self.path.parent() {
            crate::files::create_private_dir_all(dir)?;
        }
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(&self.path)
    }
}

impl IndexStore for FileIndexStore {
    fn held(&mut self) -> Result<Option<HeldIndex>, ProtocolError> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(self.storage("opening", err)),
        };
        let len = file
            .metadata()
            .map_err(|err| self.storage("reading", err))?
            .len();
        let mut head = Vec::with_capacity(4096 + 64);
        (&mut file)
            .take(4096 + 64)
            .read_to_end(&mut head)
            .map_err(|err| self.storage("reading", err))?;
        // A copy that does not even start like an index is replaced by a full download.
        Ok(SegmentHeader::from_prefix(&head)
            .ok()
            .flatten()
            .map(|header| HeldIndex {
                epoch: header.epoch,
                len,
            }))
    }

    fn clear(&mut self) -> Result<(), ProtocolError> {
        self.verified = None;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(self.storage("removing", err)),
        }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        self.verified = None;
        let mut file = self
            .append_file()
            .map_err(|err| self.storage("opening", err))?;
        file.write_all(bytes)
            .map_err(|err| self.storage("writing", err))
    }

    fn open(&mut self, pinned: Option<[u8; 32]>) -> Result<IndexSummary, ProtocolError> {
        let mut file = File::open(&self.path).map_err(|err| self.storage("opening", err))?;
        file.sync_all()
            .map_err(|err| self.storage("syncing", err))?;
        let mut verifier = Verifier::new(pinned);
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            let read = file
                .read(&mut buffer)
                .map_err(|err| self.storage("reading", err))?;
            if read == 0 {
                break;
            }
            verifier.update(&buffer[..read])?;
        }
        let verified = verifier.finish()?;
        let summary = IndexSummary::of(&verified);
        self.verified = Some((verified, file));
        Ok(summary)
    }

    fn contains_sorted(&mut self, prefixes: &[u128]) -> Result<Vec<bool>, ProtocolError> {
        let Some((verified, file)) = &mut self.verified else {
            return Err(ProtocolError::ApiMisuse(
                "lookup before the index was opened",
            ));
        };
        let path = &self.path;
        verified.contains_sorted(prefixes, &mut |offset, len| {
            let mut bytes = vec![0u8; len];
            read_at(file, offset, &mut bytes).map_err(|err| {
                ProtocolError::Storage(format!("reading {}: {err}", path.display()))
            })?;
            Ok(bytes)
        })
    }
}

fn read_at(file: &mut File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}
