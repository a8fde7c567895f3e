//! The protocol's error type, grouped by fault, and the close codes a peer sees.
//!
//! Every error that ends a session maps to a [`CloseCode`] carried in an `Abort`
//! message, so the peer learns *why* without learning anything about our data.
//! Crypto errors are deliberately coarse.

use std::fmt;

/// Everything that can go wrong in the protocol core.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bytes from the peer could not be decoded into a valid message.
    #[error("invalid message from peer: {0}")]
    InvalidMessage(#[from] InvalidMessage),
    /// The peer sent well-formed messages that break the protocol.
    #[error("peer broke the protocol: {0}")]
    PeerMisbehaved(#[from] PeerMisbehaved),
    /// The peer speaks a version or suite we do not support.
    #[error("peer is incompatible: {0}")]
    PeerIncompatible(#[from] PeerIncompatible),
    /// The responder refused the session (policy); `text` is its explanation.
    #[error("peer refused the session ({reason}): {text}")]
    Refused {
        /// Machine-readable reason.
        reason: crate::wire::RejectReason,
        /// Human-readable explanation from the peer (untrusted, printable only).
        text: String,
    },
    /// The peer aborted the session.
    #[error("peer aborted the session: {0}")]
    PeerAborted(CloseCode),
    /// Our own caller used the API wrongly (a bug on our side, never the peer's).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
    /// An argument to a pure function was out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Our own storage failed (reading or writing an index copy): never the peer's fault.
    #[error("local storage failed: {0}")]
    Storage(String),
}

/// Decoding failures: the bytes are not a valid message.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// The message ended before all its fields were read.
    #[error("message truncated")]
    Truncated,
    /// Bytes were left over after the last field.
    #[error("{0} trailing bytes after message")]
    TrailingBytes(usize),
    /// A frame longer than the limit was announced.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Our limit.
        max: u64,
    },
    /// An empty frame (no message type).
    #[error("empty frame")]
    EmptyFrame,
    /// A message type we do not know.
    #[error("unknown message type {0:#04x}")]
    UnknownMessageType(u8),
    /// A point that is not a canonical ristretto255 encoding.
    #[error("invalid point encoding")]
    InvalidPoint,
    /// The identity element, which a well-behaved peer never sends.
    #[error("identity point")]
    IdentityPoint,
    /// A text field that is not UTF-8.
    #[error("text field is not valid UTF-8")]
    InvalidUtf8,
    /// A text field longer than allowed.
    #[error("text field of {len} bytes exceeds the limit of {max}")]
    TextTooLong {
        /// Length found.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A batch with more entries than allowed, or none.
    #[error("batch of {len} entries is outside 1..={max}")]
    BadBatchLength {
        /// Entries announced.
        len: u64,
        /// Limit.
        max: u64,
    },
    /// An output mode we do not know.
    #[error("unknown output mode {0}")]
    UnknownOutputMode(u8),
    /// A set of identifier kinds with unknown bits, or empty.
    #[error("invalid identifier kind set {0:#04x}")]
    InvalidKinds(u8),
    /// A field value out of its allowed range.
    #[error("field out of range: {0}")]
    OutOfRange(&'static str),
}

/// Well-formed messages that break the protocol.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerMisbehaved {
    /// A message that is not allowed in the current state.
    #[error("unexpected {got} while waiting for {expected}")]
    UnexpectedMessage {
        /// What the state machine waits for.
        expected: &'static str,
        /// What arrived.
        got: &'static str,
    },
    /// More points than the peer declared.
    #[error("peer sent more than the {declared} points it declared")]
    TooManyPoints {
        /// Declared count.
        declared: u64,
    },
    /// The peer finished before sending all the points it declared.
    #[error("peer finished after {received} of the {declared} points it declared")]
    TooFewPoints {
        /// Declared count.
        declared: u64,
        /// Received count.
        received: u64,
    },
    /// The peer sent back points that we sent (a reflection attack).
    #[error("peer reflected our own blinded points back")]
    ReflectedPoints,
    /// The peer returned doubly-blinded values equal to what we sent (not re-blinded).
    #[error("peer returned our points without re-blinding them")]
    NotReblinded,
    /// The transcript hashes differ: the two sides did not see the same messages.
    #[error("transcript hash mismatch: the two sides saw different messages")]
    TranscriptMismatch,
    /// The intersection sizes differ.
    #[error("intersection size mismatch: ours {ours}, theirs {theirs}")]
    IntersectionMismatch {
        /// Our count.
        ours: u64,
        /// The peer's count.
        theirs: u64,
    },
    /// The peer declared a set larger than allowed.
    #[error("peer declared a set of {size} elements, above the limit of {max}")]
    SetTooLarge {
        /// Declared size.
        size: u64,
        /// Limit.
        max: u64,
    },
    /// The peer sent a message after the session ended.
    #[error("message after the session ended")]
    AfterEnd,
    /// The peer's proof that it applied its committed key (a DLEQ proof) is malformed
    /// or does not verify.
    #[error("the peer's proof of re-blinding does not verify")]
    BadProof,
    /// The peer's key commitment is not a usable public key (invalid, the identity, or
    /// the generator itself).
    #[error("the peer's key commitment is not a valid public key")]
    BadCommitment,
    /// A round carried another number of points than the schedule gives it.
    #[error("round {round} carried {got} points where the schedule gives it {expected}")]
    WrongRoundSize {
        /// The round.
        round: u64,
        /// Points the schedule gives it.
        expected: u64,
        /// Points sent.
        got: u64,
    },
    /// The peer's signed receipt does not check out.
    #[error("the peer's session receipt is not valid: {0}")]
    BadReceipt(&'static str),
    /// The provider's index (or what it says of it) does not check out: a signature, a
    /// hash, its structure, or its epoch or key against the session.
    #[error("the provider's index is not valid: {0}")]
    BadIndex(&'static str),
}

/// The peer speaks something we do not.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIncompatible {
    /// Protocol version mismatch.
    #[error("unsupported protocol version {got} (we speak {ours})")]
    UnsupportedVersion {
        /// The peer's version.
        got: u16,
        /// Ours.
        ours: u16,
    },
    /// The peer refused our `Hello` as a version it does not speak (an older peer answers
    /// with a bare `Abort`).
    #[error(
        "the peer does not speak protocol version {ours} (it may run an older blindmatch); both nodes need a release that speaks version {ours}"
    )]
    PeerRefusedVersion {
        /// Our version.
        ours: u16,
    },
    /// Identifier normalisation version mismatch: the same contact would not match.
    #[error("normalisation version {got} differs from ours ({ours})")]
    NormalisationVersion {
        /// The peer's version.
        got: u16,
        /// Ours.
        ours: u16,
    },
}

