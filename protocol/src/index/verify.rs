//! Checking an index file as a stream of bytes, and looking tags up in a checked one.
//!
//! [`Verifier`] takes the file in pieces of any size (as it comes off a disk or the
//! network), checks every rule of the format (module docs of [`super`]) and keeps what
//! lookups need: each segment's header, where its data starts, and its directory. The
//! data itself is not kept; [`VerifiedIndex::contains_sorted`] reads the few buckets a
//! lookup needs through the caller's `read` function.

use sha2::{Digest, Sha256};

use super::bits::BitReader;
use super::builder::low_value;
use super::format::{SIGNATURE_LEN, SegmentHeader, SignedHeader, bad, signature_valid};
use super::{EpochId, tag_of};
use crate::error::Error;
use crate::ident::KindSet;
use crate::oprf::PublicKey;
use crate::wire::DatasetRef;

/// Reads `len` bytes of the index file at `offset`.
pub type ReadAt<'a> = dyn FnMut(u64, usize) -> Result<Vec<u8>, Error> + 'a;

/// A segment of a checked index: its header, where its data starts in the file, and
/// its directory.
#[derive(Clone, Debug)]
pub struct SegmentLayout {
    header: SignedHeader,
    data_offset: u64,
    directory: Vec<u64>,
}

/// An index file whose every segment checked out.
#[derive(Clone, Debug)]
pub struct VerifiedIndex {
    segments: Vec<SegmentLayout>,
    file_len: u64,
}

/// Checks an index file fed to it in order (see the module docs).
pub struct Verifier {
    pinned: Option<[u8; 32]>,
    offset: u64,
    state: State,
    segments: Vec<SegmentLayout>,
}

enum State {
    /// Collecting a header and its signature.
    Header(Vec<u8>),
    /// Hashing data bytes.
    Data {
        header: SignedHeader,
        hasher: Sha256,
        left: u64,
        data_offset: u64,
    },
    /// Collecting the directory.
    Directory {
        header: SignedHeader,
        hasher: Sha256,
        bytes: Vec<u8>,
        data_offset: u64,
    },
}

impl Verifier {
    /// A verifier that requires every signature to be by `pinned`, or, with `None`, by
    /// the key the base segment names.
    pub fn new(pinned: Option<[u8; 32]>) -> Self {
        Self {
            pinned,
            offset: 0,
            state: State::Header(Vec::new()),
            segments: Vec::new(),
        }
    }

    /// Bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Feeds the next bytes of the file.
    ///
    /// # Errors
    ///
    /// `BadIndex` at the first rule broken; the verifier is then of no further use.
    pub fn update(&mut self, mut bytes: &[u8]) -> Result<(), Error> {
        while !bytes.is_empty() {
            let used = self.step(bytes)?;
            self.offset += used as u64;
            bytes = &bytes[used..];
        }
        Ok(())
    }

    /// The file ended: the index, if it ended on a segment boundary.
    ///
    /// # Errors
    ///
    /// `BadIndex` for an empty or truncated file.
    pub fn finish(self) -> Result<VerifiedIndex, Error> {
        match &self.state {
            State::Header(pending) if pending.is_empty() && !self.segments.is_empty() => {
                Ok(VerifiedIndex {
                    segments: self.segments,
                    file_len: self.offset,
                })
            }
            _ => Err(bad("the index file is empty or ends inside a segment")),
        }
    }

    /// Consumes a prefix of `bytes`; returns how many.
    fn step(&mut self, bytes: &[u8]) -> Result<usize, Error> {
        let start = self.offset;
        match &mut self.state {
            State::Header(pending) => {
                let need = match SegmentHeader::peek_len(pending)? {
                    Some(len) => len + SIGNATURE_LEN,
                    None => 14,
                };
                let take = (need - pending.len()).min(bytes.len());
                pending.extend_from_slice(&bytes[..take]);
                if SegmentHeader::peek_len(pending)?
                    .is_some_and(|len| pending.len() == len + SIGNATURE_LEN)
                {
                    let pending = std::mem::take(pending);
                    let header = self.accept_header(&pending)?;
                    let data_offset = start + take as u64;
                    let left = header.header.data_len;
                    self.state = State::Data {
                        header,
                        hasher: Sha256::new(),
                        left,
                        data_offset,
                    };
                    self.after_data()?;
                }
                Ok(take)
            }
            State::Data { hasher, left, .. } => {
                let take = (*left).min(bytes.len() as u64) as usize;
                hasher.update(&bytes[..take]);
                *left -= take as u64;
                self.after_data()?;
                Ok(take)
            }
            State::Directory {
                header, bytes: dir, ..
            } => {
                let need = header.header.directory_len() as usize;
                let take = (need - dir.len()).min(bytes.len());
                dir.extend_from_slice(&bytes[..take]);
                if dir.len() == need {
                    self.close_segment()?;
                }
                Ok(take)
            }
        }
    }

