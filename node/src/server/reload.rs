//! Live configuration: `serve` reloads `node.toml` when it changes on disk (polled every
//! [`POLL`]) and on SIGHUP, as one atomic swap. A file that does not validate is refused,
//! logged and recorded (`config_rejected`), and the configuration in force stays. A
//! loaded file takes effect at once: the TLS layer pins exactly its peers for the next
//! handshake, policy decisions read it, and the sessions in flight of a peer it no longer
//! names are aborted (close code `peer-revoked`, recorded). The node-wide session cap and
//! the listen address are read at start only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blindmatch_protocol::audit::AuditEvent;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{error, info};

use super::instance::ServeState;
use crate::config::NodeConfig;
use crate::identity::Fingerprint;
use crate::node::Node;
use crate::transport::PinnedPeers;

/// How often `node.toml` is checked for changes.
pub const POLL: Duration = Duration::from_millis(500);

/// A cut-off signal per peer with sessions in flight.
#[derive(Debug, Default)]
pub(super) struct Revocations {
    peers: Mutex<HashMap<Fingerprint, watch::Sender<bool>>>,
}

impl Revocations {
    /// What a session of `peer` watches: flips to `true` when the peer is removed.
    pub(super) fn subscribe(&self, peer: Fingerprint) -> watch::Receiver<bool> {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        peers
            .entry(peer)
            .or_insert_with(|| watch::channel(false).0)
            .subscribe()
    }

    /// Cuts off every peer not in `kept`.
    fn revoke_all_but(&self, kept: &[Fingerprint]) {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        peers.retain(|peer, sender| {
            if kept.contains(peer) {
                // Forget peers with no session left watching.
                return sender.receiver_count() > 0;
            }
            let _ = sender.send(true);
            false
        });
    }
}

/// Reloads `node.toml` into a running server.
pub(super) struct Reloader {
    node: Arc<Node>,
    pinned: PinnedPeers,
    revocations: Arc<Revocations>,
    /// SHA-256 of the file last loaded or refused.
    seen: Option<[u8; 32]>,
}

impl Reloader {
    /// A reloader for `node` (whose configuration was just loaded from disk).
    pub(super) fn new(node: Arc<Node>, pinned: PinnedPeers, revocations: Arc<Revocations>) -> Self {
        let mut reloader = Self {
            node,
            pinned,
            revocations,
            seen: None,
        };
        if let Ok(text) = std::fs::read(NodeConfig::path(reloader.node.data_dir())) {
            reloader.seen = Some(Sha256::digest(&text).into());
            if let Err(err) = ServeState::write(reloader.node.data_dir(), &text) {
                error!(error = %err, "could not write serve.state");
            }
        }
        reloader
    }

    /// Loads `node.toml` if it changed since the last look (or always when `forced`, for
    /// SIGHUP).
    pub(super) fn check(&mut self, forced: bool) {
        let path = NodeConfig::path(self.node.data_dir());
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) => {
                if forced {
                    error!(error = %err, file = %path.display(), "cannot read node.toml; keeping the configuration in force");
                }
                return;
            }
        };
        let hash: [u8; 32] = Sha256::digest(&text).into();
        if !forced && self.seen == Some(hash) {
            return;
        }
        self.seen = Some(hash);
        let parsed = std::str::from_utf8(&text)
            .map_err(|_| "node.toml is not UTF-8".to_owned())
            .and_then(|t| NodeConfig::parse(t, Some(&path)).map_err(|e| e.to_string()));
        match parsed {
            Ok(config) => self.apply(config, &text, hash),
            Err(problem) => {
                error!(%problem, "node.toml changed but is not valid; keeping the configuration in force");
                self.node.record_or_warn(AuditEvent::ConfigRejected {
                    config_sha256: hex::encode(hash),
                    problem,
                });
            }
        }
    }

    fn apply(&self, config: NodeConfig, text: &[u8], hash: [u8; 32]) {
        let fingerprints = config.pinned_fingerprints();
        let peers = fingerprints.len() as u64;
        self.pinned.replace(fingerprints.iter().copied());
        self.node.set_config(config);
        self.revocations.revoke_all_but(&fingerprints);
        if let Err(err) = ServeState::write(self.node.data_dir(), text) {
            error!(error = %err, "could not write serve.state");
        }
        info!(peers, "node.toml reloaded");
        self.node.record_or_warn(AuditEvent::ConfigReloaded {
            config_sha256: hex::encode(hash),
            peers,
        });
    }
}