/// Why a session was closed, as seen by the peer in an `Abort`.
///
/// An integer newtype: unknown codes are representable (and shown as such), so a
/// newer peer's code never breaks decoding. A code point is never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// Normal end.
    pub const OK: Self = Self(0);
    /// Undecodable message.
    pub const INVALID_MESSAGE: Self = Self(1);
    /// Protocol violation.
    pub const PROTOCOL_VIOLATION: Self = Self(2);
    /// Version or suite mismatch.
    pub const INCOMPATIBLE: Self = Self(3);
    /// Refused by policy.
    pub const REFUSED: Self = Self(4);
    /// Transcript or intersection mismatch at `Finish`.
    pub const FINISH_MISMATCH: Self = Self(5);
    /// Local failure (I/O, storage) unrelated to the peer.
    pub const INTERNAL: Self = Self(6);
    /// The operator cancelled (shutdown).
    pub const CANCELLED: Self = Self(7);
    /// Timed out waiting for the peer.
    pub const TIMEOUT: Self = Self(8);
    /// Sent more points than the policy or declaration allows.
    pub const LIMIT_EXCEEDED: Self = Self(9);
    /// Points reflected or not re-blinded.
    pub const BAD_POINTS: Self = Self(10);
    /// The peer went away mid-session at the transport level: it reset or stopped the
    /// session stream, ended it early, closed the connection, or the connection was lost.
    /// Distinct from [`INTERNAL`](Self::INTERNAL) (our own failure) and from
    /// [`TIMEOUT`](Self::TIMEOUT) (the peer went silent).
    pub const PEER_GONE: Self = Self(11);
    /// The peer's proof that it applied its committed key is malformed or does not
    /// verify: its points may be under another key, tampered or reordered.
    pub const BAD_PROOF: Self = Self(12);
    /// The peer's signed receipt does not describe the session, or its signature or key
    /// is wrong.
    pub const BAD_RECEIPT: Self = Self(13);
    /// The operator removed or revoked the peer while the session ran.
    pub const PEER_REVOKED: Self = Self(14);
    /// The provider's index does not check out (signature, hash, structure, epoch or
    /// key).
    pub const BAD_INDEX: Self = Self(15);

    /// A short name for logs and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::OK => "ok",
            Self::INVALID_MESSAGE => "invalid-message",
            Self::PROTOCOL_VIOLATION => "protocol-violation",
            Self::INCOMPATIBLE => "incompatible",
            Self::REFUSED => "refused",
            Self::FINISH_MISMATCH => "finish-mismatch",
            Self::INTERNAL => "internal-error",
            Self::CANCELLED => "cancelled",
            Self::TIMEOUT => "timeout",
            Self::LIMIT_EXCEEDED => "limit-exceeded",
            Self::BAD_POINTS => "bad-points",
            Self::PEER_GONE => "peer-gone",
            Self::BAD_PROOF => "bad-proof",
            Self::BAD_RECEIPT => "bad-receipt",
            Self::PEER_REVOKED => "peer-revoked",
            Self::BAD_INDEX => "bad-index",
            _ => "unknown",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({}={})", self.0, self.name())
    }
}

