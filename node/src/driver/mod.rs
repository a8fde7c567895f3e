//! Runs a sans-IO protocol session over one session stream: the only glue between
//! `blindmatch_protocol::session` and the network. The server's `Hello` handling, the
//! responder's exchange and the initiator all go through [`Driver`].
//!
//! Three parts run at once, so blinding overlaps with I/O and the network never waits
//! for a whole set to be blinded:
//! - a reader task moves frames from the stream into a bounded channel;
//! - a writer task moves frames from a bounded channel onto the stream;
//! - the session itself runs on a blocking thread (its batch operations use all cores
//!   through rayon). It handles every frame that has arrived before producing more of
//!   its own, and produces its own frames only while the writer has room, so memory
//!   stays bounded and the two sides can never deadlock on full pipes.
//!
//! When the session needs its caller's decision ([`Event::HelloReceived`] for the
//! responder's policy, [`Event::Accepted`] for the initiator's, [`Event::IndexRequested`]
//! for an index provider's: [`Event::is_decision`]), [`Driver::step`] returns
//! it and the session thread stops; the reader keeps at most a few frames, so the peer's
//! flow control holds the rest until the caller decided.
//!
//! A peer that goes silent for longer than the idle timeout (even while keeping the
//! QUIC connection alive) ends the session with [`CloseCode::TIMEOUT`]. A peer that goes
//! away at the transport level (resets or stops the stream, ends it early, closes the
//! connection, or the connection is lost) ends it with [`CloseCode::PEER_GONE`]; only our
//! own failures are [`CloseCode::INTERNAL`]. The stream is generic ([`FrameSource`],
//! [`FrameSink`]): QUIC in production, [`memory`] in tests.

mod io;
pub mod memory;
mod pump;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use blindmatch_protocol::Error as ProtocolError;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::session::{Event, Outcome, Progress, Session};
use blindmatch_protocol::wire::MAX_FRAME_LEN;
use tokio::sync::{mpsc, watch};

pub use io::{FrameSink, FrameSource};

use crate::transport::{self, TransportError};

/// What the reader task hands to the session: a frame, or why the stream failed.
type Incoming = mpsc::Receiver<Result<Vec<u8>, TransportError>>;

/// Frames buffered in each direction between the network tasks and the session.
const CHANNEL_FRAMES: usize = 8;

/// Why a session run ended without an agreed result.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The protocol failed (our detection or the peer's `Abort`/`Reject`).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The connection or stream failed on our side, or its framing was broken.
    #[error("connection failed: {0}")]
    Transport(TransportError),
    /// The peer went away mid-session: it reset or stopped the stream, closed the
    /// connection, or the connection was lost ([`CloseCode::PEER_GONE`]).
    #[error("{}; {RETRY}", peer_gone_text(.0))]
    PeerGone(TransportError),
    /// The peer sent nothing for longer than the idle timeout.
    #[error("the peer sent nothing for {0:?}; session aborted (timeout)")]
    Timeout(Duration),
    /// The peer ended the stream before the session finished.
    #[error(
        "the peer closed the connection mid-session: it ended the session stream before the session finished; {RETRY}"
    )]
    PeerClosedEarly,
    /// We were asked to stop (shutdown, or Ctrl-C).
    #[error("session cancelled (stopped by its operator)")]
    Cancelled,
    /// The operator removed or revoked the peer while the session ran.
    #[error("session aborted: the peer was removed from this node's configuration")]
    Revoked,
    /// We ended the session ourselves (a refusal); `0` says why.
    #[error("{0}")]
    Ended(String),
    /// The session thread failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the peer-gone messages end with.
const RETRY: &str = "the session produced no result; run it again, and ask the peer's operator if it keeps happening";

