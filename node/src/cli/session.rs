//! `serve` and `match`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use blindmatch_protocol::wire::OutputMode;
use clap::Args;

use super::progress;
use crate::matching::{self, MatchRequest};
use crate::node::Node;
use crate::transport::{self, PinnedPeers};

/// `blindmatch serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Listen on this UDP address instead of `listen` in node.toml.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

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
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let node = Node::open(data_dir)?;
    let config = node.config();
    let listen = args.listen.unwrap_or(config.node.listen);
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        let pinned = PinnedPeers::new(config.pinned_fingerprints());
        let endpoint =
            transport::server_endpoint(listen, node.identity(), pinned, &node.transport_tuning())?;
        let local = endpoint
            .local_addr()
            .context("reading the listen address")?;
        eprintln!(
            "serving `{}` on {local} (fingerprint {}); {} pinned peer(s); Ctrl-C to stop",
            config.node.name,
            node.identity().fingerprint(),
            config.peers().len()
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("shutting down: finishing sessions in flight");
            let _ = stop_tx.send(true);
        });
        crate::server::run(node, endpoint, stop_rx).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

pub fn run_match(data_dir: &Path, args: MatchArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let node = Node::open(data_dir)?;
    let request = MatchRequest {
        peer: args.peer,
        dataset: args.dataset,
        remote_dataset: args.remote_dataset,
        purpose: args.purpose,
        legal_basis: args.legal_basis,
        mode: args.mode,
        out: args.out,
    };
    let bar = progress::session_bar(quiet);
    let callback = bar.as_ref().map(progress::session_callback);
    let runtime = super::runtime()?;
    let result = runtime.block_on(matching::run(node, request, callback));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let summary = result?;
    println!("{summary}");
    Ok(ExitCode::SUCCESS)
}
