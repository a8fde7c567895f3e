//! Sealing rules, event types and their fields (the privacy allowlist), timestamps.

use super::*;

#[test]
fn sealing_keeps_the_chain_rules() {
    let k = key(1);
    let ts = || Timestamp::parse("2025-01-01T00:00:00Z").unwrap();
    let removed = AuditEvent::DatasetRemoved { name: "x".into() };
    assert_eq!(
        ChainHead::EMPTY.seal(ts(), &removed, &k),
        Err(SealError::NotInitialised("dataset_removed"))
    );
    let init = AuditEvent::NodeInitialised {
        name: "n".into(),
        fingerprint: "f".into(),
        audit_key: key_hex(&key(2)),
    };
    assert!(matches!(
        ChainHead::EMPTY.seal(ts(), &init, &k),
        Err(SealError::KeyMismatch { .. })
    ));
    let init = AuditEvent::NodeInitialised {
        name: "n".into(),
        fingerprint: "f".into(),
        audit_key: key_hex(&k),
    };
    let first = ChainHead::EMPTY.seal(ts(), &init, &k).unwrap();
    let head = ChainHead::after(&first);
    assert_eq!(
        head.seal(ts(), &init, &k),
        Err(SealError::AlreadyInitialised)
    );
    let wrong = AuditEvent::Checkpoint {
        count: 0,
        head_hash: head.head_hash,
    };
    assert_eq!(
        head.seal(ts(), &wrong, &k),
        Err(SealError::CheckpointMismatch)
    );
    let mut huge = facts(1, Role::Initiator, "a", "b", 1, None);
    huge.bytes_sent = 1 << 60;
    assert!(matches!(
        head.seal(ts(), &AuditEvent::SessionCompleted(huge), &k),
        Err(SealError::Canonical(_))
    ));
    assert!(
        !ChainHead {
            count: 14,
            head_hash: RecordHash::ZERO
        }
        .checkpoint_due(16)
    );
    assert!(
        ChainHead {
            count: 15,
            head_hash: RecordHash::ZERO
        }
        .checkpoint_due(16)
    );
    assert!(
        ChainHead {
            count: 31,
            head_hash: RecordHash::ZERO
        }
        .checkpoint_due(16)
    );
    assert!(
        !ChainHead {
            count: 0,
            head_hash: RecordHash::ZERO
        }
        .checkpoint_due(1)
    );
    assert!(
        !ChainHead {
            count: 0,
            head_hash: RecordHash::ZERO
        }
        .checkpoint_due(0)
    );
}

#[test]
fn unknown_record_types_verify_but_are_counted() {
    let k = key(1);
    let mut w = Writer::new(k.clone());
    w.init("n");
    let mut fields = serde_json::Map::new();
    fields.insert("note".into(), "from a newer node".into());
    let mut record = Record {
        seq: w.head.count,
        ts: w.ts(),
        prev: w.head.head_hash,
        record_type: "policy_changed".into(),
        fields,
        hash: RecordHash::ZERO,
        sig: [0; 64],
    };
    record.hash = record.compute_hash().unwrap();
    record.sig = ed25519_dalek::Signer::sign(&k, &record.hash.0).to_bytes();
    w.text.push_str(&record.to_line().unwrap());
    w.text.push('\n');
    let report = verify_log(&w.text, Some(&k.verifying_key())).unwrap();
    assert_eq!(report.unknown_types, 1);
}

