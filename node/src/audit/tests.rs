//! Appending, reopening, torn lines, repair, concurrent handles, kill -9, and the commands.

use std::fs;
use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use blindmatch_protocol::audit::{
    AuditEvent, FaultKind, Role, SessionFacts, VerifyOptions, read_records, verify_log_bytes,
};
use clap::Parser;
use ed25519_dalek::SigningKey;

use super::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn init_event(key: &SigningKey) -> AuditEvent {
    AuditEvent::NodeInitialised {
        name: "vendor-a".into(),
        fingerprint: "ab".repeat(32),
        audit_key: hex::encode(key.verifying_key().as_bytes()),
    }
}

fn session(i: u64, final_: bool) -> AuditEvent {
    let facts = SessionFacts {
        session_id: format!("{:032x}", 0x5e55_0000 + i),
        role: Role::Initiator,
        our_fingerprint: "ab".repeat(32),
        peer_fingerprint: "cd".repeat(32),
        peer_name: "crm-b".into(),
        dataset: "kp-contacts".into(),
        purpose: "coverage-check".into(),
        legal_basis: "consent".into(),
        mode: "cardinality".into(),
        our_set_size: 1000 + i,
        peer_set_size: Some(5000),
        intersection_size: final_.then_some(17),
        protocol_version: 1,
        normalisation_version: 1,
        transcript_hash: final_.then(|| "ee".repeat(32)),
        bytes_sent: 64_000,
        bytes_received: 160_000,
        duration_ms: 1234,
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
    };
    if final_ {
        AuditEvent::SessionCompleted(facts)
    } else {
        AuditEvent::SessionRequested(facts)
    }
}

fn verify_file(
    dir: &Path,
    key: &SigningKey,
) -> Result<blindmatch_protocol::audit::VerifyReport, blindmatch_protocol::audit::VerifyFault> {
    let bytes = fs::read(dir.join(LOG_FILE)).unwrap();
    verify_log_bytes(
        &bytes,
        &VerifyOptions {
            key: Some(key.verifying_key()),
            ..VerifyOptions::default()
        },
    )
}

fn new_log(dir: &Path, key: &SigningKey, every: u64) -> AuditLog {
    let mut log = AuditLog::open_with(
        dir,
        key,
        AuditLogOptions {
            checkpoint_every: every,
        },
    )
    .unwrap();
    log.append(init_event(key)).unwrap();
    log
}

#[test]
fn append_across_reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut log = new_log(dir.path(), &k, 8);
    for i in 0..5 {
        log.append(session(i, false)).unwrap();
    }
    let head = log.head();
    drop(log);
    let mut log = AuditLog::open_with(
        dir.path(),
        &k,
        AuditLogOptions {
            checkpoint_every: 8,
        },
    )
    .unwrap();
    assert_eq!(log.head(), head);
    let mut checkpoints = 0;
    for i in 0..20 {
        let summary = log.append(session(i, true)).unwrap();
        assert!(summary.seq >= head.count);
        checkpoints += u64::from(summary.checkpoint_seq.is_some());
    }
    let report = verify_file(dir.path(), &k).unwrap();
    assert_eq!(report.records, log.head().count);
    assert_eq!(report.head, log.head());
    assert_eq!(report.checkpoints, 3);
    assert!(checkpoints >= 2);
    assert_eq!(report.sessions, 20);
}

#[test]
fn the_first_record_must_be_node_initialised() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut log = AuditLog::open(dir.path(), &k).unwrap();
    assert!(!log.is_initialised());
    assert!(matches!(
        log.append(session(0, false)),
        Err(AuditError::Seal(_))
    ));
    assert!(matches!(
        log.export_checkpoint(),
        Err(AuditError::Empty { .. })
    ));
    log.append(init_event(&k)).unwrap();
    assert!(matches!(
        log.append(init_event(&k)),
        Err(AuditError::Seal(_))
    ));
    assert!(log.is_initialised());
}

