//! Cross-checking two logs: agreement, altered facts, missing sessions, receipts.

use super::*;

/// `dataset_revoked` and `connection_aborted` are known types: they verify as such (not
/// as a newer node's records), and cross-checking ignores them, since they belong to no
/// session.
#[test]
fn revocations_and_aborted_connections_verify_and_cross_check() {
    let (mut a, b) = two_logs(6);
    let before = cross_check(
        &read_records(a.text.as_bytes()).0,
        &read_records(b.text.as_bytes()).0,
    );
    a.append(AuditEvent::DatasetRevoked {
        name: "kp-contacts".into(),
        version: "33".repeat(32),
        revoked: 1,
        remaining: 41,
    });
    for reason in [
        "no Hello within the idle timeout",
        "undecodable first frame",
    ] {
        a.append(AuditEvent::ConnectionAborted {
            peer_fingerprint: fp("crm-b"),
            peer_name: "crm-b".into(),
            reason: reason.into(),
            close_code: 1,
            attempts: 7,
        });
    }
    let report = verify_log(&a.text, Some(&key(1).verifying_key())).unwrap();
    assert_eq!(report.unknown_types, 0, "{report:?}");
    assert_eq!(report.sessions, 7, "no session is invented");
    let records = read_records(a.text.as_bytes()).0;
    let types: Vec<&str> = records.iter().map(|r| r.record_type.as_str()).collect();
    assert!(types.contains(&"dataset_revoked"));
    assert_eq!(
        types.iter().filter(|t| **t == "connection_aborted").count(),
        2
    );
    let after = cross_check(&records, &read_records(b.text.as_bytes()).0);
    assert!(after.agrees(), "{after:#?}");
    assert_eq!(after.compared.len(), before.compared.len());
    assert_eq!(after.only_in_a.len(), 0);
}

#[test]
fn agreeing_logs_cross_check() {
    let (a, b) = two_logs(12);
    let (ra, rb) = (
        read_records(a.text.as_bytes()),
        read_records(b.text.as_bytes()),
    );
    assert!(ra.1.is_none() && rb.1.is_none());
    let report = cross_check(&ra.0, &rb.0);
    assert!(report.agrees(), "{report:#?}");
    assert_eq!(report.compared.len(), 12);
    assert_eq!(report.other_peers_a, 1);
    assert_eq!(
        report.node_b.as_ref().map(|n| n.name.as_str()),
        Some("crm-b")
    );
    // Symmetric.
    assert!(cross_check(&rb.0, &ra.0).agrees());
}

#[test]
fn an_altered_intersection_size_is_caught() {
    let (a, b) = two_logs(12);
    let records_a = read_records(a.text.as_bytes()).0;
    let records_b = read_records(b.text.as_bytes()).0;
    let alter = |_: usize, e: &AuditEvent| match e {
        AuditEvent::SessionCompleted(f) if f.session_id.ends_with("abc00004") => {
            let mut f = f.clone();
            f.intersection_size = f.intersection_size.map(|n| n + 1);
            Some(AuditEvent::SessionCompleted(f))
        }
        other => Some(other.clone()),
    };

    // Re-signed by another key, chain rebuilt: self-consistent, but not B's key...
    let forged = rebuild_with(&records_b, &key(66), alter);
    assert!(verify_log(&forged, None).is_ok());
    let fault = verify_log(&forged, Some(&b.key.verifying_key())).unwrap_err();
    assert!(
        matches!(fault.kind, FaultKind::KeyMismatch { .. }),
        "{fault}"
    );
    // ...and it contradicts A's log.
    let report = cross_check(&records_a, &read_records(forged.as_bytes()).0);
    assert!(!report.agrees());
    let bad: Vec<_> = report.disagreeing().collect();
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].session_id, format!("{:032x}", 0xabc0_0004u64));
    assert_eq!(bad[0].disagreements.len(), 1);
    assert_eq!(bad[0].disagreements[0].field, "intersection_size");

    // Re-signed by B's own key (the node lies in its own log): only the cross-check shows it.
    let lying = rebuild_with(&records_b, &b.key, alter);
    assert!(verify_log(&lying, Some(&b.key.verifying_key())).is_ok());
    let report = cross_check(&records_a, &read_records(lying.as_bytes()).0);
    assert_eq!(report.disagreeing().count(), 1);
}

#[test]
fn cross_check_names_each_disagreeing_field_and_missing_sessions() {
    let (a, b) = two_logs(8);
    let records_a = read_records(a.text.as_bytes()).0;
    let records_b = read_records(b.text.as_bytes()).0;
    let target = format!("{:032x}", 0xabc0_0000u64);
    let edited = rebuild_with(&records_b, &b.key, |_, e| match e {
        AuditEvent::SessionCompleted(f) if f.session_id == target => {
            let mut f = f.clone();
            f.purpose = "resale".into();
            f.peer_set_size = Some(1);
            f.transcript_hash = Some("00".repeat(32));
            Some(AuditEvent::SessionCompleted(f))
        }
        // B "forgets" session 2 entirely.
        other
            if other
                .session()
                .is_some_and(|f| f.session_id.ends_with("abc00002")) =>
        {
            None
        }
        other => Some(other.clone()),
    });
    let report = cross_check(&records_a, &read_records(edited.as_bytes()).0);
    let bad: Vec<_> = report.disagreeing().collect();
    assert_eq!(bad.len(), 1);
    let fields: Vec<_> = bad[0]
        .disagreements
        .iter()
        .map(|d| d.field.as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "purpose",
            "our_set_size (A) / peer_set_size (B)",
            "transcript_hash"
        ],
        "{:#?}",
        bad[0]
    );
    assert_eq!(report.only_in_a.len(), 1);
    assert!(report.only_in_a[0].session_id.ends_with("abc00002"));
    assert!(report.only_in_b.is_empty());
    assert!(!report.agrees());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn verification_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let _ = verify_log_bytes(&bytes, &VerifyOptions::default());
        let _ = read_records(&bytes);
    }

    #[test]
    fn multi_byte_damage_is_detected(edits in proptest::collection::vec((proptest::prelude::any::<u16>(), proptest::prelude::any::<u8>()), 1..8)) {
        let (a, _) = two_logs(3);
        let mut bytes = a.text.into_bytes();
        let original = bytes.clone();
        for (pos, value) in edits {
            let pos = pos as usize % bytes.len();
            bytes[pos] = value;
        }
        proptest::prop_assume!(bytes != original);
        proptest::prop_assert!(verify_log_bytes(&bytes, &with_key(&a.key)).is_err());
    }
}
