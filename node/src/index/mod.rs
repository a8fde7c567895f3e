//! Index mode on a node: the provider builds and serves a signed OPRF index of a
//! dataset (`blindmatch dataset index`), a client fetches it into a per-peer cache and
//! matches through it (`blindmatch match --via-index`). The format and the sessions
//! are `blindmatch_protocol::index`; this module keeps the files and runs the work.
//!
//! # Files
//!
//! Provider, per dataset, under `<data>/index/NAME/` (all owner-only):
//!
//! | file | contents |
//! |---|---|
//! | `key` | the epoch id and the secret seed of its VOPRF key (see [`key`]) |
//! | `index.bmix` | the index file: base segment and delta segments |
//! | `state.json` | what the index was built from: epoch, dataset version, dataset policy, sizes |
//! | `.build-*/` | sorted runs of a build in progress (deleted when it ends, or by the next one) |
//!
//! A server serves an index only when all three agree and the dataset and its
//! `[datasets.NAME]` policy are still those the index was built from; otherwise the
//! index is stale and index sessions are refused until `dataset index` runs again. So a
//! dataset re-imported without `--index` is never matched through an index of its old
//! contents.
//!
//! Client, per peer (certificate fingerprint) and requested dataset:
//! `<data>/index-cache/<fingerprint>/<dataset>.bmix`, possibly partial (a download to
//! resume) or of an older epoch (replaced at the next session).
//!
//! # Epochs
//!
//! A build either appends a delta segment under the current key (the new eligible
//! identifiers are a superset of the indexed ones, and the deltas stay smaller than the
//! base, which keeps the false-match bound) or starts a new epoch with a fresh key: at the
//! first build, when identifiers were removed or changed, when the dataset policy changed,
//! on `--rotate`, and always after `dataset revoke`. A new epoch's key replaces the old
//! key file before anything else is written, so from that moment the old index (which
//! clients may still hold) matches nothing: nobody can evaluate under its key any more.
//! `dataset remove` deletes the index and key.

mod build;
pub mod client;
mod command;
mod delta;
mod files;
mod key;
mod runs;

use std::path::{Path, PathBuf};

use blindmatch_protocol::ident::KindSet;
use blindmatch_protocol::index::IndexSummary;
use blindmatch_protocol::oprf::OprfKey;
use blindmatch_protocol::wire::DatasetRef;
use serde::{Deserialize, Serialize};

pub use build::{BuildKind, BuildOptions, BuildProgress, BuildReport, build};
pub use command::{build_with_progress_bar, built_event};
pub use files::{FileIndexSource, FileIndexStore, cache_path};
pub use key::EpochKey;

use crate::config::DatasetPolicy;
use crate::dataset::{DatasetError, stored_meta};
use crate::files::{Access, write_file};

/// The provider's index directory inside the data directory.
pub const INDEX_DIR: &str = "index";
/// The client's cache of providers' indexes inside the data directory.
pub const CACHE_DIR: &str = "index-cache";
const KEY_FILE: &str = "key";
const INDEX_FILE: &str = "index.bmix";
const STATE_FILE: &str = "state.json";

/// What can go wrong with an index on this node.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file of ours is damaged.
    #[error(
        "{path} is damaged: {problem}; run `blindmatch dataset index` with --rotate to rebuild it"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The dataset could not be read.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The dataset has no index.
    #[error("dataset `{name}` has no index; build it with `blindmatch dataset index {name}`")]
    NotIndexed {
        /// The dataset.
        name: String,
    },
    /// The index no longer describes the dataset.
    #[error(
        "the index of dataset `{name}` is out of date ({why}); rebuild it with `blindmatch dataset index {name}`"
    )]
    Stale {
        /// The dataset.
        name: String,
        /// What changed.
        why: &'static str,
    },
    /// The protocol layer refused something (a build over no identifier, say).
    #[error("{0}")]
    Protocol(#[from] blindmatch_protocol::Error),
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

/// What an index was built from (`state.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexState {
    /// Epoch id (hex).
    pub epoch: String,
    /// The dataset.
    pub dataset: String,
    /// The dataset version tag the last segment names (hex).
    pub dataset_version: String,
    /// The `[datasets.NAME]` policy the eligible records were chosen by, as text.
    pub policy: String,
    /// Segments in the file.
    pub segments: u32,
    /// Tags in the whole index.
    pub elements: u64,
    /// Tags in the base segment.
    pub base_elements: u64,
    /// Bytes of the index file.
    pub file_len: u64,
    /// The epoch's OPRF public key (hex).
    pub public_key: String,
    /// The audit key that signed it (hex).
    pub signer_key: String,
    /// Identifier kinds indexed (bits of `KindSet`).
    pub kinds: u8,
    /// When the last segment was written, RFC 3339 UTC.
    pub built_at: String,
}