impl From<TransportError> for DriverError {
    /// Sorts a transport failure: the peer going away is [`DriverError::PeerGone`],
    /// anything else (our side, broken framing, the QUIC idle timeout) stays
    /// [`DriverError::Transport`].
    fn from(err: TransportError) -> Self {
        if transport::is_peer_gone(&err) {
            DriverError::PeerGone(err)
        } else {
            DriverError::Transport(err)
        }
    }
}

impl DriverError {
    /// The close code this failure maps to, for the audit log and the peer.
    pub fn close_code(&self) -> CloseCode {
        match self {
            DriverError::Protocol(err) => err.close_code(),
            DriverError::Transport(
                TransportError::FrameTooLarge { .. } | TransportError::TruncatedFrame { .. },
            ) => CloseCode::INVALID_MESSAGE,
            // QUIC's own idle timeout, which runs alongside ours.
            DriverError::Transport(TransportError::TimedOut { .. }) => CloseCode::TIMEOUT,
            DriverError::Transport(_) => CloseCode::INTERNAL,
            DriverError::PeerGone(_) | DriverError::PeerClosedEarly => CloseCode::PEER_GONE,
            DriverError::Timeout(_) => CloseCode::TIMEOUT,
            DriverError::Cancelled => CloseCode::CANCELLED,
            DriverError::Revoked => CloseCode::PEER_REVOKED,
            DriverError::Ended(_) => CloseCode::REFUSED,
            DriverError::Internal(_) => CloseCode::INTERNAL,
        }
    }
}

/// Says how the peer went away, in words an operator reads in the CLI and audit log.
fn peer_gone_text(err: &TransportError) -> String {
    use quinn::ConnectionError as C;
    match err {
        TransportError::PeerClosed { code, reason } if reason.is_empty() => {
            format!("the peer closed the connection mid-session (its close code: {code})")
        }
        TransportError::PeerClosed { code, reason } => format!(
            "the peer closed the connection mid-session (its close code: {code}, \"{reason}\")"
        ),
        TransportError::StreamReset { code } => format!(
            "the peer closed the connection mid-session: it reset the session stream (code {code})"
        ),
        TransportError::StreamStopped { code } => format!(
            "the peer closed the connection mid-session: it stopped reading the session stream (code {code})"
        ),
        TransportError::Connection {
            source: source @ (C::ConnectionClosed(_) | C::ApplicationClosed(_)),
            ..
        } => format!("the peer closed the connection mid-session ({source})"),
        TransportError::Connection {
            source: C::Reset, ..
        } => "the peer closed the connection mid-session: it reset the connection (it may have restarted)"
            .to_owned(),
        TransportError::Connection { source, .. } => {
            format!("the connection to the peer was lost mid-session ({source})")
        }
        other => format!("the connection to the peer was lost mid-session: {other}"),
    }
}

/// Byte counters shared with the network tasks (frame payloads plus length prefixes).
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes written to the stream.
    pub sent: AtomicU64,
    /// Bytes read from the stream.
    pub received: AtomicU64,
}

impl Traffic {
    /// `(sent, received)` so far.
    pub fn totals(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

/// What the driver needs besides the session and the stream.
#[non_exhaustive]
#[derive(Clone)]
pub struct DriverOptions {
    /// Longest silence from the peer before the session is aborted.
    pub idle_timeout: Duration,
    /// Largest first frame accepted (a server reads the `Hello` with a small limit before
    /// the peer is admitted); later frames may be up to `MAX_FRAME_LEN`.
    pub first_frame_limit: usize,
    /// Called with the session's counters after each unit of work.
    pub on_progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
    /// Flips to `true` when the node shuts down: the session ends as cancelled.
    pub cancel: Option<watch::Receiver<bool>>,
    /// Flips to `true` when the operator removes the peer: the session ends as revoked.
    pub revoked: Option<watch::Receiver<bool>>,
}

impl DriverOptions {
    /// Options with `idle_timeout` and nothing else.
    pub fn new(idle_timeout: Duration) -> Self {
        Self {
            idle_timeout,
            first_frame_limit: MAX_FRAME_LEN,
            on_progress: None,
            cancel: None,
            revoked: None,
        }
    }
}

impl std::fmt::Debug for DriverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverOptions")
            .field("idle_timeout", &self.idle_timeout)
            .field("first_frame_limit", &self.first_frame_limit)
            .finish_non_exhaustive()
    }
}

