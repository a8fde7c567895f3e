//! Rendering verification verdicts, cross-check reports and timelines as text for people.
//!
//! Much of a log's text was chosen by someone else: a peer's purpose, legal basis, name
//! and refusal reasons, dataset and file names, a damaged line. Every such text goes
//! through [`printable`] before it reaches the terminal, so a newline or an escape
//! sequence in it shows as `\n` or `\u{1b}` and cannot forge a row or recolour the
//! screen.

use std::io::Write;

use blindmatch_protocol::audit::{
    AuditEvent, CrossCheckReport, KeySource, Record, VerifyFault, VerifyReport,
};
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::wire::printable;

pub(super) fn print_verdict(
    out: &mut dyn Write,
    bytes: &[u8],
    result: &Result<VerifyReport, VerifyFault>,
    key_note: &str,
) -> anyhow::Result<()> {
    match result {
        Ok(report) => print_report(out, report, key_note),
        Err(fault) => print_fault(out, bytes, fault),
    }
}

fn print_report(out: &mut dyn Write, r: &VerifyReport, key_note: &str) -> anyhow::Result<()> {
    writeln!(
        out,
        "  VERIFIED: yes, every line, link, hash and signature checks out"
    )?;
    writeln!(
        out,
        "  records:     {} ({} checkpoint records)",
        r.records, r.checkpoints
    )?;
    writeln!(
        out,
        "  sessions:    {} ({} completed, {} aborted, {} refused)",
        r.sessions, r.sessions_completed, r.sessions_aborted, r.sessions_refused
    )?;
    writeln!(out, "  period:      {} .. {}", r.first_ts, r.last_ts)?;
    let key_hex = hex::encode(r.key.as_bytes());
    match r.key_source {
        KeySource::Given => writeln!(out, "  signed by:   {key_hex} ({key_note})")?,
        KeySource::FromLog => writeln!(
            out,
            "  signed by:   {key_hex} (taken from the log itself)\n  NOTE:        this only shows the log is internally consistent; pass --key with the node's\n               audit public key (from `blindmatch id` on that node) to show who wrote it"
        )?,
    }
    writeln!(
        out,
        "  last record: seq {}, hash {}",
        r.head.count.saturating_sub(1),
        r.head.head_hash
    )?;
    match r.checked_against_checkpoint {
        Some(count) => writeln!(
            out,
            "  checkpoint:  the first {count} records match the checkpoint given"
        )?,
        None => writeln!(
            out,
            "  checkpoint:  none given (records removed from the end would not be noticed)"
        )?,
    }
    if r.unknown_types > 0 {
        writeln!(
            out,
            "  note:        {} records of types this version does not know (from a newer node)",
            r.unknown_types
        )?;
    }
    if r.clock_regressions > 0 {
        writeln!(
            out,
            "  note:        the clock went backwards {} times between records",
            r.clock_regressions
        )?;
    }
    Ok(())
}

fn print_fault(out: &mut dyn Write, bytes: &[u8], fault: &VerifyFault) -> anyhow::Result<()> {
    writeln!(out, "  VERIFIED: NO")?;
    writeln!(out, "  {}", printable(&fault.to_string()))?;
    if let Some(line) = fault.line {
        if line > 1 {
            writeln!(out, "  lines 1 to {} check out", line - 1)?;
        }
        if let Some(text) = bytes.split(|&b| b == b'\n').nth((line - 1) as usize) {
            let text = printable(&String::from_utf8_lossy(text));
            let shown: String = text.chars().take(160).collect();
            let more = if text.chars().count() > 160 {
                " …"
            } else {
                ""
            };
            writeln!(out, "  line {line}: {shown}{more}")?;
        }
    }
    Ok(())
}

