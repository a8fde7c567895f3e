//! The segment header: its encoding, its signature and the hash that chains segments
//! (the module docs of [`super`] give the layout).

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use super::{
    EpochId, FORMAT_VERSION, MAGIC, MAX_BUCKET_BITS, MAX_HEADER_LEN, SIGNATURE_LABEL, SUITE,
};
use crate::error::{Error, PeerMisbehaved};
use crate::ident::{KindSet, NORMALISATION_VERSION};
use crate::wire::DatasetRef;
use crate::wire::codec::Reader;

/// Bytes before the header's length field is known: magic, version, length.
const PREAMBLE_LEN: usize = 14;
/// Bytes of a signature.
pub(super) const SIGNATURE_LEN: usize = 64;

/// One segment's header (see the module docs of [`super`] for each field).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Identifier normalisation version of the indexed identifiers.
    pub normalisation_version: u16,
    /// The epoch (key) this segment belongs to.
    pub epoch: EpochId,
    /// Segment number: 0 for the base, then 1, 2, … for deltas.
    pub segment: u32,
    /// SHA-256 of the previous segment's header and signature; zero for the base.
    pub previous: [u8; 32],
    /// The epoch's OPRF public key.
    pub public_key: [u8; 32],
    /// The Ed25519 key that signs the segment (the provider's audit key).
    pub signer_key: [u8; 32],
    /// The provider's dataset, as of this segment.
    pub dataset: DatasetRef,
    /// Identifier kinds indexed.
    pub kinds: KindSet,
    /// Tags in this segment.
    pub elements: u64,
    /// Tags in this segment and every one before it.
    pub total_elements: u64,
    /// Tag width `t`.
    pub tag_bits: u8,
    /// Bucket bits `b`.
    pub bucket_bits: u8,
    /// Rice parameter `r`.
    pub rice_bits: u8,
    /// Bytes of coded data in the body (before the directory).
    pub data_len: u64,
    /// SHA-256 of the body.
    pub body_sha256: [u8; 32],
}

/// A header with its signature: what precedes a segment's body in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeader {
    /// The header.
    pub header: SegmentHeader,
    /// Ed25519 over [`SIGNATURE_LABEL`] and the header's encoding.
    pub signature: [u8; 64],
}

impl SegmentHeader {
    /// A header for a segment of `epoch`; callers fill in the rest before signing.
    pub fn new(epoch: EpochId, public_key: [u8; 32], dataset: DatasetRef) -> Self {
        Self {
            normalisation_version: NORMALISATION_VERSION,
            epoch,
            segment: 0,
            previous: [0; 32],
            public_key,
            signer_key: [0; 32],
            dataset,
            kinds: KindSet::empty(),
            elements: 0,
            total_elements: 0,
            tag_bits: 0,
            bucket_bits: 0,
            rice_bits: 0,
            data_len: 0,
            body_sha256: [0; 32],
        }
    }

    /// Bytes of the directory: `2^b + 1` offsets of 8 bytes.
    pub fn directory_len(&self) -> u64 {
        ((1u64 << self.bucket_bits) + 1) * 8
    }

    /// Bytes of the body: data, then directory.
    pub fn body_len(&self) -> u64 {
        self.data_len.saturating_add(self.directory_len())
    }

