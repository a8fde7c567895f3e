//! Versioned messages and the frame codec.
//!
//! One frame carries one message: a one-byte [`MessageType`] followed by the body.
//! The transport adds its own length prefix; [`MAX_FRAME_LEN`] bounds a frame before
//! anything is allocated. Decoding is strict: every length is checked against its limit
//! before allocation, unknown types and versions are explicit errors, and leftover
//! bytes are an error. Points are fixed-size arrays, never serde.
//!
//! Version 2 (this crate): `Hello` and `Accept` carry each side's key commitment and
//! dataset, re-blinded points travel whole with a batched DLEQ proof (`Reblinded`), the
//! count-only reply is bundle-shuffled (`Shuffled`) and closed by one proof over its sum
//! (`SumProof`), and `Finish` carries a signed [`Receipt`]. `Reject` is encoded as in
//! version 1, so a version-1 peer can read why it was refused.
//!
//! Index sessions (`crate::index`) use types 10 to 14 (`IndexHello`, `IndexAccept`,
//! `IndexChunk`, `Evaluate`, `Evaluated`) and share `Reject`, `Finish` and `Abort`.

pub(crate) mod codec;
mod handshake;
mod index;
mod receipt;

use std::fmt;

pub use codec::{check_text, printable};
pub use handshake::{
    Accept, DatasetRef, Hello, MAX_BUNDLE_WIDTH, MAX_HELLO_LEN, Reject, RejectReason,
};
pub use index::{HeldIndex, IndexAccept, IndexChunk, IndexHello, MAX_INDEX_CHUNK};
pub use receipt::{LogHead, RECEIPT_LABEL, Receipt};

use crate::error::{CloseCode, Error, InvalidMessage};
use codec::{Reader, decode_batch, encode_batch, put_opt_u64};

/// The protocol version this crate speaks. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u16 = 2;
/// Largest frame (one message) either side accepts, in bytes.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Most points in one `Blinded`, `Reblinded` or `Shuffled` message (8192 × 32 B = 256 KiB).
pub const MAX_BATCH_POINTS: usize = 8192;
/// Longest text field (purpose, legal basis, dataset name, refusal text), in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Largest set the protocol can describe: record and element indices are `u32`.
pub const MAX_SET_SIZE: u64 = u32::MAX as u64;
/// Bytes of a doubly-blinded value as each side keeps it for comparison, after checking
/// the proof over the whole points (see [`crate::session`] for the bound).
pub const DOUBLE_LEN: usize = 16;
/// Bytes of a compressed ristretto255 point.
pub const POINT_LEN: usize = 32;
/// Bytes of a batched DLEQ proof (two scalars, RFC 9497 §2.2).
pub const PROOF_LEN: usize = 64;

/// A compressed point as sent on the wire.
pub type PointBytes = [u8; POINT_LEN];
/// A truncated doubly-blinded value, as kept for comparison.
pub type DoubleBytes = [u8; DOUBLE_LEN];
/// A batched DLEQ proof as sent on the wire.
pub type ProofBytes = [u8; PROOF_LEN];

/// The one-byte message type. Unknown values are representable and rejected explicitly.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MessageType(pub u8);

impl MessageType {
    /// Opens a session (initiator → responder).
    pub const HELLO: Self = Self(1);
    /// The responder agrees.
    pub const ACCEPT: Self = Self(2);
    /// The responder refuses.
    pub const REJECT: Self = Self(3);
    /// A batch of singly-blinded points.
    pub const BLINDED: Self = Self(4);
    /// A batch of re-blinded points with a batched DLEQ proof.
    pub const REBLINDED: Self = Self(5);
    /// Transcript hash, intersection size and the signed receipt.
    pub const FINISH: Self = Self(6);
    /// Ends the session with a close code.
    pub const ABORT: Self = Self(7);
    /// A chunk of the count-only reply: whole record bundles, shuffled.
    pub const SHUFFLED: Self = Self(8);
    /// The proof over the sum of the whole count-only reply.
    pub const SUM_PROOF: Self = Self(9);
    /// Opens an index session (client → provider).
    pub const INDEX_HELLO: Self = Self(10);
    /// The provider agrees to an index session.
    pub const INDEX_ACCEPT: Self = Self(11);
    /// Bytes of the provider's index file.
    pub const INDEX_CHUNK: Self = Self(12);
    /// A batch of the client's blinded identifiers to evaluate.
    pub const EVALUATE: Self = Self(13);
    /// The provider's evaluations of a batch with a batched DLEQ proof.
    pub const EVALUATED: Self = Self(14);