pub(super) fn print_cross_check(out: &mut dyn Write, r: &CrossCheckReport) -> anyhow::Result<()> {
    let name = |n: &Option<blindmatch_protocol::audit::NodeIdentity>| {
        n.as_ref().map_or("(unknown)".to_owned(), |n| {
            format!(
                "{} ({})",
                printable(&n.name),
                printable(&n.fingerprint.to_string())
            )
        })
    };
    writeln!(out, "node A: {}", name(&r.node_a))?;
    writeln!(out, "node B: {}", name(&r.node_b))?;
    let disagreeing = r.disagreeing().count();
    writeln!(
        out,
        "sessions in both logs: {} ({} agree, {} disagree)",
        r.compared.len(),
        r.compared.len() - disagreeing,
        disagreeing
    )?;
    for c in r.disagreeing() {
        writeln!(
            out,
            "  DISAGREE session {} (A: {}, B: {})",
            printable(&c.session_id.to_string()),
            printable(&c.outcome_a.to_string()),
            printable(&c.outcome_b.to_string())
        )?;
        for d in &c.disagreements {
            writeln!(
                out,
                "    {}: A says {}, B says {}",
                printable(&d.field.to_string()),
                printable(&d.a.to_string()),
                printable(&d.b.to_string())
            )?;
        }
    }
    for (label, other, missing) in [("A", "B", &r.only_in_a), ("B", "A", &r.only_in_b)] {
        writeln!(
            out,
            "sessions only in {label} (with {other} as peer): {}",
            missing.len()
        )?;
        for s in missing {
            writeln!(
                out,
                "  MISSING from {other}: session {} ({} at {}, peer {})",
                printable(&s.session_id.to_string()),
                printable(&s.outcome.to_string()),
                printable(&s.ts.to_string()),
                printable(&s.peer_name)
            )?;
            if s.signed_by_peer {
                writeln!(
                    out,
                    "    {label} holds {other}'s signed receipt of this session: {other} took part and dropped it from its log"
                )?;
            }
            for problem in &s.receipt_problems {
                writeln!(out, "    {}", printable(&problem.to_string()))?;
            }
        }
    }
    writeln!(
        out,
        "signed receipts checked against the other log: {} (signature, audit key, transcript, log head)",
        r.receipts_checked
    )?;
    writeln!(
        out,
        "sessions with third parties (not expected in the other log): A {}, B {}",
        r.other_peers_a, r.other_peers_b
    )?;
    if r.agrees() {
        writeln!(
            out,
            "RESULT: yes, the two logs agree on every session they share"
        )?;
    } else {
        writeln!(out, "RESULT: NO, the logs disagree (see above)")?;
    }
    Ok(())
}

pub(super) fn print_timeline(
    out: &mut dyn Write,
    records: &[Record],
    detail: bool,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:>5}  {:<24}  {:<18}  DETAILS",
        "SEQ", "TIME", "EVENT"
    )?;
    for record in records {
        let event = record.event().ok().flatten();
        let details = event.as_ref().map_or_else(
            || {
                printable(&format!(
                    "(record type unknown to this version) {:?}",
                    record.fields
                ))
            },
            // Our own wording has no control characters: escaping the whole line
            // neutralises every field in it, whoever chose it.
            |event| printable(&describe(event)),
        );
        writeln!(
            out,
            "{:>5}  {:<24}  {:<18}  {details}",
            record.seq,
            printable(record.ts.as_str()),
            printable(&record.record_type.replace('_', " "))
        )?;
    }
    if detail
        && let Some(facts) = records
            .iter()
            .rev()
            .find_map(|r| r.event().ok().flatten()?.session().cloned())
    {
        writeln!(out, "\nsession {}", printable(&facts.session_id))?;
        writeln!(out, "  role:                  {}", facts.role.name())?;
        writeln!(
            out,
            "  peer:                  {} ({})",
            printable(&facts.peer_name),
            printable(&facts.peer_fingerprint)
        )?;
        writeln!(
            out,
            "  our fingerprint:       {}",
            printable(&facts.our_fingerprint)
        )?;
        writeln!(
            out,
            "  dataset:               {}",
            printable(&facts.dataset)
        )?;
        writeln!(
            out,
            "  purpose:               {}",
            printable(&facts.purpose)
        )?;
        writeln!(
            out,
            "  legal basis:           {}",
            printable(or_dash(&facts.legal_basis))
        )?;
        writeln!(out, "  mode:                  {}", facts.mode)?;
        writeln!(
            out,
            "  versions:              protocol {}, normalisation {}",
            facts.protocol_version, facts.normalisation_version
        )?;
        writeln!(
            out,
            "  transcript hash:       {}",
            printable(facts.transcript_hash.as_deref().unwrap_or("-"))
        )?;
        writeln!(
            out,
            "  bytes sent / received: {} / {}",
            facts.bytes_sent, facts.bytes_received
        )?;
    }
    Ok(())
}

