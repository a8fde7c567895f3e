//! One `match` against several peers: the sessions run concurrently, each under that
//! peer's policy and in its own mode, with its own audit records, receipt and result
//! file, all linked by one run id; our matched records are then combined per record.
//!
//! Invariants:
//! - our dataset is loaded, prepared and hashed to the group once for the run, then
//!   shared; each session blinds it under its own fresh key;
//! - a peer that fails or refuses costs only its own session: the others run to their
//!   end and their results are kept (the run is then partial);
//! - nothing starts unless every peer is configured and the requirement can be met by
//!   the modes asked for.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use blindmatch_protocol::session::{MatchedRecord, Progress, Role, learns_records};
use blindmatch_protocol::wire::OutputMode;
use rand::Rng;

use super::combine::{self, COLUMN_ID, COLUMN_PEERS_MATCHED};
use super::peer_session::{self, Completed};
use super::report::{CombinedReport, PeerReport, RunSummary};
use super::{MatchRequest, MatchSummary, open_guard, prepare};
use crate::dataset::RecordIds;
use crate::node::{Node, NodeError};
use crate::results::run_file_name;

/// Largest set hashed to the group once for a whole run: 8 million elements keep the
/// points (`HASHED_POINT_BYTES`, 160 bytes each) under 1.3 GB. A larger set is hashed
/// by each session as it blinds: one more hash of our set per extra peer, a tenth to a
/// fifth of our CPU per session (`bench --peers` reports `own_cpu_ratio`).
pub const HASH_ONCE_MAX_ELEMENTS: usize = 8_000_000;

/// A peer of a run, and the output mode of its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTarget {
    /// Configured peer name.
    pub name: String,
    /// The session's output mode (checked against that peer's `match_modes`).
    pub mode: OutputMode,
}

impl PeerTarget {
    /// Parses `NAME` or `NAME:MODE`; `default_mode` applies to a bare name. Peer names
    /// never contain `:`.
    pub fn parse(text: &str, default_mode: OutputMode) -> Result<Self, String> {
        let (name, mode) = match text.split_once(':') {
            None => (text, default_mode),
            Some((name, mode)) => (
                name,
                mode.parse().map_err(|_| {
                    format!(
                        "`{text}`: unknown mode `{mode}` (use both, initiator, responder or cardinality)"
                    )
                })?,
            ),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("`{text}` names no peer"));
        }
        Ok(Self {
            name: name.to_owned(),
            mode,
        })
    }
}

/// Which of our records a run keeps in its combined result file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Require {
    /// Matched by at least one peer.
    #[default]
    Any,
    /// Matched by at least this many peers.
    AtLeast(usize),
    /// Matched by every peer of the run.
    All,
}

impl Require {
    /// The least number of peers a kept record is matched by, in a run of `peers`.
    pub fn threshold(self, peers: usize) -> usize {
        match self {
            Require::Any => 1,
            Require::AtLeast(k) => k,
            Require::All => peers,
        }
    }

    /// How the requirement reads in reports: `any`, `all` or the number.
    pub fn name(self) -> String {
        match self {
            Require::Any => "any".into(),
            Require::AtLeast(k) => k.to_string(),
            Require::All => "all".into(),
        }
    }
}

impl FromStr for Require {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "any" => Ok(Require::Any),
            "all" => Ok(Require::All),
            number => match number.parse::<usize>() {
                Ok(k) if k >= 1 => Ok(Require::AtLeast(k)),
                _ => Err(format!(
                    "`{text}` is not a requirement: use `all`, `any` or a number of peers (1 or more)"
                )),
            },
        }
    }
}

/// What the user asked of a run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// The peers, in the order their columns appear.
    pub peers: Vec<PeerTarget>,
    /// Our dataset.
    pub dataset: String,
    /// The peers' dataset (empty: the one each offers us).
    pub remote_dataset: String,
    /// Declared purpose, in every session.
    pub purpose: String,
    /// Declared legal basis, in every session.
    pub legal_basis: String,
    /// Which records the combined file keeps.
    pub require: Require,
    /// The combined result file (default: `results/` in the data directory).
    pub out: Option<PathBuf>,
}

/// Follows a run as it goes (progress bars); called from the sessions' threads.
pub trait RunObserver: Send + Sync {
    /// Session `peer` (index into [`RunRequest::peers`]) made progress.
    fn progress(&self, peer: usize, progress: Progress);
    /// Session `peer` ended: its summary, or why it failed.
    fn finished(&self, peer: usize, result: Result<&MatchSummary, &str>);
}

/// Checks a requirement against the peers and their modes, before anything runs: a
/// record can be required of a peer only if its mode tells us which records it matched.
pub fn check_require(require: Require, peers: &[PeerTarget]) -> Result<(), NodeError> {
    let threshold = require.threshold(peers.len());
    if threshold > peers.len() {
        return Err(NodeError::Other(format!(
            "--require {} asks for more peers than the {} named",
            require.name(),
            peers.len()
        )));
    }
    if require == Require::Any {
        return Ok(());
    }
    if let Some(blind) = peers
        .iter()
        .find(|p| !learns_records(p.mode, Role::Initiator))
    {
        return Err(NodeError::Other(format!(
            "--require {} needs to know which of our records each peer matched, but the session with `{}` runs in mode {}, in which we learn no records; use initiator or both for every peer",
            require.name(),
            blind.name,
            blind.mode.name()
        )));
    }
    Ok(())
}

