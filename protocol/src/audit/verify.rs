//! Verifying a log: every line, link, hash and signature, and optionally against a
//! checkpoint held outside the log.
//!
//! What a successful verification proves depends on where the key came from
//! ([`KeySource`]). With a key obtained independently (from `blindmatch id` of the node, or
//! from its operator), it proves that the node holding that key wrote exactly these records
//! in this order, and that nobody without the key changed, removed, inserted or reordered
//! one — except records after the last one, which only an external [`Checkpoint`] reveals.
//! With the key taken from the log's own first record, it proves only that the log is
//! internally consistent: whoever rewrites the whole log with a fresh key also passes.
//!
//! No log ever proves that the node recorded the truth; comparing two nodes' logs of the
//! same sessions with [`super::crosscheck`] catches a node whose story differs from its
//! peer's.

use std::collections::{HashMap, HashSet};
use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};

use super::chain::{ChainHead, Checkpoint, CheckpointError};
use super::event::AuditEvent;
use super::record::{LineError, Record, RecordHash, Timestamp, strict_hex};

/// Verifies a whole log held as text. Shorthand for [`verify_log_bytes`] with `key` and
/// default options (every signature, no external checkpoint).
pub fn verify_log(text: &str, key: Option<&VerifyingKey>) -> Result<VerifyReport, VerifyFault> {
    let options = VerifyOptions {
        key: key.copied(),
        ..VerifyOptions::default()
    };
    verify_log_bytes(text.as_bytes(), &options)
}

/// Verifies a whole log file's bytes.
pub fn verify_log_bytes(
    bytes: &[u8],
    options: &VerifyOptions,
) -> Result<VerifyReport, VerifyFault> {
    LogVerifier::new(options.clone()).run(bytes)
}

/// Reads the records of a log without checking links, hashes or signatures (verify first),
/// stopping at the first line that is not a record. Returns the records read and the fault
/// that stopped reading, if any.
pub fn read_records(bytes: &[u8]) -> (Vec<Record>, Option<VerifyFault>) {
    let mut records = Vec::new();
    let mut offset = 0u64;
    let mut lines = bytes.split_inclusive(|&b| b == b'\n').peekable();
    let mut line_no = 0u64;
    while let Some(chunk) = lines.next() {
        line_no += 1;
        let Some(line) = chunk.strip_suffix(b"\n") else {
            return (records, Some(torn(line_no, offset, chunk.len(), false)));
        };
        match Record::parse_line(line) {
            Ok(r) => records.push(r),
            Err(e) if e.is_unreadable() && lines.peek().is_none() => {
                return (records, Some(torn(line_no, offset, chunk.len(), true)));
            }
            Err(e) => {
                return (
                    records,
                    Some(VerifyFault::at(line_no, FaultKind::Unreadable(e))),
                );
            }
        }
        offset += chunk.len() as u64;
    }
    (records, None)
}

/// How to verify.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The node's audit public key, obtained independently of the log. `None` takes the
    /// key from the log's `node_initialised` record, which proves internal consistency only.
    pub key: Option<VerifyingKey>,
    /// A checkpoint held outside the log: the log must have at least `count` records and
    /// record `count - 1` must have `head_hash`, or it was truncated or rewritten.
    pub checkpoint: Option<Checkpoint>,
    /// Which signatures to check.
    pub signatures: SignatureCheck,
}

/// Which record signatures a verification checks.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum SignatureCheck {
    /// Every record's signature: what an auditor wants.
    #[default]
    Every,
    /// Only the last record's. Since every hash covers the previous one, a valid chain
    /// under a valid head signature authenticates every record's *contents*, but an altered
    /// signature on an earlier record goes unnoticed. For a node continuing its own log.
    HeadOnly,
}

/// Where the verifying key came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeySource {
    /// Given by the caller: the log was signed by that key.
    Given,
    /// Taken from the log's first record: the log is only internally consistent.
    FromLog,
}

