//! A node's loaded state: data directory, identity, configuration and audit log.
//!
//! Everything a command needs is opened here once; every operation that must be
//! auditable goes through [`Node::record`], which returns only after the record is
//! durable.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use blindmatch_protocol::audit::{AuditEvent, DatasetVersion, Role as AuditRole, SessionFacts};
use blindmatch_protocol::ident::NORMALISATION_VERSION;
use blindmatch_protocol::session::{Outcome, Progress, Role};
use blindmatch_protocol::wire::{DatasetRef, Hello, PROTOCOL_VERSION};

use crate::audit::{AuditError, AuditLog};
use crate::config::{ConfigError, NodeConfig};
use crate::dataset::DatasetError;
use crate::driver::DriverError;
use crate::identity::{Fingerprint, IdentityError, NodeIdentity};
use crate::transport::{TransportError, TransportTuning};

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "blindmatch-data";
/// Where result files of sessions go inside the data directory.
pub const RESULTS_DIR: &str = "results";

/// Errors of node operations, each saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Identity could not be loaded or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// `node.toml` is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The audit log could not be written or is damaged.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A dataset problem.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// Network problem.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The session failed. The cause is in the message and deliberately not a
    /// `source`, so `{err:#}` (what the CLI prints) shows it once, not twice.
    #[error("session failed: {0}")]
    Session(DriverError),
    /// A named peer is not configured.
    #[error("no peer named `{0}`; add it with `blindmatch peer add` (see `blindmatch peer list`)")]
    UnknownPeer(String),
    /// A file could not be written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

impl From<DriverError> for NodeError {
    fn from(err: DriverError) -> Self {
        NodeError::Session(err)
    }
}

/// A node opened from its data directory.
pub struct Node {
    data_dir: PathBuf,
    identity: NodeIdentity,
    config: RwLock<NodeConfig>,
    /// Serialises read-modify-write of `node.toml` within this process (sessions of one
    /// run pin their peers' audit keys concurrently).
    config_update: Mutex<()>,
    audit: Mutex<AuditLog>,
    /// Flips to `true` when the operator stops this process (Ctrl-C in `match`).
    cancel: tokio::sync::watch::Sender<bool>,
}

impl Node {
    /// Opens the node in `data_dir` (created by `blindmatch init`).
    pub fn open(data_dir: &Path) -> Result<Arc<Node>, NodeError> {
        let identity = NodeIdentity::load(data_dir)?;
        let config = NodeConfig::load(data_dir)?;
        let audit = AuditLog::open(data_dir, identity.audit_key())?;
        Ok(Arc::new(Node {
            data_dir: data_dir.to_path_buf(),
            identity,
            config: RwLock::new(config),
            config_update: Mutex::new(()),
            audit: Mutex::new(audit),
            cancel: tokio::sync::watch::Sender::new(false),
        }))
    }

    /// Cancels the sessions this process runs as initiator: each one sends `Abort`
    /// (close code `cancelled`) and is recorded as aborted, so the two audit logs agree
    /// on how it ended.
    pub fn cancel_sessions(&self) {
        self.cancel.send_replace(true);
    }

