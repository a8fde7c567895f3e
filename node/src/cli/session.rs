//! `match`: one peer, or several in one run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::ensure;
use blindmatch_protocol::wire::OutputMode;
use clap::Args;

use super::interrupt::{self, Ended};
use super::progress;
use crate::matching::{
    self, MatchRequest, MatchSummary, PeerTarget, Require, RunRequest, RunSummary,
};
use crate::node::{Node, NodeError};
use crate::results::OutFile;

/// `blindmatch match`.
#[derive(Args, Debug)]
#[command(after_long_help = MATCH_HELP)]
pub struct MatchArgs {
    /// The configured peer to match with (see `blindmatch peer list`). Repeat it to match
    /// against several peers in one run; `NAME:MODE` runs that peer's session in its own
    /// mode instead of --mode.
    #[arg(
        long = "peer",
        value_name = "NAME[:MODE]",
        required_unless_present = "peers"
    )]
    pub peer: Vec<String>,
    /// Several peers at once, comma-separated (`a,b,c`): the same as repeating --peer.
    #[arg(long, value_name = "NAME[:MODE],...", value_delimiter = ',')]
    pub peers: Vec<String>,
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
    /// Write matched records here (one peer: CSV id,matched_kinds; several: the combined
    /// file, see below). Default: results/ in the data dir. Checked before we connect:
    /// not a directory, its directory writable, and not an existing file (unless --force).
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
    /// With several peers: keep in the combined file only our records matched by `all`
    /// the peers, or by at least K of them (`any` = 1, the default). Every peer's mode
    /// must then tell us which records it matched (initiator or both). This filters what
    /// we keep; it does not reduce what we learn (see below).
    #[arg(long, value_name = "all|any|K", default_value = "any")]
    pub require: Require,
    /// Print the summary as JSON (for one peer too): per peer its status, session id,
    /// matched records, their share of ours, identifiers, result file or error; for a
    /// run, the run id and the combination (any, all, none, kept, file).
    #[arg(long)]
    pub json: bool,
}

/// Exit code of a run in which some sessions failed and others completed.
pub const EXIT_PARTIAL: u8 = 3;

const MATCH_HELP: &str = "\
Several peers in one run: name each with --peer (or list them with --peers a,b,c). The
sessions run at the same time, one connection each, each under that peer's policy and in
its own mode, each with its own audit records, receipt and result file in results/; our
audit log links them by one run id (`blindmatch audit show --run ID`). Our dataset is
loaded and hashed to the group once for the run, then blinded under a fresh key per peer.
The combined file (--out, default results/<time>-run-<run id>.csv) has one row per record
of ours matched by at least --require peers: id, a column per peer with the kinds of
identifier that matched there (empty if none), and peers_matched.

