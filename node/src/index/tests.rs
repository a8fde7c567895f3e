//! Builds on a real data directory: when an index is served, when it is stale, and what
//! a rebuild does (nothing, a delta, or a new epoch).

use std::net::SocketAddr;
use std::path::Path;

use blindmatch_protocol::index::{IndexStore, MemoryIndexStore};

use super::*;
use crate::admin;
use crate::dataset::ImportOptions;
use crate::identity::NodeIdentity;

fn node_with(dir: &Path, emails: std::ops::Range<usize>) {
    admin::init_node(dir, "provider", SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    import(dir, emails);
}

fn import(dir: &Path, emails: std::ops::Range<usize>) {
    let csv = dir.join("kp.csv");
    let mut text = String::from("id,email,consent\n");
    for i in emails {
        let consent = if i % 2 == 0 { "yes" } else { "" };
        text.push_str(&format!("k{i},kp{i}@corp.example.cn,{consent}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let mut options = ImportOptions::new(&csv, "kp");
    options.id_col = Some("id".into());
    options.email_cols = vec!["email".into()];
    options.consent_col = Some("consent".into());
    options.quiet = true;
    admin::import_dataset(dir, &options).unwrap();
}

fn build_with(dir: &Path, policy: &DatasetPolicy, rotate: bool) -> BuildReport {
    let identity = NodeIdentity::load(dir).unwrap();
    let options = BuildOptions {
        rotate,
        reason: None,
    };
    build(dir, identity.audit_key(), "kp", policy, options, &|_| {}).unwrap()
}

fn stale(dir: &Path, policy: &DatasetPolicy) -> bool {
    matches!(served(dir, "kp", policy), Err(IndexError::Stale { .. }))
}

#[test]
fn rebuilds_do_nothing_a_delta_or_a_new_epoch_as_the_dataset_changes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("provider");
    node_with(&dir, 0..1000);
    let open = DatasetPolicy::default();
    assert!(matches!(
        served(&dir, "kp", &open),
        Err(IndexError::NotIndexed { .. })
    ));

    let first = build_with(&dir, &open, false);
    assert_eq!(
        (first.kind, first.elements, first.segment),
        (BuildKind::NewEpoch, 1000, 0)
    );
    let index = served(&dir, "kp", &open).unwrap();
    assert_eq!(index.summary.elements, 1000);
    assert_eq!(hex::encode(index.summary.epoch), first.epoch);
    // The file on disk is a valid index signed by the node's audit key.
    let bytes = std::fs::read(dataset_index_dir(&dir, "kp").join(INDEX_FILE)).unwrap();
    let audit_key = NodeIdentity::load(&dir)
        .unwrap()
        .audit_key()
        .verifying_key()
        .to_bytes();
    let summary = MemoryIndexStore::holding(bytes)
        .open(Some(audit_key))
        .unwrap();
    assert_eq!(summary, index.summary);

    assert_eq!(build_with(&dir, &open, false).kind, BuildKind::UpToDate);

    // Additions only: a delta under the same key.
    import(&dir, 0..1100);
    assert!(
        stale(&dir, &open),
        "a re-import makes the index stale until rebuilt"
    );
    let delta = build_with(&dir, &open, false);
    assert_eq!(
        (delta.kind, delta.added, delta.elements),
        (BuildKind::Delta, 100, 1100)
    );
    assert_eq!(delta.epoch, first.epoch);
    assert_eq!(served(&dir, "kp", &open).unwrap().summary.segments, 2);

    // A removal: a new epoch, whose key replaced the old one.
    import(&dir, 1..1100);
    let rotated = build_with(&dir, &open, false);
    assert_eq!(rotated.kind, BuildKind::NewEpoch);
    assert_ne!(rotated.epoch, first.epoch);
    assert_eq!(
        rotated.previous_epoch.as_deref(),
        Some(first.epoch.as_str())
    );
    assert_eq!(rotated.elements, 1099);

    // Another dataset policy makes the index stale, and the rebuild a new epoch.
    let consent = DatasetPolicy {
        require_consent: true,
        ..DatasetPolicy::default()
    };
    assert!(stale(&dir, &consent));
    let narrowed = build_with(&dir, &consent, false);
    assert_eq!(narrowed.kind, BuildKind::NewEpoch);
    assert_eq!(narrowed.records, 549);
    assert!(served(&dir, "kp", &consent).is_ok());

    // --rotate always starts a new epoch; remove deletes index and key.
    let forced = build_with(&dir, &consent, true);
    assert_eq!(forced.kind, BuildKind::NewEpoch);
    assert_ne!(forced.epoch, narrowed.epoch);
    assert_eq!(remove(&dir, "kp").unwrap(), Some(forced.epoch));
    assert!(!exists(&dir, "kp"));
}

#[cfg(unix)]
#[test]
fn the_key_and_index_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("provider");
    node_with(&dir, 0..10);
    build_with(&dir, &DatasetPolicy::default(), false);
    for file in [KEY_FILE, INDEX_FILE, STATE_FILE] {
        let path = dataset_index_dir(&dir, "kp").join(file);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
}
