//! `match`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use blindmatch_protocol::wire::OutputMode;
use clap::Args;

use super::{interrupt, progress};
use crate::matching::{self, MatchRequest};
use crate::node::Node;
use crate::results::OutFile;

/// `blindmatch match`.
#[derive(Args, Debug)]
pub struct MatchArgs {
    /// The configured peer to match with (see `blindmatch peer list`).
    #[arg(long)]
    pub peer: String,
    /// Our dataset to match (see `blindmatch dataset list`).
    #[arg(long)]
    pub dataset: String,
    /// The peer's dataset to match against (default: the one it offers us).
    #[arg(long, default_value = "")]
    pub remote_dataset: String,
    /// Why we match: recorded in both audit logs and checked by the peer's policy.
    #[arg(long)]
    pub purpose: String,
    /// Legal basis under PIPL art. 13 (e.g. `consent`, `contract`), recorded in both logs.
    #[arg(long, default_value = "")]
    pub legal_basis: String,
    /// What each side learns: `initiator` (we learn our matched records, the peer
    /// nothing: the default), `both` (each its own matched records), `responder` (only
    /// the peer), `cardinality` (both only the count; against a dishonest peer as
    /// revealing as `initiator`). Our policy must allow the mode for this peer
    /// (`match_modes` in node.toml).
    #[arg(long, default_value = "initiator")]
    pub mode: OutputMode,
    /// Write matched records here (CSV: id,matched_kinds). Default: results/ in the data dir.
    /// Checked before we connect: not a directory, its directory writable, and not an
    /// existing file (unless --force).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the --out file if it already exists.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Give up reaching the peer after this long: seconds, or a duration such as `30s`
    /// [default: `connect_timeout_secs` in node.toml's `[limits]`, else 10].
    #[arg(long, value_name = "SECONDS", value_parser = super::parse_seconds)]
    pub connect_timeout: Option<Duration>,
    /// Match through the peer's index of its dataset (built there with `blindmatch
    /// dataset index`) instead of a PSI session: the index is fetched once into the data
    /// directory (resumed if cut short, refreshed when the peer rebuilds it), then only
    /// our identifiers travel, blinded, and come back evaluated with proofs that are
    /// checked before use. We learn which of our records matched; the peer learns how
    /// many identifiers we queried and nothing else. Fast against a large peer dataset.
    #[arg(long, conflicts_with = "mode")]
    pub via_index: bool,
}

pub fn run_match(data_dir: &Path, args: MatchArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let node = Node::open(data_dir)?;
    // Held until the session is over: an unused reservation is removed on drop.
    let _out = before_connecting(&node, &args, quiet)?;
    let request = MatchRequest {
        peer: args.peer,
        dataset: args.dataset,
        remote_dataset: args.remote_dataset,
        purpose: args.purpose,
        legal_basis: args.legal_basis,
        mode: args.mode,
        out: args.out,
    };
    if args.via_index {
        let bar = progress::session_bar(quiet);
        let callback = bar.as_ref().map(progress::index_callback);
        let runtime = super::runtime()?;
        let work = crate::index::client::run(Arc::clone(&node), request, callback);
        let ended = runtime.block_on(interrupt::run_cancellable(&node, work));
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        return Ok(match interrupt::result(ended)? {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        });
    }
    let bar = progress::session_bar(quiet);
    let callback = bar.as_ref().map(progress::session_callback);
    let runtime = super::runtime()?;
    let work = matching::run(Arc::clone(&node), request, callback);
    let ended = runtime.block_on(interrupt::run_cancellable(&node, work));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = match interrupt::result(ended)? {
        Ok(summary) => summary,
        Err(code) => return Ok(code),
    };
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// What `match` settles before it connects: `--out` checked (and reserved unless
/// `--force`), `--connect-timeout` applied for this run, and (on a terminal) where it
/// is connecting to.
fn before_connecting(
    node: &Node,
    args: &MatchArgs,
    quiet: bool,
) -> anyhow::Result<Option<OutFile>> {
    let out = args
        .out
        .as_deref()
        .map(|path| OutFile::check(path, args.force))
        .transpose()?;
    if let Some(timeout) = args.connect_timeout {
        // For this run only: node.toml is not changed.
        let mut config = node.config();
        config.limits.connect_timeout = timeout;
        node.set_config(config);
    }
    // Progress, like the bar: on a terminal only.
    if !quiet
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && let Some(peer) = node.config().peer(&args.peer)
    {
        eprintln!("connecting to `{}` at {}…", peer.name, peer.addr);
    }
    Ok(out)
}
