//! One `serve` per data directory, and what it has loaded.
//!
//! `serve` holds an exclusive lock on `<data>/serve.lock` (`flock` on Unix, released by
//! the kernel however the process ends) with its PID written in it: a second `serve` on
//! the same directory fails at once, naming the holder. Two servers would each enforce
//! concurrency limits and rate limits only for their own sessions. After every
//! (re)load of `node.toml`, `serve` writes `<data>/serve.state` (the SHA-256 of the file
//! it loaded and when), so `policy check` can say whether the running server has loaded
//! the file as it is now.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::NodeConfig;
use crate::files::{Access, write_file as write_file_atomic};
use crate::node::NodeError;

/// The lock file `serve` holds.
pub const LOCK_FILE: &str = "serve.lock";
/// What the running `serve` has loaded.
pub const STATE_FILE: &str = "serve.state";

/// Held by the one `serve` of a data directory; released when dropped.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

impl ServeLock {
    /// Takes the lock, or fails naming the `serve` that holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, NodeError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |what: &'static str| {
            let path = path.clone();
            move |source| NodeError::Io { what, path, source }
        };
        let mut file = crate::files::private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("opening"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_pid(&mut file)
                    .map_or_else(|| "another process".to_owned(), |pid| format!("pid {pid}"));
                return Err(NodeError::Other(format!(
                    "another `blindmatch serve` ({holder}) already serves {}; stop it first, or give this one another --data-dir",
                    data_dir.display()
                )));
            }
            Err(TryLockError::Error(source)) => return Err(io("locking")(source)),
        }
        file.set_len(0).map_err(io("writing"))?;
        file.rewind().map_err(io("writing"))?;
        writeln!(file, "{}", std::process::id()).map_err(io("writing"))?;
        file.sync_all().map_err(io("writing"))?;
        Ok(Self { _file: file })
    }
}

/// The `serve` running on a data directory, if any: its PID.
pub fn running(data_dir: &Path) -> Option<u32> {
    let mut file = File::open(data_dir.join(LOCK_FILE)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(_) => read_pid(&mut file),
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// What the running `serve` loaded, as written to [`STATE_FILE`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeState {
    /// The server's PID.
    pub pid: u32,
    /// SHA-256 (hex) of the `node.toml` it loaded.
    pub config_sha256: String,
    /// When (RFC 3339 UTC).
    pub loaded_at: String,
}

impl ServeState {
    /// Writes the state after a (re)load of `config_text`.
    pub fn write(data_dir: &Path, config_text: &[u8]) -> std::io::Result<()> {
        let state = ServeState {
            pid: std::process::id(),
            config_sha256: hex::encode(Sha256::digest(config_text)),
            loaded_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(std::io::Error::other)?;
        write_file_atomic(&state_path(data_dir), &json, Access::OwnerOnly)
    }

    /// The state the running `serve` wrote, if one runs.
    pub fn of_running(data_dir: &Path) -> Option<ServeState> {
        let pid = running(data_dir)?;
        let text = std::fs::read(state_path(data_dir)).ok()?;
        let state: ServeState = serde_json::from_slice(&text).ok()?;
        (state.pid == pid).then_some(state)
    }
}

/// SHA-256 (hex) of `node.toml` as it is on disk now.
pub fn config_sha256(data_dir: &Path) -> Option<String> {
    std::fs::read(NodeConfig::path(data_dir))
        .ok()
        .map(|bytes| hex::encode(Sha256::digest(bytes)))
}

fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STATE_FILE)
}

/// Asks the `serve` running on `data_dir` (if any) to reload `node.toml` now (SIGHUP),
/// rather than at its next poll; returns whether one was told.
pub fn ask_to_reload(data_dir: &Path) -> bool {
    let Some(pid) = running(data_dir) else {
        return false;
    };
    #[cfg(unix)]
    {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = ServeLock::acquire(dir.path()).unwrap();
        assert_eq!(running(dir.path()), Some(std::process::id()));
        let err = ServeLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert_eq!(running(dir.path()), None);
        assert!(ServeLock::acquire(dir.path()).is_ok());
    }
}
