//! Result files: one CSV row per matched local record, written atomically so a failed
//! session never leaves a partial file.

use std::path::{Path, PathBuf};

use blindmatch_protocol::session::MatchedRecord;

use crate::files::{self, Access};

mod history;
mod out_file;

pub use history::{History, HistoryError, PastResult, count_rows, history};
pub use out_file::{OutFile, OutFileError};

/// Header of every result file (`match --out` and the responder's `results/`).
pub const RESULT_HEADER: [&str; 2] = ["id", "matched_kinds"];

/// Writes `matches` as CSV to `path` atomically (temporary file in the same directory,
/// fsync, rename), readable by the owner only: the rows are the matched records' ids.
/// Missing parent directories are created private. `record_id` maps a record index to
/// the local record id.
pub fn write_results(
    path: &Path,
    matches: &[MatchedRecord],
    record_id: &dyn Fn(u32) -> Option<String>,
) -> std::io::Result<()> {
    files::create_private_dir_all(files::parent_dir(path))?;
    files::write_file_with(path, Access::OwnerOnly, |out| {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(RESULT_HEADER)?;
        for m in matches {
            let id = record_id(m.record).ok_or_else(|| {
                std::io::Error::other(format!("matched record {} is not in the dataset", m.record))
            })?;
            writer.write_record([id.as_str(), &m.kinds.to_string()])?;
        }
        writer.flush()
    })
}

/// `<unix seconds>-<peer>-<session id prefix>.csv`: sortable and unique.
pub fn result_file_name(peer_name: &str, session_id: &[u8; 16]) -> String {
    format!(
        "{}-{peer_name}-{}.csv",
        unix_seconds(),
        hex::encode(&session_id[..6])
    )
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `<unix seconds>-run-<run id>.csv`: the combined file of a run with several peers.
pub fn run_file_name(run_id: &str) -> String {
    format!("{}-run-{run_id}.csv", unix_seconds())
}

/// Writes a session's matched records, when the mode gave us any, as
/// [`result_file_name`] in `results_dir`; `record_id` names a record by its index.
pub fn store_session_results(
    results_dir: &Path,
    peer_name: &str,
    session_id: &[u8; 16],
    matches: Option<&[MatchedRecord]>,
    record_id: &dyn Fn(u32) -> Option<String>,
) -> std::io::Result<Option<PathBuf>> {
    let Some(matches) = matches else {
        return Ok(None);
    };
    let path = results_dir.join(result_file_name(peer_name, session_id));
    write_results(&path, matches, record_id)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use blindmatch_protocol::ident::{IdentKind, KindSet};

    use super::*;

    #[test]
    fn writes_header_and_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        let matches = [MatchedRecord {
            record: 1,
            kinds: KindSet::empty()
                .with(IdentKind::Email)
                .with(IdentKind::Phone),
        }];
        let ids = ["a", "b"];
        write_results(&path, &matches, &|i| {
            ids.get(i as usize).map(|s| s.to_string())
        })
        .expect("written");
        let text = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(text, "id,matched_kinds\nb,email+phone\n");
        let bad = write_results(&dir.path().join("bad.csv"), &matches, &|_| None);
        assert!(bad.is_err());
        assert!(!dir.path().join("bad.csv").exists(), "no partial file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
