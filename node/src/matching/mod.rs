//! `blindmatch match`: sessions as initiator against configured peers, one at a time
//! ([`run`]) or several in one run ([`run_with_peers`]).
//!
//! Our own policy applies as it does when we serve (`policy::admission`): the mode must be
//! one we use with the peer before we connect, and once the responder's `Accept` says how
//! large its set is, its size, the ratio to ours, budgets and rate limit are checked and
//! the session charged, before we blind anything.

mod combine;
mod peer_session;
mod report;
mod run;
mod summary;

use std::path::PathBuf;
use std::sync::Arc;

use blindmatch_protocol::session::Progress;
use blindmatch_protocol::wire::{DatasetRef, OutputMode};

pub use peer_session::Prepared;
pub(crate) use peer_session::refused_before_connecting;
pub use report::{CombinedReport, PeerReport, RunSummary};
pub use run::{
    HASH_ONCE_MAX_ELEMENTS, PeerTarget, Require, RunObserver, RunRequest, check_require,
    run_with_peers,
};
pub use summary::MatchSummary;

use crate::dataset::Dataset;
use crate::node::{Node, NodeError};
use crate::policy::PolicyGuard;

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct MatchRequest {
    /// Configured peer name.
    pub peer: String,
    /// Our dataset.
    pub dataset: String,
    /// The peer's dataset (empty: the one it offers us).
    pub remote_dataset: String,
    /// Declared purpose.
    pub purpose: String,
    /// Declared legal basis.
    pub legal_basis: String,
    /// Output mode.
    pub mode: OutputMode,
    /// Result file (default: `results/` in the data directory).
    pub out: Option<PathBuf>,
}

/// Runs one session as initiator. On any failure no result file is left behind and
/// the aborted (or refused) session is in the audit log.
pub async fn run(
    node: Arc<Node>,
    request: MatchRequest,
    on_progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
) -> Result<MatchSummary, NodeError> {
    if node.config().peer(&request.peer).is_none() {
        return Err(NodeError::UnknownPeer(request.peer.clone()));
    }
    let prepared = Arc::new(prepare(&node, &request.dataset).await?);
    let guard = open_guard(&node)?;
    let completed = peer_session::run(node, prepared, guard, request, None, on_progress).await?;
    Ok(completed.summary)
}

/// Loads our dataset once for any number of sessions.
pub async fn prepare(node: &Node, dataset: &str) -> Result<Prepared, NodeError> {
    let data_dir = node.data_dir().to_path_buf();
    let name = dataset.to_owned();
    let dataset = tokio::task::spawn_blocking(move || Dataset::load(&data_dir, &name))
        .await
        .map_err(|e| NodeError::Other(format!("loading the dataset failed: {e}")))??;
    let reference = DatasetRef::new(&dataset.meta().name, dataset.meta().version_bytes());
    let set = dataset.prepared_set();
    Ok(Prepared {
        set,
        reference,
        // Only the record ids are needed from here on (to name matched records).
        record_ids: dataset.into_record_ids(),
    })
}

/// The policy state this process shares with `serve` through the ledger.
pub fn open_guard(node: &Node) -> Result<Arc<PolicyGuard>, NodeError> {
    PolicyGuard::try_open(node.data_dir(), node.config().limits.replay_window_days).map_err(|err| {
        NodeError::Other(format!(
            "cannot check this node's usage limits: {err}; no session is started without them"
        ))
    })
}
