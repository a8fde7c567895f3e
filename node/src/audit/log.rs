//! [`AuditLog`]: the appender, and [`repair`] for a torn last line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use blindmatch_protocol::audit::{
    AuditEvent, ChainHead, Checkpoint, FaultKind, RecordHash, SignatureCheck, Timestamp,
    VerifyFault, VerifyOptions, read_records, verify_log_bytes,
};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use super::AuditError;
use crate::files::sync_dir;

/// File name of the audit log inside the data directory.
pub const LOG_FILE: &str = "audit.jsonl";

/// Default number of records between checkpoint records.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 64;

/// How an [`AuditLog`] behaves.
#[derive(Clone, Copy, Debug)]
pub struct AuditLogOptions {
    /// A `checkpoint` record is written at every `seq` `k * checkpoint_every - 1`; below 2
    /// means never.
    pub checkpoint_every: u64,
}

impl Default for AuditLogOptions {
    fn default() -> Self {
        AuditLogOptions {
            checkpoint_every: DEFAULT_CHECKPOINT_EVERY,
        }
    }
}

/// What [`AuditLog::append`] wrote.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RecordSummary {
    /// The record's `seq`.
    pub seq: u64,
    /// Its timestamp.
    pub ts: Timestamp,
    /// Its hash.
    pub hash: RecordHash,
    /// The `seq` of a checkpoint record written right after it, if one was due.
    pub checkpoint_seq: Option<u64>,
}

/// What [`repair`] did.
#[derive(Debug)]
pub enum RepairOutcome {
    /// The log verifies (under the node's key, up to its head signature): nothing to do.
    NothingToRepair {
        /// Records in the log.
        records: u64,
    },
    /// The log was intact, but side files of an earlier, interrupted repair were not yet
    /// recorded in it; now they are.
    RecordedEarlierRepair {
        /// The side files now recorded.
        side_files: Vec<PathBuf>,
    },
    /// The torn tail was moved to a side file and the log truncated before it.
    Repaired {
        /// Where the torn bytes are now.
        moved_to: PathBuf,
        /// How many bytes.
        torn_bytes: u64,
        /// The `audit_repaired` record, unless the log is now empty (the torn line was the
        /// very first one, so there is no chain to record it in).
        record: Option<RecordSummary>,
    },
}

/// The node's append-only audit log. One per data directory and process; share it behind
/// a `Mutex`. Appends block on `fsync` (call from `spawn_blocking` in async code if that
/// matters).
pub struct AuditLog {
    path: PathBuf,
    file: File,
    // Our own copy, zeroized on drop like the identity's.
    key: SigningKey,
    head: ChainHead,
    len: u64,
    options: AuditLogOptions,
    poisoned: Option<String>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (or creates) `<data_dir>/audit.jsonl`, checks that the chain is intact and
    /// signed by `key` up to its head, and continues it.
    ///
    /// Fails with [`AuditError::TornTail`] if the last line is torn, and
    /// [`AuditError::Corrupt`] or [`AuditError::KeyMismatch`] if the chain is broken or
    /// another key's. A new, empty log must first receive `node_initialised`.
    pub fn open(data_dir: &Path, key: &SigningKey) -> Result<AuditLog, AuditError> {
        Self::open_with(data_dir, key, AuditLogOptions::default())
    }

