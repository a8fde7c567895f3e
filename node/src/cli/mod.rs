//! The `blindmatch` command line: parses arguments with clap and calls into the node.
//!
//! Every command's `--help` explains what it does; errors say what happened, where,
//! and what to do, and end the process with a non-zero exit code.

mod admin;
mod interrupt;
mod peer;
mod policy;
mod progress;
mod results;
mod serve;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::node::DEFAULT_DATA_DIR;

/// blindmatch — find the contacts you have in common with a partner organisation
/// without either side revealing a single email address, phone number or name.
///
/// Each organisation runs a node. Nodes pin each other's certificate fingerprints
/// (exchanged out of band), then run private set intersection over QUIC with mutual
/// TLS. Every session is recorded in a signed, hash-chained audit log.
///
/// Quick start: `blindmatch demo` runs two nodes on this machine end to end.
#[derive(Parser, Debug)]
#[command(
    name = "blindmatch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Directory holding this node's identity, node.toml, datasets, results and audit log.
    #[arg(long, global = true, env = "BLINDMATCH_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// No progress bars and no informational logging (errors are still printed).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// More log output on stderr (-v: debug, -vv: trace). Never includes personal data.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create this node: key pair, self-signed certificate, audit key and node.toml.
    ///
    /// Prints the node's fingerprint: give it to partners (out of band, e.g. by phone
    /// or a signed email) so they can pin this node with `blindmatch peer add`.
    /// Refuses to overwrite an existing identity.
    Init(admin::InitArgs),
    /// Print what a partner needs to pin this node: name, address, fingerprint, audit key.
    Id(admin::IdArgs),
    /// Manage the partner nodes this node talks to (pinned by certificate fingerprint).
    #[command(subcommand)]
    Peer(peer::PeerCommand),
    /// Import, list and remove datasets (contact lists from CSV); revoke records.
    #[command(subcommand)]
    Dataset(crate::dataset::DatasetCommand),
    /// Show the effective matching policy per peer, in plain words.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run as a responder: serve match sessions for pinned peers until Ctrl-C / SIGTERM.
    Serve(serve::ServeArgs),
    /// Match our dataset as initiator with a peer, or with several peers in one run, and
    /// write the matched records (with --via-index: through the peer's index).
    Match(session::MatchArgs),
    /// Verify, cross-check and show the signed, hash-chained audit log.
    #[command(subcommand)]
    Audit(crate::audit::AuditCommand),
    /// Past results: completed sessions from the audit log, with their result files.
    #[command(subcommand)]
    Results(results::ResultsCommand),
    /// Run two nodes (or, with --parties 3, a CRM and two providers in one run) on this
    /// machine over real QUIC with generated contact lists, match them, check the
    /// results against the known answer, and print a report.
    #[cfg(feature = "tools")]
    Demo(crate::demo::DemoArgs),
    /// Measure a whole session between two node processes over QUIC on loopback
    /// against the crypto floor; prints one JSON line (wall, CPU per element per party,
    /// floor, ratio, each party's peak memory, bytes on the wire). With --peers P: one
    /// run against P providers against the same sessions one after the other.
    #[cfg(feature = "tools")]
    Bench(crate::bench::BenchArgs),
    /// Print a shell completion script, e.g. `blindmatch completions bash >
    /// /etc/bash_completion.d/blindmatch` (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, e.g. `blindmatch manpage | man -l -`; with
    /// --dir, write one page per command there (blindmatch.1, blindmatch-match.1, ...).
    Manpage {
        /// Write every command's page into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(
        cli.quiet,
        cli.verbose,
        matches!(cli.command, Command::Serve(_)),
    );
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            ExitCode::FAILURE
        }
    };
    #[cfg(feature = "tools")]
    crate::bench::procstats::write_own_stats_if_asked();
    code
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = cli.data_dir;
    let quiet = cli.quiet;
    match cli.command {
        Command::Init(args) => admin::init(&data_dir, args),
        Command::Id(args) => admin::id(&data_dir, args),
        Command::Peer(cmd) => peer::run(&data_dir, cmd, quiet),
        Command::Dataset(cmd) => admin::dataset(&data_dir, cmd, quiet),
        Command::Policy(cmd) => policy::run(&data_dir, cmd),
        Command::Serve(args) => serve::serve(&data_dir, args),
        Command::Match(args) => session::run_match(&data_dir, args, quiet),
        Command::Audit(cmd) => crate::audit::run(cmd, &data_dir),
        #[cfg(feature = "tools")]
        Command::Demo(args) => crate::demo::run(args, quiet),
        #[cfg(feature = "tools")]
        Command::Bench(args) => crate::bench::run(args),
        Command::Results(cmd) => results::run(&data_dir, cmd),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            // Generated into memory: clap_complete panics when its writer fails (a closed
            // pipe), writing to a Vec cannot.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "blindmatch", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage { dir } => manpage(dir.as_deref()),
    }
}

/// `err` and its causes joined by `: `, each said once: many errors quote their cause
/// in their own message (so it reads whole where it is logged) and also expose it as
/// their `source`, which would print an OS error twice.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Logging on stderr: warnings and errors by default, plus (for `serve`) one line per
/// session outcome; colours only when stderr is a terminal, so a log file holds no
/// escape codes.
fn init_tracing(quiet: bool, verbose: u8, serving: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error".to_owned(),
        (false, 0) if serving => format!("warn,{}=info", crate::server::SESSIONS_LOG_TARGET),
        (false, 0) => "warn".to_owned(),
        (false, 1) => "info,quinn=warn,rustls=warn".to_owned(),
        (false, _) => "debug".to_owned(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BLINDMATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// `blindmatch manpage`: the page of the whole CLI on stdout, or every command's page
/// in `dir`.
fn manpage(dir: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let command = <Cli as clap::CommandFactory>::command();
    match dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout().lock())?,
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(command, dir)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A time option (`--shutdown-grace`, `--connect-timeout`): whole seconds, or a
/// duration with its unit (`humantime`: `10s`, `1m`, `500ms`).
fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) => Ok(std::time::Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(text).map_err(|err| {
            format!("{err}; give seconds (`10`) or a duration with its unit (`10s`, `1m`)")
        }),
    }
}

/// A multi-threaded tokio runtime for the async commands.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_error_quoting_its_cause_prints_it_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read crm.csv: {source}")]
        struct ReadFailed {
            source: std::io::Error,
        }
        let os = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = anyhow::Error::new(ReadFailed { source: os }).context("dataset command failed");
        assert_eq!(
            error_text(&err),
            "dataset command failed: cannot read crm.csv: entity not found"
        );
    }

    #[test]
    fn time_options_are_seconds_or_durations() {
        assert_eq!(parse_seconds("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_seconds("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_seconds("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_seconds("soon").unwrap_err().contains("seconds"));
    }
}
