//! Runs a sans-IO protocol session over one QUIC stream: the only glue between
//! `blindmatch_protocol::session` and the network.
//!
//! Three parts run at once, so blinding overlaps with I/O and the network never waits
//! for a whole set to be blinded:
//! - a reader task moves frames from the stream into a bounded channel;
//! - a writer task moves frames from a bounded channel onto the stream;
//! - the session itself runs on a blocking thread (its batch operations use all cores
//!   through rayon). It handles every frame that has arrived before producing more of
//!   its own, and produces its own batches only while the writer has room, so memory
//!   stays bounded and the two sides can never deadlock on full pipes.
//!
//! A peer that goes silent for longer than the idle timeout (even while keeping the
//! QUIC connection alive) ends the session with [`CloseCode::TIMEOUT`]. A peer that goes
//! away at the transport level (resets or stops the stream, ends it early, closes the
//! connection, or the connection is lost) ends it with [`CloseCode::PEER_GONE`]; only our
//! own failures are [`CloseCode::INTERNAL`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use blindmatch_protocol::Error as ProtocolError;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::session::{Event, Outcome, Progress, Session};
use blindmatch_protocol::wire::MAX_FRAME_LEN;
use tokio::sync::{mpsc, watch};

use crate::transport::{FrameReader, FrameWriter, TransportError};

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
    /// We were asked to stop (shutdown).
    #[error("session cancelled (node shutting down)")]
    Cancelled,
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
        if is_peer_gone(&err) {
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
            DriverError::Internal(_) => CloseCode::INTERNAL,
        }
    }
}

