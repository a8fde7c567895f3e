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

use blindmatch_protocol::error::CloseCode;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{Instrument, info, warn};

use crate::driver::DriverError;
use crate::node::Node;
use crate::policy::PolicyGuard;
use crate::transport::{self, FrameReader, FrameWriter, PinnedPeers};

mod admission;
mod announce;
mod index;
pub mod instance;
mod no_hello;
mod refusals;
mod reload;
mod session;

use no_hello::{NoHello, NoHelloLog};
use refusals::RefusalLog;
use reload::{Reloader, Revocations};
use session::{Peer, serve_session};

pub use announce::TARGET as SESSIONS_LOG_TARGET;

/// How long in-flight sessions may run after shutdown was asked for before they are
/// cancelled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// At most one `connection_aborted` record per peer and reason per this interval; the
/// others are counted into the next record (see [`Coalescer`](crate::audit::Coalescer)).
pub const NO_HELLO_INTERVAL: Duration = Duration::from_secs(60);

/// What the peer sees when this node cannot write its audit log.
const AUDIT_UNAVAILABLE: &str = "this node cannot write its audit log, so it serves no session until its operator repairs it; try again later";

/// How a server runs besides its node and endpoint.
#[non_exhaustive]
#[derive(Debug)]
pub struct ServeOptions {
    /// Flips to `true` to stop: no new sessions, those in flight get [`Self::grace`].
    pub shutdown: watch::Receiver<bool>,
    /// Flips to `true` to stop at once: sessions in flight are cancelled.
    pub force: Option<watch::Receiver<bool>>,
    /// Each message asks for `node.toml` to be reloaded now (SIGHUP).
    pub reload: Option<mpsc::Receiver<()>>,
    /// The peers the endpoint accepts, updated when `node.toml` changes; without it the
    /// configuration is not reloaded.
    pub pinned: Option<PinnedPeers>,
    /// How long sessions in flight may finish after a stop was asked for.
    pub grace: Duration,
}

impl ServeOptions {
    /// Stop on `shutdown`, the default grace, no reloading.
    pub fn new(shutdown: watch::Receiver<bool>) -> Self {
        Self {
            shutdown,
            force: None,
            reload: None,
            pinned: None,
            grace: SHUTDOWN_GRACE,
        }
    }
}

/// Serves sessions on `endpoint` until `shutdown` flips to `true`.
pub async fn run(node: Arc<Node>, endpoint: quinn::Endpoint, shutdown: watch::Receiver<bool>) {
    run_with(node, endpoint, ServeOptions::new(shutdown)).await;
}

/// Serves sessions on `endpoint` as `options` say.
pub async fn run_with(node: Arc<Node>, endpoint: quinn::Endpoint, options: ServeOptions) {
    let ServeOptions {
        mut shutdown,
        force,
        mut reload,
        pinned,
        grace,
    } = options;
    let config = node.config();
    let limit = config.limits.max_concurrent_sessions as usize;
    let permits = Arc::new(Semaphore::new(limit.max(1)));
    let guard = PolicyGuard::open(node.data_dir(), config.limits.replay_window_days);
    let no_hello = Arc::new(NoHelloLog::new(Arc::clone(&node), NO_HELLO_INTERVAL));
    let refusals = Arc::new(RefusalLog::new(Arc::clone(&node), NO_HELLO_INTERVAL));
    let revocations = Arc::new(Revocations::default());
    let mut reloader =
        pinned.map(|pinned| Reloader::new(Arc::clone(&node), pinned, Arc::clone(&revocations)));
    let mut flush_tick = tokio::time::interval(NO_HELLO_INTERVAL / 4);
    flush_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut poll_tick = tokio::time::interval(reload::POLL);
    poll_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                    refusals: Arc::clone(&refusals),
                    revocations: Arc::clone(&revocations),
                };
                let cancel = cancel_rx.clone();
                sessions.spawn(async move {
                    handle_incoming(node, incoming, limiters, cancel).await
                });
            }
            _ = shutdown.wait_for(|stop| *stop) => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = flush_tick.tick() => {
                no_hello.record_due(Instant::now());
                refusals.record_due(Instant::now());
            }
            _ = poll_tick.tick(), if reloader.is_some() => {
                if let Some(reloader) = reloader.as_mut() {
                    reloader.check(false);
                }
            }
            Some(()) = async { reload.as_mut()?.recv().await }, if reload.is_some() => {
                if let Some(reloader) = reloader.as_mut() {
                    reloader.check(true);
                }
            }
        }
    }
    info!(in_flight = sessions.len(), "shutting down: no new sessions");
    endpoint.set_server_config(None);
    let mut force = force;
    let forced = async {
        if let Some(rx) = force.as_mut()
            && rx.wait_for(|stop| *stop).await.is_ok()
        {
            return;
        }
        std::future::pending::<()>().await
    };
    let drained = tokio::select! {
        drained = tokio::time::timeout(grace, async {
            while sessions.join_next().await.is_some() {}
        }) => drained.is_ok(),
        () = forced => false,
    };
    if !drained {
        info!(
            in_flight = sessions.len(),
            "cancelling the sessions still in flight"
        );
        let _ = cancel_tx.send(true);
        while sessions.join_next().await.is_some() {}
    }
    no_hello.record_pending();
    refusals.record_pending();
    endpoint.close(
        transport::close_code_to_varint(CloseCode::CANCELLED),
        b"shutting down",
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}

/// What is shared across connections: the node-wide semaphore, the policy state
/// (budgets, rate limits, replay, per-peer concurrency) and the coalesced record of
/// connections that ended before a valid `Hello`.
struct Limiters {
    permits: Arc<Semaphore>,
    guard: Arc<PolicyGuard>,
    no_hello: Arc<NoHelloLog>,
    refusals: Arc<RefusalLog>,
    revocations: Arc<Revocations>,
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
        // A session cancelled by our shutdown is closed at once: the grace is over.
        if code == CloseCode::CANCELLED
            || tokio::time::timeout(Duration::from_secs(5), conn.closed())
                .await
                .is_err()
        {
            transport::close(&conn, code, "");
        }
    }
    .instrument(span)
    .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
