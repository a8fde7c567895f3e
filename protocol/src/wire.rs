//! Versioned messages and the frame codec.
//!
//! One frame carries one message: a one-byte [`MessageType`] followed by the body.
//! The transport adds its own length prefix; [`MAX_FRAME_LEN`] bounds a frame before
//! anything is allocated. Decoding is strict: every length is checked against its limit
//! before allocation, unknown types and versions are explicit errors, and leftover
//! bytes are an error. Points are fixed-size arrays, never serde.

use std::fmt;

use crate::error::{CloseCode, Error, InvalidMessage, PeerIncompatible};
use crate::ident::{KindSet, NORMALISATION_VERSION};

/// The protocol version this crate speaks. Bumped on any incompatible change.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest frame (one message) either side accepts, in bytes.
pub const MAX_FRAME_LEN: usize = 1 << 20;
/// Most points in one `Blinded` batch (8192 × 32 B = 256 KiB).
pub const MAX_BATCH_POINTS: usize = 8192;
/// Most values in one `Reblinded` batch.
pub const MAX_BATCH_VALUES: usize = MAX_BATCH_POINTS;
/// Longest text field (purpose, legal basis, dataset name, refusal text), in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Longest encoded `Hello` (every text at [`MAX_TEXT_LEN`]), in bytes: type, versions,
/// session id, three length-prefixed texts, kinds, mode, set size.
pub const MAX_HELLO_LEN: usize = 1 + 2 + 2 + 16 + 3 * (2 + MAX_TEXT_LEN) + 1 + 1 + 8;
/// Largest set the protocol can describe: record and element indices are `u32`.
pub const MAX_SET_SIZE: u64 = u32::MAX as u64;
/// Bytes of a doubly-blinded value on the wire (see [`crate::session`] for the bound).
pub const DOUBLE_LEN: usize = 16;
/// Bytes of a compressed ristretto255 point.
pub const POINT_LEN: usize = 32;

/// A compressed point as sent on the wire.
pub type PointBytes = [u8; POINT_LEN];
/// A truncated doubly-blinded value as sent on the wire.
pub type DoubleBytes = [u8; DOUBLE_LEN];

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
    /// A batch of doubly-blinded, truncated values.
    pub const REBLINDED: Self = Self(5);
    /// Transcript hash and intersection size.
    pub const FINISH: Self = Self(6);
    /// Ends the session with a close code.
    pub const ABORT: Self = Self(7);

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

impl std::str::FromStr for OutputMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown output mode {s:?}: expected both, initiator, responder or cardinality"
                )
            })
    }
}

/// Why a responder refused a session. An integer newtype: unknown codes are
/// representable and shown as such; a code point is never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RejectReason(pub u16);

impl RejectReason {
    /// The peer is not configured on this node.
    pub const UNKNOWN_PEER: Self = Self(1);
    /// The dataset does not exist or is not offered to this peer.
    pub const DATASET_NOT_OFFERED: Self = Self(2);
    /// The output mode is not allowed for this peer.
    pub const MODE_NOT_ALLOWED: Self = Self(3);
    /// The purpose is not allowed for this peer.
    pub const PURPOSE_NOT_ALLOWED: Self = Self(4);
    /// A legal basis is required and was missing or not allowed.
    pub const LEGAL_BASIS_NOT_ALLOWED: Self = Self(5);
    /// The declared set is larger than the policy allows.
    pub const SET_TOO_LARGE: Self = Self(6);
    /// The declared set is too large relative to the offered set.
    pub const RATIO_TOO_HIGH: Self = Self(7);
    /// The peer's daily or total budget of evaluations is used up.
    pub const BUDGET_EXHAUSTED: Self = Self(8);
    /// Too many sessions recently.
    pub const RATE_LIMITED: Self = Self(9);
    /// Too many concurrent sessions; try later.
    pub const BUSY: Self = Self(10);
    /// A session id was seen before.
    pub const REPLAYED_SESSION: Self = Self(11);
    /// The two sets have no identifier kind in common.
    pub const NO_COMMON_KINDS: Self = Self(12);
    /// The responder is shutting down.
    pub const SHUTTING_DOWN: Self = Self(13);
    /// Internal error on the responder.
    pub const INTERNAL: Self = Self(14);

