//! The `blindmatch` command line: parses arguments with clap and calls into the node.
//!
//! Every command's `--help` explains what it does; errors say what happened, where,
//! and what to do, and end the process with a non-zero exit code.

mod admin;
mod peer;
mod policy;
mod progress;
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
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.quiet, cli.verbose);
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
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
    }
}

fn init_tracing(quiet: bool, verbose: u8) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,quinn=warn,rustls=warn",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BLINDMATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// A multi-threaded tokio runtime for the async commands.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
