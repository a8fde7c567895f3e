//! A receipt signer over a bare Ed25519 key, for callers without an audit log (library
//! users, examples, benchmarks): the log head it names is all zero.

use ed25519_dalek::{Signer, SigningKey};

use super::ReceiptSigner;
use crate::wire::LogHead;

/// Signs receipts with an Ed25519 key and names no audit log.
pub struct KeySigner {
    key: SigningKey,
}

impl KeySigner {
    /// A signer over `key`.
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    /// A signer over the key derived from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self::new(SigningKey::from_bytes(seed))
    }
}

impl ReceiptSigner for KeySigner {
    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn log_head(&self) -> LogHead {
        LogHead::default()
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}