impl Error {
    /// The close code the peer sees when this error ends a session.
    pub fn close_code(&self) -> CloseCode {
        match self {
            Error::InvalidMessage(InvalidMessage::InvalidPoint | InvalidMessage::IdentityPoint) => {
                CloseCode::BAD_POINTS
            }
            Error::InvalidMessage(_) => CloseCode::INVALID_MESSAGE,
            Error::PeerMisbehaved(
                PeerMisbehaved::TranscriptMismatch | PeerMisbehaved::IntersectionMismatch { .. },
            ) => CloseCode::FINISH_MISMATCH,
            Error::PeerMisbehaved(
                PeerMisbehaved::TooManyPoints { .. } | PeerMisbehaved::SetTooLarge { .. },
            ) => CloseCode::LIMIT_EXCEEDED,
            Error::PeerMisbehaved(
                PeerMisbehaved::ReflectedPoints | PeerMisbehaved::NotReblinded,
            ) => CloseCode::BAD_POINTS,
            Error::PeerMisbehaved(PeerMisbehaved::BadProof | PeerMisbehaved::BadCommitment) => {
                CloseCode::BAD_PROOF
            }
            Error::PeerMisbehaved(PeerMisbehaved::BadReceipt(_)) => CloseCode::BAD_RECEIPT,
            Error::PeerMisbehaved(PeerMisbehaved::BadIndex(_)) => CloseCode::BAD_INDEX,
            Error::PeerMisbehaved(_) => CloseCode::PROTOCOL_VIOLATION,
            Error::PeerIncompatible(_) => CloseCode::INCOMPATIBLE,
            Error::Refused { .. } => CloseCode::REFUSED,
            Error::PeerAborted(code) => *code,
            Error::ApiMisuse(_) | Error::InvalidArgument(_) | Error::Storage(_) => {
                CloseCode::INTERNAL
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wire::Message;

    const KNOWN: [CloseCode; 16] = [
        CloseCode::OK,
        CloseCode::INVALID_MESSAGE,
        CloseCode::PROTOCOL_VIOLATION,
        CloseCode::INCOMPATIBLE,
        CloseCode::REFUSED,
        CloseCode::FINISH_MISMATCH,
        CloseCode::INTERNAL,
        CloseCode::CANCELLED,
        CloseCode::TIMEOUT,
        CloseCode::LIMIT_EXCEEDED,
        CloseCode::BAD_POINTS,
        CloseCode::PEER_GONE,
        CloseCode::BAD_PROOF,
        CloseCode::BAD_RECEIPT,
        CloseCode::PEER_REVOKED,
        CloseCode::BAD_INDEX,
    ];

    #[test]
    fn close_codes_are_dense_and_named_once() {
        for (i, code) in KNOWN.iter().enumerate() {
            assert_eq!(usize::from(code.0), i, "{code:?} out of sequence");
            assert_ne!(code.name(), "unknown", "{code:?} has no name");
        }
        let mut names: Vec<&str> = KNOWN.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN.len(), "two codes share a name");
    }

    #[test]
    fn peer_gone_is_its_own_code() {
        assert_eq!(CloseCode::PEER_GONE.0, 11);
        assert_eq!(CloseCode::PEER_GONE.to_string(), "peer-gone (11)");
        assert_ne!(CloseCode::PEER_GONE, CloseCode::INTERNAL);
    }

    #[test]
    fn bad_proof_is_its_own_code() {
        assert_eq!(CloseCode::BAD_PROOF.0, 12);
        assert_eq!(CloseCode::BAD_PROOF.to_string(), "bad-proof (12)");
        assert_eq!(
            Error::PeerMisbehaved(PeerMisbehaved::BadProof).close_code(),
            CloseCode::BAD_PROOF
        );
    }

    #[test]
    fn unknown_codes_decode_and_show_as_unknown() {
        for code in [CloseCode::BAD_INDEX, CloseCode(16), CloseCode(u16::MAX)] {
            let frame = Message::Abort(code).to_frame();
            match Message::decode(&frame).unwrap() {
                Message::Abort(got) => assert_eq!(got, code),
                other => panic!("decoded {:?}", other.message_type()),
            }
        }
        assert_eq!(CloseCode(16).to_string(), "unknown (16)");
        assert_eq!(
            Error::PeerAborted(CloseCode(16)).close_code(),
            CloseCode(16)
        );
    }
}