    /// A short name for errors and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::HELLO => "Hello",
            Self::ACCEPT => "Accept",
            Self::REJECT => "Reject",
            Self::BLINDED => "Blinded",
            Self::REBLINDED => "Reblinded",
            Self::FINISH => "Finish",
            Self::ABORT => "Abort",
            Self::SHUFFLED => "Shuffled",
            Self::SUM_PROOF => "SumProof",
            Self::INDEX_HELLO => "IndexHello",
            Self::INDEX_ACCEPT => "IndexAccept",
            Self::INDEX_CHUNK => "IndexChunk",
            Self::EVALUATE => "Evaluate",
            Self::EVALUATED => "Evaluated",
            _ => "unknown message",
        }
    }
}

/// What each party learns. Part of `Hello`, bound into the transcript.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum OutputMode {
    /// Each side learns which of its own records matched.
    Both,
    /// Only the initiator learns which of its records matched; the responder learns nothing.
    Initiator,
    /// Only the responder learns which of its records matched; the initiator learns nothing.
    Responder,
    /// Both sides learn only the number of matches.
    Cardinality,
}

impl OutputMode {
    /// All modes, in code order.
    pub const ALL: [OutputMode; 4] = [
        Self::Both,
        Self::Initiator,
        Self::Responder,
        Self::Cardinality,
    ];

    /// Wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::Both => 1,
            Self::Initiator => 2,
            Self::Responder => 3,
            Self::Cardinality => 4,
        }
    }

    /// Decodes a wire code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    /// The name used in the CLI, config and audit log.
    pub fn name(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Initiator => "initiator",
            Self::Responder => "responder",
            Self::Cardinality => "cardinality",
        }
    }
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an output mode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown output mode {0:?}: expected both, initiator, responder or cardinality")]
pub struct UnknownOutputMode(pub String);

impl std::str::FromStr for OutputMode {
    type Err = UnknownOutputMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownOutputMode(s.to_owned()))
    }
}

/// Re-blinded points with the proof that they are the sender's committed key times the
/// points they answer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reblinded {
    /// `k·P` for each point `P` of the round they answer, in that order.
    pub points: Vec<PointBytes>,
    /// Batched DLEQ proof (RFC 9497 §2.2) for `(G, K, P_i, k·P_i)`.
    pub proof: ProofBytes,
}

/// The end of one direction: what this side saw, counted and signed.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Finish {
    /// Transcript hash over every message before `Finish`, both directions.
    pub transcript: [u8; 32],
    /// Distinct identifiers in the intersection, only when both sides may learn it
    /// (`both`, `cardinality`), so they can check they agree; never to a side meant to
    /// learn nothing.
    pub intersection: Option<u64>,
    /// The sender's signed receipt of the session.
    pub receipt: Receipt,
}

impl Finish {
    /// A `Finish` with `transcript`, `intersection` and `receipt`.
    pub fn new(transcript: [u8; 32], intersection: Option<u64>, receipt: Receipt) -> Self {
        Self {
            transcript,
            intersection,
            receipt,
        }
    }
}

/// A decoded message.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Accept`].
    Accept(Accept),
    /// See [`Reject`].
    Reject(Reject),
    /// Singly-blinded points, one round of the sender's plan.
    Blinded(Vec<PointBytes>),
    /// See [`Reblinded`].
    Reblinded(Reblinded),
    /// Re-blinded points of whole record bundles, bundles shuffled and each sorted.
    Shuffled(Vec<PointBytes>),
    /// Proof that the sum of every `Shuffled` point is the sender's key times the sum of
    /// the points they answer.
    SumProof(ProofBytes),
    /// See [`Finish`].
    Finish(Box<Finish>),
    /// Ends the session.
    Abort(CloseCode),
    /// See [`IndexHello`].
    IndexHello(Box<IndexHello>),
    /// See [`IndexAccept`].
    IndexAccept(Box<IndexAccept>),
    /// See [`IndexChunk`].
    IndexChunk(IndexChunk),
    /// Blinded identifiers for the provider to evaluate under its index key.
    Evaluate(Vec<PointBytes>),
    /// The evaluations of one `Evaluate`, in order, with a batched DLEQ proof against the
    /// index's public key.
    Evaluated(Reblinded),
}