    /// Moves from data to directory once the data is hashed.
    fn after_data(&mut self) -> Result<(), Error> {
        if let State::Data { left: 0, .. } = &self.state {
            let State::Data {
                header,
                hasher,
                data_offset,
                ..
            } = std::mem::replace(&mut self.state, State::Header(Vec::new()))
            else {
                return Ok(());
            };
            self.state = State::Directory {
                header,
                hasher,
                bytes: Vec::new(),
                data_offset,
            };
        }
        Ok(())
    }

    /// Checks a header against the pinned key and the segments before it.
    fn accept_header(&self, bytes: &[u8]) -> Result<SignedHeader, Error> {
        let (encoded, signature) = bytes.split_at(bytes.len() - SIGNATURE_LEN);
        let header = SegmentHeader::decode(encoded)?;
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(signature);
        if let Some(pinned) = self.pinned
            && pinned != header.signer_key
        {
            return Err(bad(
                "the index is signed by another audit key than the one pinned for the provider",
            ));
        }
        if !signature_valid(&header.signer_key, encoded, &sig) {
            return Err(bad("a segment signature does not verify"));
        }
        match self.segments.last() {
            None => {
                if header.segment != 0 || header.elements != header.total_elements {
                    return Err(bad("the first segment is not a base segment"));
                }
                PublicKey::from_bytes(&header.public_key)
                    .map_err(|_| bad("the index's OPRF public key is not a valid point"))?;
            }
            Some(last) => {
                let base = &self.segments[0].header.header;
                let before = &last.header;
                if header.segment != before.header.segment + 1
                    || header.previous != before.chain_hash()
                {
                    return Err(bad("segments are out of order or do not chain"));
                }
                if header.epoch != base.epoch
                    || header.public_key != base.public_key
                    || header.signer_key != base.signer_key
                {
                    return Err(bad("a delta segment belongs to another epoch or key"));
                }
                if Some(header.total_elements)
                    != before.header.total_elements.checked_add(header.elements)
                {
                    return Err(bad("segment totals do not add up"));
                }
            }
        }
        Ok(SignedHeader {
            header,
            signature: sig,
        })
    }

    /// Checks the body hash and the directory, and records the segment.
    fn close_segment(&mut self) -> Result<(), Error> {
        let State::Directory {
            header,
            mut hasher,
            bytes,
            data_offset,
        } = std::mem::replace(&mut self.state, State::Header(Vec::new()))
        else {
            return Ok(());
        };
        hasher.update(&bytes);
        let hash: [u8; 32] = hasher.finalize().into();
        if hash != header.header.body_sha256 {
            return Err(bad("a segment body does not match its signed hash"));
        }
        let directory: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_be_bytes(b)
            })
            .collect();
        let bits = directory.last().copied().unwrap_or(0);
        if directory.first() != Some(&0)
            || directory.windows(2).any(|w| w[0] > w[1])
            || bits.div_ceil(8) != header.header.data_len
        {
            return Err(bad("a segment directory is inconsistent"));
        }
        self.segments.push(SegmentLayout {
            header,
            data_offset,
            directory,
        });
        Ok(())
    }
}

impl VerifiedIndex {
    /// The segments, base first.
    pub fn segments(&self) -> &[SegmentLayout] {
        &self.segments
    }

    /// Bytes of the file.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The base segment's header (every segment shares its epoch, key and signer).
    pub fn base(&self) -> &SegmentHeader {
        &self.segments[0].header.header
    }

    /// The last segment's header (the current dataset version and total).
    pub fn last(&self) -> &SegmentHeader {
        let last = self.segments.len() - 1;
        &self.segments[last].header.header
    }

    /// The epoch.
    pub fn epoch(&self) -> EpochId {
        self.base().epoch
    }

    /// Tags in the whole index.
    pub fn total_elements(&self) -> u64 {
        self.last().total_elements
    }

    /// The provider's dataset as of the last segment.
    pub fn dataset(&self) -> &DatasetRef {
        &self.last().dataset
    }

    /// Identifier kinds in any segment.
    pub fn kinds(&self) -> KindSet {
        let mut kinds = KindSet::empty();
        for segment in &self.segments {
            for kind in segment.header.header.kinds.iter() {
                kinds.insert(kind);
            }
        }
        kinds
    }

    /// For each 128-bit tag prefix (see [`super::tag_prefix`]), in increasing order,
    /// whether any segment holds its tag; `read` supplies the buckets' bytes.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` if `prefixes` is not sorted; `BadIndex` for a bucket that does
    /// not decode; whatever `read` fails with.
    pub fn contains_sorted(
        &self,
        prefixes: &[u128],
        read: &mut ReadAt<'_>,
    ) -> Result<Vec<bool>, Error> {
        if prefixes.windows(2).any(|w| w[0] > w[1]) {
            return Err(Error::InvalidArgument("lookups must be sorted"));
        }
        let mut found = vec![false; prefixes.len()];
        for segment in &self.segments {
            segment.mark(prefixes, &mut found, read)?;
        }
        Ok(found)
    }
}

