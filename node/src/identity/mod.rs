//! A node's long-term identity: a TLS key pair with a self-signed certificate, and a
//! separate Ed25519 key that signs the audit log.
//!
//! Stored under `<data>/identity/`:
//!
//! | file            | contents                                          | mode |
//! |-----------------|---------------------------------------------------|------|
//! | `tls.key`       | TLS private key, PKCS#8 PEM                        | 0600 |
//! | `tls.crt`       | self-signed certificate, PEM                       | 0644 |
//! | `audit.key`     | audit signing key, PKCS#8 PEM (RFC 8410 Ed25519)   | 0600 |
//! | `identity.toml` | name, fingerprint, audit public key (for humans)   | 0644 |
//!
//! Invariants: an identity is written once, as a whole (the directory is staged under
//! a temporary name and renamed into place), and is never overwritten. On load, the
//! certificate, the TLS key, the audit key and `identity.toml` must agree, or loading
//! fails naming the file that disagrees.
//!
//! The TLS key is Ed25519: signatures are deterministic (no per-signature nonce to get
//! wrong), constant-time in ring, small and fast, and rustls' ring provider signs and
//! verifies them in TLS 1.3. Both nodes are ours, so the wider reach of ECDSA P-256
//! among third-party TLS stacks buys nothing here. Peers pin the certificate by
//! fingerprint, so its validity period is left at rcgen's "forever" default; rotating
//! an identity means re-pinning it.
//!
//! Secret material has no `Debug` output, is not `Clone`, and is zeroized on drop
//! where the types allow it (our copies of the key bytes, the audit key). ring's parsed
//! TLS key and rcgen's temporary key pair are outside our control.

mod audit_key;
mod fingerprint;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use rand::TryRng;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::files::{self, Access};

pub use audit_key::AuditKey;
pub use fingerprint::Fingerprint;

/// Name of the identity directory inside the data directory.
pub const IDENTITY_DIR: &str = "identity";
const TLS_KEY_FILE: &str = "tls.key";
const TLS_CERT_FILE: &str = "tls.crt";
const AUDIT_KEY_FILE: &str = "audit.key";
const INFO_FILE: &str = "identity.toml";

/// RFC 8410 PKCS#8 (v1) prefix of an Ed25519 private key; the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Everything that can go wrong creating, storing or loading an identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A fingerprint string could not be parsed.
    #[error(
        "`{input}` is not a SHA-256 fingerprint: {problem}; copy it from `blindmatch id` on the peer's node"
    )]
    InvalidFingerprint {
        /// The text given (shortened if long).
        input: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The node name is not acceptable.
    #[error("invalid node name `{name}`: {problem}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Key or certificate generation failed.
    #[error("could not generate the {what}: {detail}")]
    Generate {
        /// Which key or certificate.
        what: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// `save` found an identity already there.
    #[error(
        "an identity already exists at {}; refusing to overwrite it (peers have pinned its fingerprint). \
         Use it as is, or move it away first if you really mean to replace it",
        .dir.display()
    )]
    AlreadyExists {
        /// The existing identity directory.
        dir: PathBuf,
    },
    /// `load` found no identity.
    #[error("no identity found at {}; run `blindmatch init` to create one", .dir.display())]
    NotFound {
        /// Where we looked.
        dir: PathBuf,
    },
    /// Reading or writing a file failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What we were doing ("reading", "writing", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A stored file is malformed or disagrees with the rest of the identity.
    #[error(
        "{}: {problem}; the identity is damaged or was edited by hand. Restore {} from a backup",
        .path.display(), .path.parent().unwrap_or(Path::new(".")).display()
    )]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// A node's long-term identity. Not `Clone`: there is one copy of the secrets.
pub struct NodeIdentity {
    name: String,
    cert_der: CertificateDer<'static>,
    tls_key_pkcs8: Zeroizing<Vec<u8>>,
    certified_key: Arc<CertifiedKey>,
    fingerprint: Fingerprint,
    audit_key: SigningKey,
}

/// The public, human-readable summary stored next to the keys.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityInfo {
    name: String,
    fingerprint: Fingerprint,
    audit_public_key: String,
}