    /// [`AuditLog::open`] with options.
    pub fn open_with(
        data_dir: &Path,
        key: &SigningKey,
        options: AuditLogOptions,
    ) -> Result<AuditLog, AuditError> {
        let path = data_dir.join(LOG_FILE);
        let existed = path.exists();
        let file = crate::files::private_file_options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path, "cannot open"))?;
        if !existed {
            sync_dir(data_dir).map_err(io_err(data_dir, "cannot sync the directory of"))?;
        }
        let mut log = AuditLog {
            path,
            file,
            key: key.clone(),
            head: ChainHead::EMPTY,
            len: 0,
            options,
            poisoned: None,
        };
        log.locked(AuditLog::reload)?;
        Ok(log)
    }

    /// Appends `event`, timestamped now, plus a checkpoint record if one is due; returns
    /// once both are on disk (`fsync`ed).
    pub fn append(&mut self, event: AuditEvent) -> Result<RecordSummary, AuditError> {
        if let Some(reason) = &self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
                reason: reason.clone(),
            });
        }
        self.locked(|log| log.append_locked(&event))
    }

    fn append_locked(&mut self, event: &AuditEvent) -> Result<RecordSummary, AuditError> {
        let on_disk = self
            .file
            .metadata()
            .map_err(io_err(&self.path, "cannot stat"))?
            .len();
        if on_disk != self.len {
            // Another process (of this node) appended since; continue after its records.
            self.reload()?;
        }
        let ts = now()?;
        let record = self.head.seal(ts.clone(), event, &self.key)?;
        let mut head = ChainHead::after(&record);
        let mut bytes = line(&record)?;
        let mut checkpoint_seq = None;
        if head.checkpoint_due(self.options.checkpoint_every) {
            let checkpoint = head.seal(ts.clone(), &head.checkpoint_event(), &self.key)?;
            checkpoint_seq = Some(checkpoint.seq);
            head = ChainHead::after(&checkpoint);
            bytes.extend_from_slice(&line(&checkpoint)?);
        }
        self.write_durably(&bytes)?;
        self.head = head;
        Ok(RecordSummary {
            seq: record.seq,
            ts,
            hash: record.hash,
            checkpoint_seq,
        })
    }

    /// A signed checkpoint of the log as it is now, for a peer or auditor to keep: with it,
    /// `blindmatch audit verify --checkpoint` detects a log later truncated or rewritten.
    pub fn export_checkpoint(&self) -> Result<Checkpoint, AuditError> {
        Checkpoint::sign(&self.head, &self.key).map_err(|_| AuditError::Empty {
            path: self.path.clone(),
        })
    }

    /// Where the chain ends.
    pub fn head(&self) -> ChainHead {
        self.head
    }

    /// Whether `node_initialised` has been recorded.
    pub fn is_initialised(&self) -> bool {
        self.head.count > 0
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` holding an exclusive advisory lock (`flock`) on the file, which the kernel
    /// also releases if the process dies.
    fn locked<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        self.file
            .lock()
            .map_err(io_err(&self.path, "cannot lock"))?;
        let result = f(self);
        // Unlocking only fails on an invalid descriptor; closing it releases the lock anyway.
        let _ = self.file.unlock();
        result
    }

    /// Reads the whole file and checks it (every link and hash, the head's signature
    /// under our key, and that it still holds the chain up to our current head, so a log
    /// truncated or rewritten while open is refused); sets `head` and `len`. Call with the
    /// lock held.
    fn reload(&mut self) -> Result<(), AuditError> {
        let mut bytes = Vec::new();
        let mut reader = &self.file;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(io_err(&self.path, "cannot read"))?;
        reader
            .read_to_end(&mut bytes)
            .map_err(io_err(&self.path, "cannot read"))?;
        self.head = check_own_log(&self.path, &bytes, &self.key, &self.head)?;
        self.len = bytes.len() as u64;
        Ok(())
    }

    fn write_durably(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        if let Err(e) = (&self.file).write_all(bytes) {
            // Cut off whatever part was written, so the chain stays whole.
            let restored = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            if let Err(restore) = restored {
                self.poisoned = Some(format!(
                    "write failed: {e}; truncating back failed: {restore}"
                ));
            }
            return Err(AuditError::Io {
                path: self.path.clone(),
                what: "cannot write",
                source: e,
            });
        }
        if let Err(e) = self.file.sync_data() {
            // After a failed fsync the state of the file on disk is unknown.
            self.poisoned = Some(format!("fsync failed: {e}"));
            return Err(AuditError::Io {
                path: self.path.clone(),
                what: "cannot sync",
                source: e,
            });
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
}

/// Repairs a log whose last line is torn: moves the torn bytes to
/// `audit.jsonl.torn-<time>` in the data directory, truncates the log before them, and
/// records an `audit_repaired` event (with the side file's name and the torn bytes'
/// SHA-256). Refuses any other fault. Nothing is ever deleted.
pub fn repair(data_dir: &Path, key: &SigningKey) -> Result<RepairOutcome, AuditError> {
    let path = data_dir.join(LOG_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path, "cannot open"))?;
    file.lock().map_err(io_err(&path, "cannot lock"))?;
    let moved = move_torn_tail(data_dir, &path, &file, key);
    // Unlocking only fails on an invalid descriptor; closing it releases the lock anyway.
    let _ = file.unlock();
    let (moved_to, torn_bytes, torn_sha256, remaining) = match moved? {
        Tail::Intact(0) => return Ok(RepairOutcome::NothingToRepair { records: 0 }),
        Tail::Intact(records) => {
            let recorded = record_pending_side_files(data_dir, key)?;
            return Ok(match recorded.is_empty() {
                true => RepairOutcome::NothingToRepair { records },
                false => RepairOutcome::RecordedEarlierRepair {
                    side_files: recorded,
                },
            });
        }
        Tail::Moved {
            side,
            bytes,
            sha256,
            remaining,
        } => (side, bytes, sha256, remaining),
    };
    let record = if remaining == 0 {
        None
    } else {
        let mut log = AuditLog::open(data_dir, key)?;
        let moved_name = moved_to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Some(log.append(AuditEvent::AuditRepaired {
            torn_bytes,
            torn_sha256,
            moved_to: moved_name,
        })?)
    };
    Ok(RepairOutcome::Repaired {
        moved_to,
        torn_bytes,
        record,
    })
}

/// Records side files from an earlier repair that was interrupted after moving the torn
/// bytes but before recording it, so that no repair goes unrecorded.
fn record_pending_side_files(
    data_dir: &Path,
    key: &SigningKey,
) -> Result<Vec<PathBuf>, AuditError> {
    let prefix = format!("{LOG_FILE}.torn-");
    let mut side_files: Vec<(String, PathBuf)> = std::fs::read_dir(data_dir)
        .map_err(io_err(data_dir, "cannot list"))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.starts_with(&prefix).then(|| (name, entry.path()))
        })
        .collect();
    if side_files.is_empty() {
        return Ok(Vec::new());
    }
    side_files.sort();
    let path = data_dir.join(LOG_FILE);
    let bytes = std::fs::read(&path).map_err(io_err(&path, "cannot read"))?;
    let recorded: Vec<String> = read_records(&bytes)
        .0
        .iter()
        .filter_map(|r| match r.event() {
            Ok(Some(AuditEvent::AuditRepaired { moved_to, .. })) => Some(moved_to),
            _ => None,
        })
        .collect();
    let mut log = AuditLog::open(data_dir, key)?;
    let mut newly = Vec::new();
    for (name, side) in side_files {
        if recorded.contains(&name) {
            continue;
        }
        let torn = std::fs::read(&side).map_err(io_err(&side, "cannot read"))?;
        log.append(AuditEvent::AuditRepaired {
            torn_bytes: torn.len() as u64,
            torn_sha256: hex::encode(Sha256::digest(&torn)),
            moved_to: name,
        })?;
        newly.push(side);
    }
    Ok(newly)
}

/// What [`move_torn_tail`] found.
enum Tail {
    /// No torn tail; the log has this many records.
    Intact(u64),
    /// The torn tail was moved.
    Moved {
        side: PathBuf,
        bytes: u64,
        sha256: String,
        remaining: u64,
    },
}

/// With the lock held: moves a torn tail aside and truncates the log before it.
fn move_torn_tail(
    data_dir: &Path,
    path: &Path,
    mut file: &File,
    key: &SigningKey,
) -> Result<Tail, AuditError> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(io_err(path, "cannot read"))?;
    match check_own_log(path, &bytes, key, &ChainHead::EMPTY) {
        Ok(head) => Ok(Tail::Intact(head.count)),
        Err(AuditError::TornTail { offset, .. }) => {
            let start = usize::try_from(offset)
                .unwrap_or(bytes.len())
                .min(bytes.len());
            let torn = &bytes[start..];
            // The side file is durable before the log loses the bytes.
            let side = write_side_file(data_dir, torn)?;
            file.set_len(offset)
                .map_err(io_err(path, "cannot truncate"))?;
            file.sync_all().map_err(io_err(path, "cannot sync"))?;
            Ok(Tail::Moved {
                side,
                bytes: torn.len() as u64,
                sha256: hex::encode(Sha256::digest(torn)),
                remaining: offset,
            })
        }
        Err(AuditError::Corrupt { path, fault }) => Err(AuditError::NotRepairable { path, fault }),
        Err(e) => Err(e),
    }
}

/// Checks our own log: chain and hashes fully, signature of the head under `key`, and that
/// it extends `extends`.
fn check_own_log(
    path: &Path,
    bytes: &[u8],
    key: &SigningKey,
    extends: &ChainHead,
) -> Result<ChainHead, AuditError> {
    let options = VerifyOptions {
        key: Some(key.verifying_key()),
        // Fails only for an empty head, which there is nothing to check against.
        checkpoint: Checkpoint::sign(extends, key).ok(),
        signatures: SignatureCheck::HeadOnly,
    };
    match verify_log_bytes(bytes, &options) {
        Ok(report) => Ok(report.head),
        Err(VerifyFault {
            kind: FaultKind::Empty,
            ..
        }) => Ok(ChainHead::EMPTY),
        Err(VerifyFault {
            line,
            kind: FaultKind::TornTail { offset, bytes, .. },
        }) => Err(AuditError::TornTail {
            path: path.to_owned(),
            line: line.unwrap_or(0),
            offset,
            bytes,
        }),
        Err(VerifyFault {
            kind: FaultKind::KeyMismatch { log_key, expected },
            ..
        }) => Err(AuditError::KeyMismatch {
            path: path.to_owned(),
            log_key,
            node_key: expected,
        }),
        Err(fault) => Err(AuditError::Corrupt {
            path: path.to_owned(),
            fault,
        }),
    }
}

fn write_side_file(data_dir: &Path, torn: &[u8]) -> Result<PathBuf, AuditError> {
    let stamp: String = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    for attempt in 0..1000u32 {
        let name = match attempt {
            0 => format!("{LOG_FILE}.torn-{stamp}"),
            n => format!("{LOG_FILE}.torn-{stamp}-{n}"),
        };
        let side = data_dir.join(name);
        match crate::files::private_file_options()
            .write(true)
            .create_new(true)
            .open(&side)
        {
            Ok(mut f) => {
                f.write_all(torn).map_err(io_err(&side, "cannot write"))?;
                f.sync_all().map_err(io_err(&side, "cannot sync"))?;
                sync_dir(data_dir).map_err(io_err(data_dir, "cannot sync the directory of"))?;
                return Ok(side);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(AuditError::Io {
                    path: side,
                    what: "cannot create",
                    source: e,
                });
            }
        }
    }
    Err(AuditError::Io {
        path: data_dir.join(LOG_FILE),
        what: "cannot find a free name for the torn-line side file",
        source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
    })
}

fn line(record: &blindmatch_protocol::audit::Record) -> Result<Vec<u8>, AuditError> {
    let mut text = record.to_line().map_err(|e| AuditError::Seal(e.into()))?;
    text.push('\n');
    Ok(text.into_bytes())
}

fn now() -> Result<Timestamp, AuditError> {
    let text = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    Timestamp::parse(&text).ok_or(AuditError::Clock)
}

fn io_err<'a>(
    path: &'a Path,
    what: &'static str,
) -> impl FnOnce(std::io::Error) -> AuditError + 'a {
    move |source| AuditError::Io {
        path: path.to_owned(),
        what,
        source,
    }
}
