//! `blindmatch serve`: the long-running responder, in the mini-redis shape —
//! `run(endpoint, shutdown)`, a cap on concurrent sessions, graceful shutdown.
//!
//! Only pinned peers get past the TLS handshake (see `transport`). Each connection
//! carries one session on one bidirectional stream. Policy is decided on `Hello`,
//! before any blinding (see `policy` for the order of the rules); a refused or failed
//! session never stops the server. The peer's declared set size is what policy
//! checked and charged, and the protocol's responder cuts the peer off at the first
//! point beyond it, before re-blinding any point of that batch.

use std::sync::Arc;
use std::time::Duration;

use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::session::{
    Event, Outcome, PreparedSet, Responder, ResponderConfig, Role, Session,
};
use blindmatch_protocol::wire::{Hello, MAX_FRAME_LEN, RejectReason};
use tokio::sync::{Semaphore, watch};
use tracing::{Instrument, info, warn};

use crate::config::PeerPolicy;
use crate::dataset::{Dataset, RecordIds};
use crate::driver::{self, DriverOptions, Traffic};
use crate::identity::Fingerprint;
use crate::node::{FactsBuilder, Node};
use crate::policy::{self, ActiveSession, Disclosure, PolicyGuard, Refusal};
use crate::results::write_results;
use crate::transport::{self, FrameReader, FrameWriter};

/// How long in-flight sessions may run after shutdown was asked for before they are
/// cancelled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves sessions on `endpoint` until `shutdown` flips to `true`.
pub async fn run(node: Arc<Node>, endpoint: quinn::Endpoint, mut shutdown: watch::Receiver<bool>) {
    let config = node.config();
    let limit = config.limits.max_concurrent_sessions as usize;
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let guard = PolicyGuard::open(node.data_dir(), config.limits.replay_window_days);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let node = Arc::clone(&node);
                let permits = Arc::clone(&permits);
                let guard = Arc::clone(&guard);
                let cancel = cancel_rx.clone();
                sessions.spawn(async move {
                    handle_incoming(node, incoming, Limiters { permits, guard }, cancel).await
                });
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    info!(in_flight = sessions.len(), "shutting down: no new sessions");
    endpoint.set_server_config(None);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let _ = cancel_tx.send(true);
        while sessions.join_next().await.is_some() {}
    }
    endpoint.close(
        transport::close_code_to_varint(CloseCode::CANCELLED),
        b"shutting down",
    );
    endpoint.wait_idle().await;
}

/// What bounds sessions across connections: the node-wide semaphore and the policy
/// state (budgets, rate limits, replay, per-peer concurrency).
struct Limiters {
    permits: Arc<Semaphore>,
    guard: Arc<PolicyGuard>,
}

async fn handle_incoming(
    node: Arc<Node>,
    incoming: quinn::Incoming,
    limiters: Limiters,
    cancel: watch::Receiver<bool>,
) {
    let remote = incoming.remote_address();
    let (conn, fingerprint) = match transport::accept(incoming).await {
        Ok(accepted) => accepted,
        Err(err) => {
            warn!(%remote, error = %err, "connection refused");
            return;
        }
    };
    let Some(peer) = node.config().peer_by_fingerprint(&fingerprint).cloned() else {
        // Pinned at handshake time but removed since: refuse before any message.
        transport::close(&conn, CloseCode::REFUSED, "unknown peer");
        return;
    };
    let span = tracing::info_span!("session", peer = %peer.name, %remote);
    async {
        let idle = node.idle_timeout();
        let stream = tokio::time::timeout(idle, conn.accept_bi()).await;
        let (send, recv) = match stream {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                warn!(error = %err, "peer opened no stream");
                return;
            }
            Err(_) => {
                transport::close(&conn, CloseCode::TIMEOUT, "no session opened");
                return;
            }
        };
        let code = serve_session(
            &node,
            &conn,
            fingerprint,
            &peer.name,
            FrameReader(recv),
            FrameWriter(send),
            &limiters,
            cancel,
        )
        .await;
        // The initiator closes once it has our Finish; close ourselves if it does not.
        if tokio::time::timeout(Duration::from_secs(5), conn.closed())
            .await
            .is_err()
        {
            transport::close(&conn, code, "");
        }
    }
    .instrument(span)
    .await;
}

