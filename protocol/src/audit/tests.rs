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

#[test]
fn untouched_log_verifies() {
    let log = big_log();
    let report = verify_log(&log.text, Some(&log.key.verifying_key())).unwrap();
    assert_eq!(report.records, log.head.count);
    assert_eq!(report.head, log.head);
    assert_eq!(report.key_source, KeySource::Given);
    assert_eq!(report.sessions, 37);
    assert_eq!(report.sessions_refused, 5);
    assert_eq!(report.sessions_aborted, 5);
    assert_eq!(report.sessions_completed, 37 - 10);
    assert_eq!(report.checkpoints, log.head.count / EVERY);
    assert_eq!(report.unknown_types, 0);
    assert!(report.first_ts < report.last_ts);
    assert_eq!(report.first_ts.as_str(), "2025-03-01T10:00:07.037Z");

    let report = verify_log(&log.text, None).unwrap();
    assert_eq!(report.key_source, KeySource::FromLog);
    assert_eq!(report.key, log.key.verifying_key());

    let head_only = VerifyOptions {
        signatures: SignatureCheck::HeadOnly,
        ..with_key(&log.key)
    };
    assert_eq!(
        verify_log_bytes(log.text.as_bytes(), &head_only)
            .unwrap()
            .records,
        log.head.count
    );
}

#[test]
fn every_single_byte_change_is_detected() {
    let log = big_log();
    let original = log.text.as_bytes();
    let options = with_key(&log.key);
    let (snaps, starts) = snapshots(original, &options);
    let mut buf = original.to_vec();
    let mut rng = Rng(7);
    let mut checked = 0u64;
    for pos in 0..buf.len() {
        let k = line_of(&starts, pos);
        let old = buf[pos];
        let random = loop {
            let b = rng.below(256) as u8;
            if b != old {
                break b;
            }
        };
        for new in [old ^ 0x01, old ^ 0x20, random] {
            buf[pos] = new;
            let fast = snaps[k].clone().run(&buf[starts[k]..]);
            assert!(
                fast.is_err(),
                "byte {pos} (line {}) {old:#04x} -> {new:#04x} undetected",
                k + 1
            );
            if pos % 997 == 0 {
                assert_eq!(
                    verify_log_bytes(&buf, &options),
                    fast,
                    "snapshot shortcut diverged at {pos}"
                );
                assert!(verify_log_bytes(&buf, &VerifyOptions::default()).is_err());
            }
            checked += 1;
        }
        buf[pos] = old;
    }
    assert_eq!(checked, 3 * original.len() as u64);
}

#[test]
fn fault_names_the_line_and_the_problem() {
    let log = big_log();
    let mut ls = lines(&log.text);
    ls[40] = ls[40].replacen(
        "\"purpose\":\"abm-coverage-check\"",
        "\"purpose\":\"abm-coverage-chec!\"",
        1,
    );
    let fault = verify_log(&ls.concat(), None).unwrap_err();
    assert_eq!(fault.line, Some(41));
    assert_eq!(fault.kind, FaultKind::HashMismatch);
    assert!(
        fault
            .to_string()
            .starts_with("line 41: hash does not match"),
        "{fault}"
    );

    let mut ls = lines(&log.text);
    let sig_at = ls[10].find("\"sig\":\"").unwrap() + 7;
    let replacement = if &ls[10][sig_at..sig_at + 2] == "00" {
        "01"
    } else {
        "00"
    };
    ls[10].replace_range(sig_at..sig_at + 2, replacement);
    let fault = verify_log(&ls.concat(), None).unwrap_err();
    assert_eq!(fault.line, Some(11));
    assert!(matches!(fault.kind, FaultKind::BadSignature(_)));
    // With only the head signature checked, an altered earlier signature goes unnoticed.
    let head_only = VerifyOptions {
        signatures: SignatureCheck::HeadOnly,
        ..VerifyOptions::default()
    };
    assert!(verify_log_bytes(ls.concat().as_bytes(), &head_only).is_ok());
}

