//! `blindmatch audit …`: verify, cross-check, show, checkpoint, repair.
//!
//! Every command prints plain text for a person (or JSON with `show --json`) and exits
//! non-zero when a log does not verify or two logs disagree, so scripts can rely on the
//! exit code.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use blindmatch_protocol::audit::{
    Checkpoint, Record, VerifyOptions, cross_check, read_records, verify_log_bytes,
};
use ed25519_dalek::VerifyingKey;

use super::log::{AuditLog, LOG_FILE, RepairOutcome, repair};
use super::render::{print_cross_check, print_timeline, print_verdict};
use crate::identity::NodeIdentity;

/// `blindmatch audit`: check, compare and read signed audit logs.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check that an audit log is intact: every line, hash link and signature.
    #[command(long_about = "\
Check that an audit log is intact: that every line is a well-formed record, that the
records are numbered without gaps, that each one links to the hash of the one before,
that each hash matches its record, and that each record is signed by the node's audit key.
Prints a clear yes or no; on failure, the first bad line and what is wrong with it.
Exit code 0 if the log verifies, 1 if it does not.

Which key: --key if given (the audit public key that `blindmatch id` shows on the node
that wrote the log, obtained from its operator); for this node's own log, this node's
identity; otherwise the key recorded in the log's first record, which only shows that the
log is internally consistent (anyone who rewrites the whole log with a new key passes).

Truncation: dropping records from the end of a log leaves a valid, shorter log. Give a
checkpoint exported earlier (`blindmatch audit checkpoint`) with --checkpoint to detect it.")]
    Verify {
        /// The log to verify [default: audit.jsonl in the data directory].
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
        /// The expected audit public key of the node that wrote the log (64 hex digits).
        #[arg(long, value_name = "PUBKEY_HEX")]
        key: Option<String>,
        /// A checkpoint file: the log must contain the records it covers, unchanged.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Check that two nodes' logs tell the same story about their sessions.
    #[command(long_about = "\
Check that two nodes' logs tell the same story about the sessions they ran together.
Both logs are verified first. Then, for every session id found in both, the two records
are compared: the parties (each side's own fingerprint is the other's peer fingerprint),
roles, dataset, purpose, legal basis, output mode, protocol and normalisation versions,
both set sizes, the intersection size (where both sides know it) and the transcript hash.
Sessions that one log records with the other node but the other log lacks are listed.
Exit code 0 if both logs verify and agree, 1 otherwise.

Give both nodes' audit public keys (--key-a, --key-b) to prove who wrote each log; without
them each log is only checked for internal consistency.")]
    CrossCheck {
        /// The first node's log.
        #[arg(value_name = "LOG_A")]
        log_a: PathBuf,
        /// The second node's log.
        #[arg(value_name = "LOG_B")]
        log_b: PathBuf,
        /// The first node's audit public key (64 hex digits).
        #[arg(long, value_name = "PUBKEY_HEX")]
        key_a: Option<String>,
        /// The second node's audit public key (64 hex digits).
        #[arg(long, value_name = "PUBKEY_HEX")]
        key_b: Option<String>,
    },
    /// Show an audit log as a readable timeline.
    #[command(long_about = "\
Show an audit log as a timeline: time, event, peer, purpose, mode, set sizes, matches and
duration of each session step, and what else the node recorded (peers, datasets,
checkpoints, repairs). The log is verified first; if it does not verify, a warning says
where, and only the records before the fault are shown (exit code 1).

The log holds no personal data: counts, names chosen by operators, fingerprints and hashes.")]
    Show {
        /// Only the records of this session (its id, or a unique prefix of it).
        #[arg(long, value_name = "ID", conflicts_with = "run")]
        session: Option<String>,
        /// Only the sessions of this run of `match` with several peers (its id, or a
        /// unique prefix), followed by a table of how each ended.
        #[arg(long, value_name = "ID")]
        run: Option<String>,
        /// Print the records as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// The log to show [default: audit.jsonl in the data directory].
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
    },
    /// Export a signed checkpoint of this node's log, for a peer or auditor to keep.
    #[command(long_about = "\
Export a signed checkpoint of this node's log: its number of records and the hash of the
last one, signed with the node's audit key. Whoever keeps it can later run
`blindmatch audit verify --checkpoint FILE` on the log to prove that none of the records
it covers were removed or rewritten since. The log also holds a checkpoint record every
64 records, but only a copy held outside the node detects truncation.")]
    Checkpoint {
        /// Write the checkpoint to this file instead of standard output.
        #[arg(long, short, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Repair a log whose last line was torn by a crash during a write.
    #[command(long_about = "\
Repair this node's log after a crash during a write left a torn (incomplete) last line,
which makes the node refuse to record anything more. The torn bytes are moved to a side
file `audit.jsonl.torn-<time>` in the data directory (never deleted), the log is cut
before them, and an `audit_repaired` record naming the side file and the SHA-256 of the
torn bytes is appended, so an auditor sees that a repair happened. Any other fault is
refused: it needs investigation, not repair.")]
    Repair,
}

/// Runs an audit command against the node in `data_dir`, printing to standard output.
pub fn run(cmd: AuditCommand, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_with_output(cmd, data_dir, &mut out)
}

/// [`run`], printing to `out`.
pub fn run_with_output(
    cmd: AuditCommand,
    data_dir: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Verify {
            log,
            key,
            checkpoint,
        } => verify(out, data_dir, log, key, checkpoint),
        AuditCommand::CrossCheck {
            log_a,
            log_b,
            key_a,
            key_b,
        } => cross(out, &log_a, &log_b, key_a, key_b),
        AuditCommand::Show {
            session,
            run,
            json,
            log,
        } => show(out, data_dir, log, Filter::new(session, run), json),
        AuditCommand::Checkpoint { out: file } => checkpoint(out, data_dir, file),
        AuditCommand::Repair => repair_command(out, data_dir),
    }
}

