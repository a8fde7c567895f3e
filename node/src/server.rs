//! `blindmatch serve`: the long-running responder, in the mini-redis shape —
//! `run(endpoint, shutdown)`, a cap on concurrent sessions, graceful shutdown.
//!
//! Only pinned peers get past the TLS handshake (see `transport`). Each connection
//! carries one session on one bidirectional stream. Policy is decided on `Hello`,
//! before any blinding (see `policy` for the order of the rules); a refused or failed
//! session never stops the server. The peer's declared set size is what policy
//! checked and charged, and the protocol's responder cuts the peer off at the first
//! point beyond it, before re-blinding any point of that batch.
//!
//! Audit: a session is served only once `session_requested` (and then
//! `session_accepted`) is durable in the audit log; if the log cannot be written, the
//! session is refused (`Reject` internal-error) before anything is blinded. A connection
//! that ends before a valid `Hello` (no stream, silence, an undecodable first frame, the
//! stream or connection closed) is recorded as `connection_aborted` with the peer's
//! fingerprint, a fixed reason and the close code, never anything the peer sent; such
//! records are coalesced per peer and reason ([`NO_HELLO_INTERVAL`], see
//! [`Coalescer`](crate::audit::Coalescer)), so a flood of them cannot grow the log
//! without bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::index::ServerSession;
use blindmatch_protocol::session::{Event, Outcome, PreparedSet, ResponderConfig, Role};
use blindmatch_protocol::wire::{DatasetRef, Hello, RejectReason};
use tokio::sync::{Semaphore, watch};
use tracing::{Instrument, error, info, warn};

use crate::config::{PeerConfig, PeerPolicy};
use crate::dataset::{Dataset, RecordIds};
use crate::driver::{Driver, DriverError, DriverOptions, Step};
use crate::identity::Fingerprint;
use crate::node::{FactsBuilder, Node};
use crate::policy::{self, ActiveSession, Disclosure, PolicyGuard, Refusal};
use crate::receipts::{self, NodeSigner};
use crate::results::write_results;
use crate::transport::{self, FrameReader, FrameWriter, TransportError};

mod index;
mod no_hello;

use no_hello::{NoHello, NoHelloLog};

/// How long in-flight sessions may run after shutdown was asked for before they are
/// cancelled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// At most one `connection_aborted` record per peer and reason per this interval; the
/// others are counted into the next record (see [`Coalescer`](crate::audit::Coalescer)).
pub const NO_HELLO_INTERVAL: Duration = Duration::from_secs(60);

/// What the peer sees when this node cannot write its audit log.
const AUDIT_UNAVAILABLE: &str = "this node cannot write its audit log, so it serves no session until its operator repairs it; try again later";

/// Serves sessions on `endpoint` until `shutdown` flips to `true`.
pub async fn run(node: Arc<Node>, endpoint: quinn::Endpoint, mut shutdown: watch::Receiver<bool>) {
    let config = node.config();
    let limit = config.limits.max_concurrent_sessions as usize;
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let guard = PolicyGuard::open(node.data_dir(), config.limits.replay_window_days);
    let no_hello = Arc::new(NoHelloLog::new(Arc::clone(&node), NO_HELLO_INTERVAL));
    let mut flush_tick = tokio::time::interval(NO_HELLO_INTERVAL / 4);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let node = Arc::clone(&node);
                let limiters = Limiters {
                    permits: Arc::clone(&permits),
                    guard: Arc::clone(&guard),
                    no_hello: Arc::clone(&no_hello),
                };
                let cancel = cancel_rx.clone();
                sessions.spawn(async move {
                    handle_incoming(node, incoming, limiters, cancel).await
                });
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = flush_tick.tick() => no_hello.record_due(Instant::now()),
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
    no_hello.record_pending();
    endpoint.close(
        transport::close_code_to_varint(CloseCode::CANCELLED),
        b"shutting down",
    );
    endpoint.wait_idle().await;
}