/// What a log that verifies contains.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifyReport {
    /// Number of records.
    pub records: u64,
    /// Count and hash of the last record, e.g. to export as a checkpoint.
    pub head: ChainHead,
    /// The key the signatures were checked with.
    pub key: VerifyingKey,
    /// Where that key came from.
    pub key_source: KeySource,
    /// Which signatures were checked.
    pub signatures: SignatureCheck,
    /// Timestamp of the first record.
    pub first_ts: Timestamp,
    /// Timestamp of the last record.
    pub last_ts: Timestamp,
    /// Distinct session ids seen.
    pub sessions: u64,
    /// `session_completed` records.
    pub sessions_completed: u64,
    /// `session_aborted` records.
    pub sessions_aborted: u64,
    /// `session_refused` records.
    pub sessions_refused: u64,
    /// `checkpoint` records inside the log.
    pub checkpoints: u64,
    /// Peers' signed session receipts checked (signature, pinned key, session).
    pub receipts: u64,
    /// Records whose type this version does not know (written by a newer node); their
    /// integrity is verified, their meaning is not.
    pub unknown_types: u64,
    /// Records whose timestamp is earlier than the one before (the node's clock was set
    /// back). Not a fault — the order of the chain is what counts — but worth a look.
    pub clock_regressions: u64,
    /// The count of the external checkpoint the log was checked against, if one was given.
    pub checked_against_checkpoint: Option<u64>,
}

/// The first thing wrong with a log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifyFault {
    /// 1-based line number of the bad record, when the fault is in one.
    pub line: Option<u64>,
    /// What is wrong.
    pub kind: FaultKind,
}

/// What is wrong with a log.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum FaultKind {
    /// There is no record.
    #[error("the log holds no records")]
    Empty,
    /// The last line is incomplete or unreadable, as a crash during a write leaves it.
    #[error(
        "the last line is incomplete ({bytes} bytes at byte offset {offset}{}); most likely the node crashed while writing it. Records before it are intact; `blindmatch audit repair` moves it aside and records the repair",
        if *.terminated { ", unreadable" } else { ", no line feed at the end" }
    )]
    TornTail {
        /// Byte offset where the torn line starts.
        offset: u64,
        /// Its length, including a line feed if there is one.
        bytes: u64,
        /// Whether it ends in a line feed (then it is unreadable JSON).
        terminated: bool,
    },
    /// The line is not a well-formed record.
    #[error("not a valid record: {0}")]
    Unreadable(LineError),
    /// Wrong sequence number.
    #[error(
        "record has seq {found} where {expected} was expected: a record was removed, inserted or moved"
    )]
    SeqMismatch {
        /// The seq the chain expects.
        expected: u64,
        /// The seq in the record.
        found: u64,
    },
    /// `prev` is not the previous record's hash.
    #[error(
        "prev does not match the previous record's hash: a record before it was altered, removed or moved"
    )]
    PrevMismatch,
    /// `hash` does not match the record's contents.
    #[error(
        "hash does not match the record's contents: the record was altered after it was written"
    )]
    HashMismatch,
    /// The signature does not verify.
    #[error("signature does not verify under the audit key {0}")]
    BadSignature(String),
    /// A completed session's stored peer receipt does not check out.
    #[error("the peer's session receipt stored in this record is not valid: {0}")]
    BadReceipt(String),
    /// The first record is not `node_initialised`.
    #[error("the first record must be node_initialised, found {0}")]
    NotInitialised(String),
    /// `node_initialised` after the first record.
    #[error("node_initialised appears again after the first record")]
    InitialisedAgain,
    /// `node_initialised` carries no valid Ed25519 key.
    #[error("node_initialised carries no valid Ed25519 audit key")]
    BadAuditKey,
    /// The log names another audit key than the one given.
    #[error(
        "the log's audit key is {log_key}, not the expected {expected}: it was written (or rewritten) by another key"
    )]
    KeyMismatch {
        /// Key in `node_initialised`.
        log_key: String,
        /// Key given.
        expected: String,
    },
    /// The fields do not fit the record type.
    #[error("fields do not fit the record type: {0}")]
    InvalidEvent(String),
    /// A checkpoint record whose count or head hash is not its own seq and prev.
    #[error("checkpoint record does not describe the records before it")]
    CheckpointRecordMismatch,
    /// The external checkpoint is unusable.
    #[error("the checkpoint given is unusable: {0}")]
    CheckpointInvalid(CheckpointError),
    /// The external checkpoint was signed by another key than the log's.
    #[error("the checkpoint given was signed by {checkpoint_key}, not by the log's key {log_key}")]
    CheckpointKeyMismatch {
        /// Key of the checkpoint.
        checkpoint_key: String,
        /// Key of the log.
        log_key: String,
    },
    /// Fewer records than the external checkpoint covers.
    #[error(
        "the log has {records} records but the checkpoint covers {checkpoint_count}: records were removed from its end"
    )]
    Truncated {
        /// Records in the log.
        records: u64,
        /// Records the checkpoint covers.
        checkpoint_count: u64,
    },
    /// The record at the checkpoint's position has another hash.
    #[error(
        "this record's hash differs from the checkpoint's head hash for record {checkpoint_count}: the log was rewritten up to here"
    )]
    Rewritten {
        /// Records the checkpoint covers.
        checkpoint_count: u64,
    },
}

