//! One dataset change at a time per node, and nothing left behind by a killed one.
//!
//! Every command that writes under `<data>/datasets/` (an import's final writes,
//! `dataset remove`, `dataset revoke`) holds an exclusive lock on
//! `<data>/datasets/.lock` ([`LOCK_FILE`], empty; `flock` on Unix, which the kernel
//! releases when the holder exits, however it exits; a lock file rather than the
//! directory itself so that it also works on NFS and Windows). The named temporary files
//! of an atomic write (`.NAME.bmds.*.tmp`, `.NAME.rejects.csv.*.tmp`) exist only while
//! their writer holds the lock, so any a holder finds were left by a process killed
//! mid-write. They hold normalised identifiers or rejected rows (personal data) that no
//! dataset accounts for, so the holder deletes them before it writes anything.
//!
//! An import holds the lock only for its final writes (seconds even for millions of
//! rows), not while it reads the CSV, so imports of different datasets still run side
//! by side and wait for each other only briefly.

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::Path;

use super::{DATASET_EXTENSION, DatasetError, REJECTS_SUFFIX, datasets_dir};
use crate::files::sync_dir;

/// The lock file in `<data>/datasets/`.
pub const LOCK_FILE: &str = ".lock";

/// Held while a command writes under `<data>/datasets/`; dropping it releases the lock.
#[must_use = "the lock is released when this is dropped"]
pub(crate) struct DatasetsLock {
    /// The lock file, open for the lock's lifetime (closing it unlocks).
    _file: File,
}

impl DatasetsLock {
    /// Waits for the lock on `<data>/datasets/` (saying so when another command holds
    /// it), then deletes the temporary files of writes that were interrupted. With no
    /// such directory there is no dataset at all: [`DatasetError::NotFound`] for
    /// `dataset`, the one the caller is about to change.
    pub(crate) fn acquire(data_dir: &Path, dataset: &str) -> Result<Self, DatasetError> {
        let dir = datasets_dir(data_dir);
        if !dir.is_dir() {
            return Err(DatasetError::NotFound {
                name: dataset.to_owned(),
            });
        }
        let path = dir.join(LOCK_FILE);
        let storage = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| DatasetError::Storage {
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
            .map_err(storage("opening", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                tracing::warn!(
                    "waiting for another dataset import, revoke or removal on this node to finish"
                );
                file.lock().map_err(storage("locking", &path))?;
            }
            Err(TryLockError::Error(source)) => return Err(storage("locking", &path)(source)),
        }
        let removed = remove_interrupted_writes(&dir).map_err(storage("cleaning up", &dir))?;
        if removed > 0 {
            tracing::warn!(
                files = removed,
                "deleted temporary files left by an interrupted dataset import or revoke"
            );
        }
        Ok(DatasetsLock { _file: file })
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
/// [`crate::files::write_file_with`]).
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
        let keep = ["kp.bmds", "kp.rejects.csv", "README.txt", LOCK_FILE];
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