impl NodeIdentity {
    /// Generates a fresh identity for a node called `name`.
    ///
    /// `name` goes into the certificate's common name; it is informative only (peers
    /// pin the fingerprint, not the name).
    pub fn generate(name: &str) -> Result<Self, IdentityError> {
        if let Some(problem) = name_problem(name) {
            return Err(IdentityError::InvalidName {
                name: name.to_owned(),
                problem,
            });
        }
        let generate_err = |what| {
            move |err: rcgen::Error| IdentityError::Generate {
                what,
                detail: err.to_string(),
            }
        };
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(generate_err("TLS key pair"))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(generate_err("certificate"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "blindmatch node");
        let cert = params
            .self_signed(&key_pair)
            .map_err(generate_err("certificate"))?;
        let tls_key_pkcs8 = Zeroizing::new(key_pair.serialize_der());
        drop(key_pair);

        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::SysRng
            .try_fill_bytes(seed.as_mut())
            .map_err(|err| IdentityError::Generate {
                what: "audit signing key",
                detail: format!("the operating system's random number generator failed: {err}"),
            })?;
        let audit_key = SigningKey::from_bytes(&seed);

        let cert_der = cert.der().clone();
        let certified_key =
            certified_key(&cert_der, &tls_key_pkcs8).map_err(|err| IdentityError::Generate {
                what: "TLS signing key",
                detail: err.to_string(),
            })?;
        Ok(Self {
            name: name.to_owned(),
            fingerprint: Fingerprint::of_cert_der(&cert_der),
            cert_der,
            tls_key_pkcs8,
            certified_key,
            audit_key,
        })
    }

    /// Writes the identity to `<data_dir>/identity/`, creating `data_dir` if needed.
    ///
    /// Refuses to overwrite an existing identity. The files are written into a private
    /// staging directory which is then renamed into place, so a crash leaves either no
    /// identity or a complete one.
    pub fn save(&self, data_dir: &Path) -> Result<(), IdentityError> {
        let dir = identity_dir(data_dir);
        if dir.exists() {
            return Err(IdentityError::AlreadyExists { dir });
        }
        files::create_private_dir_all(data_dir).map_err(io_err("creating", data_dir))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(".identity.");
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let staging = builder
            .tempdir_in(data_dir)
            .map_err(io_err("creating a staging directory in", data_dir))?;
        let info = IdentityInfo {
            name: self.name.clone(),
            fingerprint: self.fingerprint,
            audit_public_key: self.audit_public_hex(),
        };
        let info_toml = toml::to_string(&info).map_err(|err| IdentityError::Generate {
            what: "identity summary",
            detail: err.to_string(),
        })?;
        let tls_key_pem = Zeroizing::new(pem("PRIVATE KEY", &self.tls_key_pkcs8));
        let mut audit_pkcs8 = Zeroizing::new(ED25519_PKCS8_PREFIX.to_vec());
        audit_pkcs8.extend_from_slice(self.audit_key.as_bytes());
        let audit_key_pem = Zeroizing::new(pem("PRIVATE KEY", &audit_pkcs8));
        let cert_pem = pem("CERTIFICATE", &self.cert_der);
        let files: [(&str, &[u8], Access); 4] = [
            (TLS_KEY_FILE, tls_key_pem.as_bytes(), Access::OwnerOnly),
            (AUDIT_KEY_FILE, audit_key_pem.as_bytes(), Access::OwnerOnly),
            (TLS_CERT_FILE, cert_pem.as_bytes(), Access::Public),
            (INFO_FILE, info_toml.as_bytes(), Access::Public),
        ];
        for (file, contents, access) in files {
            let path = staging.path().join(file);
            files::create_new_file(&path, contents, access).map_err(io_err("writing", &path))?;
        }
        files::sync_dir(staging.path()).map_err(io_err("syncing", staging.path()))?;
        // The check above raced with nothing we control; rename fails if a non-empty
        // identity appeared meanwhile, and the staging directory is then removed on drop.
        fs::rename(staging.path(), &dir).map_err(|source| {
            if dir.exists() {
                IdentityError::AlreadyExists { dir: dir.clone() }
            } else {
                IdentityError::Io {
                    action: "moving the new identity into",
                    path: dir.clone(),
                    source,
                }
            }
        })?;
        // Renamed away: nothing left for the guard to delete.
        let _ = staging.keep();
        files::sync_dir(data_dir).map_err(io_err("syncing", data_dir))?;
        Ok(())
    }

    /// Loads the identity from `<data_dir>/identity/` and checks that its parts agree.
    pub fn load(data_dir: &Path) -> Result<Self, IdentityError> {
        let dir = identity_dir(data_dir);
        if !dir.is_dir() {
            return Err(IdentityError::NotFound { dir });
        }
        let info_path = dir.join(INFO_FILE);
        let info_text = fs::read_to_string(&info_path).map_err(io_err("reading", &info_path))?;
        let info: IdentityInfo =
            toml::from_str(&info_text).map_err(|err| corrupt(&info_path, err.message()))?;

        let cert_path = dir.join(TLS_CERT_FILE);
        let cert_pem = fs::read(&cert_path).map_err(io_err("reading", &cert_path))?;
        let cert_der = CertificateDer::from_pem_slice(&cert_pem)
            .map_err(|err| corrupt(&cert_path, format!("not a PEM certificate ({err})")))?;
        let fingerprint = Fingerprint::of_cert_der(&cert_der);
        if fingerprint != info.fingerprint {
            return Err(corrupt(
                &info_path,
                format!(
                    "records fingerprint {} but {TLS_CERT_FILE} has fingerprint {fingerprint}",
                    info.fingerprint
                ),
            ));
        }

        let tls_key_path = dir.join(TLS_KEY_FILE);
        let tls_key_pkcs8 = read_pkcs8(&tls_key_path)?;
        let certified_key = certified_key(&cert_der, &tls_key_pkcs8).map_err(|err| {
            corrupt(
                &tls_key_path,
                format!("does not match {TLS_CERT_FILE}: {err}"),
            )
        })?;

        let audit_path = dir.join(AUDIT_KEY_FILE);
        let audit_pkcs8 = read_pkcs8(&audit_path)?;
        let seed: &[u8; 32] = audit_pkcs8
            .strip_prefix(&ED25519_PKCS8_PREFIX[..])
            .and_then(|rest| rest.try_into().ok())
            .ok_or_else(|| corrupt(&audit_path, "not an Ed25519 private key (RFC 8410 PKCS#8)"))?;
        let audit_key = SigningKey::from_bytes(seed);
        let audit_public = hex::encode(audit_key.verifying_key().as_bytes());
        if !audit_public.eq_ignore_ascii_case(&info.audit_public_key) {
            return Err(corrupt(
                &info_path,
                format!(
                    "records audit public key {} but {AUDIT_KEY_FILE} holds {audit_public}",
                    info.audit_public_key
                ),
            ));
        }
        if let Some(problem) = name_problem(&info.name) {
            return Err(corrupt(
                &info_path,
                format!("name `{}`: {problem}", info.name),
            ));
        }
        for path in [&tls_key_path, &audit_path] {
            warn_if_readable_by_others(path);
        }
        Ok(Self {
            name: info.name,
            cert_der,
            tls_key_pkcs8,
            certified_key,
            fingerprint,
            audit_key,
        })
    }

    /// The node's name (the certificate's common name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the certificate: what peers pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The self-signed certificate, DER-encoded.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The certificate and TLS signing key, ready for a rustls certificate resolver
    /// (`rustls::sign::SingleCertAndKey::from(identity.tls_certified_key())`).
    pub fn tls_certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified_key)
    }

    /// The key that signs audit log entries.
    pub fn audit_key(&self) -> &SigningKey {
        &self.audit_key
    }

    /// The keyed hash the audit log records of an imported file, from the file's SHA-256
    /// (hex): HMAC-SHA256 under a key derived from the audit key, so that only this node
    /// can recompute it (and check a file), and nobody can test guesses of a small
    /// file's contents against the log.
    pub fn input_file_mac(&self, sha256_hex: &str) -> String {
        use hmac::{KeyInit, Mac};
        let mut derive = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut derive, b"blindmatch input-file mac key\n");
        sha2::Digest::update(&mut derive, self.audit_key.as_bytes());
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(sha2::Digest::finalize(derive).into());
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key[..]) else {
            // HMAC takes keys of any length: this branch is never taken.
            return String::new();
        };
        mac.update(sha256_hex.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The audit verifying key as 64 lowercase hex digits (what an auditor needs).
    pub fn audit_public_hex(&self) -> String {
        hex::encode(self.audit_key.verifying_key().as_bytes())
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("name", &self.name)
            .field("fingerprint", &self.fingerprint)
            .field("audit_public_key", &self.audit_public_hex())
            .finish_non_exhaustive()
    }
}

