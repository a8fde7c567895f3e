//! The file `match --out` names, checked and reserved before any session starts.
//!
//! A result file that cannot be written once the session is over is the worst moment to
//! find out: the peer has completed the session (and charged its budgets), our side has
//! nothing, and the two audit logs disagree. So everything that can be known about the
//! path is checked before we connect: it is not a directory, its directory exists (or
//! can be created) and is writable, and it does not exist unless the user asked to
//! replace it. Without `--force` the file is also reserved (created empty, owner-only),
//! so a second `match` naming the same file fails before it connects instead of
//! overwriting the first one's results; the reservation is removed again if no results
//! were written into it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::files;

/// Why the `--out` path cannot take the results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutFileError {
    /// The path names a directory.
    #[error(
        "--out {} is a directory; name a file in it instead (e.g. {}); nothing was sent to the peer",
        .path.display(),
        .path.join("matches.csv").display()
    )]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The path has no file name (`..`, `/`).
    #[error("--out {} does not name a file; nothing was sent to the peer", .path.display())]
    NoFileName {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists and replacing it was not asked for.
    #[error(
        "--out {} already exists; pass --force to replace it, or name another file; nothing was sent to the peer",
        .path.display()
    )]
    Exists {
        /// The path given.
        path: PathBuf,
    },
    /// The file's directory cannot be created or written.
    #[error(
        "cannot write results to {}: {what} ({cause}); choose another --out; nothing was sent to the peer",
        .path.display()
    )]
    NotWritable {
        /// The path given.
        path: PathBuf,
        /// What failed, in words.
        what: String,
        /// The OS error, shown in the message (not as a `source`, so it is printed once).
        cause: io::Error,
    },
}

/// A `--out` path that passed the checks; dropping it removes the reservation if no
/// results were written into it.
#[derive(Debug)]
pub struct OutFile {
    path: PathBuf,
    /// Whether we created the (empty) file as a reservation.
    reserved: bool,
}

impl OutFile {
    /// Checks `path` for results and, unless `replace`, reserves it.
    pub fn check(path: &Path, replace: bool) -> Result<OutFile, OutFileError> {
        if path.file_name().is_none() {
            return Err(OutFileError::NoFileName {
                path: path.to_owned(),
            });
        }
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(OutFileError::IsDirectory {
                    path: path.to_owned(),
                });
            }
            Ok(_) if !replace => {
                return Err(OutFileError::Exists {
                    path: path.to_owned(),
                });
            }
            _ => {}
        }
        let dir = files::parent_dir(path);
        let not_writable = |what: String, cause| OutFileError::NotWritable {
            path: path.to_owned(),
            what,
            cause,
        };
        files::create_private_dir_all(dir).map_err(|source| {
            not_writable(
                format!("its directory {} cannot be created", dir.display()),
                source,
            )
        })?;
        let dir_not_writable = |source| {
            not_writable(
                format!("its directory {} is not writable", dir.display()),
                source,
            )
        };
        if replace {
            // The results replace the file by a rename in its directory: that is what
            // must be possible.
            tempfile::Builder::new()
                .prefix(".blindmatch-out-check.")
                .tempfile_in(dir)
                .map_err(dir_not_writable)?;
            return Ok(OutFile {
                path: path.to_owned(),
                reserved: false,
            });
        }
        let mut options = files::private_file_options();
        match options.write(true).create_new(true).open(path) {
            Ok(_) => Ok(OutFile {
                path: path.to_owned(),
                reserved: true,
            }),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(OutFileError::Exists {
                path: path.to_owned(),
            }),
            Err(err) => Err(dir_not_writable(err)),
        }
    }

    /// The path the results go to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        // Results are written by replacing the reservation, so a file still empty holds
        // none: the session failed, or its mode gave us no records to write.
        if self.reserved && fs::metadata(&self.path).is_ok_and(|meta| meta.len() == 0) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = OutFile::check(dir.path(), false).unwrap_err();
        assert!(matches!(err, OutFileError::IsDirectory { .. }), "{err}");
        let err = OutFile::check(dir.path(), true).unwrap_err();
        assert!(matches!(err, OutFileError::IsDirectory { .. }), "{err}");
    }

    #[test]
    fn an_existing_file_needs_replace_and_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        fs::write(&path, "id,matched_kinds\nA1,email\n").unwrap();
        let err = OutFile::check(&path, false).unwrap_err();
        assert!(matches!(err, OutFileError::Exists { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        drop(OutFile::check(&path, true).unwrap());
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "id,matched_kinds\nA1,email\n"
        );
    }

    #[test]
    fn a_reservation_blocks_a_second_run_and_goes_when_unused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/m.csv");
        let first = OutFile::check(&path, false).unwrap();
        assert!(path.exists());
        let err = OutFile::check(&path, false).unwrap_err();
        assert!(matches!(err, OutFileError::Exists { .. }), "{err}");
        drop(first);
        assert!(!path.exists(), "an unused reservation is removed");

        let kept = OutFile::check(&path, false).unwrap();
        fs::write(kept.path(), "id,matched_kinds\n").unwrap();
        drop(kept);
        assert!(path.exists(), "written results stay");
    }

    #[test]
    fn a_parent_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        fs::write(&file, "x").unwrap();
        for replace in [false, true] {
            let err = OutFile::check(&file.join("m.csv"), replace).unwrap_err();
            assert!(matches!(err, OutFileError::NotWritable { .. }), "{err}");
        }
    }
}
