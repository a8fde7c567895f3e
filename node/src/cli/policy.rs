//! `blindmatch policy …`: show the effective policy.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use crate::config::NodeConfig;
use crate::policy;

/// `blindmatch policy ...`.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Print, per peer, what it may do in plain words: datasets and how many records
    /// each may match, output modes, purposes, legal bases, size caps, budgets with
    /// what was used, rate limits, disclosure threshold; and warnings where a peer
    /// could use this node as a lookup oracle. Validates node.toml on the way.
    Check {
        /// Only this peer.
        #[arg(long)]
        peer: Option<String>,
    },
    /// Rebuild the policy ledger (budgets, rate limits, replayed session ids) from the
    /// signed audit log, when `serve` or `match` says it was rolled back or replaced.
    /// The replaced file is kept next to it. Budgets are never reset: every charge the
    /// audit log records is kept.
    RebuildLedger,
}

/// Runs a `policy` subcommand.
pub fn run(data_dir: &Path, cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Check { peer } => {
            let config = NodeConfig::load(data_dir)?;
            if let Some(name) = &peer
                && config.peer(name).is_none()
            {
                anyhow::bail!(
                    "no peer named `{name}`; `blindmatch peer list` shows the pinned peers"
                );
            }
            print!(
                "{}",
                policy::report(&config, data_dir, peer.as_deref(), policy::unix_now())
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::RebuildLedger => {
            if let Some(pid) = crate::server::instance::running(data_dir) {
                anyhow::bail!(
                    "`blindmatch serve` (pid {pid}) runs on this data directory; stop it first"
                );
            }
            let config = NodeConfig::load(data_dir)?;
            let ledger = policy::Ledger::rebuild(
                data_dir,
                config.limits.replay_window_days,
                policy::unix_now(),
            )?;
            let peers = config.peers().len();
            println!(
                "policy ledger rebuilt from the audit log ({} sessions in the retention window; {peers} pinned peer(s))",
                ledger.retained()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
