//! One session as initiator with one peer: our policy before we connect and on the
//! responder's `Accept`, the session through the driver, the audit records, the receipt
//! and the result file.

use std::sync::Arc;
use std::time::Instant;

use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::session::{
    AcceptInfo, Event, Initiator, InitiatorConfig, MatchedRecord, PreparedSet, Progress, Role,
};
use blindmatch_protocol::wire::{DatasetRef, Hello};
use rand::Rng;

use super::{MatchRequest, MatchSummary};
use crate::config::PeerConfig;
use crate::dataset::RecordIds;
use crate::driver::{Driver, DriverError, DriverOptions, RunReport, Step};
use crate::node::{FactsBuilder, Node, NodeError};
use crate::policy::{self, ActiveSession, PolicyGuard, Refusal};
use crate::receipts::{self, NodeSigner};
use crate::results::{result_file_name, write_results};
use crate::transport::{self, FrameReader, FrameWriter};

/// Our dataset, loaded and prepared once.
pub struct Prepared {
    /// The prepared set of identifiers.
    pub set: PreparedSet,
    /// How we name it to peers.
    pub reference: DatasetRef,
    /// Record ids, to name matched records.
    pub record_ids: RecordIds,
}

/// A completed session: its summary, and our matched records when the mode gave us them.
pub(super) struct Completed {
    pub summary: MatchSummary,
    pub matches: Option<Vec<MatchedRecord>>,
}

/// Runs one session with the peer `request` names; `run_id` links it to the other
/// sessions of a run with several peers, in every audit record it gets.
pub(super) async fn run(
    node: Arc<Node>,
    prepared: Arc<Prepared>,
    guard: Arc<PolicyGuard>,
    request: MatchRequest,
    run_id: Option<&str>,
    on_progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
) -> Result<Completed, NodeError> {
    let config = node.config();
    let peer = config
        .peer(&request.peer)
        .cloned()
        .ok_or_else(|| NodeError::UnknownPeer(request.peer.clone()))?;
    let mut session_id = [0u8; 16];
    rand::rng().fill_bytes(&mut session_id);
    // Step 1 of our policy, as far as it is known before we connect: a refusal here
    // sends nothing, and is recorded.
    if let Err(refusal) = policy::decide_as_initiator(&peer, request.mode, None) {
        return Err(refused_before_connecting(
            &node, &peer, &request, &prepared, session_id, run_id, refusal,
        ));
    }

    let addr = peer.addr.resolve(&peer.name).await?;
    let tuning = node.transport_tuning();
    let client = transport::client_endpoint(node.identity(), &tuning)?;
    let conn = transport::connect(&client, addr, peer.addr.host(), peer.fingerprint).await?;
    let binding = transport::channel_binding(&conn)?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| NodeError::Transport(transport::classify_connection_error(e, Some(addr))))?;

    let mut init = InitiatorConfig::new(
        session_id,
        binding,
        receipts::parties(&node, &peer),
        request.mode,
    );
    init.dataset = request.remote_dataset.clone();
    init.own_dataset = prepared.reference.clone();
    init.purpose = request.purpose.clone();
    init.legal_basis = request.legal_basis.clone();
    let initiator = Initiator::new(
        init,
        prepared.set.clone(),
        NodeSigner::boxed(Arc::clone(&node)),
        &mut rand::rng(),
    )
    .map_err(|e| NodeError::Other(format!("cannot start the session: {e}")))?;
    let our_size = initiator.hello().set_size;
    let mut facts = FactsBuilder::new(
        Role::Initiator,
        node.identity().fingerprint(),
        peer.fingerprint,
        &peer.name,
        initiator.hello(),
        our_size,
    );
    facts.our_dataset(&prepared.reference).run_id(run_id);
    node.record(AuditEvent::SessionRequested(facts.facts()))?;

    let started = Instant::now();
    let mut options = DriverOptions::new(config.limits.idle_timeout);
    options.on_progress = on_progress;
    options.cancel = Some(node.cancelled());
    let driver = Driver::start(initiator, FrameReader(recv), FrameWriter(send), options);
    let (report, _active) = drive(&node, &guard, &peer, &request, driver, &mut facts).await;
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
                    attempts: 1,
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
            let ids = &prepared.record_ids;
            if let Err(source) =
                write_results(&path, matches, &|i| ids.get(i as usize).map(str::to_owned))
            {
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
    let summary = MatchSummary {
        session_id: hex::encode(session_id),
        our_size: prepared.set.len() as u64,
        our_records: prepared.record_ids.len(),
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
    };
    Ok(Completed {
        summary,
        matches: outcome.matches,
    })
}

