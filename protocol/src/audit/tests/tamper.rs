//! Tampering, truncation, reordering, checkpoints and keys: every change to a log is
//! caught, at the line where it is.

use super::*;

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

#[test]
fn the_expected_key_is_enforced() {
    let log = big_log();
    let fault = verify_log(&log.text, Some(&key(3).verifying_key())).unwrap_err();
    assert_eq!(fault.line, Some(1));
    assert!(matches!(fault.kind, FaultKind::KeyMismatch { .. }));
    assert_eq!(verify_log("", None).unwrap_err().kind, FaultKind::Empty);
}
