//! The history of past results: every completed session in the audit log, with the
//! result file it left in `results/` when there is one.
//!
//! The audit log is the record of what happened (it is verified first, and only the
//! records before a fault are used); the results directory holds what was kept. A file
//! is tied to its session by its name, which ends with the first 12 hex digits of the
//! session id (see [`result_file_name`](super::result_file_name)). `match --out` files
//! live wherever the user put them and are not recorded, so for those the history says
//! so instead of guessing.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use blindmatch_protocol::audit::{
    AuditEvent, SessionFacts, VerifyOptions, read_records, verify_log_bytes,
};
use serde::Serialize;

use crate::audit::LOG_FILE;
use crate::identity::NodeIdentity;
use crate::node::RESULTS_DIR;

/// Hex digits of the session id in a result file's name.
const ID_PREFIX_HEX: usize = 12;

/// One completed session.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct PastResult {
    /// When it completed (the audit record's time).
    pub completed_at: String,
    /// The session id (hex).
    pub session_id: String,
    /// `initiator` or `responder`.
    pub role: &'static str,
    /// The peer's name in our configuration at the time.
    pub peer: String,
    /// The output mode.
    pub mode: String,
    /// The declared purpose (as the log holds it: escape before showing).
    pub purpose: String,
    /// Our dataset, as named to the peer.
    pub dataset: Option<String>,
    /// Identifiers in our set.
    pub our_set_size: u64,
    /// Identifiers in the peer's set.
    pub peer_set_size: Option<u64>,
    /// Our records matched, when the mode let us know.
    pub matched_records: Option<u64>,
    /// Distinct identifiers matched, when the mode let us know.
    pub intersection_size: Option<u64>,
    /// Wall time of the session.
    pub duration_ms: u64,
    /// The result file in `results/`, if one is there.
    pub file: Option<PathBuf>,
}

/// The history and whether the log it came from verifies.
#[derive(Debug)]
pub struct History {
    /// Completed sessions, oldest first.
    pub results: Vec<PastResult>,
    /// `None` when the log verifies; otherwise what is wrong with it (the history then
    /// stops before the fault).
    pub fault: Option<String>,
}

/// Why there is no history to show.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// The audit log cannot be read.
    #[error("cannot read the audit log {}: {cause}", .path.display())]
    ReadLog {
        /// The log.
        path: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
}

/// Reads the history of the node in `data_dir`.
pub fn history(data_dir: &Path) -> Result<History, HistoryError> {
    let path = data_dir.join(LOG_FILE);
    let bytes = fs::read(&path).map_err(|cause| HistoryError::ReadLog {
        path: path.clone(),
        cause,
    })?;
    let options = VerifyOptions {
        key: NodeIdentity::load(data_dir)
            .ok()
            .map(|identity| identity.audit_key().verifying_key()),
        ..VerifyOptions::default()
    };
    let verdict = verify_log_bytes(&bytes, &options);
    let (mut records, _) = read_records(&bytes);
    let fault = match &verdict {
        Ok(_) => None,
        Err(fault) => {
            let keep = fault
                .line
                .map_or(records.len(), |line| (line as usize).saturating_sub(1));
            records.truncate(keep);
            Some(fault.to_string())
        }
    };
    let files = result_files(&data_dir.join(RESULTS_DIR));
    let results = records
        .iter()
        .filter_map(|record| {
            let Ok(Some(AuditEvent::SessionCompleted(facts))) = record.event() else {
                return None;
            };
            let file = facts
                .session_id
                .get(..ID_PREFIX_HEX)
                .and_then(|prefix| files.get(prefix))
                .cloned();
            Some(past_result(record.ts.as_str(), &facts, file))
        })
        .collect();
    Ok(History { results, fault })
}

impl History {
    /// The one session whose id starts with `prefix` (case-insensitive).
    pub fn find(&self, prefix: &str) -> Result<&PastResult, String> {
        let prefix = prefix.trim().to_ascii_lowercase();
        let found: Vec<&PastResult> = self
            .results
            .iter()
            .filter(|r| !prefix.is_empty() && r.session_id.starts_with(&prefix))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(format!(
                "no completed session {} in the audit log; `blindmatch results list` shows them",
                blindmatch_protocol::wire::printable(&prefix)
            )),
            several => Err(format!(
                "{} completed sessions start with {}; give more of the id",
                several.len(),
                blindmatch_protocol::wire::printable(&prefix)
            )),
        }
    }
}

fn past_result(ts: &str, facts: &SessionFacts, file: Option<PathBuf>) -> PastResult {
    PastResult {
        completed_at: ts.to_owned(),
        session_id: facts.session_id.clone(),
        role: facts.role.name(),
        peer: facts.peer_name.clone(),
        mode: facts.mode.clone(),
        purpose: facts.purpose.clone(),
        dataset: facts.our_dataset.as_ref().map(|d| d.name.clone()),
        our_set_size: facts.our_set_size,
        peer_set_size: facts.peer_set_size,
        matched_records: facts.matched_records,
        intersection_size: facts.intersection_size,
        duration_ms: facts.duration_ms,
        file,
    }
}

/// Result files in `dir` by the session id prefix their names end with.
fn result_files(dir: &Path) -> HashMap<String, PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".csv")?;
            let prefix = stem.get(stem.len().checked_sub(ID_PREFIX_HEX)?..)?;
            let hex = prefix.bytes().all(|b| b.is_ascii_hexdigit());
            hex.then(|| (prefix.to_ascii_lowercase(), entry.path()))
        })
        .collect()
}

/// Data rows of a result file (its header excluded), without reading them into memory.
pub fn count_rows(path: &Path) -> std::io::Result<u64> {
    let mut reader = csv::Reader::from_path(path).map_err(std::io::Error::other)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = 0;
    while reader
        .read_byte_record(&mut record)
        .map_err(std::io::Error::other)?
    {
        rows += 1;
    }
    Ok(rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_by_their_session_prefix() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "1796433833-acme-389c4151ac42.csv",
            "notes.txt",
            "x.csv",
            ".1796-acme-aaaaaaaaaaaa.csv.tmp",
        ] {
            fs::write(
                dir.path().join(name),
                "id,matched_kinds\na,email\nb,phone\n",
            )
            .unwrap();
        }
        let files = result_files(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        let path = &files["389c4151ac42"];
        assert_eq!(count_rows(path).unwrap(), 2);
    }
}
