//! `blindmatch match`: run one session as initiator against a configured peer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::session::{Event, Initiator, InitiatorConfig, Progress, Role};
use blindmatch_protocol::wire::{DatasetRef, OutputMode};
use rand::Rng;

use crate::dataset::Dataset;
use crate::driver::{Driver, DriverError, DriverOptions, Step};
use crate::node::{FactsBuilder, Node, NodeError};
use crate::policy;
use crate::receipts::{self, NodeSigner};
use crate::results::write_results;
use crate::server::result_file_name;
use crate::transport::{self, FrameReader, FrameWriter, TransportTuning};

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

/// What a completed match reports.
#[derive(Clone, Debug)]
pub struct MatchSummary {
    /// Session id (hex).
    pub session_id: String,
    /// Our set size (unique identifiers).
    pub our_size: u64,
    /// Our record count.
    pub our_records: usize,
    /// Their set size: distinct identifiers, or in `cardinality` mode record bundles
    /// times their padded width.
    pub their_size: u64,
    /// The output mode.
    pub mode: OutputMode,
    /// Distinct identifiers in the intersection, if our mode lets us know it.
    pub intersection: Option<u64>,
    /// Our records (contacts) matched, if our mode lets us know the count: the figure
    /// people read.
    pub matched_records: Option<u64>,
    /// The peer's receipt verified under its audit key (hex).
    pub peer_audit_key: String,
    /// Where the result file was written.
    pub out: Option<PathBuf>,
    /// Wall time of the session (excluding loading the dataset).
    pub duration: Duration,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Transcript hash (hex) both sides confirmed.
    pub transcript_hash: String,
}

impl std::fmt::Display for MatchSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "session     {}", self.session_id)?;
        writeln!(
            f,
            "our set     {} identifiers ({} records)",
            self.our_size, self.our_records
        )?;
        if self.mode == OutputMode::Cardinality {
            writeln!(
                f,
                "their set   {} elements (one bundle per record, padded)",
                self.their_size
            )?;
        } else {
            writeln!(f, "their set   {} identifiers", self.their_size)?;
        }
        let rate = |records: u64| {
            if self.our_records == 0 {
                0.0
            } else {
                records as f64 * 100.0 / self.our_records as f64
            }
        };
        match (self.matched_records, self.intersection) {
            (Some(r), Some(n)) => {
                let only = if self.mode == OutputMode::Cardinality {
                    " (count only)"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "matches     {r} of our {} records ({:.1}%), {n} identifiers{only}",
                    self.our_records,
                    rate(r)
                )?;
            }
            _ => writeln!(f, "matches     not disclosed to us in this mode")?,
        }
        if let Some(out) = &self.out {
            writeln!(f, "results     {}", out.display())?;
        }
        writeln!(
            f,
            "time        {:.2} s; sent {:.1} MB, received {:.1} MB",
            self.duration.as_secs_f64(),
            self.bytes_sent as f64 / 1e6,
            self.bytes_received as f64 / 1e6
        )?;
        writeln!(f, "transcript  {}", self.transcript_hash)?;
        write!(
            f,
            "receipt     signed by the peer, verified (audit key {})",
            self.peer_audit_key
        )
    }
}

