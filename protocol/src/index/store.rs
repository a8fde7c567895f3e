//! Where index bytes live: the provider reads its file through an [`IndexSource`], the
//! client keeps its copy (complete or partial) in an [`IndexStore`]. The node implements
//! both over files; the in-memory versions here serve tests and library users.

use super::verify::{VerifiedIndex, Verifier};
use super::{EpochId, SegmentHeader};
use crate::error::Error;
use crate::ident::KindSet;
use crate::wire::{DatasetRef, HeldIndex};

/// What a verified index (or the one a provider serves) is, without its bytes.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSummary {
    /// The epoch.
    pub epoch: EpochId,
    /// The epoch's OPRF public key.
    pub public_key: [u8; 32],
    /// The audit key that signed it.
    pub signer_key: [u8; 32],
    /// Tags in the whole index.
    pub elements: u64,
    /// Bytes of the file.
    pub file_len: u64,
    /// The provider's dataset, as of the last segment.
    pub dataset: DatasetRef,
    /// Identifier kinds indexed.
    pub kinds: KindSet,
    /// Segments: 1 for a base alone.
    pub segments: u32,
}

impl IndexSummary {
    /// A summary of an index of `epoch` under `public_key`, signed by `signer_key`;
    /// callers set the sizes, dataset and kinds.
    pub fn new(epoch: EpochId, public_key: [u8; 32], signer_key: [u8; 32]) -> Self {
        Self {
            epoch,
            public_key,
            signer_key,
            elements: 0,
            file_len: 0,
            dataset: DatasetRef::default(),
            kinds: KindSet::empty(),
            segments: 1,
        }
    }

    /// The summary of a verified index.
    pub fn of(index: &VerifiedIndex) -> Self {
        let base = index.base();
        Self {
            epoch: base.epoch,
            public_key: base.public_key,
            signer_key: base.signer_key,
            elements: index.total_elements(),
            file_len: index.file_len(),
            dataset: index.dataset().clone(),
            kinds: index.kinds(),
            segments: index.segments().len() as u32,
        }
    }
}

/// The provider's index file, read by the provider's session to serve downloads.
pub trait IndexSource: Send {
    /// Fills `buf` with the file's bytes at `offset`.
    ///
    /// # Errors
    ///
    /// `Error::Storage` when the bytes cannot be read.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error>;
}

/// A client's copy of one provider's index: possibly partial (a download to resume),
/// possibly of an older epoch (to be replaced).
pub trait IndexStore: Send {
    /// The epoch and length of the bytes held, if any.
    ///
    /// # Errors
    ///
    /// `Error::Storage` when the copy cannot be read.
    fn held(&mut self) -> Result<Option<HeldIndex>, Error>;
    /// Forgets what is held (another epoch is coming, or what is held is unusable).
    ///
    /// # Errors
    ///
    /// `Error::Storage`.
    fn clear(&mut self) -> Result<(), Error>;
    /// Appends the next bytes of the file.
    ///
    /// # Errors
    ///
    /// `Error::Storage`.
    fn append(&mut self, bytes: &[u8]) -> Result<(), Error>;
    /// The whole file is held: checks it (signatures under `pinned`, or under the key it
    /// names when `None`; hashes; structure) and opens it for lookups.
    ///
    /// # Errors
    ///
    /// `BadIndex` for a file that does not check out; `Error::Storage`.
    fn open(&mut self, pinned: Option<[u8; 32]>) -> Result<IndexSummary, Error>;
    /// For each 128-bit tag prefix, in increasing order, whether the opened index holds
    /// its tag.
    ///
    /// # Errors
    ///
    /// `ApiMisuse` before [`IndexStore::open`]; `BadIndex`; `Error::Storage`.
    fn contains_sorted(&mut self, prefixes: &[u128]) -> Result<Vec<bool>, Error>;
}

/// An index file in memory, as a provider's source.
#[derive(Clone, Debug, Default)]
pub struct MemoryIndexSource {
    bytes: std::sync::Arc<Vec<u8>>,
}

impl MemoryIndexSource {
    /// A source serving `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes: std::sync::Arc::new(bytes),
        }
    }
}

impl IndexSource for MemoryIndexSource {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
        let bytes = slice(&self.bytes, offset, buf.len())?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A client's index copy in memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryIndexStore {
    bytes: Vec<u8>,
    verified: Option<VerifiedIndex>,
}

impl MemoryIndexStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store already holding `bytes` (complete or a prefix).
    pub fn holding(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            verified: None,
        }
    }

    /// The bytes held.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl IndexStore for MemoryIndexStore {
    fn held(&mut self) -> Result<Option<HeldIndex>, Error> {
        Ok(held_of(&self.bytes))
    }

    fn clear(&mut self) -> Result<(), Error> {
        self.bytes.clear();
        self.verified = None;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.verified = None;
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn open(&mut self, pinned: Option<[u8; 32]>) -> Result<IndexSummary, Error> {
        let mut verifier = Verifier::new(pinned);
        verifier.update(&self.bytes)?;
        let verified = verifier.finish()?;
        let summary = IndexSummary::of(&verified);
        self.verified = Some(verified);
        Ok(summary)
    }

    fn contains_sorted(&mut self, prefixes: &[u128]) -> Result<Vec<bool>, Error> {
        let Some(verified) = &self.verified else {
            return Err(Error::ApiMisuse("lookup before the index was opened"));
        };
        let bytes = &self.bytes;
        verified.contains_sorted(prefixes, &mut |offset, len| {
            slice(bytes, offset, len).map(<[u8]>::to_vec)
        })
    }
}

/// What a store holding `bytes` holds: the epoch its first header names and the length,
/// or nothing when not even the first header is complete or it is not an index.
pub fn held_of(bytes: &[u8]) -> Option<HeldIndex> {
    let header = SegmentHeader::from_prefix(bytes).ok().flatten()?;
    Some(HeldIndex {
        epoch: header.epoch,
        len: bytes.len() as u64,
    })
}

fn slice(bytes: &[u8], offset: u64, len: usize) -> Result<&[u8], Error> {
    usize::try_from(offset)
        .ok()
        .and_then(|start| bytes.get(start..start.checked_add(len)?))
        .ok_or_else(|| Error::Storage("read past the end of the index".into()))
}