    /// A short stable name.
    pub fn name(self) -> &'static str {
        match self {
            Self::UNKNOWN_PEER => "unknown-peer",
            Self::DATASET_NOT_OFFERED => "dataset-not-offered",
            Self::MODE_NOT_ALLOWED => "mode-not-allowed",
            Self::PURPOSE_NOT_ALLOWED => "purpose-not-allowed",
            Self::LEGAL_BASIS_NOT_ALLOWED => "legal-basis-not-allowed",
            Self::SET_TOO_LARGE => "set-too-large",
            Self::RATIO_TOO_HIGH => "ratio-too-high",
            Self::BUDGET_EXHAUSTED => "budget-exhausted",
            Self::RATE_LIMITED => "rate-limited",
            Self::BUSY => "busy",
            Self::REPLAYED_SESSION => "replayed-session",
            Self::NO_COMMON_KINDS => "no-common-kinds",
            Self::SHUTTING_DOWN => "shutting-down",
            Self::INTERNAL => "internal-error",
            _ => "unknown-reason",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Opens a session. The first field on the wire is the version, so a peer of another
/// version is recognised before anything else is parsed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Hello {
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// Identifier normalisation version ([`NORMALISATION_VERSION`]).
    pub normalisation_version: u16,
    /// Fresh random session id, never reused.
    pub session_id: [u8; 16],
    /// Which of the responder's datasets to match against.
    pub dataset: String,
    /// Declared purpose of the match.
    pub purpose: String,
    /// Declared legal basis (PIPL art. 13), may be empty.
    pub legal_basis: String,
    /// Identifier kinds present in the initiator's set.
    pub kinds: KindSet,
    /// What each side learns.
    pub mode: OutputMode,
    /// Number of (deduplicated) elements the initiator will send.
    pub set_size: u64,
}

/// The responder agrees to the session.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Accept {
    /// Number of (deduplicated) elements the responder will send.
    pub set_size: u64,
    /// Identifier kinds present in the responder's set.
    pub kinds: KindSet,
}

/// The responder refuses the session.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Reject {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Explanation the initiator's user can act on.
    pub text: String,
}

/// The end of one direction: what this side saw and counted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Finish {
    /// Transcript hash over every message before `Finish`, both directions.
    pub transcript: [u8; 32],
    /// The intersection size, only when both sides may learn it (`both`, `cardinality`),
    /// so they can check they agree; never to a side meant to learn nothing.
    pub intersection: Option<u64>,
}

/// A decoded message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Accept`].
    Accept(Accept),
    /// See [`Reject`].
    Reject(Reject),
    /// Singly-blinded points, in the sender's (shuffled) order.
    Blinded(Vec<PointBytes>),
    /// Doubly-blinded truncated values.
    Reblinded(Vec<DoubleBytes>),
    /// See [`Finish`].
    Finish(Finish),
    /// Ends the session.
    Abort(CloseCode),
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
            Message::Finish(_) => MessageType::FINISH,
            Message::Abort(_) => MessageType::ABORT,
        }
    }

    /// Appends the encoded message to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.message_type().0);
        match self {
            Message::Hello(h) => {
                out.extend_from_slice(&h.version.to_be_bytes());
                out.extend_from_slice(&h.normalisation_version.to_be_bytes());
                out.extend_from_slice(&h.session_id);
                put_text(out, &h.dataset);
                put_text(out, &h.purpose);
                put_text(out, &h.legal_basis);
                out.push(h.kinds.bits());
                out.push(h.mode.code());
                out.extend_from_slice(&h.set_size.to_be_bytes());
            }
            Message::Accept(a) => {
                out.extend_from_slice(&a.set_size.to_be_bytes());
                out.push(a.kinds.bits());
            }
            Message::Reject(r) => {
                out.extend_from_slice(&r.reason.0.to_be_bytes());
                put_text(out, &r.text);
            }
            Message::Blinded(points) => encode_batch(out, points),
            Message::Reblinded(values) => encode_batch(out, values),
            Message::Finish(f) => {
                out.extend_from_slice(&f.transcript);
                match f.intersection {
                    None => out.push(0),
                    Some(n) => {
                        out.push(1);
                        out.extend_from_slice(&n.to_be_bytes());
                    }
                }
            }
            Message::Abort(code) => out.extend_from_slice(&code.0.to_be_bytes()),
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
            Message::Blinded(p) => 5 + p.len() * POINT_LEN,
            Message::Reblinded(v) => 5 + v.len() * DOUBLE_LEN,
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
            MessageType::HELLO => Message::Hello(decode_hello(&mut r)?),
            MessageType::ACCEPT => Message::Accept(Accept {
                set_size: set_size(r.u64()?)?,
                kinds: kinds(r.u8()?)?,
            }),
            MessageType::REJECT => Message::Reject(Reject {
                reason: RejectReason(r.u16()?),
                text: r.text()?,
            }),
            MessageType::BLINDED => Message::Blinded(decode_batch(&mut r, MAX_BATCH_POINTS)?),
            MessageType::REBLINDED => Message::Reblinded(decode_batch(&mut r, MAX_BATCH_VALUES)?),
            MessageType::FINISH => {
                let transcript = r.array()?;
                let intersection = match r.u8()? {
                    0 => None,
                    1 => Some(r.u64()?),
                    _ => return Err(InvalidMessage::OutOfRange("Finish.intersection flag").into()),
                };
                Message::Finish(Finish {
                    transcript,
                    intersection,
                })
            }
            MessageType::ABORT => Message::Abort(CloseCode(r.u16()?)),
            other => return Err(InvalidMessage::UnknownMessageType(other.0).into()),
        };
        r.finish()?;
        Ok(msg)
    }
}