#[test]
fn semantically_equal_rewritings_are_rejected() {
    let log = big_log();
    let line = lines(&log.text)[5].clone();
    let body = line.trim_end();
    let variants = [
        body.replacen("{\"seq\":", "{ \"seq\":", 1),
        body.replacen(",\"ts\":", ", \"ts\":", 1),
        body.replacen("\"fields\":{", "\"fields\":{ ", 1),
        body.replacen("crm-b", "\\u0063rm-b", 1),
        body.replacen("crm-b", "crm\\u002db", 1),
        format!("{body} "),
        format!("{body}\r"),
    ];
    for variant in variants.iter().filter(|v| v.as_str() != body) {
        let mut ls = lines(&log.text);
        ls[5] = format!("{variant}\n");
        let fault = verify_log(&ls.concat(), None).unwrap_err();
        assert_eq!(fault.line, Some(6), "{variant}");
        assert!(
            matches!(fault.kind, FaultKind::Unreadable(LineError::NonCanonical)),
            "{variant}: {fault}"
        );
    }
    // Members in another order, uppercase hex, duplicated member.
    let record = Record::parse_line(body.as_bytes()).unwrap();
    let reordered = body
        .replacen(&format!("\"seq\":{},", record.seq), "", 1)
        .replacen("\"hash\":", &format!("\"seq\":{},\"hash\":", record.seq), 1);
    assert_eq!(
        Record::parse_line(reordered.as_bytes()),
        Err(LineError::NonCanonical)
    );
    let upper = body.replacen(
        &record.hash.to_hex(),
        &record.hash.to_hex().to_uppercase(),
        1,
    );
    assert!(matches!(
        Record::parse_line(upper.as_bytes()),
        Err(LineError::BadMember(_))
    ));
    let dup = body.replacen(
        "{\"seq\":",
        &format!("{{\"seq\":{},\"seq\":", record.seq + 1),
        1,
    );
    assert!(Record::parse_line(dup.as_bytes()).is_err());
}

#[test]
fn every_record_deletion_is_detected() {
    let log = big_log();
    let ls = lines(&log.text);
    let checkpoint = Checkpoint::sign(&log.head, &log.key).unwrap();
    let with_checkpoint = VerifyOptions {
        checkpoint: Some(checkpoint),
        ..with_key(&log.key)
    };
    for k in 0..ls.len() {
        let mut cut = ls.clone();
        cut.remove(k);
        let text = cut.concat();
        if k + 1 < ls.len() {
            let fault = verify_log(&text, Some(&log.key.verifying_key())).unwrap_err();
            assert_eq!(fault.line, Some(k as u64 + 1), "deleting line {}", k + 1);
        } else {
            // Dropping the last record is truncation: only a checkpoint reveals it.
            assert!(verify_log(&text, Some(&log.key.verifying_key())).is_ok());
        }
        assert!(
            verify_log_bytes(text.as_bytes(), &with_checkpoint).is_err(),
            "deleting line {}",
            k + 1
        );
    }
}

#[test]
fn every_adjacent_swap_and_random_swaps_are_detected() {
    let log = big_log();
    let ls = lines(&log.text);
    let verify = |swapped: &[String]| verify_log(&swapped.concat(), Some(&log.key.verifying_key()));
    for k in 0..ls.len() - 1 {
        let mut swapped = ls.clone();
        swapped.swap(k, k + 1);
        let fault = verify(&swapped).unwrap_err();
        assert_eq!(
            fault.line,
            Some(k as u64 + 1),
            "swapping lines {} and {}",
            k + 1,
            k + 2
        );
    }
    let mut rng = Rng(11);
    for _ in 0..300 {
        let i = rng.below(ls.len() as u64) as usize;
        let j = rng.below(ls.len() as u64) as usize;
        if i == j {
            continue;
        }
        let mut swapped = ls.clone();
        swapped.swap(i, j);
        assert_eq!(
            verify(&swapped).unwrap_err().line,
            Some(i.min(j) as u64 + 1)
        );
    }
}

#[test]
fn truncation_is_detected_against_a_checkpoint() {
    let log = big_log();
    let ls = lines(&log.text);
    let checkpoint = Checkpoint::sign(&log.head, &log.key).unwrap();
    let options = VerifyOptions {
        checkpoint: Some(checkpoint.clone()),
        ..with_key(&log.key)
    };
    let report = verify_log_bytes(log.text.as_bytes(), &options).unwrap();
    assert_eq!(report.checked_against_checkpoint, Some(log.head.count));
    for keep in 1..ls.len() {
        let text = ls[..keep].concat();
        // A cleanly truncated log is internally consistent...
        assert!(verify_log(&text, Some(&log.key.verifying_key())).is_ok());
        // ...but shorter than the checkpoint says.
        let fault = verify_log_bytes(text.as_bytes(), &options).unwrap_err();
        assert_eq!(
            fault.kind,
            FaultKind::Truncated {
                records: keep as u64,
                checkpoint_count: checkpoint.count
            }
        );
    }
    // A log that grew after the checkpoint still passes it.
    let mut longer = Writer {
        text: log.text.clone(),
        ..Writer::new(log.key.clone())
    };
    longer.head = log.head;
    longer.clock = log.clock;
    longer.append(AuditEvent::DatasetRemoved { name: "x".into() });
    assert!(verify_log_bytes(longer.text.as_bytes(), &options).is_ok());
    // An older checkpoint also passes.
    let older = Checkpoint::sign(
        &ChainHead {
            count: 50,
            head_hash: Record::parse_line(ls[49].trim_end().as_bytes())
                .unwrap()
                .hash,
        },
        &log.key,
    )
    .unwrap();
    let options = VerifyOptions {
        checkpoint: Some(older),
        ..with_key(&log.key)
    };
    assert!(verify_log_bytes(log.text.as_bytes(), &options).is_ok());
}

