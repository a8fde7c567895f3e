//! `blindmatch serve`: one server per data directory, signals handled from the first
//! moment, live reload, a bounded graceful stop.
//!
//! Signals (Unix): the first SIGINT (Ctrl-C) or SIGTERM stops taking sessions and lets
//! those in flight finish for `--shutdown-grace` (`--grace`); a second one cancels them at once
//! (each is aborted with `Abort(cancelled)` and recorded). SIGHUP reloads `node.toml`,
//! which is also reloaded whenever it changes on disk.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::{mpsc, watch};

use crate::node::Node;
use crate::server::instance::ServeLock;
use crate::server::{self, SHUTDOWN_GRACE, ServeOptions};
use crate::transport::{self, PinnedPeers};

/// `blindmatch serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Listen on this UDP address instead of `listen` in node.toml.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// How long sessions in flight may finish after Ctrl-C or SIGTERM before they are
    /// cancelled with `Abort` and recorded as aborted (a second Ctrl-C cancels them at
    /// once): seconds, or a duration such as `10s`, `1m`.
    #[arg(
        long,
        visible_alias = "grace",
        value_name = "SECONDS",
        default_value = "10",
        value_parser = super::parse_seconds
    )]
    pub shutdown_grace: Duration,
}

pub fn serve(data_dir: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let node = Node::open(data_dir)?;
    let _lock = ServeLock::acquire(data_dir)?;
    let config = node.config();
    let listen = args.listen.unwrap_or(config.node.listen);
    let runtime = super::runtime()?;
    runtime.block_on(async move {
        // Installed before anything is printed, so that a signal sent as soon as the
        // server says it is up is handled, never fatal.
        let signals = Signals::install()?;
        let pinned = PinnedPeers::new(config.pinned_fingerprints());
        let endpoint = transport::server_endpoint(
            listen,
            node.identity(),
            pinned.clone(),
            &node.transport_tuning(),
        )?;
        let local = endpoint
            .local_addr()
            .context("reading the listen address")?;
        eprintln!(
            "serving `{}` on {local} (fingerprint {}); {} pinned peer(s); Ctrl-C to stop",
            config.node.name,
            node.identity().fingerprint(),
            config.peers().len()
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let (force_tx, force_rx) = watch::channel(false);
        let (reload_tx, reload_rx) = mpsc::channel(4);
        tokio::spawn(signals.run(stop_tx, force_tx, reload_tx, args.shutdown_grace));
        let mut options = ServeOptions::new(stop_rx);
        options.force = Some(force_rx);
        options.reload = Some(reload_rx);
        options.pinned = Some(pinned);
        options.grace = args.shutdown_grace;
        server::run_with(node, endpoint, options).await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The signals `serve` reacts to.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

/// What a signal asks for.
enum Asked {
    Stop,
    Reload,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())
                    .context("installing the Ctrl-C handler")?,
                terminate: signal(SignalKind::terminate())
                    .context("installing the SIGTERM handler")?,
                hangup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn next(&mut self) -> Asked {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Asked::Stop,
                _ = self.terminate.recv() => Asked::Stop,
                _ = self.hangup.recv() => Asked::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Asked::Stop
        }
    }

    async fn run(
        mut self,
        stop: watch::Sender<bool>,
        force: watch::Sender<bool>,
        reload: mpsc::Sender<()>,
        grace: Duration,
    ) {
        let mut stopping = false;
        loop {
            match self.next().await {
                Asked::Reload => {
                    let _ = reload.try_send(());
                }
                Asked::Stop if !stopping => {
                    stopping = true;
                    eprintln!(
                        "shutting down: sessions in flight may finish for up to {}; Ctrl-C again to cancel them now",
                        humantime::format_duration(grace)
                    );
                    let _ = stop.send(true);
                }
                Asked::Stop => {
                    eprintln!("cancelling the sessions in flight");
                    let _ = force.send(true);
                    return;
                }
            }
        }
    }
}

// `--shutdown-grace`'s default is the server's.
const _: () = assert!(SHUTDOWN_GRACE.as_secs() == 10);