/// What a finished run reports.
#[non_exhaustive]
#[derive(Debug)]
pub struct RunReport {
    /// The agreed outcome, or why there is none.
    pub result: Result<Outcome, DriverError>,
    /// Bytes sent on the stream.
    pub bytes_sent: u64,
    /// Bytes received on the stream.
    pub bytes_received: u64,
    /// Wall time of the run.
    pub duration: Duration,
    /// The session's last counters: on failure, what each side could have learned.
    pub progress: Progress,
}

/// Where [`Driver::step`] stopped.
#[derive(Debug)]
pub enum Step {
    /// The session waits for the caller's decision on this event; decide through
    /// [`Driver::session`], then step again (or [`Driver::finish`]).
    Decide(Event),
    /// The session is over; [`Driver::finish`] reports how.
    Over,
}

/// A session running over a stream.
pub struct Driver<S> {
    session: Option<S>,
    in_rx: Option<Incoming>,
    out_tx: Option<mpsc::Sender<Vec<u8>>>,
    reader_task: tokio::task::JoinHandle<()>,
    writer_task: tokio::task::JoinHandle<Result<(), TransportError>>,
    traffic: Arc<Traffic>,
    options: DriverOptions,
    started: Instant,
    result: Option<Result<Outcome, DriverError>>,
}