#[test]
fn a_torn_last_line_blocks_appends_until_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut log = new_log(dir.path(), &k, 64);
    for i in 0..4 {
        log.append(session(i, false)).unwrap();
    }
    let records_before = log.head().count;
    drop(log);
    let path = dir.path().join(LOG_FILE);
    let torn = br#"{"seq":5,"ts":"2025-01-01T00:00:00.000Z","prev":"00"#;
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(torn)
        .unwrap();

    let err = AuditLog::open(dir.path(), &k).unwrap_err();
    assert!(matches!(err, AuditError::TornTail { line: 6, .. }), "{err}");
    assert!(err.to_string().contains("blindmatch audit repair"), "{err}");
    assert!(verify_file(dir.path(), &k).unwrap_err().is_torn_tail());

    let RepairOutcome::Repaired {
        moved_to,
        torn_bytes,
        record,
    } = repair(dir.path(), &k).unwrap()
    else {
        panic!("expected a repair");
    };
    assert_eq!(fs::read(&moved_to).unwrap(), torn);
    assert_eq!(torn_bytes, torn.len() as u64);
    assert_eq!(record.unwrap().seq, records_before);
    let report = verify_file(dir.path(), &k).unwrap();
    assert_eq!(report.records, records_before + 1);
    let (records, _) = read_records(&fs::read(&path).unwrap());
    let last = records.last().unwrap().event().unwrap().unwrap();
    let AuditEvent::AuditRepaired {
        torn_sha256,
        moved_to: name,
        ..
    } = last
    else {
        panic!("{last:?}")
    };
    assert_eq!(
        torn_sha256,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(torn))
    );
    assert_eq!(
        Some(name.as_str()),
        moved_to.file_name().and_then(|n| n.to_str())
    );

    let mut log = AuditLog::open(dir.path(), &k).unwrap();
    log.append(session(9, true)).unwrap();
    assert!(matches!(
        repair(dir.path(), &k).unwrap(),
        RepairOutcome::NothingToRepair { .. }
    ));
}

#[test]
fn an_interrupted_repair_is_recorded_by_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    drop(new_log(dir.path(), &k, 64));
    // As if a repair had moved the bytes and crashed before recording it.
    fs::write(
        dir.path().join(format!("{LOG_FILE}.torn-20250101T000000Z")),
        b"{\"seq\":1,",
    )
    .unwrap();
    let RepairOutcome::RecordedEarlierRepair { side_files } = repair(dir.path(), &k).unwrap()
    else {
        panic!("expected the side file to be recorded");
    };
    assert_eq!(side_files.len(), 1);
    assert!(matches!(
        repair(dir.path(), &k).unwrap(),
        RepairOutcome::NothingToRepair { records: 2 }
    ));
}

#[test]
fn a_damaged_or_foreign_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut log = new_log(dir.path(), &k, 64);
    for i in 0..3 {
        log.append(session(i, false)).unwrap();
    }
    drop(log);
    assert!(matches!(
        AuditLog::open(dir.path(), &key(2)),
        Err(AuditError::KeyMismatch { .. })
    ));

    let path = dir.path().join(LOG_FILE);
    let original = fs::read(&path).unwrap();
    let text = String::from_utf8(original.clone()).unwrap().replacen(
        "\"our_set_size\":1001",
        "\"our_set_size\":1002",
        1,
    );
    fs::write(&path, text).unwrap();
    let err = AuditLog::open(dir.path(), &k).unwrap_err();
    assert!(
        matches!(&err, AuditError::Corrupt { fault, .. } if fault.kind == FaultKind::HashMismatch),
        "{err}"
    );
    assert!(matches!(
        repair(dir.path(), &k),
        Err(AuditError::NotRepairable { .. })
    ));
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        1,
        "repair must not move anything"
    );
}

#[test]
fn two_handles_on_one_log_extend_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut a = new_log(dir.path(), &k, 5);
    let mut b = AuditLog::open_with(
        dir.path(),
        &k,
        AuditLogOptions {
            checkpoint_every: 5,
        },
    )
    .unwrap();
    for i in 0..12 {
        a.append(session(i, false)).unwrap();
        b.append(session(i, true)).unwrap();
    }
    let report = verify_file(dir.path(), &k).unwrap();
    assert_eq!(report.head, b.head());
    assert_eq!(report.sessions_completed, 12);
}

#[test]
fn a_log_truncated_while_open_is_not_extended() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut log = new_log(dir.path(), &k, 64);
    for i in 0..4 {
        log.append(session(i, false)).unwrap();
    }
    let path = dir.path().join(LOG_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let shorter: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
    fs::write(&path, shorter).unwrap();
    let err = log.append(session(9, true)).unwrap_err();
    assert!(
        matches!(&err, AuditError::Corrupt { fault, .. } if matches!(fault.kind, FaultKind::Truncated { .. })),
        "{err}"
    );
}