/// Runs one session as responder; returns the close code for the connection.
#[allow(clippy::too_many_arguments)]
async fn serve_session(
    node: &Arc<Node>,
    conn: &quinn::Connection,
    peer_fp: Fingerprint,
    peer_name: &str,
    mut reader: FrameReader,
    mut writer: FrameWriter,
    limiters: &Limiters,
    cancel: watch::Receiver<bool>,
) -> CloseCode {
    let idle = node.idle_timeout();
    let binding = match transport::channel_binding(conn) {
        Ok(binding) => binding,
        Err(err) => {
            warn!(error = %err, "no channel binding");
            return CloseCode::INTERNAL;
        }
    };
    let mut responder = Responder::new(ResponderConfig {
        channel_binding: binding,
        ..ResponderConfig::default()
    });
    // 1. Hello, within the idle timeout.
    let first = match tokio::time::timeout(idle, reader.read_frame(MAX_FRAME_LEN)).await {
        Ok(Ok(Some(frame))) => frame,
        Ok(Ok(None)) => return CloseCode::OK,
        Ok(Err(err)) => {
            warn!(error = %err, "reading Hello failed");
            return CloseCode::INVALID_MESSAGE;
        }
        Err(_) => {
            warn!("no Hello within the idle timeout");
            return CloseCode::TIMEOUT;
        }
    };
    if let Err(err) = responder.handle_frame(&first) {
        warn!(error = %err, "invalid Hello");
        flush(&mut responder, &mut writer).await;
        return err.close_code();
    }
    let Some(Event::HelloReceived(hello)) = responder.poll_event() else {
        return CloseCode::INTERNAL;
    };
    let mut facts = FactsBuilder::new(
        Role::Responder,
        node.identity().fingerprint(),
        peer_fp,
        peer_name,
        &hello,
        0,
    );
    node.record_or_warn(AuditEvent::SessionRequested(facts.facts()));
    info!(session = %hex::encode(hello.session_id), mode = %hello.mode, size = hello.set_size, "session requested");

    // 2. Policy, before any blinding.
    let decision = decide(node, &peer_fp, &hello, limiters).await;
    let accepted = match decision {
        Ok(accepted) => accepted,
        Err(refusal) => {
            info!(reason = %refusal.reason, "session refused");
            let _ = responder.reject(refusal.reason, &refusal.text);
            flush(&mut responder, &mut writer).await;
            node.record_or_warn(AuditEvent::SessionRefused {
                facts: facts.facts(),
                reason: format!("{}: {}", refusal.reason.name(), refusal.text),
            });
            return CloseCode::REFUSED;
        }
    };
    let Accepted {
        permit,
        active,
        record_ids,
        set,
        policy,
    } = accepted;
    facts.our_set_size(set.len() as u64);
    if let Err(err) = responder.accept(set, &mut rand::rng()) {
        warn!(error = %err, "accept failed");
        return CloseCode::INTERNAL;
    }
    node.record_or_warn(AuditEvent::SessionAccepted(facts.facts()));

    // 3. The exchange.
    let report = driver::run(
        responder,
        reader,
        writer,
        Arc::new(Traffic::default()),
        DriverOptions {
            idle_timeout: idle,
            on_progress: None,
            cancel: Some(cancel),
        },
    )
    .await;
    drop(permit);
    drop(active);
    facts.traffic(report.bytes_sent, report.bytes_received, report.duration);
    match report.result {
        Ok(mut outcome) => {
            apply_threshold(&policy, &mut outcome);
            facts.outcome(&outcome);
            if let Err(err) = store_results(node, &outcome, &record_ids, peer_name) {
                warn!(error = %err, "could not write results");
                node.record_or_warn(AuditEvent::SessionAborted {
                    facts: facts.facts(),
                    close_code: u32::from(CloseCode::INTERNAL.0),
                    error: format!("results not stored: {err}"),
                });
                return CloseCode::INTERNAL;
            }
            info!(matches = ?outcome.intersection_size, ms = report.duration.as_millis() as u64, "session completed");
            node.record_or_warn(AuditEvent::SessionCompleted(facts.facts()));
            CloseCode::OK
        }
        Err(err) => {
            warn!(error = %err, "session aborted");
            let code = err.close_code();
            node.record_or_warn(AuditEvent::SessionAborted {
                facts: facts.facts(),
                close_code: u32::from(code.0),
                error: err.to_string(),
            });
            code
        }
    }
}

