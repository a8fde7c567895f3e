//! Stored receipts: one log proves what the peer signed, and a peer that rewrites or
//! truncates its log after signing is caught from the other log.

use ed25519_dalek::Signer;

use super::*;
use crate::transcript::Role as WireRole;
use crate::wire::{DatasetRef, LogHead, OutputMode, Receipt};

fn bytes32(hex_text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).unwrap();
    out
}

/// `signer`'s receipt for the session in `facts` (the signer's own record), naming the
/// signer's current log head.
fn receipt(signer: &Writer, facts: &SessionFacts, key: &SigningKey) -> String {
    let (initiator, responder) = match facts.role {
        Role::Initiator => (&facts.our_fingerprint, &facts.peer_fingerprint),
        Role::Responder => (&facts.peer_fingerprint, &facts.our_fingerprint),
    };
    let role = match facts.role {
        Role::Initiator => WireRole::Initiator,
        Role::Responder => WireRole::Responder,
    };
    let mut session_id = [0u8; 16];
    hex::decode_to_slice(&facts.session_id, &mut session_id).unwrap();
    let mut r = Receipt::unsigned(
        key.verifying_key().to_bytes(),
        session_id,
        bytes32(facts.transcript_hash.as_deref().unwrap()),
        role,
        [bytes32(initiator), bytes32(responder)],
        [DatasetRef::default(), DatasetRef::default()],
        facts.mode.parse::<OutputMode>().unwrap(),
        (10, 20),
        None,
    );
    r.log_head = LogHead {
        seq: signer.head.count - 1,
        hash: signer.head.head_hash.0,
    };
    r.signature = key.sign(&r.signed_bytes()).to_bytes();
    hex::encode(r.to_bytes())
}

/// Two logs of one completed `initiator`-mode session, each holding the other's receipt
/// (B's signed with `b_signs`).
fn session_pair(b_signs: &SigningKey) -> (Writer, Writer) {
    let (mut a, mut b) = (Writer::new(key(1)), Writer::new(key(2)));
    a.init("vendor-a");
    b.init("crm-b");
    let mut fa = facts(1, Role::Initiator, "vendor-a", "crm-b", 10, Some(20));
    let mut fb = facts(1, Role::Responder, "crm-b", "vendor-a", 20, Some(10));
    a.append(AuditEvent::SessionRequested(fa.clone()));
    b.append(AuditEvent::SessionRequested(fb.clone()));
    b.append(AuditEvent::SessionAccepted(fb.clone()));
    let transcript = Some("ab".repeat(32));
    fa.transcript_hash = transcript.clone();
    fb.transcript_hash = transcript;
    let from_a = receipt(&a, &fa, &key(1));
    let from_b = receipt(&b, &fb, b_signs);
    fa.receipt = Some(from_a.clone());
    fa.peer_receipt = Some(from_b.clone());
    fb.receipt = Some(from_b);
    fb.peer_receipt = Some(from_a);
    a.append(AuditEvent::SessionCompleted(fa));
    b.append(AuditEvent::SessionCompleted(fb));
    (a, b)
}

fn records(text: &str) -> Vec<Record> {
    text.lines()
        .map(|l| Record::parse_line(l.as_bytes()).unwrap())
        .collect()
}

#[test]
fn receipts_agree_with_both_logs_and_verify_in_each() {
    let (a, b) = session_pair(&key(2));
    let report = cross_check(&records(&a.text), &records(&b.text));
    assert!(report.agrees(), "{report:?}");
    assert_eq!(report.receipts_checked, 2);
    let verified = verify_log(&a.text, Some(&key(1).verifying_key())).unwrap();
    assert_eq!(verified.receipts, 1);
}

#[test]
fn a_truncated_peer_log_is_caught_from_ours() {
    let (a, b) = session_pair(&key(2));
    let truncated = |records_kept: usize| {
        let kept: Vec<&str> = b.text.lines().take(records_kept).collect();
        let text = kept.join("\n") + "\n";
        assert!(
            verify_log(&text, Some(&key(2).verifying_key())).is_ok(),
            "still a valid log"
        );
        text
    };
    // B drops everything from its `session_accepted` record on: the head it signed.
    let report = cross_check(&records(&a.text), &records(&truncated(2)));
    let problems: Vec<&Disagreement> = report
        .disagreeing()
        .flat_map(|c| &c.disagreements)
        .collect();
    assert!(
        problems
            .iter()
            .any(|d| d.b.contains("truncated after it signed")),
        "{problems:?}"
    );
    // B drops the whole session: its receipt in our log still names it.
    let report = cross_check(&records(&a.text), &records(&truncated(1)));
    assert!(!report.agrees());
    let dropped = report
        .only_in_a
        .first()
        .expect("the session is missing from B");
    assert!(dropped.signed_by_peer, "{dropped:?}");
    assert!(
        dropped
            .receipt_problems
            .iter()
            .any(|p| p.contains("truncated after it signed")),
        "{dropped:?}"
    );
}

#[test]
fn a_rewritten_peer_log_is_caught_from_ours() {
    let (a, b) = session_pair(&key(2));
    // B rewrites its log under its own key: same sessions, another accepted record.
    let mut forged = Writer::new(key(2));
    forged.init("crm-b");
    let mut fb = facts(1, Role::Responder, "crm-b", "vendor-a", 20, Some(10));
    forged.append(AuditEvent::SessionRequested(fb.clone()));
    fb.purpose = "something else".into();
    forged.append(AuditEvent::SessionAccepted(fb.clone()));
    let original = records(&b.text);
    fb.transcript_hash = original[3]
        .event()
        .unwrap()
        .and_then(|e| e.session().cloned())
        .and_then(|f| f.transcript_hash);
    forged.append(AuditEvent::SessionCompleted(fb));
    let report = cross_check(&records(&a.text), &records(&forged.text));
    let problems: Vec<&Disagreement> = report
        .disagreeing()
        .flat_map(|c| &c.disagreements)
        .collect();
    assert!(
        problems
            .iter()
            .any(|d| d.b.contains("rewritten after it signed")),
        "{problems:?}"
    );
}

#[test]
fn a_receipt_under_another_key_is_caught() {
    let (mut a, b) = session_pair(&key(3));
    let report = cross_check(&records(&a.text), &records(&b.text));
    let problems: Vec<&Disagreement> = report
        .disagreeing()
        .flat_map(|c| &c.disagreements)
        .collect();
    assert!(
        problems.iter().any(|d| d.field.contains("audit key")),
        "{problems:?}"
    );
    // And a log that pinned B's real key refuses the receipt on its own.
    let (mut pinned, _) = session_pair(&key(3));
    pinned = {
        let mut w = Writer::new(key(1));
        w.init("vendor-a");
        w.append(AuditEvent::PeerAuditKeyPinned {
            name: "crm-b".into(),
            fingerprint: fp("crm-b"),
            audit_key: key_hex(&key(2)),
            source: "operator".into(),
        });
        for line in records(&pinned.text).iter().skip(1) {
            if let Ok(Some(event)) = line.event() {
                w.append(event);
            }
        }
        w
    };
    let err = verify_log(&pinned.text, Some(&key(1).verifying_key())).unwrap_err();
    assert!(matches!(err.kind, FaultKind::BadReceipt(_)), "{err}");
    // Later records do not change what was proven.
    a.append(AuditEvent::DatasetRemoved { name: "x".into() });
    assert!(verify_log(&a.text, Some(&key(1).verifying_key())).is_ok());
}