#[test]
fn an_exported_checkpoint_reveals_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut log = new_log(dir.path(), &k, 64);
    for i in 0..6 {
        log.append(session(i, true)).unwrap();
    }
    let checkpoint = log.export_checkpoint().unwrap();
    assert_eq!(checkpoint.count, 7);
    drop(log);
    let path = dir.path().join(LOG_FILE);
    let text = fs::read_to_string(&path).unwrap();
    let shorter: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
    let options = VerifyOptions {
        key: Some(k.verifying_key()),
        checkpoint: Some(checkpoint),
        ..VerifyOptions::default()
    };
    assert!(verify_log_bytes(text.as_bytes(), &options).is_ok());
    let fault = verify_log_bytes(shorter.as_bytes(), &options).unwrap_err();
    assert!(matches!(
        fault.kind,
        FaultKind::Truncated {
            records: 5,
            checkpoint_count: 7
        }
    ));
}

const CHILD_ENV: &str = "BLINDMATCH_AUDIT_CRASH_CHILD_DIR";

/// Helper process for [`kill_minus_nine_never_corrupts_earlier_records`]: appends until
/// killed, printing each seq once its append returned. Does nothing when run directly.
#[test]
#[ignore = "helper process, started by kill_minus_nine_never_corrupts_earlier_records"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let k = key(5);
    let mut log = AuditLog::open_with(
        Path::new(&dir),
        &k,
        AuditLogOptions {
            checkpoint_every: 8,
        },
    )
    .unwrap();
    if !log.is_initialised() {
        log.append(init_event(&k)).unwrap();
    }
    let stdout = std::io::stdout();
    for i in 0.. {
        let summary = log.append(session(i, i % 2 == 1)).unwrap();
        let durable = summary.checkpoint_seq.unwrap_or(summary.seq);
        writeln!(stdout.lock(), "durable {durable}").unwrap();
    }
}

#[test]
fn kill_minus_nine_never_corrupts_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(5);
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut durable_so_far = None::<u64>;
    let (mut rounds, mut torn) = (0, 0);
    while rounds < 40 && started.elapsed() < Duration::from_secs(6) {
        rounds += 1;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "audit::tests::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let wanted = 3 + rng % 30;
        let mut seen = 0;
        for line in lines.by_ref() {
            if let Some(seq) = line.unwrap().strip_prefix("durable ") {
                durable_so_far = Some(seq.parse().unwrap());
                seen += 1;
                if seen >= wanted {
                    break;
                }
            }
        }
        assert!(seen >= wanted, "child stopped early in round {rounds}");
        std::thread::sleep(Duration::from_micros(rng % 3000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Whatever the child reported before dying was durable.
        for line in lines {
            if let Some(seq) = line.unwrap().strip_prefix("durable ") {
                durable_so_far = Some(seq.parse().unwrap());
            }
        }
        let durable = durable_so_far.unwrap();
        let path = dir.path().join(LOG_FILE);
        if rounds % 3 == 0
            && let Ok(report) = verify_file(dir.path(), &k)
            && report.records - 1 > durable
        {
            // The last record was not reported durable yet: a power loss could have torn it.
            // Simulate that by cutting it short.
            let bytes = fs::read(&path).unwrap();
            let last_start = bytes[..bytes.len() - 1]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let cut = last_start + 1 + (rng as usize % (bytes.len() - last_start - 1));
            fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut as u64)
                .unwrap();
        }
        match verify_file(dir.path(), &k) {
            Ok(report) => assert!(
                report.records > durable,
                "round {rounds}: lost a durable record"
            ),
            Err(fault) if fault.is_torn_tail() => {
                let FaultKind::TornTail { offset, .. } = fault.kind else {
                    unreachable!()
                };
                let bytes = fs::read(&path).unwrap();
                let prefix = &bytes[..offset as usize];
                let options = VerifyOptions {
                    key: Some(k.verifying_key()),
                    ..VerifyOptions::default()
                };
                let report = verify_log_bytes(prefix, &options).unwrap();
                assert!(
                    report.records > durable,
                    "round {rounds}: lost a durable record"
                );
                assert!(matches!(
                    repair(dir.path(), &k).unwrap(),
                    RepairOutcome::Repaired { .. }
                ));
                torn += 1;
            }
            Err(fault) => panic!("round {rounds}: log broken after kill -9: {fault}"),
        }
    }
    assert!(rounds >= 3, "only {rounds} rounds");
    let report = verify_file(dir.path(), &k).unwrap();
    eprintln!(
        "kill -9: {rounds} rounds, {} records, {torn} torn tails repaired",
        report.records
    );
}

/// Wraps the subcommands as the top-level CLI will.
#[derive(clap::Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: AuditCommand,
}

fn run_cli(args: &[&str], data_dir: &Path) -> (ExitCode, String) {
    let cli = Cli::try_parse_from(std::iter::once("audit").chain(args.iter().copied())).unwrap();
    let mut out = Vec::new();
    let code = run_with_output(cli.cmd, data_dir, &mut out).unwrap();
    (code, String::from_utf8(out).unwrap())
}

