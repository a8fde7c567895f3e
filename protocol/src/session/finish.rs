//! Session receipts: building and signing ours, checking the peer's.
//!
//! The peer's receipt must describe exactly this session as we saw it (the same session
//! id, transcript, fingerprints, datasets, mode, sizes and count), be signed by the peer's
//! role, and verify under the audit key pinned for the peer (or, when none is pinned yet,
//! under the key it names, which the caller then pins).

use super::{Parties, ReceiptSigner, Role};
use crate::error::{Error, PeerMisbehaved};
use crate::wire::{DatasetRef, OutputMode, Receipt};

/// What both receipts of a session must agree on.
#[derive(Clone, Debug)]
pub(crate) struct ReceiptContext {
    pub role: Role,
    pub mode: OutputMode,
    pub session_id: [u8; 16],
    pub parties: Parties,
    pub own_dataset: DatasetRef,
    pub peer_dataset: DatasetRef,
    pub own_set_size: u64,
    pub peer_set_size: u64,
}

impl ReceiptContext {
    /// Our receipt over `transcript` and the shared `intersection`, signed.
    pub(crate) fn sign(
        &self,
        signer: &dyn ReceiptSigner,
        transcript: [u8; 32],
        intersection: Option<u64>,
    ) -> Receipt {
        let mut receipt = self.expected(self.role, signer.public_key(), transcript, intersection);
        receipt.log_head = signer.log_head();
        receipt.signature = signer.sign(&receipt.signed_bytes());
        receipt
    }

    /// Checks the peer's receipt against the session as we saw it.
    pub(crate) fn check_peer(
        &self,
        receipt: &Receipt,
        transcript: [u8; 32],
        intersection: Option<u64>,
    ) -> Result<(), Error> {
        let mut expected = self.expected(
            self.role.peer(),
            receipt.signer_key,
            transcript,
            intersection,
        );
        expected.log_head = receipt.log_head;
        expected.signature = receipt.signature;
        if *receipt != expected {
            return Err(PeerMisbehaved::BadReceipt("it describes another session").into());
        }
        if let Some(pinned) = self.parties.peer_audit_key
            && pinned != receipt.signer_key
        {
            return Err(PeerMisbehaved::BadReceipt(
                "it is signed by another audit key than the one pinned for this peer",
            )
            .into());
        }
        if !receipt.signature_valid() {
            return Err(PeerMisbehaved::BadReceipt("its signature does not verify").into());
        }
        Ok(())
    }

    /// The receipt `signer_role` should sign, unsigned.
    fn expected(
        &self,
        signer_role: Role,
        signer_key: [u8; 32],
        transcript: [u8; 32],
        intersection: Option<u64>,
    ) -> Receipt {
        let (initiator_fp, responder_fp, initiator_dataset, responder_dataset, sizes) =
            match self.role {
                Role::Initiator => (
                    self.parties.own_fingerprint,
                    self.parties.peer_fingerprint,
                    &self.own_dataset,
                    &self.peer_dataset,
                    (self.own_set_size, self.peer_set_size),
                ),
                Role::Responder => (
                    self.parties.peer_fingerprint,
                    self.parties.own_fingerprint,
                    &self.peer_dataset,
                    &self.own_dataset,
                    (self.peer_set_size, self.own_set_size),
                ),
            };
        Receipt::unsigned(
            signer_key,
            self.session_id,
            transcript,
            signer_role,
            [initiator_fp, responder_fp],
            [initiator_dataset.clone(), responder_dataset.clone()],
            self.mode,
            sizes,
            intersection,
        )
    }
}
