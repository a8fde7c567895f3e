//! Writes a segment's body from tags in increasing order, streaming: the caller takes
//! the coded bytes as they fill and writes them wherever it keeps the file, and gets
//! the body's length and hash at the end, which the header then signs.

use sha2::{Digest, Sha256};

use super::bits::BitWriter;
use crate::error::Error;

/// Codes a segment body (see the module docs of [`super`]).
pub struct SegmentBuilder {
    tag_bits: u8,
    bucket_bits: u8,
    rice_bits: u8,
    writer: BitWriter,
    /// Bit offsets of the buckets started so far; `directory[0] = 0`.
    directory: Vec<u64>,
    previous: Option<u128>,
    elements: u64,
    data_len: u64,
    hasher: Sha256,
}

/// The end of a body: the bytes not yet taken and what the header needs.
#[derive(Debug)]
#[non_exhaustive]
pub struct FinishedBody {
    /// The last data bytes and the directory: write them after everything drained.
    pub tail: Vec<u8>,
    /// Tags coded.
    pub elements: u64,
    /// Bytes of data (without the directory).
    pub data_len: u64,
    /// SHA-256 of the whole body.
    pub body_sha256: [u8; 32],
}

impl SegmentBuilder {
    /// A builder for tags of `tag_bits` bits with the given bucket and Rice
    /// parameters (see [`super::coding_params`]).
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for parameters outside what the format allows.
    pub fn new(tag_bits: u8, bucket_bits: u8, rice_bits: u8) -> Result<Self, Error> {
        if !(1..=128).contains(&tag_bits)
            || bucket_bits > super::MAX_BUCKET_BITS
            || bucket_bits > tag_bits
            || rice_bits > tag_bits - bucket_bits
        {
            return Err(Error::InvalidArgument(
                "index coding parameters out of range",
            ));
        }
        let mut directory = Vec::with_capacity((1usize << bucket_bits) + 1);
        directory.push(0);
        Ok(Self {
            tag_bits,
            bucket_bits,
            rice_bits,
            writer: BitWriter::default(),
            directory,
            previous: None,
            elements: 0,
            data_len: 0,
            hasher: Sha256::new(),
        })
    }

    /// Adds the next tag: below `2^tag_bits` and above every tag before it.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for a tag out of range or not in increasing order.
    pub fn push(&mut self, tag: u128) -> Result<(), Error> {
        if self.tag_bits < 128 && tag >> self.tag_bits != 0 {
            return Err(Error::InvalidArgument(
                "tag wider than the segment's tag bits",
            ));
        }
        if self.previous.is_some_and(|p| tag <= p) {
            return Err(Error::InvalidArgument(
                "tags must be pushed in increasing order",
            ));
        }
        let low_bits = u32::from(self.tag_bits - self.bucket_bits);
        let bucket = tag.checked_shr(low_bits).unwrap_or(0) as u64;
        let value = low_value(tag, low_bits);
        let mut gap = value;
        if self.current_bucket() == bucket
            && let Some(previous) = self.previous
        {
            gap = value - low_value(previous, low_bits) - 1;
        }
        while self.current_bucket() < bucket {
            self.directory.push(self.writer.position());
        }
        self.writer.rice(gap, self.rice_bits);
        self.previous = Some(tag);
        self.elements += 1;
        Ok(())
    }

    /// Tags pushed so far.
    pub fn elements(&self) -> u64 {
        self.elements
    }

    /// Appends the completed data bytes to `out`.
    pub fn drain(&mut self, out: &mut Vec<u8>) {
        let start = out.len();
        self.writer.drain_bytes(out);
        self.hasher.update(&out[start..]);
        self.data_len += (out.len() - start) as u64;
    }

    /// Ends the body: the last data bytes and the directory, with the body's length and
    /// hash.
    pub fn finish(mut self) -> FinishedBody {
        let buckets = 1u64 << self.bucket_bits;
        let end = self.writer.position();
        while (self.directory.len() as u64) <= buckets {
            self.directory.push(end);
        }
        let mut tail = std::mem::take(&mut self.writer).finish();
        self.data_len += tail.len() as u64;
        for offset in &self.directory {
            tail.extend_from_slice(&offset.to_be_bytes());
        }
        self.hasher.update(&tail);
        FinishedBody {
            tail,
            elements: self.elements,
            data_len: self.data_len,
            body_sha256: self.hasher.finalize().into(),
        }
    }

    /// The bucket being written (the last one started).
    fn current_bucket(&self) -> u64 {
        self.directory.len() as u64 - 1
    }
}

/// The low `bits` bits of `tag`.
pub(super) fn low_value(tag: u128, bits: u32) -> u128 {
    if bits >= 128 {
        tag
    } else {
        tag & ((1u128 << bits) - 1)
    }
}

/// Builds one whole segment in memory and signs it: the tags of `prefixes` (128-bit tag
/// prefixes, see [`super::tag_prefix`]; any order, repeats dropped) under the parameters
/// [`super::tag_bits`] and [`super::coding_params`] give for `total_before` tags before
/// it. `template` names the epoch, keys, dataset, kinds, segment number and previous
/// segment; its counts, parameters and body fields are filled in here. Returns the
/// signed header and the segment's bytes (header, signature, body).
///
/// For indexes that fit in memory (tests, small providers); a node builds large ones
/// with [`SegmentBuilder`] over sorted runs on disk.
///
/// # Errors
///
/// `InvalidArgument` for an empty segment.
pub fn build_segment(
    mut template: super::SegmentHeader,
    total_before: u64,
    prefixes: &[u128],
    signing_key: &ed25519_dalek::SigningKey,
) -> Result<(super::SignedHeader, Vec<u8>), Error> {
    let total_guess = total_before + prefixes.len() as u64;
    let tag_bits = super::tag_bits(total_guess);
    let mut tags: Vec<u128> = prefixes
        .iter()
        .map(|&p| super::tag_of(p, tag_bits))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    if tags.is_empty() {
        return Err(Error::InvalidArgument(
            "an index segment holds at least one tag",
        ));
    }
    let (bucket_bits, rice_bits) = super::coding_params(tags.len() as u64, tag_bits);
    let mut builder = SegmentBuilder::new(tag_bits, bucket_bits, rice_bits)?;
    let mut data = Vec::new();
    for tag in tags {
        builder.push(tag)?;
    }
    builder.drain(&mut data);
    let body = builder.finish();
    data.extend_from_slice(&body.tail);
    template.elements = body.elements;
    template.total_elements = total_before + body.elements;
    template.tag_bits = tag_bits;
    template.bucket_bits = bucket_bits;
    template.rice_bits = rice_bits;
    template.data_len = body.data_len;
    template.body_sha256 = body.body_sha256;
    let signed = template.sign(signing_key);
    let mut bytes = signed.to_bytes();
    bytes.extend_from_slice(&data);
    Ok((signed, bytes))
}