    /// Flips to `true` once [`Node::cancel_sessions`] was called; for
    /// [`DriverOptions::cancel`](crate::driver::DriverOptions::cancel).
    pub fn cancelled(&self) -> tokio::sync::watch::Receiver<bool> {
        self.cancel.subscribe()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Our identity.
    pub fn identity(&self) -> &NodeIdentity {
        &self.identity
    }

    /// A snapshot of the configuration.
    pub fn config(&self) -> NodeConfig {
        match self.config.read() {
            Ok(config) => config.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Applies `change` to `node.toml` as it is on disk now; when it changes something
    /// (returns `Some`), saves the file and takes it as the configuration in memory.
    pub fn update_config<T>(
        &self,
        change: impl FnOnce(&mut NodeConfig) -> Option<T>,
    ) -> Result<Option<T>, NodeError> {
        let _one_at_a_time = match self.config_update.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut fresh = NodeConfig::load(&self.data_dir)?;
        let Some(value) = change(&mut fresh) else {
            return Ok(None);
        };
        fresh.save(&self.data_dir)?;
        self.set_config(fresh);
        Ok(Some(value))
    }

    /// Where the audit log's chain ends, as this process last wrote or read it.
    pub fn audit_head(&self) -> blindmatch_protocol::audit::ChainHead {
        match self.audit.lock() {
            Ok(log) => log.head(),
            Err(poisoned) => poisoned.into_inner().head(),
        }
    }

    /// Replaces the configuration in memory (after it was saved).
    pub fn set_config(&self, config: NodeConfig) {
        match self.config.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }

    /// Appends `event` to the audit log; returns once it is on disk.
    pub fn record(&self, event: AuditEvent) -> Result<(), NodeError> {
        let mut log = match self.audit.lock() {
            Ok(log) => log,
            Err(poisoned) => poisoned.into_inner(),
        };
        log.append(event)?;
        Ok(())
    }

    /// Appends `event`, logging (not failing) if the audit log cannot be written: used
    /// on error paths where the original error matters more.
    pub fn record_or_warn(&self, event: AuditEvent) {
        if let Err(err) = self.record(event) {
            tracing::error!(error = %err, "could not write audit record");
        }
    }

    /// Directory for result files.
    pub fn results_dir(&self) -> PathBuf {
        self.data_dir.join(RESULTS_DIR)
    }

    /// Idle timeout from the configuration.
    pub fn idle_timeout(&self) -> Duration {
        self.config().limits.idle_timeout
    }

    /// The QUIC settings this node's configuration asks for (its idle and connect
    /// timeouts, the default windows).
    pub fn transport_tuning(&self) -> TransportTuning {
        let limits = self.config().limits;
        TransportTuning {
            connect_timeout: limits.connect_timeout,
            ..TransportTuning::with_idle_timeout(limits.idle_timeout)
        }
    }
}

/// Builds the audit facts of a session as far as they are known.
#[derive(Clone, Debug)]
pub struct FactsBuilder {
    facts: SessionFacts,
}

impl FactsBuilder {
    /// Facts known from `Hello`.
    pub fn new(
        role: Role,
        ours: Fingerprint,
        peer: Fingerprint,
        peer_name: &str,
        hello: &Hello,
        our_set_size: u64,
    ) -> Self {
        let (our_set_size, peer_set_size) = match role {
            Role::Initiator => (our_set_size, None),
            Role::Responder => (our_set_size, Some(hello.set_size)),
        };
        Self {
            facts: SessionFacts {
                session_id: hex::encode(hello.session_id),
                role: match role {
                    Role::Initiator => AuditRole::Initiator,
                    Role::Responder => AuditRole::Responder,
                },
                our_fingerprint: ours.to_string(),
                peer_fingerprint: peer.to_string(),
                peer_name: peer_name.to_owned(),
                dataset: hello.dataset.clone(),
                purpose: hello.purpose.clone(),
                legal_basis: hello.legal_basis.clone(),
                mode: hello.mode.name().to_owned(),
                our_set_size,
                peer_set_size,
                intersection_size: None,
                protocol_version: u32::from(PROTOCOL_VERSION),
                normalisation_version: u32::from(NORMALISATION_VERSION),
                transcript_hash: None,
                bytes_sent: 0,
                bytes_received: 0,
                duration_ms: 0,
                our_dataset: None,
                peer_dataset: None,
                matched_records: None,
                replies_sent: 0,
                replies_received: 0,
                receipt: None,
                peer_receipt: None,
                run_id: None,
                index_epoch: None,
                index_bytes: None,
                charged: None,
            },
        }
    }

    /// Sets our dataset (name and version tag).
    pub fn our_dataset(&mut self, dataset: &DatasetRef) -> &mut Self {
        self.facts.our_dataset = Some(dataset_version(dataset));
        self
    }

    /// Sets the peer's dataset, as it named it.
    pub fn peer_dataset(&mut self, dataset: &DatasetRef) -> &mut Self {
        self.facts.peer_dataset = Some(dataset_version(dataset));
        self
    }

    /// Records how far the exchange got: what each side could have learned.
    pub fn progress(&mut self, progress: &Progress) -> &mut Self {
        self.facts.replies_sent = progress.replies_sent;
        self.facts.replies_received = progress.replies_received;
        self
    }

    /// Records the identifiers charged to the peer's budgets.
    pub fn charged(&mut self, identifiers: u64) -> &mut Self {
        self.facts.charged = Some(identifiers);
        self
    }

    /// Links the session to a multi-party run.
    pub fn run_id(&mut self, run_id: Option<&str>) -> &mut Self {
        self.facts.run_id = run_id.map(str::to_owned);
        self
    }

    /// Sets our set size (the responder learns it when the dataset is loaded).
    pub fn our_set_size(&mut self, size: u64) -> &mut Self {
        self.facts.our_set_size = size;
        self
    }

    /// Sets the peer's set size once known.
    pub fn peer_set_size(&mut self, size: u64) -> &mut Self {
        self.facts.peer_set_size = Some(size);
        self
    }

    /// Records the traffic and duration of the run.
    pub fn traffic(&mut self, sent: u64, received: u64, duration: Duration) -> &mut Self {
        self.facts.bytes_sent = sent;
        self.facts.bytes_received = received;
        self.facts.duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Records the agreed outcome, with both receipts.
    pub fn outcome(&mut self, outcome: &Outcome) -> &mut Self {
        self.facts.our_set_size = outcome.own_set_size;
        self.facts.peer_set_size = Some(outcome.peer_set_size);
        self.facts.intersection_size = outcome.intersection_size;
        self.facts.matched_records = outcome.matched_record_count;
        self.facts.transcript_hash = Some(hex::encode(outcome.transcript_hash));
        self.facts.our_dataset = Some(dataset_version(&outcome.own_dataset));
        self.facts.peer_dataset = Some(dataset_version(&outcome.peer_dataset));
        self.facts.receipt = Some(hex::encode(outcome.own_receipt.to_bytes()));
        self.facts.peer_receipt = Some(hex::encode(outcome.peer_receipt.to_bytes()));
        self
    }

    /// Marks an index session with the epoch known so far (empty when the client holds
    /// no copy and the provider has not named its epoch yet) and the index bytes moved.
    pub fn index_session(&mut self, epoch: Option<&[u8; 16]>, bytes: u64) -> &mut Self {
        self.facts.index_epoch = Some(epoch.map(hex::encode).unwrap_or_default());
        self.facts.index_bytes = Some(bytes);
        self
    }

    /// Records what an index session's outcome says of the index.
    pub fn index(&mut self, facts: &blindmatch_protocol::index::IndexFacts) -> &mut Self {
        self.index_session(Some(&facts.epoch), facts.bytes)
    }

    /// Withholds the counts and record list a disclosure threshold keeps from us.
    pub fn withheld_counts(&mut self, outcome: &Outcome) -> &mut Self {
        self.facts.intersection_size = outcome.intersection_size;
        self.facts.matched_records = outcome.matched_record_count;
        self
    }

    /// The session id.
    pub fn session_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        let _ = hex::decode_to_slice(&self.facts.session_id, &mut id);
        id
    }

    /// The facts so far.
    pub fn facts(&self) -> SessionFacts {
        self.facts.clone()
    }
}

/// A protocol dataset reference as the audit log records it.
fn dataset_version(dataset: &DatasetRef) -> DatasetVersion {
    DatasetVersion {
        name: dataset.name.clone(),
        version: hex::encode(dataset.version),
    }
}
