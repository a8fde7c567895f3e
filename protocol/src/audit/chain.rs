//! Extending a chain: sealing events into signed records, and exportable checkpoints.
//!
//! The chain rules, which the verifier enforces and [`ChainHead::seal`] never breaks:
//! `seq` counts from 0 without gaps; `prev` is the previous record's `hash` (all zero for
//! the first); the first record, and only it, is `node_initialised`, carrying the audit
//! public key that signs every record; a `checkpoint` record's `count` and `head_hash` equal
//! its own `seq` and `prev`.
//!
//! # Standalone checkpoints
//!
//! A [`Checkpoint`] is `{"count":N,"head_hash":H,"key":K,"sig":G}`: the number of records
//! in a log, the hash of the last of them, the audit public key, and an Ed25519 signature
//! by that key over [`CHECKPOINT_LABEL`] `||` N as 8 big-endian bytes `||` the 32 bytes of
//! H. A peer or auditor who keeps one can later prove that a log was truncated or
//! rewritten before that point (see [`super::verify::VerifyOptions::checkpoint`]).

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::canonical::CanonicalError;
use super::event::AuditEvent;
use super::record::{Record, RecordHash, Timestamp, strict_hex};

/// Domain-separation prefix of a standalone checkpoint's signed message.
pub const CHECKPOINT_LABEL: &[u8] = b"blindmatch-audit-checkpoint-v1\n";

/// Where a chain ends: how many records it has and the hash of the last one.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ChainHead {
    /// Number of records, which is also the next record's `seq`.
    pub count: u64,
    /// Hash of the last record ([`RecordHash::ZERO`] for an empty log).
    pub head_hash: RecordHash,
}