What each party learns with several peers: every session is an ordinary two-party session,
so the run reveals exactly what the sessions reveal one by one. We learn, from each peer
whose mode gives us records (initiator, both), which of our records that peer holds: every
pairwise intersection, not only the records all peers share; --require filters what we
keep and print, not what we learn. Each peer learns what its own mode gives it (in
initiator mode our set size and kinds only; in both mode also which of its records we
hold) and nothing about the other peers or their sessions. Peers that collude can pool
what each learned, as they could after separate matches. No mode here lets us learn only
the records common to all peers; SECURITY.md (\"Several peers in one run\") says why.

Exit codes: 0 every session completed; 1 nothing ran, or every session failed; 3 the run
was partial: some sessions failed or were refused (each named in the summary with its
error) and the others' results are kept and combined.";

pub fn run_match(data_dir: &Path, args: MatchArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let peers = args
        .peer
        .iter()
        .chain(&args.peers)
        .map(|text| PeerTarget::parse(text, args.mode))
        .collect::<Result<Vec<_>, String>>()
        .map_err(anyhow::Error::msg)?;
    matching::check_require(args.require, &peers)?;
    ensure!(
        !(args.via_index && args.peer.iter().chain(&args.peers).any(|p| p.contains(':'))),
        "--via-index sessions have no mode to choose; name the peer without `:MODE`"
    );
    let node = Node::open(data_dir)?;
    if let Some(timeout) = args.connect_timeout {
        // For this run only: node.toml is not changed.
        let mut config = node.config();
        config.limits.connect_timeout = timeout;
        node.set_config(config);
    }
    // Held until the sessions are over: an unused reservation is removed on drop.
    let _out = args
        .out
        .as_deref()
        .map(|path| OutFile::check(path, args.force))
        .transpose()?;
    if let [single] = peers.as_slice() {
        return run_single(node, single, args, quiet);
    }
    ensure!(
        !args.via_index,
        "--via-index matches with one peer at a time; name a single --peer"
    );
    let request = RunRequest {
        peers,
        dataset: args.dataset,
        remote_dataset: args.remote_dataset,
        purpose: args.purpose,
        legal_basis: args.legal_basis,
        require: args.require,
        out: args.out,
    };
    let names: Vec<&str> = request.peers.iter().map(|p| p.name.as_str()).collect();
    let bars = progress::run_bars(quiet, &names);
    let observer = bars
        .clone()
        .map(|bars| bars as Arc<dyn matching::RunObserver>);
    let runtime = super::runtime()?;
    let work = matching::run_with_peers(Arc::clone(&node), request, observer);
    let ended = runtime.block_on(interrupt::run_cancellable(&node, work));
    if let Some(bars) = bars {
        bars.clear();
    }
    let interrupted = !matches!(ended, Ended::Done(_));
    let summary = match interrupt::result(ended)? {
        Ok(summary) => summary,
        Err(code) => return Ok(code),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    } else {
        println!("{summary}");
    }
    Ok(if interrupted {
        ExitCode::from(interrupt::EXIT_INTERRUPTED)
    } else if summary.all_failed() {
        eprintln!("error: no session of the run completed; see the summary above");
        ExitCode::FAILURE
    } else if summary.is_partial() {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// One peer: one session, its result file and summary exactly as `match` has always
/// written them (or its JSON with --json).
fn run_single(
    node: Arc<Node>,
    peer: &PeerTarget,
    args: MatchArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let request = MatchRequest {
        peer: peer.name.clone(),
        dataset: args.dataset,
        remote_dataset: args.remote_dataset,
        purpose: args.purpose,
        legal_basis: args.legal_basis,
        mode: peer.mode,
        out: args.out,
    };
    let dataset = request.dataset.clone();
    // Progress, like the bar: on a terminal only.
    if !quiet
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
        && let Some(config) = node.config().peer(&peer.name)
    {
        eprintln!("connecting to `{}` at {}…", config.name, config.addr);
    }
    if args.via_index {
        let bar = progress::session_bar(quiet);
        let callback = bar.as_ref().map(progress::index_callback);
        let runtime = super::runtime()?;
        let work = crate::index::client::run(Arc::clone(&node), request, callback);
        let ended = runtime.block_on(interrupt::run_cancellable(&node, work));
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let result = match finished(ended)? {
            Ok(result) => result,
            Err(code) => return Ok(code),
        };
        return print_single(
            &peer.name,
            peer.mode,
            &dataset,
            result,
            |done| &done.summary,
            args.json,
        );
    }
    let bar = progress::session_bar(quiet);
    let callback = bar.as_ref().map(progress::session_callback);
    let runtime = super::runtime()?;
    let work = matching::run(Arc::clone(&node), request, callback);
    let ended = runtime.block_on(interrupt::run_cancellable(&node, work));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let result = match finished(ended)? {
        Ok(result) => result,
        Err(code) => return Ok(code),
    };
    print_single(&peer.name, peer.mode, &dataset, result, |s| s, args.json)
}

/// A single session's result, or, when Ctrl-C interrupted it and it produced no result
/// of its own, the exit code to end with (having said what happened).
fn finished<T>(
    ended: Ended<Result<T, NodeError>>,
) -> anyhow::Result<Result<Result<T, NodeError>, ExitCode>> {
    match ended {
        Ended::Done(result) => Ok(Ok(result)),
        interrupted => Ok(interrupt::result(interrupted)?.map(Ok)),
    }
}

/// Prints one session's summary: as text exactly as before, or as JSON; a failure is
/// the error (and exit code 1) either way.
fn print_single<T: std::fmt::Display>(
    name: &str,
    mode: OutputMode,
    dataset: &str,
    result: Result<T, NodeError>,
    summary_of: fn(&T) -> &MatchSummary,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !json {
        println!("{}", result?);
        return Ok(ExitCode::SUCCESS);
    }
    let error = result.as_ref().err().map(ToString::to_string);
    let result = match &result {
        Ok(done) => Ok(summary_of(done).clone()),
        Err(err) => Err(err.to_string()),
    };
    let summary = RunSummary::single(dataset, name, mode, result);
    println!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    match error {
        Some(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}
