//! The policy ledger: which sessions this node accepted, when, from whom and how many
//! identifiers each declared. It is what budgets, rate limits and replay protection
//! are computed from, so a restart forgets none of them.
//!
//! # File
//!
//! `<data>/policy-ledger.jsonl`, JSON Lines, owner-only:
//!
//! ```text
//! {"type":"ledger","version":1}
//! {"type":"carried","peer":"<fingerprint>","identifiers":120000,"sessions":31}
//! {"type":"session","at":1735689600,"peer":"<fingerprint>","session":"<32 hex>","identifiers":5000}
//! ```
//!
//! An accepted session is one appended line, fsynced before the session starts, so
//! the charge and the session id are recorded together or not at all. A line torn by
//! a crash (the last one, without its newline) is ignored and dropped at the next
//! compaction; any other unreadable line is an error, and the server then refuses
//! every session rather than forget budgets.
//!
//! # Several processes
//!
//! `serve` and `match` of one node charge the same budgets, so every check-and-charge
//! runs under an exclusive lock on `<data>/policy-ledger.lock` ([`Ledger::transact`]),
//! and re-reads the file first when another process changed it (its length or identity
//! differs from what this process last saw).
//!
//! # Bounded growth
//!
//! Session lines are kept for the retention window (the replay window, at least one
//! day). Older ones are folded into one `carried` line per peer holding its all-time
//! totals, by an atomic rewrite (temporary file, fsync, rename) at open and whenever
//! the file has grown to twice what it needs to hold. Session ids older than the
//! window are forgotten: the window is how long a replay is recognised.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{Access, write_file as write_file_atomic};

/// File name of the ledger inside the data directory.
pub const LEDGER_FILE: &str = "policy-ledger.jsonl";
/// File name of the lock every process takes to check and charge.
pub const LEDGER_LOCK_FILE: &str = "policy-ledger.lock";
/// Version of the ledger's line format.
pub const LEDGER_VERSION: u32 = 1;
/// Seconds in a day: the shortest retention, so rolling daily budgets stay exact.
pub const DAY_SECS: u64 = 24 * 3600;
/// Lines beyond twice the needed ones tolerated before the file is compacted.
const COMPACTION_SLACK: usize = 1024;

/// Errors reading or writing the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// Reading, appending or rewriting failed.
    #[error("{action} the policy ledger {}: {source}", .path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The ledger holds less for a peer than the audit log records: it was rolled back
    /// or replaced.
    #[error(
        "the policy ledger {} holds {ledger_identifiers} identifiers in {ledger_sessions} sessions for peer {peer}, but the audit log records {log_identifiers} in {log_sessions}: the ledger was rolled back or replaced. Budgets are not reset; run `blindmatch policy rebuild-ledger` to rebuild it from the audit log",
        .path.display()
    )]
    BehindLog {
        /// The file.
        path: PathBuf,
        /// The peer's fingerprint.
        peer: String,
        /// What the ledger holds.
        ledger_identifiers: u64,
        /// Sessions in the ledger.
        ledger_sessions: u64,
        /// What the log records.
        log_identifiers: u64,
        /// Sessions in the log.
        log_sessions: u64,
    },
    /// A line cannot be read.
    #[error(
        "the policy ledger {} is damaged at line {line}: {problem}; budgets cannot be enforced until it is repaired or restored from a backup",
        .path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// One accepted session as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// Unix seconds when it was accepted.
    pub at: u64,
    /// The peer's certificate fingerprint (hex).
    pub peer: String,
    /// The session id from `Hello`.
    pub session: [u8; 16],
    /// Identifiers the peer declared (and was charged for).
    pub identifiers: u64,
}

/// All-time totals of a peer folded out of the retention window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Carried {
    /// Identifiers charged.
    pub identifiers: u64,
    /// Sessions accepted.
    pub sessions: u64,
}

/// The ledger, loaded; appends when opened for writing.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    /// `None` when opened read-only.
    file: Option<File>,
    retention_secs: u64,
    charges: Vec<Charge>,
    carried: BTreeMap<String, Carried>,
    seen: HashSet<[u8; 16]>,
    lines_on_disk: usize,
    /// Length and identity of the file as this process last read or wrote it.
    seen_on_disk: Option<FileStamp>,
    /// Lines beyond twice the needed ones tolerated before compacting.
    compaction_slack: usize,
}