/// An event that cannot be sealed at this point of the chain.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The first record must be `node_initialised`.
    #[error("the first record of an audit log must be node_initialised, not {0}")]
    NotInitialised(&'static str),
    /// `node_initialised` may only be the first record.
    #[error("node_initialised may only be the first record of an audit log")]
    AlreadyInitialised,
    /// The `node_initialised` event names another key than the one signing.
    #[error("node_initialised names audit key {named}, but the log is signed with {signing}")]
    KeyMismatch {
        /// Key in the event.
        named: String,
        /// Key that signs.
        signing: String,
    },
    /// A checkpoint event that does not describe the chain it is added to.
    #[error("a checkpoint record must carry the current count and head hash")]
    CheckpointMismatch,
    /// A value without canonical encoding (e.g. a count above 2^53-1).
    #[error("event cannot be encoded: {0}")]
    Canonical(#[from] CanonicalError),
    /// The event did not serialise to an object (a bug).
    #[error("event cannot be encoded: {0}")]
    Encode(String),
}

impl ChainHead {
    /// The head of an empty log.
    pub const EMPTY: ChainHead = ChainHead {
        count: 0,
        head_hash: RecordHash::ZERO,
    };

    /// The head after `record`.
    pub fn after(record: &Record) -> ChainHead {
        ChainHead {
            count: record.seq + 1,
            head_hash: record.hash,
        }
    }

    /// Whether the next record should be a checkpoint when one is written every `every`
    /// records: at `seq` `every - 1`, `2 * every - 1`, …. Depends only on the position, so
    /// a node needs no state beyond the head to keep the rhythm. `every` below 2 means never.
    pub fn checkpoint_due(&self, every: u64) -> bool {
        every > 1 && self.count % every == every - 1
    }

    /// The checkpoint event describing this head.
    pub fn checkpoint_event(&self) -> AuditEvent {
        AuditEvent::Checkpoint {
            count: self.count,
            head_hash: self.head_hash,
        }
    }

    /// Seals `event` as the next record, signed by `key`, and returns it; the caller
    /// writes `record.to_line()` plus a line feed and then moves the head with
    /// [`ChainHead::after`].
    pub fn seal(
        &self,
        ts: Timestamp,
        event: &AuditEvent,
        key: &SigningKey,
    ) -> Result<Record, SealError> {
        match event {
            AuditEvent::NodeInitialised { audit_key, .. } => {
                if self.count != 0 {
                    return Err(SealError::AlreadyInitialised);
                }
                let signing = hex::encode(key.verifying_key().as_bytes());
                if *audit_key != signing {
                    return Err(SealError::KeyMismatch {
                        named: audit_key.clone(),
                        signing,
                    });
                }
            }
            other if self.count == 0 => return Err(SealError::NotInitialised(other.type_name())),
            AuditEvent::Checkpoint { count, head_hash }
                if *count != self.count || *head_hash != self.head_hash =>
            {
                return Err(SealError::CheckpointMismatch);
            }
            _ => {}
        }
        let (record_type, fields) = event
            .to_parts()
            .map_err(|e| SealError::Encode(e.to_string()))?;
        let mut record = Record {
            seq: self.count,
            ts,
            prev: self.head_hash,
            record_type: record_type.to_owned(),
            fields,
            hash: RecordHash::ZERO,
            sig: [0; 64],
        };
        record.hash = record.compute_hash()?;
        record.sig = key.sign(&record.hash.0).to_bytes();
        // Checks the whole line encodes, so that nothing unwritable is handed out.
        record.to_line()?;
        Ok(record)
    }
}

/// A signed statement "this log had `count` records, the last with hash `head_hash`".
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Checkpoint {
    /// Number of records covered.
    pub count: u64,
    /// Hash of record `count - 1`.
    pub head_hash: RecordHash,
    /// The audit public key that signed it.
    pub key: VerifyingKey,
    /// Signature over [`Checkpoint::message`].
    pub sig: [u8; 64],
}

/// A checkpoint file that cannot be used.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not the JSON shape of a checkpoint.
    #[error("not a checkpoint: {0}")]
    Malformed(String),
    /// The key is not a valid Ed25519 public key.
    #[error("checkpoint key is not a valid Ed25519 public key")]
    BadKey,
    /// The signature does not verify under the checkpoint's key.
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// A checkpoint over no records proves nothing.
    #[error("checkpoint covers no records")]
    Empty,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointJson {
    count: u64,
    head_hash: RecordHash,
    key: String,
    sig: String,
}

impl Checkpoint {
    /// Signs a checkpoint of `head`. An empty head is refused.
    pub fn sign(head: &ChainHead, key: &SigningKey) -> Result<Checkpoint, CheckpointError> {
        if head.count == 0 {
            return Err(CheckpointError::Empty);
        }
        let sig = key
            .sign(&Self::message(head.count, &head.head_hash))
            .to_bytes();
        Ok(Checkpoint {
            count: head.count,
            head_hash: head.head_hash,
            key: key.verifying_key(),
            sig,
        })
    }

    /// The signed message: label, count (big-endian u64), head hash.
    pub fn message(count: u64, head_hash: &RecordHash) -> Vec<u8> {
        let mut m = Vec::with_capacity(CHECKPOINT_LABEL.len() + 40);
        m.extend_from_slice(CHECKPOINT_LABEL);
        m.extend_from_slice(&count.to_be_bytes());
        m.extend_from_slice(&head_hash.0);
        m
    }

    /// Checks the signature under the checkpoint's own key; whether that key is the one
    /// expected is the caller's question.
    pub fn verify(&self) -> Result<(), CheckpointError> {
        if self.count == 0 {
            return Err(CheckpointError::Empty);
        }
        self.key
            .verify_strict(
                &Self::message(self.count, &self.head_hash),
                &Signature::from_bytes(&self.sig),
            )
            .map_err(|_| CheckpointError::BadSignature)
    }

    /// The JSON form, one line without a line feed.
    pub fn to_json(&self) -> String {
        let json = CheckpointJson {
            count: self.count,
            head_hash: self.head_hash,
            key: hex::encode(self.key.as_bytes()),
            sig: hex::encode(self.sig),
        };
        // Serialising a struct of integers and strings to JSON cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Parses the JSON form and checks the signature.
    pub fn from_json(text: &str) -> Result<Checkpoint, CheckpointError> {
        let json: CheckpointJson = serde_json::from_str(text.trim())
            .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let key_bytes = strict_hex::<32>(&json.key).ok_or(CheckpointError::BadKey)?;
        let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| CheckpointError::BadKey)?;
        let sig = strict_hex::<64>(&json.sig).ok_or_else(|| {
            CheckpointError::Malformed("sig must be 128 lowercase hex digits".into())
        })?;
        let checkpoint = Checkpoint {
            count: json.count,
            head_hash: json.head_hash,
            key,
            sig,
        };
        checkpoint.verify()?;
        Ok(checkpoint)
    }
}
