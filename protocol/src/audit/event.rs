//! The typed events a node records, and their record `type` and `fields`.
//!
//! This list *is* the privacy boundary of the audit log: every field is a name the operator
//! chose, a fingerprint, a count, a version, a hash over protocol messages or over a whole
//! input file, or a duration. No identifier, hash of an identifier, blinded point or secret
//! has a place here.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::record::RecordHash;

/// One thing that happened on a node, as recorded in its audit log.
///
/// Encoded as a record whose `type` is the snake_case variant name (see
/// [`AuditEvent::type_name`]) and whose `fields` are the variant's fields; optional values
/// are written as `null`, never omitted.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(tag = "type", content = "fields", rename_all = "snake_case")]
pub enum AuditEvent {
    /// The node was set up; always and only the first record of a log.
    NodeInitialised {
        /// The node's name.
        name: String,
        /// Its TLS certificate fingerprint.
        fingerprint: String,
        /// Its audit public key (Ed25519, 64 lowercase hex digits), which signs every record.
        audit_key: String,
    },
    /// A peer was pinned.
    PeerAdded {
        /// Local name of the peer.
        name: String,
        /// The pinned certificate fingerprint.
        fingerprint: String,
        /// The peer's audit key (64 hex digits), when pinned with it; otherwise it is
        /// pinned at the first session (see `peer_audit_key_pinned`).
        #[serde(default)]
        audit_key: Option<String>,
    },
    /// A peer's audit key was pinned from the first receipt it signed (trust on first
    /// use), or changed by the operator.
    PeerAuditKeyPinned {
        /// Local name of the peer.
        name: String,
        /// Its certificate fingerprint.
        fingerprint: String,
        /// The audit key (64 hex digits) its receipts must verify under from now on.
        audit_key: String,
        /// `first-session` or `operator`.
        source: String,
    },
    /// A running `serve` loaded a changed `node.toml` (pins and policy take effect for
    /// the next handshake; sessions of removed peers are aborted).
    ConfigReloaded {
        /// SHA-256 (hex) of the file loaded.
        config_sha256: String,
        /// Peers pinned by it.
        peers: u64,
    },
    /// A running `serve` refused a changed `node.toml` it could not validate, and kept
    /// the configuration it had.
    ConfigRejected {
        /// SHA-256 (hex) of the file refused.
        config_sha256: String,
        /// What is wrong with it (key and problem; never personal data).
        problem: String,
    },
    /// A peer was removed.
    PeerRemoved {
        /// Local name of the peer.
        name: String,
        /// The certificate fingerprint that was pinned.
        fingerprint: String,
    },
    /// A dataset was imported.
    DatasetImported {
        /// Dataset name.
        name: String,
        /// Rows accepted.
        accepted: u64,
        /// Rows rejected as invalid.
        rejected: u64,
        /// Rows dropped as duplicates.
        duplicates: u64,
        /// HMAC-SHA256 (hex), under a key derived from this node's audit key, of the
        /// SHA-256 of the whole input file: the operator can check which file was
        /// imported (`blindmatch dataset file-mac FILE`), while nobody without the key
        /// can test guesses of a small file's contents against the log.
        #[serde(default)]
        input_hmac: Option<String>,
        /// SHA-256 of the whole input file (hex), in records written before keyed
        /// hashes; `null` in new ones (a small file's SHA-256 can be brute-forced).
        #[serde(default)]
        input_sha256: Option<String>,
        /// Identifier normalisation version applied.
        normalisation_version: u32,
    },
    /// A dataset was deleted.
    DatasetRemoved {
        /// Dataset name.
        name: String,
    },
    /// Records were revoked from a dataset (`dataset revoke`: consent withdrawn) and the
    /// dataset was rewritten without them. Neither the records nor their ids are named.
    DatasetRevoked {
        /// Dataset name.
        name: String,
        /// The dataset's new version tag (random, drawn at the rewrite): sessions and
        /// receipts name it. It says nothing about any record.
        version: String,
        /// Records removed.
        revoked: u64,
        /// Records left.
        remaining: u64,
    },
    /// A session was asked for (initiator: `Hello` sent; responder: `Hello` received).
    SessionRequested(SessionFacts),
    /// The responder accepted the session.
    SessionAccepted(SessionFacts),
    /// A node's policy refused the session (the responder on `Hello`, or the initiator
    /// on `Accept`). Refusals are coalesced per peer and reason like
    /// `connection_aborted`: at most one record per interval, `attempts` counting the
    /// refusals it stands for, `facts` those of the latest.
    SessionRefused {
        /// What was known of the session.
        #[serde(flatten)]
        facts: SessionFacts,
        /// The refusal reason.
        reason: String,
        /// Refusals this record accounts for (1, or more when coalesced).
        #[serde(default = "one")]
        attempts: u64,
    },
    /// The session finished and both sides confirmed the transcript.
    SessionCompleted(SessionFacts),
    /// The session ended with an error.
    SessionAborted {
        /// What was known of the session when it ended.
        #[serde(flatten)]
        facts: SessionFacts,
        /// The close code sent or received.
        close_code: u32,
        /// What went wrong (never personal data).
        error: String,
    },
    /// A pinned peer's connection ended before a valid `Hello` (it opened no stream, sent
    /// something undecodable, closed, or went silent), so no session exists. Coalesced by
    /// the node: at most one record per peer, reason and close code per interval, with
    /// `attempts` counting the ones it stands for.
    ConnectionAborted {
        /// The peer's certificate fingerprint.
        peer_fingerprint: String,
        /// Our local name for the peer.
        peer_name: String,
        /// Why, in fixed words (never anything the peer sent).
        reason: String,
        /// The close code the connection ended with.
        close_code: u32,
        /// Failed attempts this record accounts for (1, or more when repeated attempts
        /// were not recorded one by one).
        attempts: u64,
    },
    /// An index of a dataset was built or updated (`dataset index`): a new epoch with a
    /// fresh key, or a delta segment under the current key. Counts and random ids only:
    /// never a key, an identifier or a tag.
    IndexBuilt {
        /// Dataset name.
        name: String,
        /// The dataset version tag the index now describes (hex).
        version: String,
        /// The index epoch (16 random bytes, hex): names its key, which stays secret.
        epoch: String,
        /// The epoch whose key this build destroyed, when it started a new one: indexes
        /// of that epoch match nothing from now on.
        previous_epoch: Option<String>,
        /// The segment written (0 for a new epoch's base).
        segment: u32,
        /// Identifiers (tags) in that segment.
        added: u64,
        /// Identifiers (tags) in the whole index.
        elements: u64,
        /// Records of the dataset its policy kept.
        records: u64,
        /// Bytes of the index file.
        bytes: u64,
        /// Why a new epoch or a delta.
        reason: String,
        /// Wall-clock duration of the build, in milliseconds.
        duration_ms: u64,
    },
    /// A dataset's index and its key were deleted (`dataset remove`).
    IndexRemoved {
        /// Dataset name.
        name: String,
        /// The epoch that ended (hex), if there was an index.
        epoch: Option<String>,
        /// Why.
        reason: String,
    },
    /// A signed checkpoint inside the log: the number of records before it and the hash of
    /// the last of them (equal to this record's `seq` and `prev`).
    Checkpoint {
        /// Records before this one.
        count: u64,
        /// Hash of record `count - 1`.
        head_hash: RecordHash,
    },
    /// A torn last line (from a crash during a write) was moved out of the log.
    AuditRepaired {
        /// Length of the torn bytes.
        torn_bytes: u64,
        /// SHA-256 (hex) of the torn bytes, which are kept in `moved_to`.
        torn_sha256: String,
        /// File name (in the data directory) the torn bytes were moved to.
        moved_to: String,
    },
}

