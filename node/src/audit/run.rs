//! `audit show --run ID`: the records of one run of `match` against several peers (its
//! sessions share the run id), and a table of how each session ended.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::bail;
use blindmatch_protocol::audit::{AuditEvent, Record, SessionFacts};

/// Keeps only the records of the run whose id is `wanted` or starts with it; fails if no
/// run, or more than one, matches. Returns the full run id.
pub(super) fn retain_run(records: &mut Vec<Record>, wanted: &str) -> anyhow::Result<String> {
    let wanted = wanted.to_ascii_lowercase();
    let ids: BTreeSet<String> = records
        .iter()
        .filter_map(|r| run_of(r).map(str::to_owned))
        .filter(|id| id.starts_with(&wanted))
        .collect();
    let mut ids = ids.into_iter();
    let (first, second) = (ids.next(), ids.next());
    let Some(id) = first else {
        bail!("no run {wanted} in this log (`audit show` lists sessions with their run)");
    };
    if second.is_some() {
        bail!("several runs start with {wanted}; give more of the id");
    }
    records.retain(|r| run_of(r) == Some(id.as_str()));
    Ok(id)
}

/// One line per session of the run: peer, mode, how it ended, what we learned.
pub(super) fn print_run(
    out: &mut dyn Write,
    run_id: &str,
    records: &[Record],
) -> anyhow::Result<()> {
    // The last record of each session says how it ended (or how far it got).
    let mut sessions: BTreeMap<String, (u64, String, SessionFacts)> = BTreeMap::new();
    for record in records {
        if let Ok(Some(event)) = record.event()
            && let Some(facts) = event.session()
        {
            sessions.insert(
                facts.session_id.clone(),
                (record.seq, outcome(&event), facts.clone()),
            );
        }
    }
    let mut rows: Vec<_> = sessions.into_values().collect();
    rows.sort_by_key(|(seq, _, _)| *seq);
    writeln!(out, "\nrun {run_id}: {} sessions", rows.len())?;
    writeln!(
        out,
        "  {:<16}  {:<16}  {:<11}  {:<10}  {:>15}  {:>11}",
        "SESSION", "PEER", "MODE", "OUTCOME", "MATCHED RECORDS", "IDENTIFIERS"
    )?;
    for (_, outcome, facts) in &rows {
        let short: String = facts.session_id.chars().take(16).collect();
        let dash = |n: Option<u64>| n.map_or("-".to_owned(), |n| n.to_string());
        writeln!(
            out,
            "  {short:<16}  {:<16}  {:<11}  {outcome:<10}  {:>15}  {:>11}",
            facts.peer_name,
            facts.mode,
            dash(facts.matched_records),
            dash(facts.intersection_size)
        )?;
    }
    Ok(())
}

/// The run id a session record carries, read from its fields.
fn run_of(record: &Record) -> Option<&str> {
    record
        .fields
        .get("run_id")
        .and_then(|v| v.as_str())
        .filter(|_| record.record_type.starts_with("session_"))
}

fn outcome(event: &AuditEvent) -> String {
    match event {
        AuditEvent::SessionCompleted(_) => "completed",
        AuditEvent::SessionAborted { .. } => "aborted",
        AuditEvent::SessionRefused { .. } => "refused",
        AuditEvent::SessionAccepted(_) => "accepted",
        AuditEvent::SessionRequested(_) => "requested",
        _ => "-",
    }
    .to_owned()
}