/// Runs one session per peer concurrently and combines their results. Fails before
/// starting if the request cannot run (unknown or repeated peer, requirement out of
/// reach, dataset missing); once started, returns the summary whatever each session's
/// fate ([`RunSummary::is_partial`], [`RunSummary::all_failed`]).
pub async fn run_with_peers(
    node: Arc<Node>,
    request: RunRequest,
    observer: Option<Arc<dyn RunObserver>>,
) -> Result<RunSummary, NodeError> {
    check_request(&node, &request)?;
    let started = Instant::now();
    let mut run_id = [0u8; 8];
    rand::rng().fill_bytes(&mut run_id);
    let run_id = hex::encode(run_id);

    let mut prepared = prepare(&node, &request.dataset).await?;
    if prepared.set.len() <= HASH_ONCE_MAX_ELEMENTS {
        prepared = tokio::task::spawn_blocking(move || {
            prepared.set.hash_to_group();
            prepared
        })
        .await
        .map_err(|e| NodeError::Other(format!("hashing our dataset failed: {e}")))?;
    }
    let prepared = Arc::new(prepared);
    let guard = open_guard(&node)?;

    let mut tasks = tokio::task::JoinSet::new();
    for (index, peer) in request.peers.iter().enumerate() {
        let session = MatchRequest {
            peer: peer.name.clone(),
            dataset: request.dataset.clone(),
            remote_dataset: request.remote_dataset.clone(),
            purpose: request.purpose.clone(),
            legal_basis: request.legal_basis.clone(),
            mode: peer.mode,
            out: None,
        };
        let on_progress = observer.as_ref().map(|observer| {
            let observer = Arc::clone(observer);
            Arc::new(move |p: Progress| observer.progress(index, p))
                as Arc<dyn Fn(Progress) + Send + Sync>
        });
        let (node, prepared, guard) =
            (Arc::clone(&node), Arc::clone(&prepared), Arc::clone(&guard));
        let run_id = run_id.clone();
        let observer = observer.clone();
        tasks.spawn(async move {
            let result = peer_session::run(
                node,
                prepared,
                guard,
                session,
                Some(run_id.as_str()),
                on_progress,
            )
            .await
            .map_err(|err| err.to_string());
            if let Some(observer) = observer {
                observer.finished(
                    index,
                    result.as_ref().map(|c| &c.summary).map_err(String::as_str),
                );
            }
            (index, result)
        });
    }
    let mut results: Vec<Option<Result<Completed, String>>> =
        (0..request.peers.len()).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(err) => tracing::error!(error = %err, "a session task ended abnormally"),
        }
    }
    let results: Vec<Result<Completed, String>> = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| Err("internal error: the session task ended abnormally".into()))
        })
        .collect();

    let combined = combine_and_store(&node, &request, &run_id, &prepared.record_ids, &results)?;
    let peers = request
        .peers
        .iter()
        .zip(results)
        .map(|(peer, result)| PeerReport {
            name: peer.name.clone(),
            mode: peer.mode,
            result: result.map(|c| c.summary),
        })
        .collect();
    Ok(RunSummary {
        run_id: Some(run_id),
        dataset: request.dataset,
        our_size: prepared.set.len() as u64,
        our_records: prepared.record_ids.len(),
        require: request.require,
        peers,
        combined,
        duration: started.elapsed(),
    })
}

/// Everything that can be known to be wrong before a session starts.
fn check_request(node: &Node, request: &RunRequest) -> Result<(), NodeError> {
    if request.peers.is_empty() {
        return Err(NodeError::Other("name at least one peer".into()));
    }
    let config = node.config();
    let mut seen = BTreeSet::new();
    for peer in &request.peers {
        if !seen.insert(peer.name.as_str()) {
            return Err(NodeError::Other(format!(
                "peer `{}` is named twice; name each peer once",
                peer.name
            )));
        }
        if config.peer(&peer.name).is_none() {
            return Err(NodeError::UnknownPeer(peer.name.clone()));
        }
        if peer.name == COLUMN_ID || peer.name == COLUMN_PEERS_MATCHED {
            return Err(NodeError::Other(format!(
                "peer `{}` has the name of a column of the run's result file; give the peer another name (`blindmatch peer remove`, then `peer add`)",
                peer.name
            )));
        }
    }
    check_require(request.require, &request.peers)
}

/// Combines the matched records of the sessions that told us theirs and writes the
/// combined file; `None` when no session completed.
fn combine_and_store(
    node: &Node,
    request: &RunRequest,
    run_id: &str,
    record_ids: &RecordIds,
    results: &[Result<Completed, String>],
) -> Result<Option<CombinedReport>, NodeError> {
    if results.iter().all(Result::is_err) {
        return Ok(None);
    }
    let per_peer: Vec<Option<&[MatchedRecord]>> = results
        .iter()
        .map(|r| r.as_ref().ok().and_then(|c| c.matches.as_deref()))
        .collect();
    let threshold = request.require.threshold(request.peers.len());
    let combination = combine::combine(&per_peer, record_ids.len(), threshold);
    let path = request
        .out
        .clone()
        .unwrap_or_else(|| node.results_dir().join(run_file_name(run_id)));
    let names: Vec<&str> = request.peers.iter().map(|p| p.name.as_str()).collect();
    combine::write_combined(&path, &names, &combination, &|i| {
        record_ids.get(i as usize).map(str::to_owned)
    })
    .map_err(|source| NodeError::Io {
        what: "writing the run's combined results to",
        path: path.clone(),
        source,
    })?;
    let over = request
        .peers
        .iter()
        .zip(&per_peer)
        .filter(|(_, m)| m.is_some())
        .map(|(p, _)| p.name.clone())
        .collect();
    Ok(Some(CombinedReport {
        over,
        any: combination.any,
        all: combination.all,
        none: combination.none,
        kept: combination.rows.len() as u64,
        threshold,
        out: path,
    }))
}
