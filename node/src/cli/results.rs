//! `blindmatch results list|show`: past results, read from the audit log and `results/`.
//!
//! Everything shown comes from this node's own records: counts, names chosen by
//! operators and the peer's declared purpose (escaped), never a record of a result file.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use blindmatch_protocol::wire::printable;
use clap::Subcommand;

use crate::results::{self, History, PastResult};

/// `blindmatch results ...`.
#[derive(Subcommand, Debug)]
pub enum ResultsCommand {
    /// List completed sessions, oldest first: when, with whom, mode, sizes, matches and
    /// the result file in results/ (a `match --out` file is not recorded).
    List {
        /// Only sessions with this peer.
        #[arg(long)]
        peer: Option<String>,
        /// Print one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one completed session: its facts from the audit log and its result file.
    Show {
        /// The session id, or a unique prefix of it (as `results list` shows it).
        #[arg(value_name = "ID")]
        session: String,
    },
}

pub fn run(data_dir: &Path, cmd: ResultsCommand) -> anyhow::Result<ExitCode> {
    let history = results::history(data_dir)?;
    let mut out = std::io::stdout().lock();
    if let Some(fault) = &history.fault {
        eprintln!(
            "WARNING: the audit log does NOT verify ({}); only the sessions before the fault are shown; run `blindmatch audit verify`",
            printable(fault)
        );
    }
    match cmd {
        ResultsCommand::List { peer, json } => list(&mut out, &history, peer.as_deref(), json)?,
        ResultsCommand::Show { session } => {
            let found = history.find(&session).map_err(anyhow::Error::msg)?;
            show(&mut out, found)?;
        }
    }
    Ok(if history.fault.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn list(
    out: &mut dyn Write,
    history: &History,
    peer: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let shown: Vec<&PastResult> = history
        .results
        .iter()
        .filter(|r| peer.is_none_or(|p| r.peer == p))
        .collect();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&shown)?)?;
        return Ok(());
    }
    if shown.is_empty() {
        writeln!(
            out,
            "no completed sessions{}; `blindmatch match` starts one",
            peer.map_or(String::new(), |p| format!(" with `{}`", printable(p)))
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24}  {:<12}  {:<9}  {:<16}  {:<11}  {:>17}  {:>9}  FILE",
        "COMPLETED", "SESSION", "ROLE", "PEER", "MODE", "SETS OURS/THEIRS", "MATCHED"
    )?;
    for r in shown {
        let sets = format!(
            "{}/{}",
            r.our_set_size,
            r.peer_set_size.map_or("?".to_owned(), |n| n.to_string())
        );
        writeln!(
            out,
            "{:<24}  {:<12}  {:<9}  {:<16}  {:<11}  {:>17}  {:>9}  {}",
            printable(&r.completed_at),
            printable(r.session_id.get(..12).unwrap_or(&r.session_id)),
            r.role,
            printable(&r.peer),
            printable(&r.mode),
            sets,
            r.matched_records.map_or("-".to_owned(), |n| n.to_string()),
            file_text(r)
        )?;
    }
    writeln!(
        out,
        "\nMATCHED is our records matched where the mode told us (- where it did not)."
    )?;
    Ok(())
}

fn show(out: &mut dyn Write, r: &PastResult) -> anyhow::Result<()> {
    let or_unknown = |n: Option<u64>| n.map_or("not disclosed to us".to_owned(), |n| n.to_string());
    writeln!(out, "session          {}", printable(&r.session_id))?;
    writeln!(out, "completed        {}", printable(&r.completed_at))?;
    writeln!(out, "role             {}", r.role)?;
    writeln!(out, "peer             {}", printable(&r.peer))?;
    writeln!(out, "mode             {}", printable(&r.mode))?;
    writeln!(out, "purpose          {}", printable(&r.purpose))?;
    writeln!(
        out,
        "our dataset      {}",
        r.dataset.as_deref().map_or("-".to_owned(), printable)
    )?;
    writeln!(
        out,
        "sets             ours {} identifiers, theirs {}",
        r.our_set_size,
        r.peer_set_size.map_or("?".to_owned(), |n| n.to_string())
    )?;
    writeln!(out, "matched records  {}", or_unknown(r.matched_records))?;
    writeln!(out, "matched ids      {}", or_unknown(r.intersection_size))?;
    writeln!(
        out,
        "time             {}",
        humantime::format_duration(std::time::Duration::from_millis(r.duration_ms))
    )?;
    match &r.file {
        Some(path) => match results::count_rows(path) {
            Ok(rows) => writeln!(out, "results          {} ({rows} rows)", path.display())?,
            Err(err) => writeln!(
                out,
                "results          {} (cannot be read: {err})",
                path.display()
            )?,
        },
        None => writeln!(out, "results          {}", file_text(r))?,
    }
    writeln!(
        out,
        "audit            `blindmatch audit show --session {}` shows every record of it",
        printable(r.session_id.get(..12).unwrap_or(&r.session_id))
    )?;
    Ok(())
}

/// Where the session's result file is, or why none is listed.
fn file_text(r: &PastResult) -> String {
    match (&r.file, r.matched_records) {
        (Some(path), _) => path.display().to_string(),
        (None, _) if r.role == "initiator" && r.mode != "responder" && r.mode != "cardinality" => {
            "not in results/ (written to `match --out`, or removed)".to_owned()
        }
        (None, Some(_)) => "none in results/ (removed?)".to_owned(),
        (None, None) => "none (the mode gives us no records)".to_owned(),
    }
}
