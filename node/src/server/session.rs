//! One session as responder, from the first frame to the audit record of its end:
//! the `Hello` through the driver, the policy (cheap checks first, see `admission`), the
//! exchange, the disclosure threshold and the results.

use std::sync::Arc;

use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::index::ServerSession;
use blindmatch_protocol::session::{Event, Outcome, ResponderConfig, Role};
use blindmatch_protocol::wire::RejectReason;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::admission::{Accepted, admit, screen};
use super::announce::{self, Kind};
use super::no_hello::NoHello;
use super::{AUDIT_UNAVAILABLE, Limiters};
use crate::config::{PeerConfig, PeerPolicy};
use crate::driver::{Driver, DriverError, DriverOptions, Step};
use crate::identity::Fingerprint;
use crate::node::{FactsBuilder, Node};
use crate::policy::{self, Disclosure};
use crate::receipts::{self, NodeSigner};
use crate::results::store_session_results;
use crate::transport::{self, FrameReader, FrameWriter, TransportError};

/// The authenticated peer of a connection.
#[derive(Clone, Copy)]
pub(super) struct Peer<'a> {
    pub(super) fingerprint: Fingerprint,
    pub(super) name: &'a str,
    pub(super) config: &'a PeerConfig,
}

/// Runs one session as responder; returns the close code for the connection.
pub(super) async fn serve_session(
    node: &Arc<Node>,
    conn: &quinn::Connection,
    peer: Peer<'_>,
    reader: FrameReader,
    writer: FrameWriter,
    limiters: &Limiters,
    cancel: watch::Receiver<bool>,
) -> CloseCode {
    let idle = node.idle_timeout();
    let binding = match transport::channel_binding(conn) {
        Ok(binding) => binding,
        Err(err) => {
            warn!(error = %err, "no channel binding");
            let code = CloseCode::INTERNAL;
            limiters
                .no_hello
                .note(peer.fingerprint, peer.name, NoHello::Internal, code);
            return code;
        }
    };
    // A PSI responder, or an index provider when the first frame is an `IndexHello`.
    let responder = ServerSession::new(
        ResponderConfig::new(binding, receipts::parties(node, peer.config)),
        NodeSigner::boxed(Arc::clone(node)),
        NodeSigner::boxed(Arc::clone(node)),
    );
    let mut options = DriverOptions::new(idle);
    options.first_frame_limit = transport::FIRST_FRAME_LIMIT;
    options.cancel = Some(cancel);
    options.revoked = Some(limiters.revocations.subscribe(peer.fingerprint));
    let mut driver = Driver::start(responder, reader, writer, options);
    // 1. Hello, within the idle timeout.
    let hello = match driver.step().await {
        Step::Decide(Event::HelloReceived(hello)) => hello,
        Step::Decide(Event::IndexRequested(hello)) => {
            return super::index::serve(node, conn, peer, driver, *hello, limiters).await;
        }
        _ => {
            let report = driver.finish().await;
            let (why, code) = no_hello(report.result);
            limiters
                .no_hello
                .note(peer.fingerprint, peer.name, why, code);
            return code;
        }
    };
    let peer_name = peer.name;
    let mut facts = FactsBuilder::new(
        Role::Responder,
        node.identity().fingerprint(),
        peer.fingerprint,
        peer_name,
        &hello,
        0,
    );
    facts.peer_dataset(&hello.own_dataset);
    debug!(session = %hex::encode(hello.session_id), "session requested");
    announce::requested(Kind::Psi, peer_name, hello.mode, hello.set_size);
    // 2. The cheap checks of the policy: a refusal here costs no dataset load and at most
    //    one coalesced audit record.
    let screened = match screen(node, &peer.fingerprint, &hello, limiters) {
        Ok(screened) => screened,
        Err(refusal) => {
            announce::refused(Kind::Psi, peer_name, hello.mode, refusal.reason);
            limiters.refusals.note(
                peer.fingerprint,
                refusal.reason,
                facts.facts(),
                refusal.text.clone(),
            );
            return refuse(driver, refusal.reason, &refusal.text).await;
        }
    };
    // No session is served that the audit log does not show.
    if let Err(err) = node.record(AuditEvent::SessionRequested(facts.facts())) {
        error!(error = %err, "cannot write the audit log: session refused");
        return refuse(driver, RejectReason::INTERNAL, AUDIT_UNAVAILABLE).await;
    }
    // 3. Our dataset, the ratio and the charge.
    let accepted = match admit(node, screened, &hello, limiters).await {
        Ok(accepted) => accepted,
        Err(refusal) => {
            announce::refused(Kind::Psi, peer_name, hello.mode, refusal.reason);
            limiters.refusals.note(
                peer.fingerprint,
                refusal.reason,
                facts.facts(),
                refusal.text.clone(),
            );
            return refuse(driver, refusal.reason, &refusal.text).await;
        }
    };
    let Accepted {
        permit,
        active,
        record_ids,
        set,
        dataset,
        policy,
        charged,
    } = accepted;
    facts
        .our_set_size(set.len() as u64)
        .our_dataset(&dataset)
        .charged(charged);
    // Recorded before the `Accept` is queued: nothing is blinded unless it is durable.
    if let Err(err) = node.record(AuditEvent::SessionAccepted(facts.facts())) {
        error!(error = %err, "cannot write the audit log: session refused");
        return refuse(driver, RejectReason::INTERNAL, AUDIT_UNAVAILABLE).await;
    }
    // From here on the peer may fill the full window (see `TransportTuning`).
    transport::admit(conn, &node.transport_tuning());
    let accepted = match driver.session().and_then(ServerSession::responder) {
        Some(responder) => responder.accept(set, dataset, &mut rand::rng()),
        None => Err(blindmatch_protocol::Error::ApiMisuse(
            "no session to accept",
        )),
    };
    let report = match accepted {
        Ok(()) => driver.finish().await,
        Err(err) => {
            warn!(error = %err, "accept failed");
            let why = DriverError::Internal(format!("accept failed: {err}"));
            driver.abort(CloseCode::INTERNAL, why).await
        }
    };

    // 3. The exchange ran.
    drop(permit);
    drop(active);
    facts
        .traffic(report.bytes_sent, report.bytes_received, report.duration)
        .progress(&report.progress);
    match report.result {
        Ok(mut outcome) => {
            facts.outcome(&outcome);
            apply_threshold(&policy, &mut outcome);
            facts.withheld_counts(&outcome);
            if let Err(err) = receipts::pin_on_first_use(node, peer_name, &outcome.peer_receipt) {
                warn!(error = %err, "could not pin the peer's audit key");
            }
            let stored = store_session_results(
                &node.results_dir(),
                peer_name,
                &outcome.session_id,
                outcome.matches.as_deref(),
                &|i| record_ids.get(i as usize).map(str::to_owned),
            );
            let results = match stored {
                Ok(results) => results,
                Err(err) => {
                    let error = format!("results not stored: {err}");
                    let code = CloseCode::INTERNAL;
                    announce::aborted(
                        Kind::Psi,
                        peer_name,
                        hello.mode,
                        code,
                        &error,
                        report.duration,
                    );
                    node.record_or_warn(AuditEvent::SessionAborted {
                        facts: facts.facts(),
                        close_code: u32::from(code.0),
                        error,
                    });
                    return code;
                }
            };
            node.record_or_warn(AuditEvent::SessionCompleted(facts.facts()));
            announce::completed(&announce::Completed {
                kind: Kind::Psi,
                peer: peer_name,
                mode: hello.mode,
                our_size: outcome.own_set_size,
                our_records: record_ids.len() as u64,
                peer_size: outcome.peer_set_size,
                matched: outcome.matched_record_count,
                duration: report.duration,
                results: results.as_deref(),
            });
            CloseCode::OK
        }
        Err(err) => {
            let code = err.close_code();
            announce::aborted(
                Kind::Psi,
                peer_name,
                hello.mode,
                code,
                &err.to_string(),
                report.duration,
            );
            node.record_or_warn(AuditEvent::SessionAborted {
                facts: facts.facts(),
                close_code: u32::from(code.0),
                error: err.to_string(),
            });
            code
        }
    }
}

