//! The audit log, as pure code: record format, canonical encoding, chain, verifier and
//! cross-check. An auditor can verify a node's log with this module alone; the node only
//! adds files, clocks and fsync (`blindmatch_node::audit`).
//!
//! A log is JSON Lines (`audit.jsonl`): one signed record per line, each linked to the one
//! before by its hash, so that changing, removing, inserting or reordering any record breaks
//! the chain or a signature. Periodic `checkpoint` records, and [`Checkpoint`]s exported to
//! peers or auditors, make a truncated log detectable too.
//!
//! * [`record`] — a record, its line format and strict parsing;
//! * [`canonical`] — the canonical encoding the record hash is computed over (the spec a
//!   third-party verifier implements);
//! * [`event`] — the typed events a node records, which are the privacy boundary: no
//!   identifier, hash of one, blinded point or secret has a field here;
//! * [`chain`] — sealing events into records, standalone checkpoints;
//! * [`verify`] — the verifier;
//! * [`crosscheck`] — comparing two nodes' logs of the same sessions;
//! * [`receipts`] — the peers' signed session receipts a log stores.

pub mod canonical;
pub mod chain;
pub mod crosscheck;
pub mod event;
pub mod receipts;
pub mod record;
pub mod verify;

pub use chain::{ChainHead, Checkpoint, CheckpointError, SealError};
pub use crosscheck::{
    CrossCheckReport, Disagreement, NodeIdentity, SessionComparison, SessionSummary, cross_check,
};
pub use event::{AuditEvent, DatasetVersion, Role, SessionFacts};
pub use record::{LineError, Record, RecordHash, Timestamp};
pub use verify::{
    FaultKind, KeySource, LogVerifier, SignatureCheck, VerifyFault, VerifyOptions, VerifyReport,
    read_records, verify_log, verify_log_bytes,
};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