/// What is shared across connections: the node-wide semaphore, the policy state
/// (budgets, rate limits, replay, per-peer concurrency) and the coalesced record of
/// connections that ended before a valid `Hello`.
struct Limiters {
    permits: Arc<Semaphore>,
    guard: Arc<PolicyGuard>,
    no_hello: Arc<NoHelloLog>,
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
        warn!(%remote, peer = %fingerprint, "connection from a peer no longer configured");
        transport::close(&conn, CloseCode::REFUSED, "unknown peer");
        limiters.no_hello.note(
            fingerprint,
            "(no longer configured)",
            NoHello::UnknownPeer,
            CloseCode::REFUSED,
        );
        return;
    };
    let span = tracing::info_span!("session", peer = %peer.name, %remote);
    async {
        let idle = node.idle_timeout();
        let stream = tokio::time::timeout(idle, conn.accept_bi()).await;
        let (send, recv) = match stream {
            Ok(Ok(stream)) => {
                // One session per connection: once this stream closes, no other may
                // open (it would hold the full window outside the session cap).
                transport::refuse_more_streams(&conn);
                stream
            }
            Ok(Err(err)) => {
                warn!(error = %err, "peer opened no stream");
                let code = match transport::peer_close_code(&err) {
                    Some(code) => code,
                    None => DriverError::from(transport::classify_connection_error(err, None))
                        .close_code(),
                };
                limiters
                    .no_hello
                    .note(fingerprint, &peer.name, NoHello::GoneBeforeStream, code);
                return;
            }
            Err(_) => {
                warn!("peer opened no stream within the idle timeout");
                transport::close(&conn, CloseCode::TIMEOUT, "no session opened");
                limiters.no_hello.note(
                    fingerprint,
                    &peer.name,
                    NoHello::NoStream,
                    CloseCode::TIMEOUT,
                );
                return;
            }
        };
        let code = serve_session(
            &node,
            &conn,
            Peer {
                fingerprint,
                name: &peer.name,
                config: &peer,
            },
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

/// The authenticated peer of a connection.
#[derive(Clone, Copy)]
struct Peer<'a> {
    fingerprint: Fingerprint,
    name: &'a str,
    config: &'a PeerConfig,
}

/// Runs one session as responder; returns the close code for the connection.
async fn serve_session(
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
    let mut driver = Driver::start(responder, reader, writer, options);
    // 1. Hello, within the idle timeout.
    let hello = match driver.step().await {
        Step::Decide(Event::HelloReceived(hello)) => hello,
        Step::Decide(Event::IndexRequested(hello)) => {
            return index::serve(node, conn, peer, driver, *hello, limiters).await;
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
    info!(session = %hex::encode(hello.session_id), mode = %hello.mode, size = hello.set_size, "session requested");
    // No session is served that the audit log does not show.
    if let Err(err) = node.record(AuditEvent::SessionRequested(facts.facts())) {
        error!(error = %err, "cannot write the audit log: session refused");
        return refuse(driver, RejectReason::INTERNAL, AUDIT_UNAVAILABLE).await;
    }

    // 2. Policy, before any blinding.
    let accepted = match decide(node, &peer.fingerprint, &hello, limiters).await {
        Ok(accepted) => accepted,
        Err(refusal) => {
            info!(reason = %refusal.reason, "session refused");
            node.record_or_warn(AuditEvent::SessionRefused {
                facts: facts.facts(),
                reason: format!("{}: {}", refusal.reason.name(), refusal.text),
            });
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
    } = accepted;
    facts.our_set_size(set.len() as u64).our_dataset(&dataset);
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
            if let Err(err) = store_results(node, &outcome, &record_ids, peer_name) {
                warn!(error = %err, "could not write results");
                node.record_or_warn(AuditEvent::SessionAborted {
                    facts: facts.facts(),
                    close_code: u32::from(CloseCode::INTERNAL.0),
                    error: format!("results not stored: {err}"),
                });
                return CloseCode::INTERNAL;
            }
            info!(matches = ?outcome.matched_record_count, ms = report.duration.as_millis() as u64, "session completed");
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

/// An accepted session: what it holds until it ends, and the set it matches.
struct Accepted {
    permit: tokio::sync::OwnedSemaphorePermit,
    active: ActiveSession,
    record_ids: Arc<RecordIds>,
    set: PreparedSet,
    dataset: DatasetRef,
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
            let reference = DatasetRef::new(&name, dataset.meta().version_bytes());
            // Only the record ids are needed from here on (to name matched records).
            (dataset.into_record_ids(), set, eligibility, reference)
        })
    })
    .await;
    let (record_ids, set, eligibility, dataset) = match loaded {
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
        dataset,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
