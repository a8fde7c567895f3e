//! Serving an index session (a peer's `IndexHello`): index download and VOPRF
//! evaluation of the peer's blinded identifiers, under the same policy and audit records
//! as a PSI session.
//!
//! For policy and the audit log an index session is a session in `initiator` mode (the
//! peer learns which of its records matched, we learn nothing) whose peer set is the
//! identifiers it will have evaluated ([`policy_view`]), so every rule applies unchanged
//! and in the same order: offered dataset (who may download which index), modes,
//! purpose, legal basis, size cap, replay, concurrency, budgets and rate limits
//! (identifiers evaluated per day and in total), the ratio to the index size, then the
//! durable charge; cheap refusals are coalesced as for PSI sessions. Only the current index of the dataset is served; a dataset without
//! one, or whose index is stale, is refused with `index-unavailable`. The records are
//! `session_requested/accepted/refused/completed/aborted` with `index_epoch` and
//! `index_bytes` set.

use std::sync::Arc;

use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::index::ServerSession;
use blindmatch_protocol::session::Role;
use blindmatch_protocol::wire::{Hello, IndexHello, OutputMode, RejectReason};
use tracing::{debug, error, warn};

use super::admission::{Screened, request, screen};
use super::announce::{self, Kind};
use super::{AUDIT_UNAVAILABLE, Limiters, Peer};
use crate::driver::{Driver, DriverError};
use crate::index::client::policy_view;
use crate::index::{IndexError, Served, served};
use crate::node::{FactsBuilder, Node};
use crate::policy::{ActiveSession, Refusal};
use crate::receipts;
use crate::transport;