/// Runs the session: our policy decides on the responder's `Accept` (charging the
/// session, recorded as `session_accepted`) before anything is blinded.
async fn drive(
    node: &Node,
    guard: &Arc<PolicyGuard>,
    peer: &PeerConfig,
    request: &MatchRequest,
    mut driver: Driver<Initiator>,
    facts: &mut FactsBuilder,
) -> (RunReport, Option<ActiveSession>) {
    let Step::Decide(Event::Accepted(info)) = driver.step().await else {
        return (driver.finish().await, None);
    };
    facts
        .peer_set_size(info.peer_set_size)
        .peer_dataset(&info.peer_dataset);
    let decided = on_accept(guard, peer, request, &info, facts).and_then(|active| {
        match node.record(AuditEvent::SessionAccepted(facts.facts())) {
            Ok(()) => Ok(active),
            Err(err) => Err(Refusal::new(
                blindmatch_protocol::wire::RejectReason::INTERNAL,
                format!("the audit log cannot be written: {err}"),
            )),
        }
    });
    match decided {
        Ok(active) => {
            let report = match driver.session().map(Initiator::confirm) {
                Some(Err(err)) => driver.abort(err.close_code(), err.into()).await,
                _ => driver.finish().await,
            };
            (report, Some(active))
        }
        Err(refusal) => {
            let why = DriverError::Ended(format!(
                "refused by this node's own policy ({}): {}",
                refusal.reason.name(),
                refusal.text
            ));
            (driver.abort(CloseCode::REFUSED, why).await, None)
        }
    }
}

/// Our policy on the responder's `Accept`: steps 1, 2 and 4 (see `policy::admission`).
fn on_accept(
    guard: &Arc<PolicyGuard>,
    peer: &PeerConfig,
    request: &MatchRequest,
    info: &AcceptInfo,
    facts: &mut FactsBuilder,
) -> Result<ActiveSession, Refusal> {
    policy::decide_as_initiator(peer, request.mode, Some(info.peer_set_size))?;
    let policy_request = policy::Request {
        role: Role::Initiator,
        peer,
        mode: request.mode,
        session_id: facts.session_id(),
        peer_set_size: info.peer_set_size,
    };
    let active = guard.screen(&policy_request)?;
    guard.admit(&policy_request, info.own_set_size)?;
    facts.charged(policy_request.charge());
    Ok(active)
}

/// Our own policy's refusal before we connect: recorded as a `session_refused` of the
/// session we would have started (nothing was sent), returned as the error to show.
pub(crate) fn refused_before_connecting(
    node: &Node,
    peer: &PeerConfig,
    request: &MatchRequest,
    prepared: &Prepared,
    session_id: [u8; 16],
    run_id: Option<&str>,
    refusal: Refusal,
) -> NodeError {
    let text = format!(
        "refused by this node's own policy ({}): {}",
        refusal.reason.name(),
        refusal.text
    );
    let our_size = prepared.set.len() as u64;
    // The Hello we would have sent, for the record only: it never leaves this node.
    let mut hello = Hello::new(session_id, request.mode, our_size, [0; 32]);
    hello.dataset = request.remote_dataset.clone();
    hello.purpose = request.purpose.clone();
    hello.legal_basis = request.legal_basis.clone();
    let mut facts = FactsBuilder::new(
        Role::Initiator,
        node.identity().fingerprint(),
        peer.fingerprint,
        &peer.name,
        &hello,
        our_size,
    );
    facts.our_dataset(&prepared.reference).run_id(run_id);
    node.record_or_warn(AuditEvent::SessionRefused {
        facts: facts.facts(),
        reason: text.clone(),
        attempts: 1,
    });
    NodeError::Other(text)
}