/// Which end of the session this node was.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sent `Hello`.
    Initiator,
    /// Received `Hello`.
    Responder,
}

impl Role {
    /// `initiator` or `responder`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Initiator => "initiator",
            Role::Responder => "responder",
        }
    }
}

/// What a node knows about a session, recorded in every session event.
///
/// Sizes are of deduplicated sets; `peer_set_size` and `intersection_size` are `None`
/// when this node did not (yet) learn them, or the output mode does not let it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct SessionFacts {
    /// The session id (hex), chosen by the initiator, the same in both logs.
    pub session_id: String,
    /// Our role.
    pub role: Role,
    /// Our certificate fingerprint.
    pub our_fingerprint: String,
    /// The peer's certificate fingerprint.
    pub peer_fingerprint: String,
    /// Our local name for the peer.
    pub peer_name: String,
    /// The dataset: the responder's offered dataset name, as named in `Hello`.
    pub dataset: String,
    /// The declared purpose.
    pub purpose: String,
    /// The declared legal basis (may be empty).
    pub legal_basis: String,
    /// Output mode: `both`, `initiator`, `responder` or `cardinality`.
    pub mode: String,
    /// Our set size.
    pub our_set_size: u64,
    /// The peer's declared set size, once known.
    pub peer_set_size: Option<u64>,
    /// Number of matches, as far as the mode lets this node know it.
    pub intersection_size: Option<u64>,
    /// Protocol version spoken.
    pub protocol_version: u32,
    /// Identifier normalisation version.
    pub normalisation_version: u32,
    /// Transcript hash (hex), once the session finished.
    pub transcript_hash: Option<String>,
    /// Protocol bytes sent.
    pub bytes_sent: u64,
    /// Protocol bytes received.
    pub bytes_received: u64,
    /// Wall-clock duration so far, in milliseconds.
    pub duration_ms: u64,
    /// Our dataset matched in the session, as named to the peer.
    #[serde(default)]
    pub our_dataset: Option<DatasetVersion>,
    /// The peer's dataset, as it named it.
    #[serde(default)]
    pub peer_dataset: Option<DatasetVersion>,
    /// Our records (contacts) matched, as far as the mode lets this node know it: the
    /// figure people read (`intersection_size` counts distinct identifiers).
    #[serde(default)]
    pub matched_records: Option<u64>,
    /// Peer elements we returned re-blinded: what the peer could have learned about. On
    /// an abort, with `replies_received`, how far each side got.
    #[serde(default)]
    pub replies_sent: u64,
    /// Our elements the peer returned re-blinded (proofs checked).
    #[serde(default)]
    pub replies_received: u64,
    /// Our signed session receipt (hex of its wire encoding), once the session finished.
    #[serde(default)]
    pub receipt: Option<String>,
    /// The peer's signed receipt (hex), checked against the session and its audit key:
    /// proof, from this log alone, of what the peer signed.
    #[serde(default)]
    pub peer_receipt: Option<String>,
    /// The run this session belongs to, when one `match` ran several peers.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Index sessions: the index epoch (hex) the identifiers were evaluated under (the
    /// initiator queried, the responder evaluated); empty when the session ended before
    /// the epoch was known to this node; `None` for a PSI session.
    #[serde(default)]
    pub index_epoch: Option<String>,
    /// Index sessions: bytes of the index moved in this session (a download, or the rest
    /// of one; 0 when the initiator's copy was current).
    #[serde(default)]
    pub index_bytes: Option<u64>,
    /// Identifiers charged to the peer's budgets for this session (what it may learn
    /// about our set), recorded when the session is accepted.
    #[serde(default)]
    pub charged: Option<u64>,
}