#[test]
fn a_torn_last_line_is_its_own_fault_at_every_cut() {
    let log = big_log();
    let bytes = log.text.as_bytes();
    let options = with_key(&log.key);
    let (snaps, starts) = snapshots(bytes, &options);
    for cut in 1..bytes.len() {
        if bytes[cut - 1] == b'\n' {
            continue;
        }
        let k = line_of(&starts, cut - 1);
        let fault = snaps[k].clone().run(&bytes[starts[k]..cut]).unwrap_err();
        assert_eq!(fault.line, Some(k as u64 + 1));
        assert_eq!(
            fault.kind,
            FaultKind::TornTail {
                offset: starts[k] as u64,
                bytes: (cut - starts[k]) as u64,
                terminated: false
            },
            "cut at {cut}"
        );
        if cut % 1009 == 0 {
            assert_eq!(verify_log_bytes(&bytes[..cut], &options), Err(fault));
        }
    }
    // Garbage (e.g. zeros a crash left behind) ending in a line feed, as the last line.
    let mut text = log.text.clone();
    text.push_str("\0\0\0\0\0\0\n");
    let fault = verify_log(&text, None).unwrap_err();
    assert!(
        matches!(
            fault.kind,
            FaultKind::TornTail {
                terminated: true,
                ..
            }
        ),
        "{fault}"
    );
    assert!(fault.is_torn_tail());
    // The same garbage followed by a valid-looking line is corruption, not a torn tail.
    text.push_str(lines(&log.text)[3].as_str());
    assert!(matches!(
        verify_log(&text, None).unwrap_err().kind,
        FaultKind::Unreadable(_)
    ));
}

#[test]
fn checkpoints_detect_rewrites_and_must_be_genuine() {
    let log = big_log();
    let checkpoint = Checkpoint::sign(&log.head, &log.key).unwrap();
    assert_eq!(
        Checkpoint::from_json(&checkpoint.to_json()).unwrap(),
        checkpoint
    );

    // The node rewrites its own log (same key) from record 30 on, dropping a session.
    let records = read_records(log.text.as_bytes()).0;
    let rewritten = rebuild(&records, &log.key, |i, _| i == 30);
    assert!(verify_log(&rewritten, Some(&log.key.verifying_key())).is_ok());
    let options = VerifyOptions {
        checkpoint: Some(checkpoint.clone()),
        ..with_key(&log.key)
    };
    let fault = verify_log_bytes(rewritten.as_bytes(), &options).unwrap_err();
    assert!(
        matches!(
            fault.kind,
            FaultKind::Rewritten { .. } | FaultKind::Truncated { .. }
        ),
        "{fault}"
    );

    let foreign = Checkpoint::sign(&log.head, &key(9)).unwrap();
    let options = VerifyOptions {
        checkpoint: Some(foreign),
        ..VerifyOptions::default()
    };
    assert!(matches!(
        verify_log_bytes(log.text.as_bytes(), &options)
            .unwrap_err()
            .kind,
        FaultKind::CheckpointKeyMismatch { .. }
    ));

    let mut forged = checkpoint.clone();
    forged.count -= 1;
    assert_eq!(forged.verify(), Err(CheckpointError::BadSignature));
    assert_eq!(
        Checkpoint::from_json(&forged.to_json()),
        Err(CheckpointError::BadSignature)
    );
    let options = VerifyOptions {
        checkpoint: Some(forged),
        ..VerifyOptions::default()
    };
    assert!(matches!(
        verify_log_bytes(log.text.as_bytes(), &options)
            .unwrap_err()
            .kind,
        FaultKind::CheckpointInvalid(_)
    ));
    assert_eq!(
        Checkpoint::sign(&ChainHead::EMPTY, &log.key),
        Err(CheckpointError::Empty)
    );
    assert!(matches!(
        Checkpoint::from_json("{\"count\":1}"),
        Err(CheckpointError::Malformed(_))
    ));
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

#[test]
fn the_expected_key_is_enforced() {
    let log = big_log();
    let fault = verify_log(&log.text, Some(&key(3).verifying_key())).unwrap_err();
    assert_eq!(fault.line, Some(1));
    assert!(matches!(fault.kind, FaultKind::KeyMismatch { .. }));
    assert_eq!(verify_log("", None).unwrap_err().kind, FaultKind::Empty);
}

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

#[test]
fn events_round_trip_and_stay_within_the_privacy_allowlist() {
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
    let events = vec![
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
    ];
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

mod receipts;