fn verify(
    out: &mut dyn Write,
    data_dir: &Path,
    log: Option<PathBuf>,
    key: Option<String>,
    checkpoint: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (path, bytes, key) = load(data_dir, log, key.as_deref())?;
    let checkpoint = match checkpoint {
        None => None,
        Some(file) => {
            let text = fs::read_to_string(&file)
                .with_context(|| format!("cannot read checkpoint {}", file.display()))?;
            Some(
                Checkpoint::from_json(&text)
                    .with_context(|| format!("checkpoint {} is not valid", file.display()))?,
            )
        }
    };
    let options = VerifyOptions {
        key: key.key,
        checkpoint,
        ..VerifyOptions::default()
    };
    let result = verify_log_bytes(&bytes, &options);
    writeln!(out, "audit log {}", path.display())?;
    print_verdict(out, &bytes, &result, key.note)?;
    Ok(exit(result.is_ok()))
}

fn cross(
    out: &mut dyn Write,
    log_a: &Path,
    log_b: &Path,
    key_a: Option<String>,
    key_b: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut logs = Vec::new();
    for (label, path, key) in [("A", log_a, key_a), ("B", log_b, key_b)] {
        let bytes =
            fs::read(path).with_context(|| format!("cannot read audit log {}", path.display()))?;
        let key = KeyChoice::from_arg(key.as_deref())?;
        let options = VerifyOptions {
            key: key.key,
            ..VerifyOptions::default()
        };
        let result = verify_log_bytes(&bytes, &options);
        writeln!(out, "log {label}: {}", path.display())?;
        print_verdict(out, &bytes, &result, key.note)?;
        writeln!(out)?;
        logs.push((result.is_ok(), bytes));
    }
    if logs.iter().any(|(ok, _)| !ok) {
        writeln!(
            out,
            "RESULT: NO. Cross-check needs two logs that verify; see above."
        )?;
        return Ok(exit(false));
    }
    let records: Vec<Vec<Record>> = logs
        .iter()
        .map(|(_, bytes)| read_records(bytes).0)
        .collect();
    let report = cross_check(&records[0], &records[1]);
    print_cross_check(out, &report)?;
    Ok(exit(report.agrees()))
}

/// Which records `audit show` shows.
enum Filter {
    All,
    Session(String),
    Run(String),
}

impl Filter {
    fn new(session: Option<String>, run: Option<String>) -> Self {
        match (session, run) {
            (Some(session), _) => Filter::Session(session),
            (None, Some(run)) => Filter::Run(run),
            (None, None) => Filter::All,
        }
    }
}

fn show(
    out: &mut dyn Write,
    data_dir: &Path,
    log: Option<PathBuf>,
    filter: Filter,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (path, bytes, key) = load(data_dir, log, None)?;
    let options = VerifyOptions {
        key: key.key,
        ..VerifyOptions::default()
    };
    let verdict = verify_log_bytes(&bytes, &options);
    let (mut records, _) = read_records(&bytes);
    if let Err(fault) = &verdict {
        let keep = fault
            .line
            .map_or(records.len(), |line| (line as usize).saturating_sub(1));
        records.truncate(keep);
        writeln!(
            out,
            "WARNING: {} does NOT verify: {}\nShowing the {} records before the fault; run `blindmatch audit verify` for details.\n",
            path.display(),
            blindmatch_protocol::wire::printable(&fault.to_string()),
            records.len()
        )?;
    }
    let run_id = match &filter {
        Filter::Run(wanted) => Some(super::run::retain_run(&mut records, wanted)?),
        _ => None,
    };
    if let Filter::Session(wanted) = &filter {
        let wanted = wanted.to_ascii_lowercase();
        let ids: std::collections::BTreeSet<String> = records
            .iter()
            .filter_map(|r| r.event().ok().flatten())
            .filter_map(|e| e.session().map(|f| f.session_id.clone()))
            .filter(|id| id.starts_with(&wanted))
            .collect();
        match ids.len() {
            0 => bail!("no session {wanted} in {}", path.display()),
            1 => {}
            n => bail!("{n} sessions start with {wanted}; give more of the id"),
        }
        records.retain(|r| {
            r.event()
                .ok()
                .flatten()
                .is_some_and(|e| e.session().is_some_and(|f| ids.contains(&f.session_id)))
        });
    }
    if json {
        let array: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "seq": r.seq,
                    "ts": r.ts.as_str(),
                    "type": r.record_type,
                    "fields": r.fields,
                    "hash": r.hash.to_hex(),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&array)?)?;
    } else {
        print_timeline(out, &records, matches!(filter, Filter::Session(_)))?;
        if let Some(run_id) = &run_id {
            super::run::print_run(out, run_id, &records)?;
        }
    }
    Ok(exit(verdict.is_ok()))
}