fn one() -> u64 {
    1
}

/// A dataset as a session names it: its name and version tag (32 hex digits, random).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DatasetVersion {
    /// The dataset's name on its node.
    pub name: String,
    /// Its version tag.
    pub version: String,
}

impl AuditEvent {
    /// Every record type this version knows, in declaration order.
    pub const TYPES: [&'static str; 19] = [
        "node_initialised",
        "peer_added",
        "peer_audit_key_pinned",
        "config_reloaded",
        "config_rejected",
        "peer_removed",
        "dataset_imported",
        "dataset_removed",
        "dataset_revoked",
        "session_requested",
        "session_accepted",
        "session_refused",
        "session_completed",
        "session_aborted",
        "connection_aborted",
        "index_built",
        "index_removed",
        "checkpoint",
        "audit_repaired",
    ];

    /// The record `type` of this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            AuditEvent::NodeInitialised { .. } => "node_initialised",
            AuditEvent::PeerAdded { .. } => "peer_added",
            AuditEvent::PeerAuditKeyPinned { .. } => "peer_audit_key_pinned",
            AuditEvent::ConfigReloaded { .. } => "config_reloaded",
            AuditEvent::ConfigRejected { .. } => "config_rejected",
            AuditEvent::PeerRemoved { .. } => "peer_removed",
            AuditEvent::DatasetImported { .. } => "dataset_imported",
            AuditEvent::DatasetRemoved { .. } => "dataset_removed",
            AuditEvent::DatasetRevoked { .. } => "dataset_revoked",
            AuditEvent::SessionRequested(_) => "session_requested",
            AuditEvent::SessionAccepted(_) => "session_accepted",
            AuditEvent::SessionRefused { .. } => "session_refused",
            AuditEvent::SessionCompleted(_) => "session_completed",
            AuditEvent::SessionAborted { .. } => "session_aborted",
            AuditEvent::ConnectionAborted { .. } => "connection_aborted",
            AuditEvent::IndexBuilt { .. } => "index_built",
            AuditEvent::IndexRemoved { .. } => "index_removed",
            AuditEvent::Checkpoint { .. } => "checkpoint",
            AuditEvent::AuditRepaired { .. } => "audit_repaired",
        }
    }

    /// The session facts, for session events.
    pub fn session(&self) -> Option<&SessionFacts> {
        match self {
            AuditEvent::SessionRequested(f)
            | AuditEvent::SessionAccepted(f)
            | AuditEvent::SessionCompleted(f)
            | AuditEvent::SessionRefused { facts: f, .. }
            | AuditEvent::SessionAborted { facts: f, .. } => Some(f),
            _ => None,
        }
    }

    /// Whether this event ends a session (completed, aborted or refused).
    pub fn is_session_final(&self) -> bool {
        matches!(
            self,
            AuditEvent::SessionCompleted(_)
                | AuditEvent::SessionAborted { .. }
                | AuditEvent::SessionRefused { .. }
        )
    }

    /// The record `type` and `fields` of this event.
    pub fn to_parts(&self) -> Result<(&'static str, Map<String, Value>), serde_json::Error> {
        match serde_json::to_value(self)? {
            Value::Object(mut obj) => match obj.remove("fields") {
                Some(Value::Object(fields)) => Ok((self.type_name(), fields)),
                _ => Err(serde::ser::Error::custom("event has no fields object")),
            },
            _ => Err(serde::ser::Error::custom("event is not an object")),
        }
    }

    /// Decodes a record's `type` and `fields`; `Ok(None)` for a type this version does
    /// not know (a newer node's record).
    pub fn from_parts(
        record_type: &str,
        fields: &Map<String, Value>,
    ) -> Result<Option<AuditEvent>, serde_json::Error> {
        if !Self::TYPES.contains(&record_type) {
            return Ok(None);
        }
        let mut obj = Map::new();
        obj.insert("type".into(), Value::String(record_type.into()));
        obj.insert("fields".into(), Value::Object(fields.clone()));
        serde_json::from_value(Value::Object(obj)).map(Some)
    }
}
