//! One dataset change at a time per node, and nothing left behind by a killed one.
//!
//! Every command that writes under `<data>/datasets/` (an import's final writes,
//! `dataset remove`, `dataset revoke`) holds an exclusive advisory lock (`flock`) on that
//! directory while it writes; the kernel releases it when the holder exits, however it
//! exits. The named temporary files of an atomic write (`.NAME.bmds.*.tmp`,
//! `.NAME.rejects.csv.*.tmp`) exist only while their writer holds the lock, so any a
//! holder finds were left by a process killed mid-write. They hold normalised
//! identifiers or rejected rows (personal data) that no dataset accounts for, so the
//! holder deletes them before it writes anything.
//!
//! An import holds the lock only for its final writes (seconds even for millions of
//! rows), not while it reads the CSV, so imports of different datasets still run side
//! by side and wait for each other only briefly.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::{DATASET_EXTENSION, DatasetError, REJECTS_SUFFIX, datasets_dir};
use crate::identity::sync_dir;

/// Held while a command writes under `<data>/datasets/`; dropping it releases the lock.
#[must_use = "the lock is released when this is dropped"]
pub(crate) struct DatasetsLock {
    /// The locked directory, open for the lock's lifetime (closing it unlocks).
    #[cfg(unix)]
    _dir: File,
}

impl DatasetsLock {
    /// Waits for the lock on `<data>/datasets/`, then deletes the temporary files of
    /// writes that were interrupted. With no such directory there is no dataset at all:
    /// [`DatasetError::NotFound`] for `dataset`, the one the caller is about to change.
    pub(crate) fn acquire(data_dir: &Path, dataset: &str) -> Result<Self, DatasetError> {
        let dir = datasets_dir(data_dir);
        let storage = |action| {
            let path = dir.clone();
            move |source| DatasetError::Storage {
                action,
                path,
                source,
            }
        };
        if !dir.is_dir() {
            return Err(DatasetError::NotFound {
                name: dataset.to_owned(),
            });
        }
        // Windows cannot open a directory as a file; there, an open file cannot be
        // deleted either, so the clean-up below never removes a write in progress.
        #[cfg(unix)]
        let lock = {
            let file = File::open(&dir).map_err(storage("opening"))?;
            file.lock().map_err(storage("locking"))?;
            DatasetsLock { _dir: file }
        };
        #[cfg(not(unix))]
        let lock = DatasetsLock {};
        let removed = remove_interrupted_writes(&dir).map_err(storage("cleaning up"))?;
        if removed > 0 {
            tracing::warn!(
                files = removed,
                "deleted temporary files left by an interrupted dataset import, revoke or removal"
            );
        }
        Ok(lock)
    }
}

/// Deletes every temporary file of an interrupted atomic write in `dir`; returns how
/// many there were. Call with the lock held.
fn remove_interrupted_writes(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let is_leftover = entry.file_name().to_str().is_some_and(is_interrupted_write);
        if !is_leftover || !entry.file_type()?.is_file() {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            // Windows: still open, so not a leftover after all.
            Err(err) if cfg!(not(unix)) && err.kind() == io::ErrorKind::PermissionDenied => {}
            Err(err) => return Err(err),
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Whether `file_name` is the temporary file of an atomic write of a dataset or its
/// rejects report: `.` + the final file name + `.` + random + `.tmp` (see
/// [`crate::identity::write_file_atomic_with`]).
fn is_interrupted_write(file_name: &str) -> bool {
    let Some(inner) = file_name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_suffix(".tmp"))
    else {
        return false;
    };
    let dataset = format!(".{DATASET_EXTENSION}.");
    let rejects = format!("{REJECTS_SUFFIX}.");
    [dataset, rejects].iter().any(|marker| {
        inner
            .find(marker.as_str())
            .is_some_and(|at| at > 0 && at + marker.len() < inner.len())
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_of_atomic_writes_are_recognised() {
        for name in [
            ".kp.bmds.a1B2c3.tmp",
            ".crm-kp.v2.bmds.XyZ.tmp",
            ".kp.rejects.csv.Q9w8e7.tmp",
        ] {
            assert!(is_interrupted_write(name), "{name}");
        }
    }

    #[test]
    fn datasets_reports_and_other_files_are_not_leftovers() {
        for name in [
            "kp.bmds",
            "kp.rejects.csv",
            ".kp.bmds",
            "kp.bmds.a1B2c3.tmp",
            ".bmds.a1B2c3.tmp",
            ".kp.bmds..tmp",
            ".kp.csv.a1B2c3.tmp",
            ".tmpA1b2C3",
            "notes.tmp",
        ] {
            assert!(!is_interrupted_write(name), "{name}");
        }
    }

    #[test]
    fn acquiring_the_lock_deletes_only_interrupted_writes() {
        let data = tempfile::tempdir().unwrap();
        let dir = datasets_dir(data.path());
        fs::create_dir_all(&dir).unwrap();
        let keep = ["kp.bmds", "kp.rejects.csv", "README.txt"];
        let stale = [".kp.bmds.r4nd0m.tmp", ".kp.rejects.csv.r4nd0m.tmp"];
        for name in keep.iter().chain(&stale) {
            fs::write(dir.join(name), b"x").unwrap();
        }
        let lock = DatasetsLock::acquire(data.path(), "kp").unwrap();
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut expected = keep.map(str::to_owned).to_vec();
        expected.sort();
        assert_eq!(left, expected);
        drop(lock);
    }

    #[test]
    fn no_datasets_directory_means_no_dataset() {
        let data = tempfile::tempdir().unwrap();
        let err = DatasetsLock::acquire(data.path(), "kp").err().unwrap();
        assert!(
            matches!(err, DatasetError::NotFound { ref name } if name == "kp"),
            "{err}"
        );
        assert!(!datasets_dir(data.path()).exists());
    }

    /// A second holder waits until the first lets go (checked across threads: `flock`
    /// locks belong to the open file, so two opens conflict even in one process).
    #[cfg(unix)]
    #[test]
    fn a_second_holder_waits_for_the_first() {
        use std::sync::mpsc;
        use std::time::Duration;

        let data = tempfile::tempdir().unwrap();
        fs::create_dir_all(datasets_dir(data.path())).unwrap();
        let first = DatasetsLock::acquire(data.path(), "kp").unwrap();
        let (tx, rx) = mpsc::channel();
        let path = data.path().to_owned();
        let waiter = std::thread::spawn(move || {
            let second = DatasetsLock::acquire(&path, "kp").unwrap();
            tx.send(()).unwrap();
            drop(second);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "the second holder got the lock while the first held it"
        );
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the second holder got the lock once the first let go");
        waiter.join().unwrap();
    }
}
