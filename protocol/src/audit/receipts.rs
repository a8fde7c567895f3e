//! Checking the session receipts a log stores: each `session_completed` record holds the
//! receipt this node signed and the one its peer signed (`wire::Receipt`, hex). The peer's
//! receipt proves, from this log alone, what the peer signed about the session: its
//! signature must verify under the peer's audit key as this log pinned it (`peer_added`
//! with a key, or `peer_audit_key_pinned`), and it must describe this record's session.
//! Compared with the peer's own log ([`super::crosscheck`]), the log head it names shows
//! whether the peer later rewrote or truncated its log.

use crate::transcript::Role as WireRole;
use crate::wire::Receipt;

use super::event::{Role, SessionFacts};

/// Why a stored receipt does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptFault {
    /// The hex or its encoding is broken.
    #[error("the stored receipt does not decode")]
    Undecodable,
    /// The signature does not verify under the key the receipt names.
    #[error("the receipt's signature does not verify")]
    BadSignature,
    /// Signed by another key than the one pinned for the peer.
    #[error("the receipt is signed by audit key {signer}, but {pinned} is pinned for the peer")]
    OtherKey {
        /// The key that signed.
        signer: String,
        /// The pinned key.
        pinned: String,
    },
    /// It describes another session than the record.
    #[error("the receipt describes another session ({0} differs)")]
    OtherSession(&'static str),
}

/// Decodes a receipt stored as hex.
///
/// # Errors
///
/// [`ReceiptFault::Undecodable`].
pub fn decode(hex_text: &str) -> Result<Receipt, ReceiptFault> {
    let bytes = hex::decode(hex_text).map_err(|_| ReceiptFault::Undecodable)?;
    Receipt::from_bytes(&bytes).map_err(|_| ReceiptFault::Undecodable)
}

/// Checks the peer's receipt stored in `facts` (a completed session's record), against the
/// audit key `pinned` for the peer when the log pinned one. Returns the receipt.
///
/// # Errors
///
/// What does not check out; `Ok(None)` when the record holds no peer receipt.
pub fn check_peer_receipt(
    facts: &SessionFacts,
    pinned: Option<&str>,
) -> Result<Option<Receipt>, ReceiptFault> {
    let Some(text) = &facts.peer_receipt else {
        return Ok(None);
    };
    let receipt = decode(text)?;
    if !receipt.signature_valid() {
        return Err(ReceiptFault::BadSignature);
    }
    let signer = hex::encode(receipt.signer_key);
    if let Some(pinned) = pinned
        && !pinned.eq_ignore_ascii_case(&signer)
    {
        return Err(ReceiptFault::OtherKey {
            signer,
            pinned: pinned.to_owned(),
        });
    }
    describes(&receipt, facts)?;
    Ok(Some(receipt))
}

/// Whether `receipt`, signed by the peer, describes the session `facts` records.
fn describes(receipt: &Receipt, facts: &SessionFacts) -> Result<(), ReceiptFault> {
    let (peer_role, own_fp, peer_fp) = match facts.role {
        Role::Initiator => (
            WireRole::Responder,
            receipt.initiator_fingerprint,
            receipt.responder_fingerprint,
        ),
        Role::Responder => (
            WireRole::Initiator,
            receipt.responder_fingerprint,
            receipt.initiator_fingerprint,
        ),
    };
    let checks = [
        (receipt.signer_role == peer_role, "role"),
        (
            hex::encode(receipt.session_id) == facts.session_id,
            "session id",
        ),
        (
            facts.transcript_hash.as_deref() == Some(hex::encode(receipt.transcript).as_str()),
            "transcript hash",
        ),
        (
            hex::encode(own_fp) == facts.our_fingerprint,
            "our fingerprint",
        ),
        (
            hex::encode(peer_fp) == facts.peer_fingerprint,
            "peer fingerprint",
        ),
        (receipt.mode.name() == facts.mode, "mode"),
    ];
    match checks.iter().find(|(ok, _)| !ok) {
        Some((_, what)) => Err(ReceiptFault::OtherSession(what)),
        None => Ok(()),
    }
}
