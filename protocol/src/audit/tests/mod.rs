//! Whole-log tests: tampering, truncation, checkpoints, keys and cross-checking.
//!
//! The exhaustive per-byte tests verify the mutated log starting from a snapshot of the
//! verifier taken just before the mutated line: `verify_log_bytes` is by definition a
//! [`LogVerifier`] fed line by line, and every line before the mutation is unchanged, so
//! the outcome is the same as verifying the whole file (checked on a sample below) while
//! the test does not re-verify the untouched prefix 100 000 times.

use ed25519_dalek::SigningKey;

use super::*;

const EVERY: u64 = 16;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn key_hex(key: &SigningKey) -> String {
    hex::encode(key.verifying_key().as_bytes())
}

/// Deterministic pseudo-random numbers (splitmix64) so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes a log the way the node does: seal, write the line, checkpoint when due.
struct Writer {
    key: SigningKey,
    head: ChainHead,
    text: String,
    clock: u64,
}

impl Writer {
    fn new(key: SigningKey) -> Writer {
        Writer {
            key,
            head: ChainHead::EMPTY,
            text: String::new(),
            clock: 0,
        }
    }

    fn ts(&mut self) -> Timestamp {
        self.clock += 1;
        let (s, ms) = (self.clock * 7 % 60, self.clock * 37 % 1000);
        let min = self.clock / 9 % 60;
        Timestamp::parse(&format!("2025-03-01T10:{min:02}:{s:02}.{ms:03}Z")).unwrap()
    }

    fn append(&mut self, event: AuditEvent) {
        let ts = self.ts();
        self.append_at(ts, event);
        if self.head.checkpoint_due(EVERY) {
            let ts = self.ts();
            self.append_at(ts, self.head.checkpoint_event());
        }
    }

    fn append_at(&mut self, ts: Timestamp, event: AuditEvent) {
        let record = self.head.seal(ts, &event, &self.key).unwrap();
        self.text.push_str(&record.to_line().unwrap());
        self.text.push('\n');
        self.head = ChainHead::after(&record);
    }

    fn init(&mut self, name: &str) {
        let audit_key = key_hex(&self.key);
        self.append(AuditEvent::NodeInitialised {
            name: name.into(),
            fingerprint: fp(name),
            audit_key,
        });
    }
}

fn fp(name: &str) -> String {
    format!(
        "{:064x}",
        name.len() as u64 * 0x1234_5678_9abc + name.as_bytes()[0] as u64
    )
}