/// `<data_dir>/identity`.
pub fn identity_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(IDENTITY_DIR)
}

/// Why `name` is not acceptable as a node, peer or dataset name, if it is not.
///
/// Names appear in file names, command lines and logs, so they are kept to
/// 1–64 ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.len() > 64 {
        return Some("must be at most 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("must start with a letter or digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Some("may contain only ASCII letters, digits, `-`, `_` and `.`");
    }
    None
}

fn certified_key(
    cert_der: &CertificateDer<'static>,
    pkcs8: &[u8],
) -> Result<Arc<CertifiedKey>, rustls::Error> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    CertifiedKey::from_der(vec![cert_der.clone()], key, &default_provider()).map(Arc::new)
}

fn read_pkcs8(path: &Path) -> Result<Zeroizing<Vec<u8>>, IdentityError> {
    let text = Zeroizing::new(fs::read(path).map_err(io_err("reading", path))?);
    let key = PrivatePkcs8KeyDer::from_pem_slice(&text)
        .map_err(|err| corrupt(path, format!("not a PKCS#8 PEM private key ({err})")))?;
    Ok(Zeroizing::new(key.secret_pkcs8_der().to_vec()))
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "private key is readable by other users; run `chmod 600` on it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IdentityError {
    let path = path.to_owned();
    move |source| IdentityError::Io {
        action,
        path,
        source,
    }
}

fn corrupt(path: &Path, problem: impl Into<String>) -> IdentityError {
    IdentityError::Corrupt {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