/// Decodes one bucket's tags in order.
struct BucketTags<'a> {
    reader: BitReader<'a>,
    rice: u8,
    base: u128,
    limit: u128,
    previous: Option<u128>,
}

impl Iterator for BucketTags<'_> {
    type Item = Result<u128, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.at_end() {
            return None;
        }
        let Some(gap) = self.reader.rice(self.rice) else {
            self.reader = BitReader::empty();
            return Some(Err(bad("a bucket does not decode")));
        };
        let value = match self.previous {
            None => Some(gap),
            Some(p) => p.checked_add(gap).and_then(|v| v.checked_add(1)),
        };
        match value.filter(|v| *v <= self.limit) {
            Some(value) => {
                self.previous = Some(value);
                Some(Ok(self.base | value))
            }
            None => {
                self.reader = BitReader::empty();
                Some(Err(bad("a bucket holds a tag outside its range")))
            }
        }
    }
}

impl SegmentLayout {
    /// The header.
    pub fn header(&self) -> &SegmentHeader {
        &self.header.header
    }

    /// SHA-256 of header and signature: what the next segment names as `previous`.
    pub fn chain_hash(&self) -> [u8; 32] {
        self.header.chain_hash()
    }

    /// Number of buckets.
    pub fn buckets(&self) -> u64 {
        self.directory.len() as u64 - 1
    }

    /// The file bytes `[start, end)` that hold bucket `h`.
    pub fn bucket_bytes(&self, h: u64) -> (u64, u64) {
        let (from, to) = self.bucket_bits(h);
        (
            self.data_offset + from / 8,
            self.data_offset + to.div_ceil(8),
        )
    }

    /// The tags of bucket `h`, in order, from the file bytes [`bucket_bytes`](Self::bucket_bytes)
    /// names.
    ///
    /// # Errors
    ///
    /// `BadIndex` if the bucket does not decode to increasing tags of its range.
    pub fn bucket_tags(&self, h: u64, bytes: &[u8]) -> Result<Vec<u128>, Error> {
        self.decoder(h, bytes)?.collect()
    }

    /// The tags of bucket `h` one at a time, from its bytes.
    fn decoder<'a>(&self, h: u64, bytes: &'a [u8]) -> Result<BucketTags<'a>, Error> {
        let header = self.header();
        let (from, to) = self.bucket_bits(h);
        let skip = from / 8 * 8;
        let reader = BitReader::new(bytes, from - skip, to - skip)
            .ok_or_else(|| bad("bucket bytes missing"))?;
        let low_bits = u32::from(header.tag_bits - header.bucket_bits);
        Ok(BucketTags {
            reader,
            rice: header.rice_bits,
            base: u128::from(h).checked_shl(low_bits).unwrap_or(0),
            limit: low_value(u128::MAX, low_bits),
            previous: None,
        })
    }

    fn bucket_bits(&self, h: u64) -> (u64, u64) {
        let h = h as usize;
        (self.directory[h], self.directory[h + 1])
    }

    /// Marks the prefixes whose tag this segment holds.
    fn mark(
        &self,
        prefixes: &[u128],
        found: &mut [bool],
        read: &mut ReadAt<'_>,
    ) -> Result<(), Error> {
        let header = self.header();
        let low_bits = u32::from(header.tag_bits - header.bucket_bits);
        let mut i = 0;
        while i < prefixes.len() {
            let tag = tag_of(prefixes[i], header.tag_bits);
            let h = tag.checked_shr(low_bits).unwrap_or(0) as u64;
            let mut end = i + 1;
            while end < prefixes.len()
                && tag_of(prefixes[end], header.tag_bits)
                    .checked_shr(low_bits)
                    .unwrap_or(0) as u64
                    == h
            {
                end += 1;
            }
            let (start, stop) = self.bucket_bytes(h);
            if stop > start {
                let bytes = read(start, (stop - start) as usize)?;
                let mut tags = self.decoder(h, &bytes)?.peekable();
                // Queries and tags are both increasing: one merge, stopping at the last
                // query of the bucket.
                for (query, hit) in prefixes[i..end].iter().zip(&mut found[i..end]) {
                    let wanted = tag_of(*query, header.tag_bits);
                    while tags
                        .next_if(|t| t.as_ref().is_ok_and(|t| *t < wanted))
                        .is_some()
                    {}
                    match tags.peek() {
                        Some(Ok(tag)) if *tag == wanted => *hit = true,
                        Some(Err(err)) => return Err(err.clone()),
                        _ => {}
                    }
                }
            }
            i = end;
        }
        Ok(())
    }
}