impl VerifyFault {
    fn at(line: u64, kind: FaultKind) -> VerifyFault {
        VerifyFault {
            line: Some(line),
            kind,
        }
    }

    fn whole_log(kind: FaultKind) -> VerifyFault {
        VerifyFault { line: None, kind }
    }

    /// Whether this is a torn last line, which `audit repair` can fix.
    pub fn is_torn_tail(&self) -> bool {
        matches!(self.kind, FaultKind::TornTail { .. })
    }
}

impl fmt::Display for VerifyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for VerifyFault {}

fn torn(line: u64, offset: u64, bytes: usize, terminated: bool) -> VerifyFault {
    VerifyFault::at(
        line,
        FaultKind::TornTail {
            offset,
            bytes: bytes as u64,
            terminated,
        },
    )
}

/// A verifier fed one line at a time, for logs read incrementally; [`verify_log_bytes`] is
/// exactly `LogVerifier::new(options).run(bytes)`. Cloning snapshots its state.
#[derive(Clone, Debug)]
pub struct LogVerifier {
    options: VerifyOptions,
    head: ChainHead,
    line: u64,
    offset: u64,
    key: Option<(VerifyingKey, KeySource)>,
    first_ts: Option<Timestamp>,
    last_ts: Option<Timestamp>,
    session_ids: HashSet<String>,
    completed: u64,
    aborted: u64,
    refused: u64,
    checkpoints: u64,
    receipts: u64,
    /// Audit keys the log pinned, by peer fingerprint.
    pinned_keys: HashMap<String, String>,
    unknown_types: u64,
    clock_regressions: u64,
    head_sig: Option<(u64, RecordHash, [u8; 64])>,
}

impl LogVerifier {
    /// A verifier at the start of a log.
    pub fn new(options: VerifyOptions) -> LogVerifier {
        LogVerifier {
            options,
            head: ChainHead::EMPTY,
            line: 0,
            offset: 0,
            key: None,
            first_ts: None,
            last_ts: None,
            session_ids: HashSet::new(),
            completed: 0,
            aborted: 0,
            refused: 0,
            checkpoints: 0,
            receipts: 0,
            pinned_keys: HashMap::new(),
            unknown_types: 0,
            clock_regressions: 0,
            head_sig: None,
        }
    }