fn describe(event: &AuditEvent) -> String {
    if let Some(f) = event.session() {
        let sizes = format!(
            "{}/{}",
            f.our_set_size,
            f.peer_set_size.map_or("?".to_owned(), |n| n.to_string())
        );
        let matches = f
            .intersection_size
            .map_or("-".to_owned(), |n| n.to_string());
        let short: String = f.session_id.chars().take(8).collect();
        let mut text = format!(
            "session {short} {} with {} | purpose {} | basis {} | mode {} | sizes ours/peer {sizes} | matches {matches} | {}",
            f.role.name(),
            f.peer_name,
            f.purpose,
            or_dash(&f.legal_basis),
            f.mode,
            humantime::format_duration(std::time::Duration::from_millis(f.duration_ms)),
        );
        if let Some(epoch) = &f.index_epoch {
            let epoch: String = epoch.chars().take(8).collect();
            let epoch = if epoch.is_empty() {
                "(epoch not yet known)".to_owned()
            } else {
                epoch
            };
            let bytes = f.index_bytes.unwrap_or(0);
            text.push_str(&format!(" | via index {epoch}, {bytes} index bytes moved"));
        }
        if let Some(run_id) = &f.run_id {
            text.push_str(&format!(" | run {run_id}"));
        }
        match event {
            AuditEvent::SessionRefused { reason, .. } => {
                text.push_str(&format!(" | refused: {reason}"))
            }
            AuditEvent::SessionAborted {
                close_code, error, ..
            } => {
                text.push_str(&format!(" | close code {close_code}: {error}"));
            }
            _ => {}
        }
        return text;
    }
    match event {
        AuditEvent::NodeInitialised {
            name,
            fingerprint,
            audit_key,
        } => {
            format!("node {name}, fingerprint {fingerprint}, audit key {audit_key}")
        }
        AuditEvent::PeerAdded {
            name,
            fingerprint,
            audit_key,
        } => match audit_key {
            Some(key) => format!("peer {name} ({fingerprint}), audit key {key}"),
            None => format!("peer {name} ({fingerprint}), audit key pinned at its first session"),
        },
        AuditEvent::ConfigReloaded {
            config_sha256,
            peers,
        } => format!("node.toml reloaded ({peers} peers pinned), sha256 {config_sha256}"),
        AuditEvent::ConfigRejected {
            config_sha256,
            problem,
        } => format!(
            "node.toml change refused, previous configuration kept: {}; sha256 {config_sha256}",
            blindmatch_protocol::wire::printable(problem)
        ),
        AuditEvent::PeerAuditKeyPinned {
            name,
            fingerprint,
            audit_key,
            source,
        } => format!("peer {name} ({fingerprint}): audit key {audit_key} pinned ({source})"),
        AuditEvent::PeerRemoved { name, fingerprint } => format!("peer {name} ({fingerprint})"),
        AuditEvent::DatasetImported {
            name,
            accepted,
            rejected,
            duplicates,
            input_hmac,
            input_sha256,
            normalisation_version,
        } => {
            format!(
                "dataset {name}: {accepted} accepted, {rejected} rejected, {duplicates} duplicates; input file {}; normalisation v{normalisation_version}",
                match (input_hmac, input_sha256) {
                    (Some(mac), _) => format!("keyed hash {mac}"),
                    (None, Some(sha)) => format!("sha256 {sha}"),
                    (None, None) => "not recorded".to_owned(),
                }
            )
        }
        AuditEvent::DatasetRemoved { name } => format!("dataset {name}"),
        AuditEvent::DatasetRevoked {
            name,
            version,
            revoked,
            remaining,
        } => format!(
            "dataset {name}: {revoked} record{} revoked (consent withdrawn), {remaining} left; new version sha256 {version}",
            plural(*revoked)
        ),
        AuditEvent::ConnectionAborted {
            peer_fingerprint,
            peer_name,
            reason,
            close_code,
            attempts,
        } => {
            let code = u16::try_from(*close_code)
                .map_or_else(|_| close_code.to_string(), |c| CloseCode(c).to_string());
            let times = match attempts {
                1 => String::new(),
                n => format!(" | {n} attempts"),
            };
            format!(
                "no session: connection from {peer_name} ({peer_fingerprint}) ended before a valid Hello: {reason} | close code {code}{times}"
            )
        }
        AuditEvent::IndexBuilt {
            name,
            epoch,
            previous_epoch,
            segment,
            added,
            elements,
            records,
            bytes,
            reason,
            ..
        } => {
            let ended = previous_epoch.as_ref().map_or(String::new(), |old| {
                format!("; epoch {old} ended (its key destroyed)")
            });
            format!(
                "index of {name}: epoch {epoch} segment {segment}, {added} identifiers added, {elements} in all from {records} records, {bytes} bytes ({reason}){ended}"
            )
        }
        AuditEvent::IndexRemoved {
            name,
            epoch,
            reason,
        } => format!(
            "index of {name} removed with its key ({reason}); epoch {}",
            epoch.as_deref().unwrap_or("-")
        ),
        AuditEvent::Checkpoint { count, head_hash } => {
            format!("{count} records before, last hash {head_hash}")
        }
        AuditEvent::AuditRepaired {
            torn_bytes,
            torn_sha256,
            moved_to,
        } => {
            format!("{torn_bytes} torn bytes moved to {moved_to} (sha256 {torn_sha256})")
        }
        other => format!("{other:?}"),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}