    /// The header's encoding (what the signature covers, after the label).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.dataset.name.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // length, filled in below
        out.push(SUITE);
        out.extend_from_slice(&self.normalisation_version.to_be_bytes());
        out.extend_from_slice(&self.epoch);
        out.extend_from_slice(&self.segment.to_be_bytes());
        out.extend_from_slice(&self.previous);
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.signer_key);
        self.dataset.encode(&mut out);
        out.push(self.kinds.bits());
        out.extend_from_slice(&self.elements.to_be_bytes());
        out.extend_from_slice(&self.total_elements.to_be_bytes());
        out.push(self.tag_bits);
        out.push(self.bucket_bits);
        out.push(self.rice_bits);
        out.extend_from_slice(&self.data_len.to_be_bytes());
        out.extend_from_slice(&self.body_sha256);
        // Dataset names are at most 1024 bytes (the wire limit), so this fits in u32.
        let len = out.len() as u32;
        out[10..14].copy_from_slice(&len.to_be_bytes());
        out
    }

    /// The header length announced by the first bytes of a segment: `Ok(None)` while
    /// fewer than 14 bytes are known.
    ///
    /// # Errors
    ///
    /// `BadIndex` for another magic, format version or an out-of-range length.
    pub fn peek_len(prefix: &[u8]) -> Result<Option<usize>, Error> {
        if prefix.len() < PREAMBLE_LEN {
            if !MAGIC.starts_with(&prefix[..prefix.len().min(MAGIC.len())]) {
                return Err(bad("not an index segment (wrong magic)"));
            }
            return Ok(None);
        }
        if prefix[..8] != MAGIC {
            return Err(bad("not an index segment (wrong magic)"));
        }
        if prefix[8..10] != FORMAT_VERSION.to_be_bytes() {
            return Err(bad("index format version not supported by this build"));
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&prefix[10..14]);
        let len = u32::from_be_bytes(len) as usize;
        if !(PREAMBLE_LEN..=MAX_HEADER_LEN).contains(&len) {
            return Err(bad("header length out of range"));
        }
        Ok(Some(len))
    }

    /// Decodes exactly one header of the length it announces.
    ///
    /// # Errors
    ///
    /// `BadIndex` for anything malformed or out of range.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        match Self::peek_len(bytes)? {
            Some(len) if len == bytes.len() => {}
            _ => return Err(bad("header length does not match its bytes")),
        }
        let mut r = Reader::new(&bytes[PREAMBLE_LEN..]);
        let header = Self::decode_fields(&mut r).map_err(|_| bad("malformed segment header"))?;
        r.finish()
            .map_err(|_| bad("trailing bytes in segment header"))?;
        header.check()?;
        Ok(header)
    }

    fn decode_fields(r: &mut Reader<'_>) -> Result<Self, crate::error::InvalidMessage> {
        let suite = r.u8()?;
        if suite != SUITE {
            return Err(crate::error::InvalidMessage::OutOfRange("index suite"));
        }
        Ok(Self {
            normalisation_version: r.u16()?,
            epoch: r.array()?,
            segment: r.u32()?,
            previous: r.array()?,
            public_key: r.array()?,
            signer_key: r.array()?,
            dataset: DatasetRef::decode(r)?,
            kinds: KindSet::from_bits(r.u8()?)
                .ok_or(crate::error::InvalidMessage::OutOfRange("index kinds"))?,
            elements: r.u64()?,
            total_elements: r.u64()?,
            tag_bits: r.u8()?,
            bucket_bits: r.u8()?,
            rice_bits: r.u8()?,
            data_len: r.u64()?,
            body_sha256: r.array()?,
        })
    }

    /// The first header of a file from its first bytes: `Ok(None)` while they do not
    /// hold it whole.
    ///
    /// # Errors
    ///
    /// `BadIndex` for bytes that are not an index segment.
    pub fn from_prefix(bytes: &[u8]) -> Result<Option<Self>, Error> {
        match Self::peek_len(bytes)? {
            Some(len) if bytes.len() >= len => Self::decode(&bytes[..len]).map(Some),
            _ => Ok(None),
        }
    }

    /// The ranges every header must respect on its own.
    fn check(&self) -> Result<(), Error> {
        if self.normalisation_version != NORMALISATION_VERSION {
            return Err(bad(
                "the index was built under other identifier normalisation rules",
            ));
        }
        if !(1..=128).contains(&self.tag_bits)
            || self.bucket_bits > MAX_BUCKET_BITS
            || self.bucket_bits > self.tag_bits
            || self.rice_bits > self.tag_bits - self.bucket_bits
        {
            return Err(bad("coding parameters out of range"));
        }
        if self.elements > self.total_elements {
            return Err(bad("segment holds more tags than the running total"));
        }
        if (self.segment == 0) != (self.previous == [0; 32]) {
            return Err(bad("only the base segment has no previous segment"));
        }
        Ok(())
    }

    /// Signs the header with the provider's audit key (which it names as signer).
    pub fn sign(mut self, key: &SigningKey) -> SignedHeader {
        self.signer_key = key.verifying_key().to_bytes();
        let signature = key.sign(&signed_message(&self.encode())).to_bytes();
        SignedHeader {
            header: self,
            signature,
        }
    }
}

impl SignedHeader {
    /// Header and signature, as they open a segment.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header.encode();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Bytes of header and signature.
    pub fn encoded_len(&self) -> u64 {
        self.to_bytes().len() as u64
    }

    /// SHA-256 over header and signature: the next segment's `previous`.
    pub fn chain_hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    /// Whether the signature verifies under the key the header names (strict Ed25519).
    pub fn signature_valid(&self) -> bool {
        signature_valid(
            &self.header.signer_key,
            &self.header.encode(),
            &self.signature,
        )
    }
}

/// What the signature covers: the label, then the header.
fn signed_message(header: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_LABEL.len() + header.len());
    message.extend_from_slice(SIGNATURE_LABEL);
    message.extend_from_slice(header);
    message
}

/// Strict Ed25519 verification of a header's signature.
pub(super) fn signature_valid(key: &[u8; 32], header: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(key) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(&signed_message(header), &signature)
        .is_ok()
}

/// An index problem: the provider's fault, as far as the protocol can tell.
pub(super) fn bad(what: &'static str) -> Error {
    PeerMisbehaved::BadIndex(what).into()
}