/// One event of every type, every optional field set.
fn every_event() -> Vec<AuditEvent> {
    let mut f = facts(1, Role::Responder, "a", "b", 10, Some(20));
    f.our_dataset = Some(DatasetVersion {
        name: "d".into(),
        version: "33".repeat(16),
    });
    f.peer_dataset = f.our_dataset.clone();
    f.matched_records = Some(4);
    f.receipt = Some("44".repeat(200));
    f.peer_receipt = f.receipt.clone();
    f.run_id = Some("55".repeat(8));
    f.index_epoch = Some("66".repeat(16));
    f.index_bytes = Some(12345);
    f.charged = Some(20);
    vec![
        AuditEvent::NodeInitialised {
            name: "n".into(),
            fingerprint: "f".into(),
            audit_key: "k".into(),
        },
        AuditEvent::PeerAdded {
            name: "p".into(),
            fingerprint: "f".into(),
            audit_key: Some("k".into()),
        },
        AuditEvent::PeerAuditKeyPinned {
            name: "p".into(),
            fingerprint: "f".into(),
            audit_key: "k".into(),
            source: "first-session".into(),
        },
        AuditEvent::ConfigReloaded {
            config_sha256: "66".repeat(32),
            peers: 2,
        },
        AuditEvent::ConfigRejected {
            config_sha256: "77".repeat(32),
            problem: "peers[1].max_set_ratio: must be positive".into(),
        },
        AuditEvent::PeerRemoved {
            name: "p".into(),
            fingerprint: "f".into(),
        },
        AuditEvent::DatasetImported {
            name: "d".into(),
            accepted: 1,
            rejected: 2,
            duplicates: 3,
            input_hmac: Some("00".repeat(32)),
            input_sha256: None,
            normalisation_version: 1,
        },
        AuditEvent::DatasetRemoved { name: "d".into() },
        AuditEvent::DatasetRevoked {
            name: "d".into(),
            version: "22".repeat(32),
            revoked: 2,
            remaining: 5,
        },
        AuditEvent::SessionRequested(f.clone()),
        AuditEvent::SessionAccepted(f.clone()),
        AuditEvent::SessionRefused {
            facts: f.clone(),
            reason: "busy".into(),
            attempts: 1,
        },
        AuditEvent::SessionCompleted(f.clone()),
        AuditEvent::SessionAborted {
            facts: f.clone(),
            close_code: 7,
            error: "timeout".into(),
        },
        AuditEvent::ConnectionAborted {
            peer_fingerprint: "f".into(),
            peer_name: "p".into(),
            reason: "no Hello within the idle timeout".into(),
            close_code: 8,
            attempts: 3,
        },
        AuditEvent::IndexBuilt {
            name: "d".into(),
            version: "22".repeat(16),
            epoch: "66".repeat(16),
            previous_epoch: Some("77".repeat(16)),
            segment: 0,
            added: 10,
            elements: 10,
            records: 8,
            bytes: 700,
            reason: "first index of this dataset".into(),
            duration_ms: 12,
        },
        AuditEvent::IndexRemoved {
            name: "d".into(),
            epoch: Some("66".repeat(16)),
            reason: "dataset removed".into(),
        },
        AuditEvent::Checkpoint {
            count: 5,
            head_hash: RecordHash([7; 32]),
        },
        AuditEvent::AuditRepaired {
            torn_bytes: 3,
            torn_sha256: "11".repeat(32),
            moved_to: "t".into(),
        },
    ]
}

