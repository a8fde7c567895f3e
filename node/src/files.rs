//! How the node writes its files: crash-safe replacement (write a temporary file in the
//! target's directory, fsync it, rename it over the target, fsync the directory), and
//! private creation (directories 0700, files 0600 from the first byte).
//!
//! After a crash a replaced file holds either the old or the new contents, never a mix.
//! Everything in a data directory is private to its owner: the audit log names
//! partners and datasets, results hold record ids, the ledger holds budgets.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Who may read a file we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Owner read/write only (0600): private keys.
    OwnerOnly,
    /// Owner read/write, everyone read (0644): certificates, config.
    Public,
}

impl Access {
    #[cfg(unix)]
    fn permissions(self) -> fs::Permissions {
        use std::os::unix::fs::PermissionsExt;
        match self {
            Access::OwnerOnly => fs::Permissions::from_mode(0o600),
            Access::Public => fs::Permissions::from_mode(0o644),
        }
    }
}

/// Options that create a file readable and writable by its owner only (0600 on Unix),
/// set at creation so there is no instant at which others could open it.
pub(crate) fn private_file_options() -> fs::OpenOptions {
    #[allow(unused_mut)]
    let mut options = fs::OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates `dir` and any missing parents with owner-only access (0700 on Unix).
/// Directories that already exist keep their permissions: the operator chose them.
pub(crate) fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Atomically replaces (or creates) `path` with `contents`.
///
/// The temporary file is created with the final permissions already set, so a
/// private key is never readable by others, not even for an instant.
pub(crate) fn write_file(path: &Path, contents: &[u8], access: Access) -> io::Result<()> {
    write_file_with(path, access, |out| out.write_all(contents))
}

/// Like [`write_file`], with the contents produced by `fill` writing to the temporary
/// file (buffered), so large files never need to be in memory whole.
pub(crate) fn write_file_with(
    path: &Path,
    access: Access,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_dir(path);
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let prefix = format!(".{}.", file_name.to_string_lossy());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    builder.permissions(access.permissions());
    #[cfg(not(unix))]
    let _ = access;
    let mut temp = builder.tempfile_in(dir)?;
    {
        let mut buffered = io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
        fill(&mut buffered)?;
        buffered.flush()?;
    }
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|err| err.error)?;
    sync_dir(dir)
}

/// Creates `path` (which must not exist) with `contents` and fsyncs it.
///
/// For files inside a private staging directory that is renamed into place as a whole.
pub(crate) fn create_new_file(path: &Path, contents: &[u8], access: Access) -> io::Result<()> {
    let mut options = match access {
        Access::OwnerOnly => private_file_options(),
        Access::Public => fs::OpenOptions::new(),
    };
    options.write(true).create_new(true);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes a rename or file creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    // Windows cannot open a directory as a file; its renames are durable once the
    // call returns on NTFS.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn write_file_replaces_contents_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        write_file(&path, b"one", Access::Public).unwrap();
        write_file(&path, b"two", Access::Public).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("node.toml")]);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.key");
        let b = dir.path().join("b.key");
        write_file(&a, b"secret", Access::OwnerOnly).unwrap();
        create_new_file(&b, b"secret", Access::OwnerOnly).unwrap();
        for path in [a, b] {
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
    }

    #[cfg(unix)]
    #[test]
    fn private_dirs_are_0700_and_existing_ones_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir_all(&nested).unwrap();
        for path in [dir.path().join("a"), nested.clone()] {
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", path.display());
        }
        fs::set_permissions(&nested, fs::Permissions::from_mode(0o750)).unwrap();
        create_private_dir_all(&nested).unwrap();
        let mode = fs::metadata(&nested).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o750);
    }

    #[test]
    fn create_new_file_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        create_new_file(&path, b"1", Access::Public).unwrap();
        let err = create_new_file(&path, b"2", Access::Public).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"1");
    }
}