/// Runs one session as initiator. On any failure no result file is left behind and
/// the aborted session is in the audit log.
pub async fn run(
    node: Arc<Node>,
    request: MatchRequest,
    on_progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
) -> Result<MatchSummary, NodeError> {
    let config = node.config();
    let peer = config
        .peer(&request.peer)
        .cloned()
        .ok_or_else(|| NodeError::UnknownPeer(request.peer.clone()))?;
    let data_dir = node.data_dir().to_path_buf();
    let name = request.dataset.clone();
    let dataset = tokio::task::spawn_blocking(move || Dataset::load(&data_dir, &name))
        .await
        .map_err(|e| NodeError::Other(format!("loading the dataset failed: {e}")))??;
    let set = dataset.prepared_set();
    let own_dataset = DatasetRef::new(&request.dataset, dataset.meta().version_bytes());
    // Only the record ids are needed from here on (to name matched records).
    let record_ids = dataset.into_record_ids();
    let our_size = set.len() as u64;

    let addr = peer.addr.resolve(&peer.name).await?;
    let tuning = TransportTuning::with_idle_timeout(config.limits.idle_timeout);
    let client = transport::client_endpoint(node.identity(), &tuning)?;
    let conn = transport::connect(&client, addr, peer.addr.host(), peer.fingerprint).await?;
    let binding = transport::channel_binding(&conn)?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| NodeError::Transport(transport::classify_connection_error(e, Some(addr))))?;

    let mut session_id = [0u8; 16];
    rand::rng().fill_bytes(&mut session_id);
    let mut init_config = InitiatorConfig::new(
        session_id,
        binding,
        receipts::parties(&node, &peer),
        request.mode,
    );
    init_config.dataset = request.remote_dataset.clone();
    init_config.own_dataset = own_dataset.clone();
    init_config.purpose = request.purpose.clone();
    init_config.legal_basis = request.legal_basis.clone();
    let initiator = Initiator::new(
        init_config,
        set,
        NodeSigner::boxed(Arc::clone(&node)),
        &mut rand::rng(),
    )
    .map_err(|e| NodeError::Other(format!("cannot start the session: {e}")))?;
    let mut facts = FactsBuilder::new(
        Role::Initiator,
        node.identity().fingerprint(),
        peer.fingerprint,
        &peer.name,
        initiator.hello(),
        our_size,
    );
    facts.our_dataset(&own_dataset);
    node.record(AuditEvent::SessionRequested(facts.facts()))?;

    let started = Instant::now();
    let mut options = DriverOptions::new(config.limits.idle_timeout);
    options.on_progress = on_progress;
    let mut driver = Driver::start(initiator, FrameReader(recv), FrameWriter(send), options);
    // Our own policy decides once the responder told us its set, before we blind anything.
    let report = match driver.step().await {
        Step::Decide(Event::Accepted(info)) => {
            facts
                .peer_set_size(info.peer_set_size)
                .peer_dataset(&info.peer_dataset);
            match policy::check_accepted(&peer, request.mode, &info) {
                Ok(()) => match driver.session().map(Initiator::confirm) {
                    Some(Ok(())) => driver.finish().await,
                    Some(Err(err)) => driver.abort(err.close_code(), err.into()).await,
                    None => driver.finish().await,
                },
                Err(refusal) => {
                    let why = DriverError::Ended(format!(
                        "refused by our own policy ({}): {}",
                        refusal.reason.name(),
                        refusal.text
                    ));
                    driver.abort(CloseCode::REFUSED, why).await
                }
            }
        }
        _ => driver.finish().await,
    };
    facts
        .traffic(report.bytes_sent, report.bytes_received, report.duration)
        .progress(&report.progress);
    let outcome = match report.result {
        Ok(outcome) => outcome,
        Err(err) => {
            transport::close(&conn, err.close_code(), "");
            let event = match &err {
                DriverError::Ended(reason) => AuditEvent::SessionRefused {
                    facts: facts.facts(),
                    reason: reason.clone(),
                },
                _ => AuditEvent::SessionAborted {
                    facts: facts.facts(),
                    close_code: u32::from(err.close_code().0),
                    error: err.to_string(),
                },
            };
            node.record_or_warn(event);
            client.shutdown().await;
            return Err(NodeError::Session(err));
        }
    };
    facts.outcome(&outcome);
    transport::close(&conn, CloseCode::OK, "done");
    if let Err(err) = receipts::pin_on_first_use(&node, &peer.name, &outcome.peer_receipt) {
        tracing::warn!(error = %err, "could not pin the peer's audit key");
    }

    let out = match &outcome.matches {
        Some(matches) => {
            let path = request.out.clone().unwrap_or_else(|| {
                node.results_dir()
                    .join(result_file_name(&peer.name, &session_id))
            });
            if let Err(source) = write_results(&path, matches, &|i| {
                record_ids.get(i as usize).map(str::to_owned)
            }) {
                node.record_or_warn(AuditEvent::SessionAborted {
                    facts: facts.facts(),
                    close_code: u32::from(CloseCode::INTERNAL.0),
                    error: format!("results not stored: {source}"),
                });
                return Err(NodeError::Io {
                    what: "writing results to",
                    path,
                    source,
                });
            }
            Some(path)
        }
        None => None,
    };
    node.record(AuditEvent::SessionCompleted(facts.facts()))?;
    client.shutdown().await;
    Ok(MatchSummary {
        session_id: hex::encode(session_id),
        our_size,
        our_records: record_ids.len(),
        their_size: outcome.peer_set_size,
        intersection: outcome.intersection_size,
        mode: outcome.mode,
        matched_records: outcome.matched_record_count,
        peer_audit_key: hex::encode(outcome.peer_receipt.signer_key),
        out,
        duration: started.elapsed(),
        bytes_sent: report.bytes_sent,
        bytes_received: report.bytes_received,
        transcript_hash: hex::encode(outcome.transcript_hash),
    })
}
