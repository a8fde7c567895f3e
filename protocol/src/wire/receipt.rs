//! Signed session receipts, carried in `Finish`.
//!
//! A receipt is what one side signs, with its audit key, about a session that reached
//! `Finish`: which session, over which transcript, between which two nodes (certificate
//! fingerprints), over which datasets (name and version tag), in which mode, with which
//! set sizes, the count both sides may know, and the signer's own audit-log head at that
//! moment. Each side checks the peer's receipt and stores it in its own audit log, so
//! one log proves what the other side signed, and a peer that later rewrites or
//! truncates its log past that head is caught from ours.
//!
//! # Encoding (the bytes the signature covers)
//!
//! The signature is Ed25519 (`verify_strict`) by `signer_key` over
//! [`RECEIPT_LABEL`] followed by the body: `signer_key` (32), `session_id` (16),
//! `transcript` (32), signer role (1 byte: 1 initiator, 2 responder), initiator and
//! responder fingerprints (32 each), initiator and responder dataset (each a `u16`
//! length-prefixed UTF-8 name and a 16-byte version tag), mode code (1), initiator and
//! responder set sizes (`u64` each), intersection (flag byte 0/1 and a `u64` when 1), log
//! head `seq` (`u64`) and record hash (32). Integers are big-endian. On the wire the
//! 64-byte signature follows the body.

use super::OutputMode;
use super::codec::{Reader, put_opt_u64};
use super::handshake::DatasetRef;
use crate::error::InvalidMessage;
use crate::transcript::Role;

/// The label every signed receipt starts with.
pub const RECEIPT_LABEL: &[u8] = b"blindmatch-receipt-v2\n";

/// The signer's audit-log head when it signed: its latest record's sequence number and
/// hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct LogHead {
    /// Sequence number of the latest record.
    pub seq: u64,
    /// That record's hash.
    pub hash: [u8; 32],
}

/// A signed session receipt (see the module docs).
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Receipt {
    /// The signer's audit public key (Ed25519).
    pub signer_key: [u8; 32],
    /// The session id.
    pub session_id: [u8; 16],
    /// The transcript hash both sides computed.
    pub transcript: [u8; 32],
    /// The signer's role in the session.
    pub signer_role: Role,
    /// The initiator's certificate fingerprint.
    pub initiator_fingerprint: [u8; 32],
    /// The responder's certificate fingerprint.
    pub responder_fingerprint: [u8; 32],
    /// The initiator's dataset.
    pub initiator_dataset: DatasetRef,
    /// The responder's dataset.
    pub responder_dataset: DatasetRef,
    /// The output mode.
    pub mode: OutputMode,
    /// Elements the initiator sent.
    pub initiator_set_size: u64,
    /// Elements the responder sent.
    pub responder_set_size: u64,
    /// Distinct identifiers in the intersection, when both sides may know it (`both`,
    /// `cardinality`); `None` otherwise.
    pub intersection: Option<u64>,
    /// The signer's audit-log head when it signed.
    pub log_head: LogHead,
    /// Ed25519 signature over [`Receipt::signed_bytes`].
    pub signature: [u8; 64],
}

impl Receipt {
    /// A receipt with a zero log head and no signature yet.
    #[allow(clippy::too_many_arguments)]
    pub fn unsigned(
        signer_key: [u8; 32],
        session_id: [u8; 16],
        transcript: [u8; 32],
        signer_role: Role,
        [initiator_fingerprint, responder_fingerprint]: [[u8; 32]; 2],
        [initiator_dataset, responder_dataset]: [DatasetRef; 2],
        mode: OutputMode,
        (initiator_set_size, responder_set_size): (u64, u64),
        intersection: Option<u64>,
    ) -> Self {
        Self {
            signer_key,
            session_id,
            transcript,
            signer_role,
            initiator_fingerprint,
            responder_fingerprint,
            initiator_dataset,
            responder_dataset,
            mode,
            initiator_set_size,
            responder_set_size,
            intersection,
            log_head: LogHead::default(),
            signature: [0; 64],
        }
    }

    /// The wire encoding: body and signature (what an audit record stores, in hex).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        self.encode(&mut out);
        out
    }

    /// Decodes [`Receipt::to_bytes`] strictly (no leftover bytes).
    ///
    /// # Errors
    ///
    /// The decoding error, as for a message.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidMessage> {
        let mut r = Reader::new(bytes);
        let receipt = Self::decode(&mut r)?;
        r.finish()?;
        Ok(receipt)
    }

    /// The bytes the signature covers: [`RECEIPT_LABEL`] and the body.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECEIPT_LABEL.len() + 320);
        out.extend_from_slice(RECEIPT_LABEL);
        self.encode_body(&mut out);
        out
    }

    /// Whether the signature verifies under `signer_key` (strict Ed25519: no malleable
    /// or small-order encodings).
    pub fn signature_valid(&self) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.signer_key) else {
            return false;
        };
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature);
        key.verify_strict(&self.signed_bytes(), &signature).is_ok()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.encode_body(out);
        out.extend_from_slice(&self.signature);
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.signer_key);
        out.extend_from_slice(&self.session_id);
        out.extend_from_slice(&self.transcript);
        out.push(role_code(self.signer_role));
        out.extend_from_slice(&self.initiator_fingerprint);
        out.extend_from_slice(&self.responder_fingerprint);
        self.initiator_dataset.encode(out);
        self.responder_dataset.encode(out);
        out.push(self.mode.code());
        out.extend_from_slice(&self.initiator_set_size.to_be_bytes());
        out.extend_from_slice(&self.responder_set_size.to_be_bytes());
        put_opt_u64(out, self.intersection);
        out.extend_from_slice(&self.log_head.seq.to_be_bytes());
        out.extend_from_slice(&self.log_head.hash);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, InvalidMessage> {
        let signer_key = r.array()?;
        let session_id = r.array()?;
        let transcript = r.array()?;
        let signer_role = match r.u8()? {
            1 => Role::Initiator,
            2 => Role::Responder,
            _ => return Err(InvalidMessage::OutOfRange("Receipt.signer_role")),
        };
        let initiator_fingerprint = r.array()?;
        let responder_fingerprint = r.array()?;
        let initiator_dataset = DatasetRef::decode(r)?;
        let responder_dataset = DatasetRef::decode(r)?;
        let mode_code = r.u8()?;
        let mode =
            OutputMode::from_code(mode_code).ok_or(InvalidMessage::UnknownOutputMode(mode_code))?;
        Ok(Self {
            signer_key,
            session_id,
            transcript,
            signer_role,
            initiator_fingerprint,
            responder_fingerprint,
            initiator_dataset,
            responder_dataset,
            mode,
            initiator_set_size: r.u64()?,
            responder_set_size: r.u64()?,
            intersection: r.opt_u64("Receipt.intersection flag")?,
            log_head: LogHead {
                seq: r.u64()?,
                hash: r.array()?,
            },
            signature: r.array()?,
        })
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Initiator => 1,
        Role::Responder => 2,
    }
}