/// Byte-exact audit records (`tests/golden/audit.jsonl`): one record of every event
/// type, sealed with a fixed key at fixed times. Auditors' tools parse these lines, and
/// every node's log must keep verifying, so an encoding change has to be deliberate:
/// regenerate with `BLINDMATCH_BLESS=1 cargo test --release -p blindmatch-protocol
/// byte_exact` (also the wire vectors) and commit the reason.
#[test]
fn records_are_byte_exact() {
    let signing = key(9);
    let mut head = ChainHead::EMPTY;
    let mut text = String::new();
    for (i, event) in every_event().into_iter().enumerate() {
        let ts = Timestamp::parse(&format!("2026-12-07T10:00:{:02}.5Z", i % 60)).unwrap();
        // The first record names the signing key; a checkpoint names the chain it is in.
        let event = match event {
            AuditEvent::Checkpoint { .. } => AuditEvent::Checkpoint {
                count: head.count,
                head_hash: head.head_hash,
            },
            AuditEvent::NodeInitialised {
                name, fingerprint, ..
            } => AuditEvent::NodeInitialised {
                name,
                fingerprint,
                audit_key: key_hex(&signing),
            },
            other => other,
        };
        let record = head.seal(ts, &event, &signing).unwrap();
        head = ChainHead::after(&record);
        text.push_str(&record.to_line().unwrap());
        text.push('\n');
    }
    // (Not verified as a log: the receipts in `every_event` are placeholders.)
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/audit.jsonl");
    if std::env::var_os("BLINDMATCH_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path).unwrap();
    for (i, (got, want)) in text.lines().zip(golden.lines()).enumerate() {
        assert_eq!(
            got,
            want,
            "record {} differs from {}",
            i + 1,
            path.display()
        );
    }
    assert_eq!(text, golden);
}

#[test]
fn events_round_trip_and_stay_within_the_privacy_allowlist() {
    let events = every_event();
    let allowed = [
        "name",
        "fingerprint",
        "audit_key",
        "accepted",
        "rejected",
        "duplicates",
        "input_sha256",
        "input_hmac",
        "normalisation_version",
        "session_id",
        "role",
        "our_fingerprint",
        "peer_fingerprint",
        "peer_name",
        "dataset",
        "purpose",
        "legal_basis",
        "mode",
        "our_set_size",
        "peer_set_size",
        "intersection_size",
        "protocol_version",
        "transcript_hash",
        "bytes_sent",
        "bytes_received",
        "duration_ms",
        "reason",
        "close_code",
        "error",
        "count",
        "head_hash",
        "torn_bytes",
        "torn_sha256",
        "moved_to",
        "version",
        "revoked",
        "remaining",
        "attempts",
        "source",
        "our_dataset",
        "peer_dataset",
        "matched_records",
        "replies_sent",
        "replies_received",
        "receipt",
        "peer_receipt",
        "run_id",
        "index_epoch",
        "index_bytes",
        "epoch",
        "previous_epoch",
        "segment",
        "added",
        "elements",
        "records",
        "bytes",
        "charged",
        "config_sha256",
        "peers",
        "problem",
    ];
    assert_eq!(events.len(), AuditEvent::TYPES.len());
    for (event, type_name) in events.iter().zip(AuditEvent::TYPES) {
        let (t, fields) = event.to_parts().unwrap();
        assert_eq!(t, type_name);
        // Adding a field means reviewing it against the "never an identifier" rule.
        for name in fields.keys() {
            assert!(
                allowed.contains(&name.as_str()),
                "field {name} of {t} is not on the allowlist"
            );
        }
        assert_eq!(
            AuditEvent::from_parts(t, &fields).unwrap().as_ref(),
            Some(event)
        );
    }
    assert_eq!(
        AuditEvent::from_parts("something_new", &serde_json::Map::new()).unwrap(),
        None
    );
    assert!(AuditEvent::from_parts("peer_added", &serde_json::Map::new()).is_err());
}

#[test]
fn timestamps_are_validated_and_ordered_by_instant() {
    for ok in [
        "2025-01-02T03:04:05Z",
        "2024-02-29T23:59:60.123456789Z",
        "2025-12-31T00:00:00.5Z",
    ] {
        assert!(Timestamp::parse(ok).is_some(), "{ok}");
    }
    for bad in [
        "2025-01-02 03:04:05Z",
        "2025-01-02T03:04:05",
        "2025-01-02T03:04:05+08:00",
        "2025-02-29T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-01-01T24:00:00Z",
        "2025-01-01T00:00:00.Z",
        "2025-01-01T00:00:00.1234567890Z",
        "２025-01-01T00:00:00Z",
        "",
    ] {
        assert!(Timestamp::parse(bad).is_none(), "{bad}");
    }
    let t = |s| Timestamp::parse(s).unwrap();
    assert!(t("2025-01-01T00:00:05Z") < t("2025-01-01T00:00:05.5Z"));
    assert!(t("2025-01-01T00:00:05.5Z") < t("2025-01-01T00:00:05.51Z"));
    assert!(t("2025-01-01T00:00:05.9Z") < t("2025-01-01T00:00:06Z"));
}