/// Whether `err` means the peer went away (rather than a failure of ours, broken
/// framing or a timeout).
pub fn is_peer_gone(err: &TransportError) -> bool {
    use quinn::ConnectionError as C;
    match err {
        TransportError::StreamReset { .. }
        | TransportError::StreamStopped { .. }
        | TransportError::PeerClosed { .. } => true,
        TransportError::Connection { source, .. } => matches!(
            source,
            C::ApplicationClosed(_) | C::ConnectionClosed(_) | C::Reset | C::TransportError(_)
        ),
        _ => false,
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
#[derive(Clone)]
pub struct DriverOptions {
    /// Longest silence from the peer before the session is aborted.
    pub idle_timeout: Duration,
    /// Called with the session's counters after each unit of work.
    pub on_progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
    /// Flips to `true` when the node shuts down.
    pub cancel: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for DriverOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverOptions")
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

/// What a finished run reports.
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
}

/// Runs `session` to its end over `reader`/`writer`. Frames the session already
/// queued (e.g. `Hello`, or `Accept`) are sent first. Never panics on peer input.
pub async fn run<S: Session + 'static>(
    session: S,
    reader: FrameReader,
    writer: FrameWriter,
    traffic: Arc<Traffic>,
    options: DriverOptions,
) -> RunReport {
    let started = Instant::now();
    let (in_tx, in_rx) = mpsc::channel::<Result<Vec<u8>, TransportError>>(CHANNEL_FRAMES);
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(CHANNEL_FRAMES);
    let reader_task = tokio::spawn(read_frames(reader, in_tx, Arc::clone(&traffic)));
    let mut writer_task = tokio::spawn(write_frames(writer, out_rx, Arc::clone(&traffic)));

    let handle = tokio::runtime::Handle::current();
    let pump_options = options.clone();
    let pumped =
        tokio::task::spawn_blocking(move || pump(session, in_rx, out_tx, pump_options, handle))
            .await;
    let (mut result, in_rx) = match pumped {
        Ok((result, in_rx)) => (result, Some(in_rx)),
        Err(err) => (
            Err(DriverError::Internal(format!(
                "session thread failed: {err}"
            ))),
            None,
        ),
    };
    // The writer drains what the session queued (our Finish, or an Abort) and waits
    // until the peer acknowledged it, so closing afterwards loses nothing. A peer that
    // stops reading cannot hold it (and the session's permit) for longer than the
    // idle timeout.
    match tokio::time::timeout(options.idle_timeout, &mut writer_task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => {
            // The writer's error says more than "the stream ended early", which is all
            // the session thread saw of it.
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
            writer_task.abort();
            if result.is_ok() {
                result = Err(DriverError::Timeout(options.idle_timeout));
            }
        }
    }
    // After success, wait until the peer ends its stream: it does so only once it has
    // read our Finish, so closing the connection before that could discard it.
    if let (Ok(_), Some(mut in_rx)) = (&result, in_rx) {
        let drained = tokio::time::timeout(options.idle_timeout, async {
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
    reader_task.abort();
    let (bytes_sent, bytes_received) = traffic.totals();
    RunReport {
        result,
        bytes_sent,
        bytes_received,
        duration: started.elapsed(),
    }
}

/// What the session thread waits for when it has nothing to do.
enum Wake {
    Frame(Option<Result<Vec<u8>, TransportError>>),
    Capacity,
    /// The writer task ended while the session runs: its stream failed (e.g. the peer
    /// stopped reading); `run` reports the writer's own error.
    WriterGone,
    Timeout,
    Cancelled,
}

fn pump<S: Session>(
    mut session: S,
    mut in_rx: mpsc::Receiver<Result<Vec<u8>, TransportError>>,
    out_tx: mpsc::Sender<Vec<u8>>,
    options: DriverOptions,
    handle: tokio::runtime::Handle,
) -> (Result<Outcome, DriverError>, Incoming) {
    let result = pump_session(&mut session, &mut in_rx, &out_tx, &options, &handle);
    (result, in_rx)
}

fn pump_session<S: Session>(
    session: &mut S,
    in_rx: &mut mpsc::Receiver<Result<Vec<u8>, TransportError>>,
    out_tx: &mpsc::Sender<Vec<u8>>,
    options: &DriverOptions,
    handle: &tokio::runtime::Handle,
) -> Result<Outcome, DriverError> {
    let mut outcome: Option<Outcome> = None;
    let mut failure: Option<DriverError> = None;
    let mut pending_out: Option<Vec<u8>> = None;
    let mut cancel = options.cancel.clone();
    let mut last_heard = Instant::now();

    loop {
        let mut worked = false;
        // 1. Everything that has arrived is handled first.
        while failure.is_none() && !session.is_closed() {
            match in_rx.try_recv() {
                Ok(frame) => {
                    worked = true;
                    last_heard = Instant::now();
                    on_frame(session, Some(frame), &mut failure);
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    on_frame(session, None, &mut failure);
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        drain_events(session, &mut outcome, &mut failure);
        // 2. Then our own frames, while the writer has room.
        loop {
            let frame = match pending_out.take() {
                Some(frame) => frame,
                None => match session.poll_transmit() {
                    Some(frame) => frame,
                    None => break,
                },
            };
            worked = true;
            match out_tx.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    pending_out = Some(frame);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    failure.get_or_insert(DriverError::PeerClosedEarly);
                    break;
                }
            }
            drain_events(session, &mut outcome, &mut failure);
            if in_has_frames(in_rx) {
                break;
            }
        }
        drain_events(session, &mut outcome, &mut failure);
        if let Some(progress) = &options.on_progress {
            progress(session.progress());
        }
        let finished = outcome.is_some() || failure.is_some() || session.is_closed();
        if finished && pending_out.is_none() {
            break;
        }
        if worked {
            continue;
        }
        // 3. Nothing to do: wait for a frame, room to send, the timeout or cancellation.
        let wait = options.idle_timeout.saturating_sub(last_heard.elapsed());
        let wake = handle.block_on(async {
            let cancelled = async {
                match cancel.as_mut() {
                    Some(rx) => {
                        if rx.wait_for(|stop| *stop).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                frame = in_rx.recv() => Wake::Frame(frame),
                permit = out_tx.reserve(), if pending_out.is_some() => {
                    drop(permit);
                    Wake::Capacity
                }
                _ = tokio::time::sleep(wait) => Wake::Timeout,
                _ = out_tx.closed() => Wake::WriterGone,
                _ = cancelled => Wake::Cancelled,
            }
        });
        match wake {
            Wake::Frame(Some(frame)) => {
                last_heard = Instant::now();
                on_frame(session, Some(frame), &mut failure);
            }
            Wake::Frame(None) => on_frame(session, None, &mut failure),
            Wake::Capacity => {}
            Wake::WriterGone => {
                failure.get_or_insert(DriverError::PeerClosedEarly);
            }
            Wake::Timeout => {
                let err = DriverError::Timeout(options.idle_timeout);
                abort(session, out_tx, &mut pending_out, err.close_code());
                failure.get_or_insert(err);
            }
            Wake::Cancelled => {
                abort(session, out_tx, &mut pending_out, CloseCode::CANCELLED);
                failure.get_or_insert(DriverError::Cancelled);
            }
        }
        drain_events(session, &mut outcome, &mut failure);
    }
    // A failure the session did not see itself (a broken frame, a timeout) still owes
    // the peer an Abort with its close code.
    if let Some(err) = &failure
        && !session.is_closed()
    {
        abort(session, out_tx, &mut pending_out, err.close_code());
    }
    if let Some(frame) = pending_out.take() {
        // Best effort: the writer may already be gone if the stream failed.
        let _ = out_tx.try_send(frame);
    }
    match (outcome, failure) {
        (Some(outcome), None) => Ok(outcome),
        (_, Some(err)) => Err(err),
        (None, None) => Err(DriverError::PeerClosedEarly),
    }
}

fn in_has_frames<T>(rx: &mpsc::Receiver<T>) -> bool {
    !rx.is_empty()
}

fn on_frame<S: Session>(
    session: &mut S,
    frame: Option<Result<Vec<u8>, TransportError>>,
    failure: &mut Option<DriverError>,
) {
    match frame {
        Some(Ok(frame)) => {
            if let Err(err) = session.handle_frame(&frame) {
                failure.get_or_insert(err.into());
            }
        }
        Some(Err(err)) => {
            failure.get_or_insert(err.into());
        }
        None => {
            if !session.is_closed() {
                failure.get_or_insert(DriverError::PeerClosedEarly);
            }
        }
    }
}

fn drain_events<S: Session>(
    session: &mut S,
    outcome: &mut Option<Outcome>,
    failure: &mut Option<DriverError>,
) {
    while let Some(event) = session.poll_event() {
        match event {
            Event::Completed(o) => *outcome = Some(o),
            Event::Failed(err) => {
                failure.get_or_insert(err.into());
            }
            Event::Accepted { .. } | Event::HelloReceived(_) => {}
            // `Event` is not exhaustive across versions; ignore what we do not know.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

fn abort<S: Session>(
    session: &mut S,
    out_tx: &mpsc::Sender<Vec<u8>>,
    pending_out: &mut Option<Vec<u8>>,
    code: CloseCode,
) {
    if let Some(frame) = session.abort(code) {
        // The Abort replaces whatever we were about to send.
        *pending_out = None;
        let _ = out_tx.try_send(frame);
    }
}

async fn read_frames(
    mut reader: FrameReader,
    tx: mpsc::Sender<Result<Vec<u8>, TransportError>>,
    traffic: Arc<Traffic>,
) {
    loop {
        match reader.read_frame(MAX_FRAME_LEN).await {
            Ok(Some(frame)) => {
                traffic
                    .received
                    .fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
                if tx.send(Ok(frame)).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
    }
}

/// Writes the session's frames, then finishes the stream. A peer that stops reading
/// (`STOP_SENDING`) ends it at once, even while there is nothing to write: otherwise the
/// session would only notice at the idle timeout.
async fn write_frames(
    mut writer: FrameWriter,
    mut rx: mpsc::Receiver<Vec<u8>>,
    traffic: Arc<Traffic>,
) -> Result<(), TransportError> {
    let stopped = writer.0.stopped();
    tokio::pin!(stopped);
    let mut watch_stop = true;
    loop {
        let frame = tokio::select! {
            // Queued frames first: they are written (or fail) before a stop is reported.
            biased;
            frame = rx.recv() => frame,
            stop = &mut stopped, if watch_stop => {
                match stop {
                    Ok(Some(code)) => {
                        return Err(TransportError::StreamStopped {
                            code: code.into_inner(),
                        });
                    }
                    // The connection failed: the reader reports it, and so will the
                    // next write or the finish. `Ok(None)` does not happen before we
                    // finish.
                    Ok(None) | Err(_) => watch_stop = false,
                }
                continue;
            }
        };
        let Some(frame) = frame else { break };
        writer.write_frame(&frame).await?;
        traffic
            .sent
            .fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
    }
    writer.finish().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