/// Refuses the session whose `Hello` is pending: the `Reject` goes out, the stream ends.
async fn refuse(mut driver: Driver<ServerSession>, reason: RejectReason, text: &str) -> CloseCode {
    if let Some(responder) = driver.session().and_then(ServerSession::responder) {
        let _ = responder.reject(reason, text);
    }
    let _ = driver.finish().await;
    CloseCode::REFUSED
}

/// Why a connection ended before a valid `Hello`, and its close code, for the audit log.
fn no_hello(result: Result<Outcome, DriverError>) -> (NoHello, CloseCode) {
    let Err(err) = result else {
        return (NoHello::Internal, CloseCode::INTERNAL);
    };
    let why = match &err {
        DriverError::Protocol(err) => NoHello::of_error(err),
        DriverError::PeerClosedEarly => return (NoHello::ClosedBeforeHello, CloseCode::OK),
        DriverError::PeerGone(_) => NoHello::GoneBeforeHello,
        DriverError::Transport(
            TransportError::FrameTooLarge { .. } | TransportError::TruncatedFrame { .. },
        ) => NoHello::UnreadableFrame,
        DriverError::Transport(TransportError::TimedOut { .. }) | DriverError::Timeout(_) => {
            NoHello::Timeout
        }
        _ => NoHello::Internal,
    };
    warn!(error = %err, "no valid Hello");
    (why, err.close_code())
}

/// Applies the peer's disclosure threshold to what this node keeps of `outcome`.
fn apply_threshold(policy: &PeerPolicy, outcome: &mut Outcome) {
    let disclosure = policy::disclosure(policy, outcome);
    if disclosure != Disclosure::Full {
        info!(
            withheld = ?disclosure,
            "intersection below the disclosure threshold: matched records not kept"
        );
        policy::withhold(outcome, disclosure);
    }
}