/// What tells whether another process changed the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    id: u64,
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let id = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let id = 0;
        Some(Self {
            len: meta.len(),
            id,
        })
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Ledger {
        version: u32,
    },
    Carried {
        peer: String,
        identifiers: u64,
        sessions: u64,
    },
    Session {
        at: u64,
        peer: String,
        session: String,
        identifiers: u64,
    },
}

impl Ledger {
    /// Path of the ledger in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(LEDGER_FILE)
    }

    /// Opens (creating if needed) the ledger for the server, compacting it when it
    /// holds expired sessions or a torn last line. `retention_days` is the replay
    /// window.
    /// The ledger is reconciled with the audit log first (see `policy::anchor`): rebuilt
    /// from it when missing, an error when it holds less than the log.
    pub fn open(data_dir: &Path, retention_days: u32, now: u64) -> Result<Self, LedgerError> {
        let _lock = lock_at(&Self::path(data_dir))?;
        let (mut ledger, torn_tail) = Self::load_anchored(data_dir, retention_days)?;
        let expired = ledger.expire(now);
        if !ledger.path.exists() || torn_tail || expired {
            ledger.rewrite()?;
        }
        ledger.file = Some(ledger.open_append()?);
        Ok(ledger)
    }

    /// Rebuilds the ledger from the audit log alone (`policy rebuild-ledger`), keeping
    /// the replaced file next to it as `policy-ledger.jsonl.replaced-<unix seconds>`.
    pub fn rebuild(data_dir: &Path, retention_days: u32, now: u64) -> Result<Self, LedgerError> {
        let path = Self::path(data_dir);
        let _lock = lock_at(&path)?;
        if path.exists() {
            let aside = path.with_file_name(format!("{LEDGER_FILE}.replaced-{now}"));
            std::fs::rename(&path, &aside).map_err(|source| LedgerError::Io {
                action: "moving aside",
                path: path.clone(),
                source,
            })?;
        }
        let (mut ledger, _) = Self::load(data_dir, retention_days)?;
        ledger.absorb(super::anchor::log_charges(data_dir));
        ledger.expire(now);
        ledger.rewrite()?;
        ledger.file = Some(ledger.open_append()?);
        Ok(ledger)
    }

    /// Refuses a ledger holding less for some peer than the audit log's `log` charges.
    fn check_against(&self, log: &[Charge]) -> Result<(), LedgerError> {
        for (peer, logged) in super::anchor::totals(log) {
            let held = self.totals_of(&peer);
            if held.identifiers < logged.identifiers || held.sessions < logged.sessions {
                return Err(LedgerError::BehindLog {
                    path: self.path.clone(),
                    peer,
                    ledger_identifiers: held.identifiers,
                    ledger_sessions: held.sessions,
                    log_identifiers: logged.identifiers,
                    log_sessions: logged.sessions,
                });
            }
        }
        Ok(())
    }

    /// Takes `charges` in (rebuilding from the log); expiry folds the old ones.
    fn absorb(&mut self, charges: Vec<Charge>) {
        for charge in charges {
            self.seen.insert(charge.session);
            self.charges.push(charge);
        }
    }

    /// Loads the ledger without writing anything (for `policy check`), reconciled with
    /// the audit log like [`Ledger::open`]: a missing file is rebuilt in memory from the
    /// log, a rolled-back one is an error.
    pub fn read_only(data_dir: &Path, retention_days: u32, now: u64) -> Result<Self, LedgerError> {
        let (mut ledger, _) = Self::load_anchored(data_dir, retention_days)?;
        ledger.expire(now);
        Ok(ledger)
    }

    /// Sessions held in the retention window.
    pub fn retained(&self) -> usize {
        self.charges.len()
    }

    /// Whether a session id was accepted within the retention window.
    pub fn seen(&self, session: &[u8; 16]) -> bool {
        self.seen.contains(session)
    }

    /// The retained charges of `peer` (a fingerprint), in the order accepted.
    pub fn charges_of<'a>(&'a self, peer: &'a str) -> impl Iterator<Item = &'a Charge> + 'a {
        self.charges.iter().filter(move |c| c.peer == peer)
    }

    /// All-time identifiers and sessions of `peer`.
    pub fn totals_of(&self, peer: &str) -> Carried {
        let mut totals = self.carried.get(peer).copied().unwrap_or_default();
        for charge in self.charges_of(peer) {
            totals.identifiers = totals.identifiers.saturating_add(charge.identifiers);
            totals.sessions += 1;
        }
        totals
    }

    /// Checks and charges atomically across this node's processes: under the ledger lock,
    /// re-reads the file if another process changed it, runs `decide` on the ledger as
    /// it is now, and records the charge `decide` returns (if any) before unlocking.
    pub fn transact<T, E>(
        &mut self,
        now: u64,
        decide: impl FnOnce(&Ledger) -> Result<(Option<Charge>, T), E>,
    ) -> Result<Result<T, E>, LedgerError> {
        let _lock = lock_at(&self.path)?;
        if FileStamp::of(&self.path) != self.seen_on_disk {
            let data_dir = self
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let retention_days = (self.retention_secs / DAY_SECS) as u32;
            let slack = self.compaction_slack;
            let (mut fresh, torn_tail) = Self::load_anchored(&data_dir, retention_days)?;
            let expired = fresh.expire(now);
            fresh.compaction_slack = slack;
            if !fresh.path.exists() || torn_tail || expired {
                fresh.rewrite()?;
            }
            fresh.file = Some(fresh.open_append()?);
            *self = fresh;
        }
        match decide(self) {
            Ok((Some(charge), value)) => {
                self.record(charge, now)?;
                Ok(Ok(value))
            }
            Ok((None, value)) => Ok(Ok(value)),
            Err(err) => Ok(Err(err)),
        }
    }

    /// Records an accepted session durably (append and fsync) before returning.
    pub fn record(&mut self, charge: Charge, now: u64) -> Result<(), LedgerError> {
        let line = session_line(&charge);
        let Some(file) = self.file.as_mut() else {
            return Err(LedgerError::Io {
                action: "appending to",
                path: self.path.clone(),
                source: io::Error::other("the ledger was opened read-only"),
            });
        };
        let appended = file
            .write_all(line.as_bytes())
            .and_then(|()| file.sync_data());
        if let Err(source) = appended {
            return Err(LedgerError::Io {
                action: "appending to",
                path: self.path.clone(),
                source,
            });
        }
        self.lines_on_disk += 1;
        self.seen_on_disk = FileStamp::of(&self.path);
        self.seen.insert(charge.session);
        self.charges.push(charge);
        self.expire(now);
        let needed = 1 + self.carried.len() + self.charges.len();
        if self.lines_on_disk > 2 * needed + self.compaction_slack {
            self.rewrite()?;
            self.file = Some(self.open_append()?);
        }
        Ok(())
    }

    /// [`Ledger::load`], reconciled with the audit log (see `policy::anchor`): a missing
    /// ledger is rebuilt from the log, one holding less than the log is an error.
    fn load_anchored(data_dir: &Path, retention_days: u32) -> Result<(Self, bool), LedgerError> {
        let existed = Self::path(data_dir).exists();
        let (mut ledger, torn_tail) = Self::load(data_dir, retention_days)?;
        let from_log = super::anchor::log_charges(data_dir);
        if existed {
            ledger.check_against(&from_log)?;
        } else if !from_log.is_empty() {
            tracing::warn!(
                sessions = from_log.len(),
                "the policy ledger is missing: rebuilt from the audit log (budgets are kept)"
            );
            ledger.absorb(from_log);
        }
        Ok((ledger, torn_tail))
    }

    /// Reads the file; also returns whether its last line was torn.
    fn load(data_dir: &Path, retention_days: u32) -> Result<(Self, bool), LedgerError> {
        let path = Self::path(data_dir);
        let mut ledger = Ledger {
            path: path.clone(),
            file: None,
            retention_secs: u64::from(retention_days)
                .saturating_mul(DAY_SECS)
                .max(DAY_SECS),
            charges: Vec::new(),
            carried: BTreeMap::new(),
            seen: HashSet::new(),
            lines_on_disk: 0,
            seen_on_disk: FileStamp::of(&path),
            compaction_slack: COMPACTION_SLACK,
        };
        let text = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((ledger, false)),
            Err(source) => {
                return Err(LedgerError::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        let mut segments: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        // The text after the last newline: empty, or a line torn by a crash.
        let torn = segments.pop().is_some_and(|tail| !tail.is_empty());
        for (index, segment) in segments.iter().enumerate() {
            let corrupt = |problem: String| LedgerError::Corrupt {
                path: path.clone(),
                line: index + 1,
                problem,
            };
            let line: Line = serde_json::from_slice(segment).map_err(|e| corrupt(e.to_string()))?;
            match line {
                Line::Ledger { version } if index == 0 => {
                    if version != LEDGER_VERSION {
                        return Err(corrupt(format!(
                            "format version {version}, this build reads version {LEDGER_VERSION}"
                        )));
                    }
                }
                Line::Ledger { .. } => return Err(corrupt("a second header line".to_owned())),
                _ if index == 0 => return Err(corrupt("no header line".to_owned())),
                Line::Carried {
                    peer,
                    identifiers,
                    sessions,
                } => {
                    let entry = ledger.carried.entry(peer).or_default();
                    entry.identifiers = entry.identifiers.saturating_add(identifiers);
                    entry.sessions = entry.sessions.saturating_add(sessions);
                }
                Line::Session {
                    at,
                    peer,
                    session,
                    identifiers,
                } => {
                    let session = parse_session_id(&session)
                        .ok_or_else(|| corrupt("a session id is not 32 hex digits".to_owned()))?;
                    ledger.seen.insert(session);
                    ledger.charges.push(Charge {
                        at,
                        peer,
                        session,
                        identifiers,
                    });
                }
            }
        }
        ledger.lines_on_disk = segments.len();
        Ok((ledger, torn))
    }

    /// Folds charges older than the retention window into the carried totals;
    /// returns whether any were.
    fn expire(&mut self, now: u64) -> bool {
        let horizon = now.saturating_sub(self.retention_secs);
        let before = self.charges.len();
        let mut kept = Vec::with_capacity(before);
        for charge in std::mem::take(&mut self.charges) {
            if charge.at >= horizon {
                kept.push(charge);
                continue;
            }
            self.seen.remove(&charge.session);
            let entry = self.carried.entry(charge.peer).or_default();
            entry.identifiers = entry.identifiers.saturating_add(charge.identifiers);
            entry.sessions += 1;
        }
        self.charges = kept;
        self.charges.len() != before
    }

    /// Atomically replaces the file with the header, the carried totals and the
    /// retained charges.
    fn rewrite(&mut self) -> Result<(), LedgerError> {
        let mut out = String::new();
        push_line(
            &mut out,
            &Line::Ledger {
                version: LEDGER_VERSION,
            },
        );
        for (peer, carried) in &self.carried {
            push_line(
                &mut out,
                &Line::Carried {
                    peer: peer.clone(),
                    identifiers: carried.identifiers,
                    sessions: carried.sessions,
                },
            );
        }
        for charge in &self.charges {
            out.push_str(&session_line(charge));
        }
        // Close the append handle first: after the rename it would point at the old file.
        self.file = None;
        write_file_atomic(&self.path, out.as_bytes(), Access::OwnerOnly).map_err(|source| {
            LedgerError::Io {
                action: "rewriting",
                path: self.path.clone(),
                source,
            }
        })?;
        self.lines_on_disk = 1 + self.carried.len() + self.charges.len();
        self.seen_on_disk = FileStamp::of(&self.path);
        Ok(())
    }

    fn open_append(&self) -> Result<File, LedgerError> {
        OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|source| LedgerError::Io {
                action: "opening",
                path: self.path.clone(),
                source,
            })
    }
}

/// Takes the lock every process of this node holds to check and charge (next to the
/// ledger at `ledger_path`); released when the returned file is dropped.
fn lock_at(ledger_path: &Path) -> Result<File, LedgerError> {
    let path = ledger_path.with_file_name(LEDGER_LOCK_FILE);
    let io_err = |action| {
        let path = path.clone();
        move |source| LedgerError::Io {
            action,
            path,
            source,
        }
    };
    let file = crate::files::private_file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err("opening"))?;
    file.lock().map_err(io_err("locking"))?;
    Ok(file)
}

fn session_line(charge: &Charge) -> String {
    let mut out = String::new();
    push_line(
        &mut out,
        &Line::Session {
            at: charge.at,
            peer: charge.peer.clone(),
            session: hex::encode(charge.session),
            identifiers: charge.identifiers,
        },
    );
    out
}

fn push_line(out: &mut String, line: &Line) {
    // Serialising these plain structs cannot fail.
    if let Ok(json) = serde_json::to_string(line) {
        out.push_str(&json);
        out.push('\n');
    }
}

fn parse_session_id(text: &str) -> Option<[u8; 16]> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