/// An index ready to serve: its key, what it is, and its file.
pub struct Served {
    /// The epoch's VOPRF key.
    pub key: OprfKey,
    /// The index as the provider announces it.
    pub summary: IndexSummary,
    /// Its file.
    pub source: FileIndexSource,
}

/// `<data>/index/NAME/`.
pub fn dataset_index_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(INDEX_DIR).join(name)
}

/// The policy text an index records, so a changed policy makes it stale.
pub fn policy_text(policy: &DatasetPolicy) -> String {
    format!("{policy:?}")
}

/// The current index of dataset `name`, if it may be served under `policy`.
pub fn served(data_dir: &Path, name: &str, policy: &DatasetPolicy) -> Result<Served, IndexError> {
    let dir = dataset_index_dir(data_dir, name);
    let state = read_state(&dir)?.ok_or_else(|| IndexError::NotIndexed {
        name: name.to_owned(),
    })?;
    let stale = |why| IndexError::Stale {
        name: name.to_owned(),
        why,
    };
    let key = EpochKey::load(&dir.join(KEY_FILE))?.ok_or_else(|| stale("its key is gone"))?;
    if hex::encode(key.epoch()) != state.epoch {
        return Err(stale("its key belongs to another epoch"));
    }
    let meta = stored_meta(data_dir, name)?;
    if meta.version != state.dataset_version {
        return Err(stale("the dataset changed since"));
    }
    if policy_text(policy) != state.policy {
        return Err(stale("the dataset's policy in node.toml changed since"));
    }
    let path = dir.join(INDEX_FILE);
    let source = FileIndexSource::open(&path)?;
    if source.len() != state.file_len {
        return Err(stale("its file does not have the recorded length"));
    }
    let oprf_key = key.oprf_key()?;
    if hex::encode(oprf_key.public_key().as_bytes()) != state.public_key {
        return Err(stale("its key does not match the index"));
    }
    let summary = summary_of(&state, name)?;
    Ok(Served {
        key: oprf_key,
        summary,
        source,
    })
}

/// Whether dataset `name` has an index (current or not).
pub fn exists(data_dir: &Path, name: &str) -> bool {
    dataset_index_dir(data_dir, name).join(STATE_FILE).exists()
        || dataset_index_dir(data_dir, name).join(KEY_FILE).exists()
}

/// Deletes the index and key of dataset `name` (`dataset remove`); returns the epoch
/// that ended, if there was one.
pub fn remove(data_dir: &Path, name: &str) -> Result<Option<String>, IndexError> {
    let dir = dataset_index_dir(data_dir, name);
    let epoch = read_state(&dir).ok().flatten().map(|state| state.epoch);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(epoch),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IndexError::Io {
            action: "removing",
            path: dir,
            source,
        }),
    }
}

fn summary_of(state: &IndexState, name: &str) -> Result<IndexSummary, IndexError> {
    let corrupt = |problem: &str| IndexError::Corrupt {
        path: PathBuf::from(format!("{INDEX_DIR}/{name}/{STATE_FILE}")),
        problem: problem.to_owned(),
    };
    let bytes32 = |text: &str| -> Result<[u8; 32], IndexError> {
        hex::decode(text)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| corrupt("a key is not 64 hex digits"))
    };
    let bytes16 = |text: &str| -> Result<[u8; 16], IndexError> {
        hex::decode(text)
            .ok()
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
            .ok_or_else(|| corrupt("an id is not 32 hex digits"))
    };
    let mut summary = IndexSummary::new(
        bytes16(&state.epoch)?,
        bytes32(&state.public_key)?,
        bytes32(&state.signer_key)?,
    );
    summary.elements = state.elements;
    summary.file_len = state.file_len;
    summary.dataset = DatasetRef::new(&state.dataset, bytes16(&state.dataset_version)?);
    summary.kinds = KindSet::from_bits(state.kinds).ok_or_else(|| corrupt("unknown kinds"))?;
    summary.segments = state.segments;
    Ok(summary)
}

fn read_state(dir: &Path) -> Result<Option<IndexState>, IndexError> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(IndexError::Io {
                action: "reading",
                path,
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|err| IndexError::Corrupt {
            path,
            problem: err.to_string(),
        })
}

fn write_state(dir: &Path, state: &IndexState) -> Result<(), IndexError> {
    let path = dir.join(STATE_FILE);
    let bytes =
        serde_json::to_vec_pretty(state).map_err(|err| IndexError::Other(err.to_string()))?;
    write_file(&path, &bytes, Access::OwnerOnly).map_err(|source| IndexError::Io {
        action: "writing",
        path,
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