/// An accepted session: what it holds until it ends, and the set it matches.
struct Accepted {
    permit: tokio::sync::OwnedSemaphorePermit,
    active: ActiveSession,
    record_ids: Arc<RecordIds>,
    set: PreparedSet,
    policy: PeerPolicy,
}

/// Applies policy (in the order `policy` documents), loads the dataset and prepares
/// the records its policy keeps; charges the session once everything passed. A
/// refusal carries a reason the peer sees.
async fn decide(
    node: &Arc<Node>,
    peer_fp: &Fingerprint,
    hello: &Hello,
    limiters: &Limiters,
) -> Result<Accepted, Refusal> {
    let config = node.config();
    let Some(peer) = config.peer_by_fingerprint(peer_fp).cloned() else {
        return Err(Refusal::new(
            RejectReason::UNKNOWN_PEER,
            "this node no longer knows you".into(),
        ));
    };
    let name = policy::decide(&peer, hello)?;
    limiters.guard.check_replay(hello)?;
    let active = limiters.guard.enter(&peer)?;
    let permit = Arc::clone(&limiters.permits)
        .try_acquire_owned()
        .map_err(|_| {
            Refusal::new(
                RejectReason::BUSY,
                "the node is serving its maximum number of sessions; try again shortly".into(),
            )
        })?;
    limiters.guard.precheck(&peer, hello)?;

    let data_dir = node.data_dir().to_path_buf();
    let dataset_policy = config.dataset_policy(&name);
    let loaded = tokio::task::spawn_blocking(move || {
        Dataset::load(&data_dir, &name).map(|dataset| {
            let (set, eligibility) = policy::eligible_set(&dataset, &dataset_policy);
            // Only the record ids are needed from here on (to name matched records).
            (dataset.into_record_ids(), set, eligibility)
        })
    })
    .await;
    let (record_ids, set, eligibility) = match loaded {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(err)) => {
            warn!(error = %err, "offered dataset cannot be loaded");
            return Err(Refusal::new(
                RejectReason::INTERNAL,
                "the offered dataset is not available on this node; ask its operator".into(),
            ));
        }
        Err(_) => {
            return Err(Refusal::new(
                RejectReason::INTERNAL,
                "internal error".into(),
            ));
        }
    };
    if let Some(summary) = eligibility.summary() {
        info!(kept = eligibility.kept, "dataset policy: {summary}");
    }
    policy::check_ratio(&peer.policy, hello.set_size, set.len() as u64)?;
    limiters.guard.admit(&peer, hello)?;
    Ok(Accepted {
        permit,
        active,
        record_ids: Arc::new(record_ids),
        set,
        policy: peer.policy,
    })
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

/// Sends whatever the session queued (a Reject or Abort) and ends the stream.
async fn flush(session: &mut Responder, writer: &mut FrameWriter) {
    while let Some(frame) = session.poll_transmit() {
        if writer.write_frame(&frame).await.is_err() {
            return;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), writer.finish()).await;
}

/// Writes the responder's own results (when the mode gives it any) under `results/`.
fn store_results(
    node: &Node,
    outcome: &Outcome,
    record_ids: &RecordIds,
    peer_name: &str,
) -> std::io::Result<()> {
    let Some(matches) = &outcome.matches else {
        return Ok(());
    };
    let path = node
        .results_dir()
        .join(result_file_name(peer_name, &outcome.session_id));
    write_results(&path, matches, &|i| {
        record_ids.get(i as usize).map(str::to_owned)
    })
}

/// `<unix seconds>-<peer>-<session id prefix>.csv`: sortable and unique.
pub fn result_file_name(peer_name: &str, session_id: &[u8; 16]) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs}-{peer_name}-{}.csv", hex::encode(&session_id[..6]))
}