fn facts(
    i: u64,
    role: Role,
    us: &str,
    peer: &str,
    our_size: u64,
    peer_size: Option<u64>,
) -> SessionFacts {
    let mode = ["both", "initiator", "responder", "cardinality"][i as usize % 4];
    SessionFacts {
        session_id: format!("{:032x}", 0xabc0_0000 + i),
        role,
        our_fingerprint: fp(us),
        peer_fingerprint: fp(peer),
        peer_name: peer.into(),
        dataset: "kp-contacts".into(),
        purpose: "abm-coverage-check".into(),
        legal_basis: "pipl-13-consent".into(),
        mode: mode.into(),
        our_set_size: our_size,
        peer_set_size: peer_size,
        intersection_size: None,
        protocol_version: 1,
        normalisation_version: 1,
        transcript_hash: None,
        bytes_sent: 1000 + i,
        bytes_received: 2000 + i,
        duration_ms: 30 + i,
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

/// Two nodes' logs after `sessions` sessions between them (A initiates), some refused,
/// some aborted, plus one session of A with a third party.
fn two_logs(sessions: u64) -> (Writer, Writer) {
    let (mut a, mut b) = (Writer::new(key(1)), Writer::new(key(2)));
    a.init("vendor-a");
    b.init("crm-b");
    a.append(AuditEvent::PeerAdded {
        name: "crm-b".into(),
        fingerprint: fp("crm-b"),
        audit_key: None,
    });
    b.append(AuditEvent::PeerAdded {
        name: "vendor-a".into(),
        fingerprint: fp("vendor-a"),
        audit_key: None,
    });
    a.append(AuditEvent::DatasetImported {
        name: "targets".into(),
        accepted: 5000,
        rejected: 3,
        duplicates: 12,
        input_hmac: Some("ab".repeat(32)),
        input_sha256: None,
        normalisation_version: 1,
    });
    b.append(AuditEvent::DatasetImported {
        name: "kp-contacts".into(),
        accepted: 90000,
        rejected: 0,
        duplicates: 40,
        input_hmac: Some("cd".repeat(32)),
        input_sha256: None,
        normalisation_version: 1,
    });
    for i in 0..sessions {
        let (na, nb) = (5000 - i, 90000 + i);
        let mut fa = facts(i, Role::Initiator, "vendor-a", "crm-b", na, None);
        let mut fb = facts(i, Role::Responder, "crm-b", "vendor-a", nb, Some(na));
        a.append(AuditEvent::SessionRequested(fa.clone()));
        b.append(AuditEvent::SessionRequested(fb.clone()));
        if i % 7 == 3 {
            let reason = "purpose-not-allowed".to_string();
            b.append(AuditEvent::SessionRefused {
                facts: fb,
                reason: reason.clone(),
                attempts: 1,
            });
            a.append(AuditEvent::SessionRefused {
                facts: fa,
                reason,
                attempts: 1,
            });
            continue;
        }
        fa.peer_set_size = Some(nb);
        b.append(AuditEvent::SessionAccepted(fb.clone()));
        a.append(AuditEvent::SessionAccepted(fa.clone()));
        if i % 7 == 5 {
            let error = "peer sent an invalid point".to_string();
            a.append(AuditEvent::SessionAborted {
                facts: fa,
                close_code: 3,
                error: error.clone(),
            });
            b.append(AuditEvent::SessionAborted {
                facts: fb,
                close_code: 3,
                error,
            });
            continue;
        }
        let matches = 100 + i * 3;
        let transcript = Some(format!("{:064x}", 0xfeed_0000 + i));
        let (know_a, know_b) = match fa.mode.as_str() {
            "initiator" => (true, false),
            "responder" => (false, true),
            _ => (true, true),
        };
        fa.intersection_size = know_a.then_some(matches);
        fb.intersection_size = know_b.then_some(matches);
        fa.transcript_hash = transcript.clone();
        fb.transcript_hash = transcript;
        a.append(AuditEvent::SessionCompleted(fa));
        b.append(AuditEvent::SessionCompleted(fb));
    }
    let mut third = facts(999, Role::Initiator, "vendor-a", "other-c", 10, Some(20));
    third.intersection_size = Some(1);
    a.append(AuditEvent::SessionRequested(third.clone()));
    a.append(AuditEvent::SessionCompleted(third));
    a.append(AuditEvent::DatasetRemoved {
        name: "targets".into(),
    });
    a.append(AuditEvent::PeerRemoved {
        name: "crm-b".into(),
        fingerprint: fp("crm-b"),
    });
    (a, b)
}

/// A log of well over 100 records.
fn big_log() -> Writer {
    let (a, _) = two_logs(36);
    assert!(a.head.count >= 100, "only {} records", a.head.count);
    a
}

fn with_key(key: &SigningKey) -> VerifyOptions {
    VerifyOptions {
        key: Some(key.verifying_key()),
        ..VerifyOptions::default()
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(|l| format!("{l}\n")).collect()
}

/// Verifier snapshots before each line, and each line's start offset.
fn snapshots(bytes: &[u8], options: &VerifyOptions) -> (Vec<LogVerifier>, Vec<usize>) {
    let mut verifier = LogVerifier::new(options.clone());
    let (mut snaps, mut starts, mut pos) = (Vec::new(), Vec::new(), 0);
    for chunk in bytes.split_inclusive(|&b| b == b'\n') {
        snaps.push(verifier.clone());
        starts.push(pos);
        verifier.push_line(&chunk[..chunk.len() - 1]).unwrap();
        pos += chunk.len();
    }
    (snaps, starts)
}

fn line_of(starts: &[usize], pos: usize) -> usize {
    starts.partition_point(|&s| s <= pos) - 1
}

/// Re-seals `records` with `key`, skipping those `drop` selects and keeping timestamps;
/// checkpoint records are regenerated. What a node rewriting its own log would do.
fn rebuild(
    records: &[Record],
    key: &SigningKey,
    drop: impl Fn(usize, &AuditEvent) -> bool,
) -> String {
    rebuild_with(records, key, |i, e| (!drop(i, e)).then(|| e.clone()))
}

fn rebuild_with(
    records: &[Record],
    key: &SigningKey,
    edit: impl Fn(usize, &AuditEvent) -> Option<AuditEvent>,
) -> String {
    let mut w = Writer::new(key.clone());
    for (i, record) in records.iter().enumerate() {
        let event = record.event().unwrap().unwrap();
        let event = match event {
            AuditEvent::Checkpoint { .. } => continue,
            AuditEvent::NodeInitialised {
                name, fingerprint, ..
            } => AuditEvent::NodeInitialised {
                name,
                fingerprint,
                audit_key: key_hex(key),
            },
            other => match edit(i, &other) {
                Some(e) => e,
                None => continue,
            },
        };
        w.append_at(record.ts.clone(), event);
        if w.head.checkpoint_due(EVERY) {
            w.append_at(record.ts.clone(), w.head.checkpoint_event());
        }
    }
    w.text
}

mod crosscheck;
mod events;
mod receipts;
mod tamper;