fn decode_hello(r: &mut Reader<'_>) -> Result<Hello, Error> {
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
    let kinds = kinds(r.u8()?)?;
    let mode_code = r.u8()?;
    let mode =
        OutputMode::from_code(mode_code).ok_or(InvalidMessage::UnknownOutputMode(mode_code))?;
    let set_size = set_size(r.u64()?)?;
    Ok(Hello {
        version,
        normalisation_version,
        session_id,
        dataset,
        purpose,
        legal_basis,
        kinds,
        mode,
        set_size,
    })
}

fn kinds(bits: u8) -> Result<KindSet, InvalidMessage> {
    KindSet::from_bits(bits).ok_or(InvalidMessage::InvalidKinds(bits))
}

fn set_size(n: u64) -> Result<u64, InvalidMessage> {
    if n > MAX_SET_SIZE {
        return Err(InvalidMessage::OutOfRange("set size above 2^32-1"));
    }
    Ok(n)
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    // Callers validate lengths (`check_text`); clamp defensively so the codec itself
    // can never emit a frame the peer must reject.
    let bytes = &text.as_bytes()[..text.len().min(MAX_TEXT_LEN)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// A peer's free text made safe to show: control characters and bidirectional
/// overrides (which could clear a terminal, forge a line of output or reorder what is
/// shown) become visible `\u{..}` escapes.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || bidi {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks that a text field fits the wire limit.
pub fn check_text(field: &'static str, text: &str) -> Result<(), Error> {
    if text.len() > MAX_TEXT_LEN {
        return Err(Error::InvalidArgument(field));
    }
    Ok(())
}

fn encode_batch<const N: usize>(out: &mut Vec<u8>, items: &[[u8; N]]) {
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for item in items {
        out.extend_from_slice(item);
    }
}

fn decode_batch<const N: usize>(
    r: &mut Reader<'_>,
    max: usize,
) -> Result<Vec<[u8; N]>, InvalidMessage> {
    let len = r.u32()? as usize;
    if len == 0 || len > max {
        return Err(InvalidMessage::BadBatchLength {
            len: len as u64,
            max: max as u64,
        });
    }
    let bytes = r.take(len * N)?;
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut item = [0u8; N];
            item.copy_from_slice(c);
            item
        })
        .collect())
}

/// A bounded reader over one message body.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], InvalidMessage> {
        if self.buf.len() < n {
            return Err(InvalidMessage::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], InvalidMessage> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, InvalidMessage> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, InvalidMessage> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, InvalidMessage> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, InvalidMessage> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn text(&mut self) -> Result<String, InvalidMessage> {
        let len = self.u16()? as usize;
        if len > MAX_TEXT_LEN {
            return Err(InvalidMessage::TextTooLong {
                len,
                max: MAX_TEXT_LEN,
            });
        }
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| InvalidMessage::InvalidUtf8)?;
        Ok(text.to_owned())
    }

    fn finish(&self) -> Result<(), InvalidMessage> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(InvalidMessage::TrailingBytes(self.buf.len()))
        }
    }
}

#[cfg(test)]
mod tests;