impl<S: Session + 'static> Driver<S> {
    /// Starts the network tasks for `session` over `source`/`sink`. Frames the session
    /// already queued (a `Hello`) go out on the first step.
    pub fn start<R: FrameSource, W: FrameSink>(
        session: S,
        source: R,
        sink: W,
        options: DriverOptions,
    ) -> Self {
        let traffic = Arc::new(Traffic::default());
        let (in_tx, in_rx) = mpsc::channel(CHANNEL_FRAMES);
        let (out_tx, out_rx) = mpsc::channel(CHANNEL_FRAMES);
        let reader_task = tokio::spawn(io::read_frames(
            source,
            in_tx,
            Arc::clone(&traffic),
            options.first_frame_limit,
        ));
        let writer_task = tokio::spawn(io::write_frames(sink, out_rx, Arc::clone(&traffic)));
        Self {
            session: Some(session),
            in_rx: Some(in_rx),
            out_tx: Some(out_tx),
            reader_task,
            writer_task,
            traffic,
            options,
            started: Instant::now(),
            result: None,
        }
    }

    /// Runs `session` to its end, deciding nothing (a session that asks for a decision
    /// is aborted as an internal error). Never panics on peer input.
    pub async fn run<R: FrameSource, W: FrameSink>(
        session: S,
        source: R,
        sink: W,
        options: DriverOptions,
    ) -> RunReport {
        Self::start(session, source, sink, options).finish().await
    }

    /// The session, between steps.
    pub fn session(&mut self) -> Option<&mut S> {
        self.session.as_mut()
    }

    /// Bytes moved so far.
    pub fn traffic(&self) -> (u64, u64) {
        self.traffic.totals()
    }

    /// Runs the session until it needs a decision or is over.
    pub async fn step(&mut self) -> Step {
        if self.result.is_some() {
            return Step::Over;
        }
        let (Some(session), Some(in_rx), Some(out_tx)) =
            (self.session.take(), self.in_rx.take(), self.out_tx.take())
        else {
            self.result = Some(Err(DriverError::Internal(
                "the session thread was lost".into(),
            )));
            return Step::Over;
        };
        let handle = tokio::runtime::Handle::current();
        let options = self.options.clone();
        let pumped = tokio::task::spawn_blocking(move || {
            pump::pump(session, in_rx, out_tx, options, handle)
        })
        .await;
        match pumped {
            Ok(pumped) => {
                self.session = Some(pumped.session);
                self.in_rx = Some(pumped.in_rx);
                self.out_tx = Some(pumped.out_tx);
                match pumped.stop {
                    pump::Stop::Decision(event) => Step::Decide(event),
                    pump::Stop::Over(result) => {
                        self.result = Some(*result);
                        Step::Over
                    }
                }
            }
            Err(err) => {
                self.result = Some(Err(DriverError::Internal(format!(
                    "session thread failed: {err}"
                ))));
                Step::Over
            }
        }
    }

    /// Ends the session from our side with `code` (a refusal, our own failure) and
    /// reports, after the `Abort` went out.
    pub async fn abort(mut self, code: CloseCode, why: DriverError) -> RunReport {
        self.send_abort(code).await;
        self.result.get_or_insert(Err(why));
        self.complete().await
    }

    /// Runs the session to its end (aborting it as an internal error if it asks for a
    /// decision nobody made), drains what it queued and reports.
    pub async fn finish(mut self) -> RunReport {
        if let Step::Decide(_) = self.step().await {
            self.send_abort(CloseCode::INTERNAL).await;
            self.result = Some(Err(DriverError::Internal(
                "the session asked for a decision nobody made".into(),
            )));
        }
        self.complete().await
    }

    /// Queues the session's `Abort` with `code`, if it still owes one.
    async fn send_abort(&mut self, code: CloseCode) {
        if let (Some(session), Some(out_tx)) = (self.session.as_mut(), self.out_tx.as_ref())
            && let Some(frame) = session.abort(code)
        {
            let _ = out_tx.send(frame).await;
        }
    }

    /// Lets the writer drain what the session queued, then reports.
    async fn complete(mut self) -> RunReport {
        let progress = self
            .session
            .as_ref()
            .map(Session::progress)
            .unwrap_or_default();
        let mut result = self
            .result
            .take()
            .unwrap_or(Err(DriverError::Internal("no result".into())));
        // Closing the channel lets the writer finish the stream once it wrote the rest.
        drop(self.out_tx.take());
        // The writer drains what the session queued (our Finish, a Reject or an Abort)
        // and waits until the peer acknowledged it, so closing afterwards loses nothing.
        // A peer that stops reading cannot hold it (and the session's permit) for longer
        // than the idle timeout.
        match tokio::time::timeout(self.options.idle_timeout, &mut self.writer_task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => {
                // The writer's error says more than "the stream ended early", which is
                // all the session thread saw of it.
                if matches!(result, Ok(_) | Err(DriverError::PeerClosedEarly)) {
                    result = Err(err.into());
                }
            }
            Ok(Err(err)) => {
                if result.is_ok() {
                    result = Err(DriverError::Internal(format!("writer failed: {err}")));
                }
            }
            Err(_) => {
                self.writer_task.abort();
                if result.is_ok() {
                    result = Err(DriverError::Timeout(self.options.idle_timeout));
                }
            }
        }
        // After success, wait until the peer ends its stream: it does so only once it has
        // read our Finish, so closing the connection before that could discard it.
        if let (Ok(_), Some(mut in_rx)) = (&result, self.in_rx.take()) {
            let drained = tokio::time::timeout(self.options.idle_timeout, async {
                while let Some(frame) = in_rx.recv().await {
                    if frame.is_ok() {
                        tracing::warn!("peer sent data after Finish; ignored");
                    }
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!("peer did not end its stream after Finish");
            }
        }
        self.reader_task.abort();
        let (bytes_sent, bytes_received) = self.traffic.totals();
        RunReport {
            result,
            bytes_sent,
            bytes_received,
            duration: self.started.elapsed(),
            progress,
        }
    }
}

impl<S> Drop for Driver<S> {
    fn drop(&mut self) {
        self.reader_task.abort();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod memory_tests;