    /// The chain head after the lines accepted so far.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Bytes of the log accepted so far (each line with its line feed).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Verifies `rest`, the remainder of the log after the lines pushed so far, and
    /// finishes. A last line without line feed, or an unreadable last line, is
    /// [`FaultKind::TornTail`].
    pub fn run(mut self, rest: &[u8]) -> Result<VerifyReport, VerifyFault> {
        let mut chunks = rest.split_inclusive(|&b| b == b'\n').peekable();
        while let Some(chunk) = chunks.next() {
            let Some(line) = chunk.strip_suffix(b"\n") else {
                return Err(torn(self.line + 1, self.offset, chunk.len(), false));
            };
            let (line_no, offset) = (self.line + 1, self.offset);
            match self.push_line(line) {
                Err(VerifyFault {
                    kind: FaultKind::Unreadable(e),
                    ..
                }) if e.is_unreadable() && chunks.peek().is_none() => {
                    return Err(torn(line_no, offset, chunk.len(), true));
                }
                result => result?,
            }
        }
        self.finish()
    }

    /// Verifies one complete line (without its line feed) as the next record.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), VerifyFault> {
        self.line += 1;
        let line_no = self.line;
        let fault = |kind| VerifyFault::at(line_no, kind);
        let record = Record::parse_line(line).map_err(|e| fault(FaultKind::Unreadable(e)))?;
        if record.seq != self.head.count {
            return Err(fault(FaultKind::SeqMismatch {
                expected: self.head.count,
                found: record.seq,
            }));
        }
        if record.prev != self.head.head_hash {
            return Err(fault(FaultKind::PrevMismatch));
        }
        let computed = record
            .compute_hash()
            .map_err(|e| fault(FaultKind::Unreadable(LineError::Canonical(e))))?;
        if computed != record.hash {
            return Err(fault(FaultKind::HashMismatch));
        }
        let event = record
            .event()
            .map_err(|e| fault(FaultKind::InvalidEvent(e.to_string())))?;
        let key = match (&event, record.seq) {
            (Some(AuditEvent::NodeInitialised { audit_key, .. }), 0) => {
                self.resolve_key(audit_key, line_no)?
            }
            (_, 0) => return Err(fault(FaultKind::NotInitialised(record.record_type.clone()))),
            (Some(AuditEvent::NodeInitialised { .. }), _) => {
                return Err(fault(FaultKind::InitialisedAgain));
            }
            _ => match self.key {
                Some((key, _)) => key,
                // Unreachable: the record with seq 0 sets the key or fails.
                None => return Err(fault(FaultKind::NotInitialised(record.record_type.clone()))),
            },
        };
        match self.options.signatures {
            SignatureCheck::Every => {
                if !record.signature_valid(&key) {
                    return Err(fault(FaultKind::BadSignature(hex::encode(key.as_bytes()))));
                }
            }
            SignatureCheck::HeadOnly => self.head_sig = Some((line_no, record.hash, record.sig)),
        }
        if let Some(checkpoint) = &self.options.checkpoint
            && checkpoint.count == record.seq + 1
        {
            self.check_external_checkpoint(&key)?;
            if checkpoint.head_hash != record.hash {
                return Err(fault(FaultKind::Rewritten {
                    checkpoint_count: checkpoint.count,
                }));
            }
        }
        match &event {
            None => self.unknown_types += 1,
            Some(AuditEvent::Checkpoint { count, head_hash }) => {
                if *count != record.seq || *head_hash != record.prev {
                    return Err(fault(FaultKind::CheckpointRecordMismatch));
                }
                self.checkpoints += 1;
            }
            Some(AuditEvent::SessionCompleted(facts)) => {
                self.completed += 1;
                let pinned = self.pinned_keys.get(&facts.peer_fingerprint);
                match super::receipts::check_peer_receipt(facts, pinned.map(String::as_str)) {
                    Ok(Some(_)) => self.receipts += 1,
                    Ok(None) => {}
                    Err(err) => return Err(fault(FaultKind::BadReceipt(err.to_string()))),
                }
            }
            Some(AuditEvent::PeerAdded {
                fingerprint,
                audit_key: Some(key),
                ..
            })
            | Some(AuditEvent::PeerAuditKeyPinned {
                fingerprint,
                audit_key: key,
                ..
            }) => {
                self.pinned_keys.insert(fingerprint.clone(), key.clone());
            }
            Some(AuditEvent::PeerRemoved { fingerprint, .. }) => {
                self.pinned_keys.remove(fingerprint);
            }
            Some(AuditEvent::SessionAborted { .. }) => self.aborted += 1,
            Some(AuditEvent::SessionRefused { .. }) => self.refused += 1,
            Some(_) => {}
        }
        if let Some(facts) = event.as_ref().and_then(AuditEvent::session)
            && !self.session_ids.contains(&facts.session_id)
        {
            self.session_ids.insert(facts.session_id.clone());
        }
        if self.last_ts.as_ref().is_some_and(|last| record.ts < *last) {
            self.clock_regressions += 1;
        }
        if self.first_ts.is_none() {
            self.first_ts = Some(record.ts.clone());
        }
        self.head = ChainHead::after(&record);
        self.last_ts = Some(record.ts);
        self.offset += line.len() as u64 + 1;
        Ok(())
    }

    /// Ends verification: checks what can only be checked at the end of the log.
    pub fn finish(self) -> Result<VerifyReport, VerifyFault> {
        let (Some((key, key_source)), Some(first_ts), Some(last_ts)) =
            (self.key, self.first_ts, self.last_ts)
        else {
            return Err(VerifyFault::whole_log(FaultKind::Empty));
        };
        if let Some((line, hash, sig)) = self.head_sig
            && key
                .verify_strict(&hash.0, &Signature::from_bytes(&sig))
                .is_err()
        {
            return Err(VerifyFault::at(
                line,
                FaultKind::BadSignature(hex::encode(key.as_bytes())),
            ));
        }
        let mut checked_against_checkpoint = None;
        if let Some(checkpoint) = &self.options.checkpoint {
            check_checkpoint(checkpoint, &key)?;
            if self.head.count < checkpoint.count {
                return Err(VerifyFault::whole_log(FaultKind::Truncated {
                    records: self.head.count,
                    checkpoint_count: checkpoint.count,
                }));
            }
            checked_against_checkpoint = Some(checkpoint.count);
        }
        Ok(VerifyReport {
            records: self.head.count,
            head: self.head,
            key,
            key_source,
            signatures: self.options.signatures,
            first_ts,
            last_ts,
            sessions: self.session_ids.len() as u64,
            sessions_completed: self.completed,
            sessions_aborted: self.aborted,
            sessions_refused: self.refused,
            checkpoints: self.checkpoints,
            receipts: self.receipts,
            unknown_types: self.unknown_types,
            clock_regressions: self.clock_regressions,
            checked_against_checkpoint,
        })
    }

    fn resolve_key(&mut self, audit_key: &str, line: u64) -> Result<VerifyingKey, VerifyFault> {
        let log_key = strict_hex::<32>(audit_key)
            .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
            .ok_or(VerifyFault::at(line, FaultKind::BadAuditKey))?;
        let resolved = match self.options.key {
            Some(expected) if expected != log_key => {
                return Err(VerifyFault::at(
                    line,
                    FaultKind::KeyMismatch {
                        log_key: audit_key.to_owned(),
                        expected: hex::encode(expected.as_bytes()),
                    },
                ));
            }
            Some(expected) => (expected, KeySource::Given),
            None => (log_key, KeySource::FromLog),
        };
        self.key = Some(resolved);
        Ok(resolved.0)
    }

    fn check_external_checkpoint(&self, key: &VerifyingKey) -> Result<(), VerifyFault> {
        match &self.options.checkpoint {
            Some(checkpoint) => check_checkpoint(checkpoint, key),
            None => Ok(()),
        }
    }
}

fn check_checkpoint(checkpoint: &Checkpoint, key: &VerifyingKey) -> Result<(), VerifyFault> {
    checkpoint
        .verify()
        .map_err(|e| VerifyFault::whole_log(FaultKind::CheckpointInvalid(e)))?;
    if checkpoint.key != *key {
        return Err(VerifyFault::whole_log(FaultKind::CheckpointKeyMismatch {
            checkpoint_key: hex::encode(checkpoint.key.as_bytes()),
            log_key: hex::encode(key.as_bytes()),
        }));
    }
    Ok(())
}
