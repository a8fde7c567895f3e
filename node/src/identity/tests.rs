use super::*;

use ed25519_dalek::{Signer, Verifier};

fn saved(name: &str) -> (tempfile::TempDir, NodeIdentity) {
    let data = tempfile::tempdir().unwrap();
    let identity = NodeIdentity::generate(name).unwrap();
    identity.save(data.path()).unwrap();
    (data, identity)
}

#[test]
fn generate_save_load_round_trips() {
    let (data, original) = saved("acme-vendor");
    let loaded = NodeIdentity::load(data.path()).unwrap();
    assert_eq!(loaded.name(), "acme-vendor");
    assert_eq!(loaded.fingerprint(), original.fingerprint());
    assert_eq!(loaded.cert_der(), original.cert_der());
    assert_eq!(loaded.audit_public_hex(), original.audit_public_hex());
    assert_eq!(loaded.audit_public_hex().len(), 64);
    assert_eq!(
        loaded.fingerprint(),
        Fingerprint::of_cert_der(loaded.cert_der())
    );
    let signature = loaded.audit_key().sign(b"entry");
    original
        .audit_key()
        .verifying_key()
        .verify(b"entry", &signature)
        .unwrap();
    assert_eq!(
        loaded.tls_certified_key().cert[0].as_ref(),
        original.cert_der()
    );
}

#[test]
fn two_identities_differ() {
    let a = NodeIdentity::generate("a").unwrap();
    let b = NodeIdentity::generate("a").unwrap();
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.audit_public_hex(), b.audit_public_hex());
}

#[test]
fn save_refuses_to_overwrite() {
    let (data, original) = saved("acme");
    let other = NodeIdentity::generate("acme").unwrap();
    let err = other.save(data.path()).unwrap_err();
    assert!(matches!(err, IdentityError::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    let loaded = NodeIdentity::load(data.path()).unwrap();
    assert_eq!(loaded.fingerprint(), original.fingerprint());
}

#[test]
fn save_leaves_only_the_identity_directory() {
    let (data, _) = saved("acme");
    let names: Vec<_> = fs::read_dir(data.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![IDENTITY_DIR.to_owned()]);
    let mut files: Vec<_> = fs::read_dir(identity_dir(data.path()))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["audit.key", "identity.toml", "tls.crt", "tls.key"]);
}

#[test]
fn save_creates_a_missing_data_dir() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("nested").join("data");
    NodeIdentity::generate("acme").unwrap().save(&data).unwrap();
    NodeIdentity::load(&data).unwrap();
}

#[cfg(unix)]
#[test]
fn private_keys_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (data, _) = saved("acme");
    let dir = identity_dir(data.path());
    let mode = |path: PathBuf| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.clone()), 0o700);
    assert_eq!(mode(dir.join(TLS_KEY_FILE)), 0o600);
    assert_eq!(mode(dir.join(AUDIT_KEY_FILE)), 0o600);
}

#[test]
fn load_without_identity_says_to_init() {
    let data = tempfile::tempdir().unwrap();
    let err = NodeIdentity::load(data.path()).unwrap_err();
    assert!(matches!(err, IdentityError::NotFound { .. }));
    assert!(err.to_string().contains("blindmatch init"), "{err}");
}

#[test]
fn load_detects_a_swapped_certificate() {
    let (data, _) = saved("acme");
    let (other_data, _) = saved("other");
    let cert = identity_dir(other_data.path()).join(TLS_CERT_FILE);
    fs::copy(cert, identity_dir(data.path()).join(TLS_CERT_FILE)).unwrap();
    let err = NodeIdentity::load(data.path()).unwrap_err();
    assert!(matches!(err, IdentityError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("fingerprint"), "{err}");
}

#[test]
fn load_detects_a_tls_key_that_does_not_match_the_certificate() {
    let (data, _) = saved("acme");
    let (other_data, _) = saved("other");
    let dir = identity_dir(data.path());
    fs::remove_file(dir.join(TLS_KEY_FILE)).unwrap();
    fs::copy(
        identity_dir(other_data.path()).join(TLS_KEY_FILE),
        dir.join(TLS_KEY_FILE),
    )
    .unwrap();
    let err = NodeIdentity::load(data.path()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("tls.key"), "{message}");
    assert!(message.contains("does not match"), "{message}");
}

#[test]
fn load_detects_a_swapped_audit_key_and_garbage() {
    let (data, _) = saved("acme");
    let (other_data, _) = saved("other");
    let dir = identity_dir(data.path());
    fs::remove_file(dir.join(AUDIT_KEY_FILE)).unwrap();
    fs::copy(
        identity_dir(other_data.path()).join(AUDIT_KEY_FILE),
        dir.join(AUDIT_KEY_FILE),
    )
    .unwrap();
    let err = NodeIdentity::load(data.path()).unwrap_err();
    assert!(err.to_string().contains("audit public key"), "{err}");

    // A TLS key (PKCS#8 v2 with public key) is not accepted as an audit key.
    fs::remove_file(dir.join(AUDIT_KEY_FILE)).unwrap();
    fs::copy(dir.join(TLS_KEY_FILE), dir.join(AUDIT_KEY_FILE)).unwrap();
    let err = NodeIdentity::load(data.path()).unwrap_err();
    assert!(err.to_string().contains("audit.key"), "{err}");

    fs::write(dir.join(TLS_CERT_FILE), "not pem").unwrap();
    let err = NodeIdentity::load(data.path()).unwrap_err();
    assert!(err.to_string().contains("tls.crt"), "{err}");
}

#[test]
fn debug_output_holds_no_secrets() {
    let (data, identity) = saved("acme");
    let debug = format!("{identity:?}");
    assert!(debug.contains(&identity.fingerprint().to_string()));
    let seed_hex = hex::encode(identity.audit_key().as_bytes());
    assert!(!debug.contains(&seed_hex));
    let tls_key = fs::read_to_string(identity_dir(data.path()).join(TLS_KEY_FILE)).unwrap();
    let body = tls_key.lines().nth(1).unwrap();
    assert!(!debug.contains(body));
}

#[test]
fn names_are_checked() {
    for good in ["a", "acme-vendor_2.eu", &"x".repeat(64)] {
        assert_eq!(name_problem(good), None, "{good}");
    }
    for bad in ["", "-x", ".x", "has space", "ünï", &"x".repeat(65)] {
        assert!(name_problem(bad).is_some(), "{bad}");
        assert!(matches!(
            NodeIdentity::generate(bad),
            Err(IdentityError::InvalidName { .. })
        ));
    }
}

#[test]
fn pem_wraps_at_64_columns() {
    let text = pem("CERTIFICATE", &[0u8; 100]);
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
    assert_eq!(lines[1].len(), 64);
    assert_eq!(lines.last().copied(), Some("-----END CERTIFICATE-----"));
    let der = CertificateDer::from_pem_slice(text.as_bytes()).unwrap();
    assert_eq!(der.as_ref(), &[0u8; 100][..]);
}
