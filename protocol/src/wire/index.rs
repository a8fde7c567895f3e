//! The messages of an index session (`crate::index`): the client's `IndexHello`, the
//! provider's `IndexAccept`, the index file in `IndexChunk`s, and the evaluation of the
//! client's blinded identifiers (`Evaluate`, answered by `Evaluated` with a batched DLEQ
//! proof). `Reject`, `Finish` and `Abort` are the PSI session's.

use super::codec::{Reader, put_text};
use super::handshake::DatasetRef;
use super::{MAX_SET_SIZE, PROTOCOL_VERSION};
use crate::error::{Error, InvalidMessage, PeerIncompatible};
use crate::ident::{KindSet, NORMALISATION_VERSION};

/// Most index bytes in one `IndexChunk` (the frame limit is 1 MiB).
pub const MAX_INDEX_CHUNK: usize = 512 * 1024;

/// How much of one epoch's index file a client holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HeldIndex {
    /// The epoch of the held bytes.
    pub epoch: [u8; 16],
    /// How many bytes of the file, from its start.
    pub len: u64,
}

/// Opens an index session (client → provider). The first field is the version, as in
/// `Hello`.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IndexHello {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// Identifier normalisation version.
    pub normalisation_version: u16,
    /// Fresh random session id.
    pub session_id: [u8; 16],
    /// The provider's dataset whose index is wanted (empty: the one it offers).
    pub dataset: String,
    /// Declared purpose.
    pub purpose: String,
    /// Declared legal basis (may be empty).
    pub legal_basis: String,
    /// Identifier kinds the client will have evaluated (empty only with no queries).
    pub kinds: KindSet,
    /// Identifiers the client will have evaluated; 0 to only fetch the index.
    pub query_count: u64,
    /// What the client already holds of an index of this provider.
    pub held: Option<HeldIndex>,
    /// The client's own dataset.
    pub own_dataset: DatasetRef,
}

impl IndexHello {
    /// A hello of this version asking for `query_count` evaluations and holding
    /// nothing; callers set the rest.
    pub fn new(session_id: [u8; 16], query_count: u64) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            normalisation_version: NORMALISATION_VERSION,
            session_id,
            dataset: String::new(),
            purpose: String::new(),
            legal_basis: String::new(),
            kinds: KindSet::empty(),
            query_count,
            held: None,
            own_dataset: DatasetRef::default(),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.normalisation_version.to_be_bytes());
        out.extend_from_slice(&self.session_id);
        put_text(out, &self.dataset);
        put_text(out, &self.purpose);
        put_text(out, &self.legal_basis);
        out.push(self.kinds.bits());
        out.extend_from_slice(&self.query_count.to_be_bytes());
        match &self.held {
            None => out.push(0),
            Some(held) => {
                out.push(1);
                out.extend_from_slice(&held.epoch);
                out.extend_from_slice(&held.len.to_be_bytes());
            }
        }
        self.own_dataset.encode(out);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let version = r.u16()?;
        if version != PROTOCOL_VERSION {
            return Err(PeerIncompatible::UnsupportedVersion {
                got: version,
                ours: PROTOCOL_VERSION,
            }
            .into());
        }
        let normalisation_version = r.u16()?;
        if normalisation_version != NORMALISATION_VERSION {
            return Err(PeerIncompatible::NormalisationVersion {
                got: normalisation_version,
                ours: NORMALISATION_VERSION,
            }
            .into());
        }
        let session_id = r.array()?;
        let dataset = r.text()?;
        let purpose = r.text()?;
        let legal_basis = r.text()?;
        let bits = r.u8()?;
        let kinds = KindSet::from_bits(bits).ok_or(InvalidMessage::InvalidKinds(bits))?;
        let query_count = r.u64()?;
        if query_count > MAX_SET_SIZE {
            return Err(InvalidMessage::OutOfRange("IndexHello.query_count").into());
        }
        if kinds.is_empty() != (query_count == 0) {
            return Err(InvalidMessage::InvalidKinds(bits).into());
        }
        let held = match r.u8()? {
            0 => None,
            1 => Some(HeldIndex {
                epoch: r.array()?,
                len: r.u64()?,
            }),
            _ => return Err(InvalidMessage::OutOfRange("IndexHello.held flag").into()),
        };
        let own_dataset = DatasetRef::decode(r)?;
        Ok(Self {
            version,
            normalisation_version,
            session_id,
            dataset,
            purpose,
            legal_basis,
            kinds,
            query_count,
            held,
            own_dataset,
        })
    }
}

/// The provider agrees to an index session: which index is current, and from where it
/// sends it.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IndexAccept {
    /// The current epoch.
    pub epoch: [u8; 16],
    /// Its OPRF public key, which every evaluation is proven against.
    pub public_key: [u8; 32],
    /// Tags in the index.
    pub elements: u64,
    /// Bytes of the index file.
    pub file_len: u64,
    /// Where the `IndexChunk`s start: the client's held length when it holds a prefix of
    /// this epoch's file, else 0; `file_len` when nothing is sent.
    pub send_from: u64,
    /// Identifier kinds indexed.
    pub kinds: KindSet,
    /// The provider's dataset the index covers.
    pub dataset: DatasetRef,
}

impl IndexAccept {
    /// An accept for `epoch` with key `public_key`; callers set the rest.
    pub fn new(epoch: [u8; 16], public_key: [u8; 32]) -> Self {
        Self {
            epoch,
            public_key,
            elements: 0,
            file_len: 0,
            send_from: 0,
            kinds: KindSet::empty(),
            dataset: DatasetRef::default(),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.epoch);
        out.extend_from_slice(&self.public_key);
        out.extend_from_slice(&self.elements.to_be_bytes());
        out.extend_from_slice(&self.file_len.to_be_bytes());
        out.extend_from_slice(&self.send_from.to_be_bytes());
        out.push(self.kinds.bits());
        self.dataset.encode(out);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let epoch = r.array()?;
        let public_key = r.array()?;
        let elements = r.u64()?;
        let file_len = r.u64()?;
        let send_from = r.u64()?;
        if send_from > file_len {
            return Err(InvalidMessage::OutOfRange("IndexAccept.send_from").into());
        }
        let bits = r.u8()?;
        let kinds = KindSet::from_bits(bits).ok_or(InvalidMessage::InvalidKinds(bits))?;
        Ok(Self {
            epoch,
            public_key,
            elements,
            file_len,
            send_from,
            kinds,
            dataset: DatasetRef::decode(r)?,
        })
    }
}

/// Bytes of the index file at `offset`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IndexChunk {
    /// Where the bytes go in the file.
    pub offset: u64,
    /// 1 to [`MAX_INDEX_CHUNK`] bytes.
    pub bytes: Vec<u8>,
}

impl IndexChunk {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.offset.to_be_bytes());
        // At most MAX_INDEX_CHUNK bytes, far below u32::MAX.
        out.extend_from_slice(&(self.bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.bytes);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        let offset = r.u64()?;
        let len = r.u32()? as usize;
        if len == 0 || len > MAX_INDEX_CHUNK {
            return Err(InvalidMessage::BadBatchLength {
                len: len as u64,
                max: MAX_INDEX_CHUNK as u64,
            }
            .into());
        }
        Ok(Self {
            offset,
            bytes: r.take(len)?.to_vec(),
        })
    }
}