/// Serves the index session whose `IndexHello` is pending; returns the close code for
/// the connection.
pub(super) async fn serve(
    node: &Arc<Node>,
    conn: &quinn::Connection,
    peer: Peer<'_>,
    mut driver: Driver<ServerSession>,
    hello: IndexHello,
    limiters: &Limiters,
) -> CloseCode {
    let view = policy_view(&hello);
    let mut facts = FactsBuilder::new(
        Role::Responder,
        node.identity().fingerprint(),
        peer.fingerprint,
        peer.name,
        &view,
        0,
    );
    facts
        .peer_dataset(&hello.own_dataset)
        .index_session(None, 0);
    debug!(session = %hex::encode(hello.session_id), "index session requested");
    announce::requested(
        Kind::Index,
        peer.name,
        OutputMode::Initiator,
        hello.query_count,
    );
    // The cheap checks first, as for a PSI session: a refusal here costs no index load
    // and at most one coalesced audit record.
    let screened = match screen(node, &peer.fingerprint, &view, limiters) {
        Ok(screened) => screened,
        Err(refusal) => return refused(driver, limiters, &peer, &facts, refusal).await,
    };
    if let Err(err) = node.record(AuditEvent::SessionRequested(facts.facts())) {
        error!(error = %err, "cannot write the audit log: session refused");
        return refuse(driver, RejectReason::INTERNAL, AUDIT_UNAVAILABLE).await;
    }
    let accepted = match admit(node, screened, &view, limiters).await {
        Ok(accepted) => accepted,
        Err(refusal) => return refused(driver, limiters, &peer, &facts, refusal).await,
    };
    let Accepted {
        permit,
        active,
        charged,
        served: Served {
            key,
            summary,
            source,
        },
    } = accepted;
    facts
        .our_set_size(summary.elements)
        .our_dataset(&summary.dataset)
        .index_session(Some(&summary.epoch), 0)
        .charged(charged);
    if let Err(err) = node.record(AuditEvent::SessionAccepted(facts.facts())) {
        error!(error = %err, "cannot write the audit log: session refused");
        return refuse(driver, RejectReason::INTERNAL, AUDIT_UNAVAILABLE).await;
    }
    transport::admit(conn, &node.transport_tuning());
    let epoch = summary.epoch;
    let accepted = match driver.session().and_then(ServerSession::provider) {
        Some(provider) => provider.accept(key, summary, Box::new(source), &mut rand::rng()),
        None => Err(blindmatch_protocol::Error::ApiMisuse(
            "no index session to accept",
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
    drop(permit);
    drop(active);
    facts
        .traffic(report.bytes_sent, report.bytes_received, report.duration)
        .progress(&report.progress)
        .index_session(Some(&epoch), report.progress.index_bytes);
    match report.result {
        Ok(outcome) => {
            facts.outcome(&outcome);
            if let Some(index) = &outcome.index {
                facts.index(index);
            }
            if let Err(err) = receipts::pin_on_first_use(node, peer.name, &outcome.peer_receipt) {
                warn!(error = %err, "could not pin the peer's audit key");
            }
            node.record_or_warn(AuditEvent::SessionCompleted(facts.facts()));
            announce::completed(&announce::Completed {
                kind: Kind::Index,
                peer: peer.name,
                mode: OutputMode::Initiator,
                our_size: outcome.own_set_size,
                our_records: 0,
                peer_size: outcome.peer_set_size,
                matched: None,
                duration: report.duration,
                results: None,
            });
            CloseCode::OK
        }
        Err(err) => {
            let code = err.close_code();
            let why = err.to_string();
            announce::aborted(
                Kind::Index,
                peer.name,
                OutputMode::Initiator,
                code,
                &why,
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

/// An accepted index session: what it holds until it ends, and the index it serves.
struct Accepted {
    permit: tokio::sync::OwnedSemaphorePermit,
    active: ActiveSession,
    charged: u64,
    served: Served,
}

/// The rest of the policy sequence after the cheap checks: the current index in place
/// of the prepared set, the ratio against its size, then the durable charge.
async fn admit(
    node: &Arc<Node>,
    screened: Screened,
    view: &Hello,
    limiters: &Limiters,
) -> Result<Accepted, Refusal> {
    let Screened {
        peer,
        dataset: name,
        permit,
        active,
    } = screened;
    let data_dir = node.data_dir().to_path_buf();
    let dataset_policy = node.config().dataset_policy(&name);
    let index_name = name.clone();
    let loaded =
        tokio::task::spawn_blocking(move || served(&data_dir, &index_name, &dataset_policy)).await;
    let served = match loaded {
        Ok(Ok(served)) => served,
        Ok(Err(err @ (IndexError::NotIndexed { .. } | IndexError::Stale { .. }))) => {
            warn!(error = %err, "no current index to serve");
            return Err(Refusal::new(
                RejectReason::INDEX_UNAVAILABLE,
                format!(
                    "dataset `{name}` has no current index on this node; ask its operator to run `blindmatch dataset index {name}`"
                ),
            ));
        }
        Ok(Err(err)) => {
            warn!(error = %err, "index cannot be loaded");
            return Err(Refusal::new(
                RejectReason::INTERNAL,
                "the offered index is not available on this node; ask its operator".into(),
            ));
        }
        Err(_) => {
            return Err(Refusal::new(
                RejectReason::INTERNAL,
                "internal error".into(),
            ));
        }
    };
    let request = request(&peer, view);
    limiters.guard.admit(&request, served.summary.elements)?;
    Ok(Accepted {
        permit,
        active,
        charged: request.charge(),
        served,
    })
}

/// Refuses with `refusal`, noted (coalesced per peer and reason) in the audit log.
async fn refused(
    driver: Driver<ServerSession>,
    limiters: &Limiters,
    peer: &Peer<'_>,
    facts: &FactsBuilder,
    refusal: Refusal,
) -> CloseCode {
    announce::refused(
        Kind::Index,
        peer.name,
        OutputMode::Initiator,
        refusal.reason,
    );
    limiters.refusals.note(
        peer.fingerprint,
        refusal.reason,
        facts.facts(),
        refusal.text.clone(),
    );
    refuse(driver, refusal.reason, &refusal.text).await
}

/// Refuses the session whose `IndexHello` is pending: the `Reject` goes out, the stream
/// ends.
async fn refuse(mut driver: Driver<ServerSession>, reason: RejectReason, text: &str) -> CloseCode {
    if let Some(provider) = driver.session().and_then(ServerSession::provider) {
        let _ = provider.reject(reason, text);
    }
    let _ = driver.finish().await;
    CloseCode::REFUSED
}