#[test]
fn every_command_has_help() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
    for sub in ["verify", "cross-check", "show", "checkpoint", "repair"] {
        let err = Cli::try_parse_from(["audit", sub, "--help"]).err().unwrap();
        let help = err.to_string();
        assert!(help.len() > 300, "{sub} help is too thin:\n{help}");
    }
}

#[test]
fn verify_show_and_cross_check_commands() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(1);
    let mut log = new_log(dir.path(), &k, 64);
    log.append(session(0, false)).unwrap();
    log.append(session(0, true)).unwrap();
    drop(log);
    let path = dir.path().join(LOG_FILE);
    let log_arg = path.to_str().unwrap();
    let key_hex = hex::encode(k.verifying_key().as_bytes());

    let (code, out) = run_cli(&["verify", "--log", log_arg, "--key", &key_hex], dir.path());
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(
        out.contains("VERIFIED: yes") && out.contains("given with --key"),
        "{out}"
    );
    let (code, out) = run_cli(&["verify", "--log", log_arg], dir.path());
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(out.contains("internally consistent"), "{out}");
    let other = hex::encode(key(2).verifying_key().as_bytes());
    let (code, out) = run_cli(&["verify", "--log", log_arg, "--key", &other], dir.path());
    assert_eq!(code, ExitCode::FAILURE);
    assert!(
        out.contains("VERIFIED: NO") && out.contains("line 1:"),
        "{out}"
    );

    let (code, out) = run_cli(&["show", "--log", log_arg], dir.path());
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        out.contains("session completed") && out.contains("matches 17"),
        "{out}"
    );
    let (code, out) = run_cli(
        &["show", "--log", log_arg, "--session", "0000", "--json"],
        dir.path(),
    );
    assert_eq!(code, ExitCode::SUCCESS);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    let (code, out) = run_cli(&["cross-check", log_arg, log_arg], dir.path());
    // A log against itself: same roles on both sides, so every session disagrees.
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.contains("role (must be opposite)"), "{out}");

    let text = fs::read_to_string(&path).unwrap().replacen(
        "\"purpose\":\"coverage-check\"",
        "\"purpose\":\"coverage-checks\"",
        1,
    );
    fs::write(&path, text).unwrap();
    let (code, out) = run_cli(&["verify", "--log", log_arg, "--key", &key_hex], dir.path());
    assert_eq!(code, ExitCode::FAILURE);
    assert!(
        out.contains("line 2: hash does not match") && out.contains("lines 1 to 1 check out"),
        "{out}"
    );
    let (code, out) = run_cli(&["show", "--log", log_arg], dir.path());
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.starts_with("WARNING"), "{out}");
}

#[test]
fn checkpoint_and_repair_commands_use_the_node_identity() {
    let dir = tempfile::tempdir().unwrap();
    let identity = crate::identity::NodeIdentity::generate("vendor-a").unwrap();
    identity.save(dir.path()).unwrap();
    let k = identity.audit_key();
    let mut log = new_log(dir.path(), k, 64);
    for i in 0..3 {
        log.append(session(i, true)).unwrap();
    }
    drop(log);
    let checkpoint_file = dir.path().join("checkpoint.json");
    let (code, out) = run_cli(
        &["checkpoint", "--out", checkpoint_file.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(out.contains("checkpoint of 4 records"), "{out}");

    let (code, out) = run_cli(
        &["verify", "--checkpoint", checkpoint_file.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    assert!(
        out.contains("this node's identity") && out.contains("first 4 records match"),
        "{out}"
    );

    let path = dir.path().join(LOG_FILE);
    let full = fs::read_to_string(&path).unwrap();
    let truncated: String = full.lines().take(3).map(|l| format!("{l}\n")).collect();
    fs::write(&path, &truncated).unwrap();
    let (code, out) = run_cli(
        &["verify", "--checkpoint", checkpoint_file.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.contains("records were removed from its end"), "{out}");

    fs::write(&path, format!("{full}{{\"seq\":4,\"ts\"")).unwrap();
    let (code, out) = run_cli(&["verify"], dir.path());
    assert_eq!(code, ExitCode::FAILURE);
    assert!(out.contains("blindmatch audit repair"), "{out}");
    let (code, out) = run_cli(&["repair"], dir.path());
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(
        out.contains("moved the torn last line") && out.contains("record 4"),
        "{out}"
    );
    let (code, out) = run_cli(
        &["verify", "--checkpoint", checkpoint_file.to_str().unwrap()],
        dir.path(),
    );
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    let (_, out) = run_cli(&["show"], dir.path());
    assert!(out.contains("audit repaired"), "{out}");
}
