//! A valid signed audit log built with a fixed key, and the checks the two audit targets
//! run on arbitrary and on tampered log bytes.
//!
//! The fixture holds records of twelve known types, one of an unknown type from
//! "a newer node" with nested values and escaped strings, a clock regression and an
//! in-log checkpoint; [`Fixture::checkpoint`] is a standalone checkpoint of the whole log.

use std::sync::OnceLock;

use blindmatch_protocol::audit::{
    AuditEvent, ChainHead, Checkpoint, Record, RecordHash, Role, SessionFacts, SignatureCheck,
    Timestamp, VerifyOptions, cross_check, read_records, verify_log_bytes,
};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};

/// The fixed audit log and what verifies it.
pub struct Fixture {
    /// The log file's bytes.
    pub log: Vec<u8>,
    /// Its audit public key.
    pub key: VerifyingKey,
    /// A standalone checkpoint of the whole log.
    pub checkpoint: Checkpoint,
    /// Its records, as read back.
    pub records: Vec<Record>,
}

/// The fixture, built once.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build)
}

/// Checks on arbitrary bytes: verification and reading never panic, agree with each
/// other, and parsing is canonical (a line that parses is exactly its record's line).
pub fn check_arbitrary(data: &[u8]) {
    let fx = fixture();
    let lines: Vec<&[u8]> = data
        .split_inclusive(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\n").unwrap_or(l))
        .collect();
    let (records, read_fault) = read_records(data);
    for (record, line) in records.iter().zip(&lines) {
        check_canonical(record, line);
    }
    let options = [
        VerifyOptions::default(),
        VerifyOptions {
            signatures: SignatureCheck::HeadOnly,
            ..VerifyOptions::default()
        },
        VerifyOptions {
            key: Some(fx.key),
            checkpoint: Some(fx.checkpoint.clone()),
            signatures: SignatureCheck::Every,
        },
    ];
    for options in &options {
        match verify_log_bytes(data, options) {
            Ok(report) => {
                assert!(read_fault.is_none(), "verified, but reading stopped");
                assert_eq!(report.records, records.len() as u64);
                let last = records.last().expect("a verified log has records");
                assert_eq!(report.head, ChainHead::after(last));
                assert!(report.sessions <= report.records);
            }
            Err(fault) => {
                assert!(!fault.to_string().is_empty());
                if let Some(line) = fault.line {
                    assert!(line >= 1 && line <= lines.len() as u64, "fault line {line}");
                }
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(checkpoint) = Checkpoint::from_json(text)
    {
        assert_eq!(checkpoint.verify(), Ok(()));
        assert_eq!(Checkpoint::from_json(&checkpoint.to_json()), Ok(checkpoint));
    }
    let _ = cross_check(&records, &fx.records);
    let _ = cross_check(&records, &records);
}

/// Checks on the fixture log after mutation: a log whose bytes differ from the original
/// never verifies under the fixture key, except for the changes the format documents as
/// undetectable without more information:
///
/// * dropping whole records from the end (only an external checkpoint reveals it; with
///   [`Fixture::checkpoint`] it is caught, and that is checked too);
/// * with [`SignatureCheck::HeadOnly`], replacing the signature of a record other than
///   the last by another well-formed one.
pub fn check_tampered(mutated: &[u8]) {
    let fx = fixture();
    let original = fx.log.as_slice();
    let given = VerifyOptions {
        key: Some(fx.key),
        ..VerifyOptions::default()
    };
    let from_log = VerifyOptions::default();
    let with_checkpoint = VerifyOptions {
        key: Some(fx.key),
        checkpoint: Some(fx.checkpoint.clone()),
        signatures: SignatureCheck::Every,
    };
    let head_only = VerifyOptions {
        key: Some(fx.key),
        signatures: SignatureCheck::HeadOnly,
        ..VerifyOptions::default()
    };
    if mutated == original {
        for options in [&given, &from_log, &with_checkpoint, &head_only] {
            assert!(verify_log_bytes(mutated, options).is_ok());
        }
        return;
    }
    let dropped_tail = is_record_prefix(mutated, original);
    for options in [&given, &from_log] {
        if let Ok(report) = verify_log_bytes(mutated, options) {
            assert!(
                dropped_tail,
                "a changed log verified ({:?} key): {report:?}",
                report.key_source
            );
            // The checkpoint only adds checks to `given`: worth running when that passed.
            if let Ok(report) = verify_log_bytes(mutated, &with_checkpoint) {
                panic!("a changed log verified against the original's checkpoint: {report:?}");
            }
        }
    }
    if verify_log_bytes(mutated, &head_only).is_ok() {
        assert!(
            dropped_tail || only_earlier_signatures_differ(mutated, original),
            "a changed log verified with head-only signatures"
        );
    }
}

/// Whether `mutated` is `original` with whole lines removed from its end.
fn is_record_prefix(mutated: &[u8], original: &[u8]) -> bool {
    original.starts_with(mutated) && (mutated.is_empty() || mutated.ends_with(b"\n"))
}

/// Whether the two logs have the same records up to the signatures of all but the
/// last record.
fn only_earlier_signatures_differ(mutated: &[u8], original: &[u8]) -> bool {
    let (ours, fault) = read_records(mutated);
    if fault.is_some() {
        return false;
    }
    let (theirs, _) = read_records(original);
    if ours.len() > theirs.len() || ours.is_empty() {
        return false;
    }
    let last = ours.len() - 1;
    ours.iter().zip(&theirs).enumerate().all(|(i, (a, b))| {
        let (mut a, mut b) = (a.clone(), b.clone());
        if i < last {
            a.sig = [0; 64];
            b.sig = [0; 64];
        }
        a == b
    })
}

fn check_canonical(record: &Record, line: &[u8]) {
    let written = record.to_line().expect("a parsed record has a line");
    assert_eq!(
        written.as_bytes(),
        line,
        "parsing accepted a non-canonical line"
    );
    assert!(record.compute_hash().is_ok());
}

fn build() -> Fixture {
    let signing = SigningKey::from_bytes(&[7; 32]);
    let key = signing.verifying_key();
    let mut log = Log {
        key: signing,
        head: ChainHead::EMPTY,
        text: String::new(),
        records: Vec::new(),
    };
    log.seal("2026-11-29T09:00:00Z", node_initialised(&key));
    log.seal(
        "2026-11-29T09:00:01.5Z",
        AuditEvent::PeerAdded {
            name: "acme".into(),
            fingerprint: fingerprint(2),
            audit_key: None,
        },
    );
    log.seal(
        "2026-11-29T09:01:00.123456789Z",
        AuditEvent::DatasetImported {
            name: "kp-2026".into(),
            accepted: 9_000,
            rejected: 12,
            duplicates: 3,
            input_hmac: Some(fingerprint(3)),
            input_sha256: None,
            normalisation_version: 1,
        },
    );
    let done = facts(1, Some(4));
    log.seal(
        "2026-11-29T10:00:00.100Z",
        AuditEvent::SessionRequested(facts(1, None)),
    );
    log.seal(
        "2026-11-29T10:00:00.200Z",
        AuditEvent::SessionAccepted(facts(1, None)),
    );
    log.seal(
        "2026-11-29T10:00:02.000Z",
        AuditEvent::SessionCompleted(done),
    );
    let head = log.head;
    log.seal("2026-11-29T10:00:02.001Z", head.checkpoint_event());
    log.seal(
        "2026-11-29T10:05:00Z",
        AuditEvent::SessionRequested(facts(2, None)),
    );
    log.seal(
        "2026-11-29T10:05:00.010Z",
        AuditEvent::SessionRefused {
            facts: facts(2, None),
            reason: "budget-exhausted".into(),
            attempts: 1,
        },
    );
    // The clock was set back: recorded as a regression, not a fault.
    log.seal(
        "2026-11-29T10:04:59Z",
        AuditEvent::SessionRequested(facts(3, None)),
    );
    log.seal(
        "2026-11-29T10:05:09Z",
        AuditEvent::SessionAborted {
            facts: facts(3, None),
            close_code: 8,
            error: "timeout: peer silent for 30 s\t(\"idle\")".into(),
        },
    );
    log.seal_unknown(
        "2026-11-29T11:00:00Z",
        "future_event",
        json!({
            "nested": {"b": -9007199254740991_i64, "a": [true, false, null, "é€😀"]},
            "note": "quote \" backslash \\ newline \n unit \u{1f} del \u{7f}",
            "count": 9007199254740991_u64,
        }),
    );
    log.seal(
        "2026-11-29T12:00:00Z",
        AuditEvent::DatasetRemoved {
            name: "kp-2025".into(),
        },
    );
    log.seal(
        "2026-11-29T12:00:01Z",
        AuditEvent::PeerRemoved {
            name: "old-peer".into(),
            fingerprint: fingerprint(4),
        },
    );
    log.seal(
        "2026-11-29T12:30:00Z",
        AuditEvent::AuditRepaired {
            torn_bytes: 17,
            torn_sha256: fingerprint(5),
            moved_to: "audit.jsonl.torn-1".into(),
        },
    );
    let checkpoint = Checkpoint::sign(&log.head, &log.key).expect("the log is not empty");
    let bytes = log.text.into_bytes();
    assert!(
        verify_log_bytes(
            &bytes,
            &VerifyOptions {
                key: Some(key),
                checkpoint: Some(checkpoint.clone()),
                signatures: SignatureCheck::Every,
            }
        )
        .is_ok(),
        "the fixture log must verify"
    );
    Fixture {
        log: bytes,
        key,
        checkpoint,
        records: log.records,
    }
}

struct Log {
    key: SigningKey,
    head: ChainHead,
    text: String,
    records: Vec<Record>,
}

impl Log {
    fn seal(&mut self, ts: &str, event: AuditEvent) {
        let record = self
            .head
            .seal(timestamp(ts), &event, &self.key)
            .expect("the fixture's events seal");
        self.push(record);
    }

    /// A record of a type this version does not know, sealed by hand as a newer node
    /// would.
    fn seal_unknown(&mut self, ts: &str, record_type: &str, fields: Value) {
        let Value::Object(fields) = fields else {
            panic!("fields must be an object");
        };
        let fields: Map<String, Value> = fields;
        let mut record = Record {
            seq: self.head.count,
            ts: timestamp(ts),
            prev: self.head.head_hash,
            record_type: record_type.into(),
            fields,
            hash: RecordHash::ZERO,
            sig: [0; 64],
        };
        record.hash = record.compute_hash().expect("canonical fields");
        record.sig = self.key.sign(&record.hash.0).to_bytes();
        self.push(record);
    }

    fn push(&mut self, record: Record) {
        self.text
            .push_str(&record.to_line().expect("a sealed record has a line"));
        self.text.push('\n');
        self.head = ChainHead::after(&record);
        self.records.push(record);
    }
}

fn timestamp(ts: &str) -> Timestamp {
    Timestamp::parse(ts).expect("fixture timestamps are valid")
}

fn node_initialised(key: &VerifyingKey) -> AuditEvent {
    AuditEvent::NodeInitialised {
        name: "datahub".into(),
        fingerprint: fingerprint(1),
        audit_key: hex::encode(key.as_bytes()),
    }
}

fn fingerprint(n: u8) -> String {
    hex::encode([n; 32])
}

fn facts(n: u8, intersection: Option<u64>) -> SessionFacts {
    SessionFacts {
        session_id: hex::encode([n; 16]),
        role: Role::Responder,
        our_fingerprint: fingerprint(1),
        peer_fingerprint: fingerprint(2),
        peer_name: "acme".into(),
        dataset: "kp-2026".into(),
        purpose: "ABM 2027 coverage check 精准营销".into(),
        legal_basis: "consent".into(),
        mode: "both".into(),
        our_set_size: 9_000,
        peer_set_size: Some(1_200),
        intersection_size: intersection,
        protocol_version: 1,
        normalisation_version: 1,
        transcript_hash: intersection.map(|_| fingerprint(9)),
        bytes_sent: 300_000,
        bytes_received: 40_000,
        duration_ms: 1_900,
        our_dataset: None,
        peer_dataset: None,
        matched_records: None,
        replies_sent: 0,
        replies_received: 0,
        receipt: None,
        peer_receipt: None,
        run_id: None,
        index_epoch: None,
        index_bytes: None,
        charged: None,
    }
}
