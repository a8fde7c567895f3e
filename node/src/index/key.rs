//! An index epoch's secret: a random 32-byte seed from which the VOPRF key is derived
//! (RFC 9497 `DeriveKeyPair`), kept like the TLS key: a 0600 file in the data
//! directory, zeroized in memory, never logged or printed.
//!
//! File (`index/NAME/key`, 53 bytes): magic `BMIK`, version 1, the 16-byte epoch id,
//! the 32-byte seed. The key is `DeriveKeyPair(seed, "blindmatch index epoch" || epoch)`
//! in mode 1, so a seed copied to another epoch id gives another key.

use std::fmt;
use std::path::Path;

use blindmatch_protocol::index::EpochId;
use blindmatch_protocol::oprf::{Mode, OprfKey};
use rand::Rng;
use zeroize::Zeroizing;

use super::IndexError;
use crate::files::{Access, write_file};

const MAGIC: &[u8; 4] = b"BMIK";
const VERSION: u8 = 1;
const FILE_LEN: usize = 4 + 1 + 16 + 32;
const INFO_LABEL: &[u8] = b"blindmatch index epoch";

/// An epoch's id and secret seed. Not `Clone`; `Debug` shows the epoch only.
pub struct EpochKey {
    epoch: EpochId,
    seed: Zeroizing<[u8; 32]>,
}

impl EpochKey {
    /// A fresh epoch: random id, random seed.
    pub fn generate() -> Self {
        let mut epoch = [0u8; 16];
        let mut seed = Zeroizing::new([0u8; 32]);
        let mut rng = rand::rng();
        rng.fill_bytes(&mut epoch);
        rng.fill_bytes(seed.as_mut());
        Self { epoch, seed }
    }

    /// The epoch id.
    pub fn epoch(&self) -> EpochId {
        self.epoch
    }

    /// The VOPRF key of this epoch.
    pub fn oprf_key(&self) -> Result<OprfKey, IndexError> {
        let mut info = Vec::with_capacity(INFO_LABEL.len() + 16);
        info.extend_from_slice(INFO_LABEL);
        info.extend_from_slice(&self.epoch);
        OprfKey::derive(Mode::Voprf, &self.seed, &info)
            .map_err(|err| IndexError::Other(format!("deriving the index key: {err}")))
    }

    /// Writes the key file (owner-only, atomically).
    pub fn save(&self, path: &Path) -> Result<(), IndexError> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(FILE_LEN));
        bytes.extend_from_slice(MAGIC);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.epoch);
        bytes.extend_from_slice(self.seed.as_ref());
        write_file(path, &bytes, Access::OwnerOnly).map_err(|source| IndexError::Io {
            action: "writing",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a key file; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, IndexError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(IndexError::Io {
                    action: "reading",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if bytes.len() != FILE_LEN || &bytes[..4] != MAGIC || bytes[4] != VERSION {
            return Err(IndexError::Corrupt {
                path: path.to_path_buf(),
                problem: "not an index key file of this version".into(),
            });
        }
        let mut epoch = [0u8; 16];
        epoch.copy_from_slice(&bytes[5..21]);
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&bytes[21..]);
        Ok(Some(Self { epoch, seed }))
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EpochKey")
            .field("epoch", &hex::encode(self.epoch))
            .finish_non_exhaustive()
    }
}