impl Message {
    /// The message's type code.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::HELLO,
            Message::Accept(_) => MessageType::ACCEPT,
            Message::Reject(_) => MessageType::REJECT,
            Message::Blinded(_) => MessageType::BLINDED,
            Message::Reblinded(_) => MessageType::REBLINDED,
            Message::Shuffled(_) => MessageType::SHUFFLED,
            Message::SumProof(_) => MessageType::SUM_PROOF,
            Message::Finish(_) => MessageType::FINISH,
            Message::Abort(_) => MessageType::ABORT,
            Message::IndexHello(_) => MessageType::INDEX_HELLO,
            Message::IndexAccept(_) => MessageType::INDEX_ACCEPT,
            Message::IndexChunk(_) => MessageType::INDEX_CHUNK,
            Message::Evaluate(_) => MessageType::EVALUATE,
            Message::Evaluated(_) => MessageType::EVALUATED,
        }
    }

    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.message_type().0);
        match self {
            Message::Hello(h) => h.encode(out),
            Message::Accept(a) => a.encode(out),
            Message::Reject(r) => r.encode(out),
            Message::Blinded(points) | Message::Shuffled(points) | Message::Evaluate(points) => {
                encode_batch(out, points)
            }
            Message::Reblinded(r) | Message::Evaluated(r) => {
                encode_batch(out, &r.points);
                out.extend_from_slice(&r.proof);
            }
            Message::SumProof(proof) => out.extend_from_slice(proof),
            Message::Finish(f) => {
                out.extend_from_slice(&f.transcript);
                put_opt_u64(out, f.intersection);
                f.receipt.encode(out);
            }
            Message::Abort(code) => out.extend_from_slice(&code.0.to_be_bytes()),
            Message::IndexHello(h) => h.encode(out),
            Message::IndexAccept(a) => a.encode(out),
            Message::IndexChunk(c) => c.encode(out),
        }
    }

    /// Encodes into a fresh frame.
    pub fn to_frame(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode(&mut out);
        out
    }

    fn encoded_len_hint(&self) -> usize {
        match self {
            Message::Blinded(p) | Message::Shuffled(p) | Message::Evaluate(p) => {
                5 + p.len() * POINT_LEN
            }
            Message::Reblinded(r) | Message::Evaluated(r) => {
                5 + r.points.len() * POINT_LEN + PROOF_LEN
            }
            Message::IndexChunk(c) => 13 + c.bytes.len(),
            Message::Finish(_) => 512,
            _ => 64,
        }
    }

    /// Decodes one frame strictly: limits first, then fields, then no leftovers.
    pub fn decode(frame: &[u8]) -> Result<Message, Error> {
        if frame.len() > MAX_FRAME_LEN {
            return Err(InvalidMessage::FrameTooLarge {
                len: frame.len() as u64,
                max: MAX_FRAME_LEN as u64,
            }
            .into());
        }
        let (&ty, body) = frame.split_first().ok_or(InvalidMessage::EmptyFrame)?;
        let mut r = Reader::new(body);
        let msg = match MessageType(ty) {
            MessageType::HELLO => Message::Hello(Hello::decode(&mut r)?),
            MessageType::ACCEPT => Message::Accept(Accept::decode(&mut r)?),
            MessageType::REJECT => Message::Reject(Reject::decode(&mut r)?),
            MessageType::BLINDED => Message::Blinded(decode_batch(&mut r, MAX_BATCH_POINTS)?),
            MessageType::REBLINDED => Message::Reblinded(Reblinded {
                points: decode_batch(&mut r, MAX_BATCH_POINTS)?,
                proof: r.array()?,
            }),
            MessageType::SHUFFLED => Message::Shuffled(decode_batch(&mut r, MAX_BATCH_POINTS)?),
            MessageType::SUM_PROOF => Message::SumProof(r.array()?),
            MessageType::FINISH => Message::Finish(Box::new(Finish {
                transcript: r.array()?,
                intersection: r.opt_u64("Finish.intersection flag")?,
                receipt: Receipt::decode(&mut r)?,
            })),
            MessageType::ABORT => Message::Abort(CloseCode(r.u16()?)),
            MessageType::INDEX_HELLO => Message::IndexHello(Box::new(IndexHello::decode(&mut r)?)),
            MessageType::INDEX_ACCEPT => {
                Message::IndexAccept(Box::new(IndexAccept::decode(&mut r)?))
            }
            MessageType::INDEX_CHUNK => Message::IndexChunk(IndexChunk::decode(&mut r)?),
            MessageType::EVALUATE => Message::Evaluate(decode_batch(&mut r, MAX_BATCH_POINTS)?),
            MessageType::EVALUATED => Message::Evaluated(Reblinded {
                points: decode_batch(&mut r, MAX_BATCH_POINTS)?,
                proof: r.array()?,
            }),
            other => return Err(InvalidMessage::UnknownMessageType(other.0).into()),
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests;
