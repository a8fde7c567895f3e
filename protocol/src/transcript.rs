//! The running transcript hash that both sides must agree on at `Finish`.
//!
//! Messages flow in both directions at once, so the interleaving each side observes
//! differs. The transcript therefore keeps one SHA-256 per direction (initiator →
//! responder and responder → initiator), each over the frames in that direction in
//! order, length-prefixed. The final hash binds, in this order: the protocol label,
//! protocol version, hash-to-group suite, normalisation version, the caller's channel
//! binding (the TLS exporter of the connection, so a transcript cannot be relayed to
//! another connection), then both direction hashes. `Finish` frames are not part of it.

use sha2::{Digest, Sha256};

use crate::group::SUITE_ID;
use crate::ident::NORMALISATION_VERSION;
use crate::wire::PROTOCOL_VERSION;

/// The label that starts every transcript.
pub const TRANSCRIPT_LABEL: &[u8] = b"blindmatch/1 transcript";

/// Which side of the session we are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Role {
    /// Sends `Hello`.
    Initiator,
    /// Answers `Hello`.
    Responder,
}

impl Role {
    /// The other side.
    pub fn peer(self) -> Role {
        match self {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        }
    }

    /// Lower-case name for logs and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        }
    }
}

/// A running transcript hash, seen from one side.
#[derive(Clone)]
pub struct Transcript {
    role: Role,
    channel_binding: [u8; 32],
    initiator_to_responder: Sha256,
    responder_to_initiator: Sha256,
}

impl Transcript {
    /// Starts a transcript for `role`, bound to the connection's `channel_binding`.
    pub fn new(role: Role, channel_binding: [u8; 32]) -> Self {
        Self {
            role,
            channel_binding,
            initiator_to_responder: Sha256::new(),
            responder_to_initiator: Sha256::new(),
        }
    }

    /// Records a frame we sent.
    pub fn sent(&mut self, frame: &[u8]) {
        let role = self.role;
        absorb(self.direction(role), frame);
    }

    /// Records a frame we received.
    pub fn received(&mut self, frame: &[u8]) {
        let role = self.role.peer();
        absorb(self.direction(role), frame);
    }

    /// The transcript hash over everything so far. Equal on both sides exactly when
    /// both saw the same frames in each direction over the same connection.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        absorb(&mut h, TRANSCRIPT_LABEL);
        h.update(PROTOCOL_VERSION.to_be_bytes());
        absorb(&mut h, SUITE_ID.as_bytes());
        h.update(NORMALISATION_VERSION.to_be_bytes());
        h.update(self.channel_binding);
        h.update(self.initiator_to_responder.clone().finalize());
        h.update(self.responder_to_initiator.clone().finalize());
        h.finalize().into()
    }

    fn direction(&mut self, sender: Role) -> &mut Sha256 {
        match sender {
            Role::Initiator => &mut self.initiator_to_responder,
            Role::Responder => &mut self.responder_to_initiator,
        }
    }
}

fn absorb(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_whatever_the_interleaving() {
        let mut a = Transcript::new(Role::Initiator, [1; 32]);
        let mut b = Transcript::new(Role::Responder, [1; 32]);
        a.sent(b"hello");
        a.received(b"accept");
        a.sent(b"batch");
        b.received(b"hello");
        b.sent(b"accept");
        b.received(b"batch");
        assert_eq!(a.hash(), b.hash());
    }

    #[test]
    fn any_difference_changes_the_hash() {
        let base = {
            let mut t = Transcript::new(Role::Initiator, [1; 32]);
            t.sent(b"ab");
            t.sent(b"c");
            t.hash()
        };
        let mut regrouped = Transcript::new(Role::Initiator, [1; 32]);
        regrouped.sent(b"a");
        regrouped.sent(b"bc");
        assert_ne!(base, regrouped.hash(), "frame boundaries are bound");
        let mut other_binding = Transcript::new(Role::Initiator, [2; 32]);
        other_binding.sent(b"ab");
        other_binding.sent(b"c");
        assert_ne!(base, other_binding.hash(), "channel binding is bound");
        let mut reversed = Transcript::new(Role::Responder, [1; 32]);
        reversed.sent(b"ab");
        reversed.sent(b"c");
        assert_ne!(base, reversed.hash(), "direction is bound");
    }
}
