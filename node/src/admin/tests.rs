//! Setup operations and the audit records they leave.

use std::net::SocketAddr;
use std::path::Path;

use blindmatch_protocol::audit::{VerifyOptions, read_records, verify_log_bytes};
use clap::Parser;
use serde_json::{Map, Value};

use super::*;
use crate::audit::{AuditCommand, LOG_FILE, run_with_output};
use crate::config::{AllowedMode, PeerAddr};
use crate::identity::Fingerprint;

/// A record id distinctive enough that finding it in the log cannot be a coincidence.
const WITHDRAWN: &str = "crm-0042-consent-withdrawn";

fn new_node(dir: &Path) {
    let listen: SocketAddr = "127.0.0.1:7447".parse().unwrap();
    init_node(dir, "vendor", listen).unwrap();
    let csv = dir.join("kp.csv");
    std::fs::write(
        &csv,
        format!(
            "id,email\n{WITHDRAWN},ann@example.com\ncrm-0043,bob@example.com\ncrm-0044,cy@example.com\n"
        ),
    )
    .unwrap();
    let mut options = ImportOptions::new(&csv, "kp");
    options.id_col = Some("id".into());
    options.email_cols = vec!["email".into()];
    options.quiet = true;
    import_dataset(dir, &options).unwrap();
}

fn records(dir: &Path, kind: &str) -> Vec<Map<String, Value>> {
    let bytes = std::fs::read(dir.join(LOG_FILE)).unwrap();
    read_records(&bytes)
        .0
        .into_iter()
        .filter(|r| r.record_type == kind)
        .map(|r| r.fields)
        .collect()
}

fn revoke(dir: &Path, ids: &str) {
    let list = dir.join("withdrawn.txt");
    std::fs::write(&list, ids).unwrap();
    dataset_command(
        dir,
        DatasetCommand::Revoke {
            name: "kp".into(),
            ids: list,
        },
        true,
    )
    .unwrap();
}

#[derive(clap::Parser)]
struct AuditCli {
    #[command(subcommand)]
    cmd: AuditCommand,
}

fn audit_cli(dir: &Path, args: &[&str]) -> String {
    let cli =
        AuditCli::try_parse_from(std::iter::once("audit").chain(args.iter().copied())).unwrap();
    let mut out = Vec::new();
    run_with_output(cli.cmd, dir, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_revocation_is_recorded_as_dataset_revoked_without_any_id() {
    let dir = tempfile::tempdir().unwrap();
    new_node(dir.path());
    revoke(dir.path(), &format!("id\n{WITHDRAWN}\nnever-imported\n"));

    let imported = records(dir.path(), "dataset_imported");
    assert_eq!(imported.len(), 1, "only the import: {imported:?}");
    let revoked = records(dir.path(), "dataset_revoked");
    assert_eq!(revoked.len(), 1);
    let r = &revoked[0];
    assert_eq!(r["name"], "kp");
    assert_eq!(r["revoked"], 1);
    assert_eq!(r["remaining"], 2);
    let version = r["version"].as_str().unwrap().to_owned();
    assert!(
        version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()),
        "{version}"
    );
    let stored = crate::dataset::Dataset::load(dir.path(), "kp").unwrap();
    assert_eq!(
        stored.meta().version,
        version,
        "the log names the version stored"
    );
    let log = std::fs::read_to_string(dir.path().join(LOG_FILE)).unwrap();
    assert!(
        !log.contains(WITHDRAWN),
        "a revoked id reached the audit log"
    );

    // Nothing matched: nothing rewritten, nothing recorded.
    revoke(dir.path(), "never-imported\n");
    assert_eq!(records(dir.path(), "dataset_revoked").len(), 1);
    // Another revocation: a new version.
    revoke(dir.path(), "crm-0043\n");
    let revoked = records(dir.path(), "dataset_revoked");
    assert_eq!(revoked.len(), 2);
    assert_eq!(revoked[1]["remaining"], 1);
    assert_ne!(revoked[1]["version"].as_str().unwrap(), version);

    // The log verifies with no record of an unknown type, and `audit show` says it.
    let identity = NodeIdentity::load(dir.path()).unwrap();
    let bytes = std::fs::read(dir.path().join(LOG_FILE)).unwrap();
    let report = verify_log_bytes(
        &bytes,
        &VerifyOptions {
            key: Some(identity.audit_key().verifying_key()),
            ..VerifyOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.unknown_types, 0);
    let shown = audit_cli(dir.path(), &["show"]);
    assert!(
        shown.contains("dataset revoked")
            && shown.contains("dataset kp: 1 record revoked (consent withdrawn), 2 left"),
        "{shown}"
    );
    let verified = audit_cli(dir.path(), &["verify"]);
    assert!(
        verified.contains("VERIFIED: yes") && !verified.contains("does not know"),
        "{verified}"
    );
}

#[test]
fn add_peer_takes_the_config_type_and_records_it() {
    let dir = tempfile::tempdir().unwrap();
    new_node(dir.path());
    let addr: PeerAddr = "partner.example.com:7447".parse().unwrap();
    let fingerprint: Fingerprint = "ab".repeat(32).parse().unwrap();
    let mut wanted = PeerConfig::new("partner", addr, fingerprint)
        .offering(["kp"])
        .with_modes([AllowedMode::Cardinality])
        .with_max_peer_set_size(Some(5_000));
    wanted.policy.purposes = vec!["coverage check".into()];
    let added = add_peer(dir.path(), wanted.clone()).unwrap();
    assert_eq!(added, wanted);
    // Everything given, policy included, is what `node.toml` now holds.
    let config = NodeConfig::load(dir.path()).unwrap();
    assert_eq!(config.peer("partner"), Some(&wanted));
    let recorded = records(dir.path(), "peer_added");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["fingerprint"], fingerprint.to_string());

    // No `--mode`: every mode, as before.
    let other: Fingerprint = "cd".repeat(32).parse().unwrap();
    let peer = add_peer(
        dir.path(),
        PeerConfig::new("other", "10.0.0.5:7447".parse().unwrap(), other).with_modes([]),
    )
    .unwrap();
    assert_eq!(peer.modes, AllowedMode::ALL.to_vec());
    assert!(peer.offers.is_empty());

    // Duplicates are refused and nothing is recorded for them.
    assert!(add_peer(dir.path(), wanted).is_err());
    assert_eq!(records(dir.path(), "peer_added").len(), 2);
}