fn checkpoint(
    out: &mut dyn Write,
    data_dir: &Path,
    file: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let identity = NodeIdentity::load(data_dir)
        .context("exporting a checkpoint needs this node's audit key")?;
    let log = AuditLog::open(data_dir, identity.audit_key())?;
    let checkpoint = log.export_checkpoint()?;
    let json = checkpoint.to_json();
    match file {
        None => writeln!(out, "{json}")?,
        Some(file) => {
            fs::write(&file, format!("{json}\n"))
                .with_context(|| format!("cannot write {}", file.display()))?;
            writeln!(
                out,
                "checkpoint of {} records (head {}) written to {}.\nWhoever keeps it can run `blindmatch audit verify --checkpoint {}` on this node's log later.",
                checkpoint.count,
                checkpoint.head_hash,
                file.display(),
                file.display()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn repair_command(out: &mut dyn Write, data_dir: &Path) -> anyhow::Result<ExitCode> {
    let identity = NodeIdentity::load(data_dir)
        .context("repairing the audit log needs this node's audit key")?;
    match repair(data_dir, identity.audit_key())? {
        RepairOutcome::NothingToRepair { records } => {
            writeln!(
                out,
                "the audit log has no torn line ({records} records); nothing to repair"
            )?;
        }
        RepairOutcome::RecordedEarlierRepair { side_files } => {
            for side in side_files {
                writeln!(
                    out,
                    "recorded an earlier, interrupted repair: {}",
                    side.display()
                )?;
            }
        }
        RepairOutcome::Repaired {
            moved_to,
            torn_bytes,
            record,
        } => {
            writeln!(
                out,
                "moved the torn last line ({torn_bytes} bytes) to {}",
                moved_to.display()
            )?;
            match record {
                Some(r) => writeln!(
                    out,
                    "recorded the repair as record {} (audit_repaired)",
                    r.seq
                )?,
                None => writeln!(
                    out,
                    "the torn line was the log's first record, so the log is now empty; initialise the node again"
                )?,
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The verifying key chosen for a log, and how to describe it.
struct KeyChoice {
    key: Option<VerifyingKey>,
    note: &'static str,
}

impl KeyChoice {
    fn from_arg(arg: Option<&str>) -> anyhow::Result<KeyChoice> {
        Ok(match arg {
            Some(hex) => KeyChoice {
                key: Some(parse_key(hex)?),
                note: "given with --key",
            },
            None => KeyChoice {
                key: None,
                note: "",
            },
        })
    }
}

/// Reads the log (`log`, or this node's) and picks the key: `key_arg`, else this node's
/// identity for its own log, else none (taken from the log).
fn load(
    data_dir: &Path,
    log: Option<PathBuf>,
    key_arg: Option<&str>,
) -> anyhow::Result<(PathBuf, Vec<u8>, KeyChoice)> {
    let own = log.is_none();
    let path = log.unwrap_or_else(|| data_dir.join(LOG_FILE));
    let bytes =
        fs::read(&path).with_context(|| format!("cannot read audit log {}", path.display()))?;
    let mut key = KeyChoice::from_arg(key_arg)?;
    if key.key.is_none()
        && own
        && let Ok(identity) = NodeIdentity::load(data_dir)
    {
        key = KeyChoice {
            key: Some(identity.audit_key().verifying_key()),
            note: "this node's identity",
        };
    }
    Ok((path, bytes, key))
}

fn parse_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let text = text.trim().to_ascii_lowercase();
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(&text, &mut bytes)
        .ok()
        .and_then(|()| VerifyingKey::from_bytes(&bytes).ok())
        .with_context(|| {
            format!("{text:?} is not an audit public key: expected 64 hex digits, as shown by `blindmatch id`")
        })
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
