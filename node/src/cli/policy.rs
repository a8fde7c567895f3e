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
    }
}
