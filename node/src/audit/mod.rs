//! The node's audit log: appending signed records durably to `<data>/audit.jsonl`, and the
//! `blindmatch audit` commands.
//!
//! The record format, canonical encoding, chain rules, verifier and cross-check are pure
//! code in [`blindmatch_protocol::audit`], so an auditor needs no node to check a log. This
//! module adds what needs files and a clock:
//!
//! * [`AuditLog`] appends records, each written in one `write` and `fsync`ed before
//!   [`AuditLog::append`] returns, so an operation is reported done only once its record is
//!   durable; every [`DEFAULT_CHECKPOINT_EVERY`] records it adds a signed checkpoint record.
//!   The file is locked (advisory, `flock`) around each append, so several processes of
//!   the same node (a running `serve` and an admin command) extend one chain in turn.
//! * A crash can at worst leave a torn last line; earlier records are never rewritten.
//!   A torn line is reported, never silently dropped: the log refuses appends until
//!   `blindmatch audit repair` ([`repair`]) moves the torn bytes to a side file and records
//!   an `audit_repaired` event.
//! * [`AuditCommand`] and [`run`]: `verify`, `cross-check`, `show`, `checkpoint`, `repair`.
//! * [`Coalescer`]: at most one record per key per interval, with a count, for events a
//!   peer could repeat at will (connections that end before a valid `Hello`).

mod coalesce;
mod command;
mod log;
mod render;
mod run;

use std::path::PathBuf;

use blindmatch_protocol::audit::{SealError, VerifyFault};

pub use coalesce::{Coalesced, Coalescer};
pub use command::{AuditCommand, run, run_with_output};
pub use log::{
    AuditLog, AuditLogOptions, DEFAULT_CHECKPOINT_EVERY, LOG_FILE, RecordSummary, RepairOutcome,
    repair,
};

/// What can go wrong with the node's audit log.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading, writing, syncing or locking the file failed.
    #[error("audit log {}: {what}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The last line is torn (a crash during a write); nothing is appended until repaired.
    #[error(
        "audit log {} ends in a torn line {line} ({bytes} bytes at byte offset {offset}), left by a crash during a write. \
         Earlier records are intact, but nothing more is recorded until it is repaired: run `blindmatch audit repair`, \
         which moves the torn bytes to a side file and records the repair in the log",
        .path.display()
    )]
    TornTail {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the torn line.
        line: u64,
        /// Byte offset where it starts.
        offset: u64,
        /// Its length.
        bytes: u64,
    },
    /// The log does not verify; the node will not extend a broken chain.
    #[error(
        "audit log {} does not verify ({fault}); the node will not extend a broken chain. \
         Inspect it with `blindmatch audit verify --log {}` and restore it from a backup",
        .path.display(), .path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The first fault.
        fault: VerifyFault,
    },
    /// The log was signed by another key than this node's.
    #[error(
        "audit log {} is signed by audit key {log_key}, but this node's audit key is {node_key}: \
         it belongs to another node or identity; check the data directory",
        .path.display()
    )]
    KeyMismatch {
        /// The file.
        path: PathBuf,
        /// Key named by the log.
        log_key: String,
        /// This node's key.
        node_key: String,
    },
    /// The event does not fit the chain (e.g. anything before `node_initialised`).
    #[error("cannot record the event: {0}")]
    Seal(#[from] SealError),
    /// A write failed half-way and the file could not be restored.
    #[error(
        "audit log {} is unusable after a failed write ({reason}); restart the node, then run `blindmatch audit verify`",
        .path.display()
    )]
    Poisoned {
        /// The file.
        path: PathBuf,
        /// The original failure.
        reason: String,
    },
    /// The system clock gives a time that cannot be written as an RFC 3339 timestamp.
    #[error("the system clock reads a time that cannot be recorded; check the clock")]
    Clock,
    /// A checkpoint of an empty log was asked for.
    #[error("audit log {} holds no records yet: there is nothing to checkpoint", .path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// `repair` found a fault other than a torn last line.
    #[error(
        "audit log {} has a fault that is not a torn last line ({fault}); `audit repair` only fixes an interrupted \
         write, this needs investigation (restore the log from a backup)",
        .path.display()
    )]
    NotRepairable {
        /// The file.
        path: PathBuf,
        /// The fault.
        fault: VerifyFault,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
