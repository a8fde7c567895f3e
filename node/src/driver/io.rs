//! The frame transport the driver runs a session over, and the two network tasks.
//!
//! [`FrameSource`] and [`FrameSink`] are the two halves of one session stream. QUIC
//! ([`FrameReader`]/[`FrameWriter`]) is the production transport; [`super::memory`] is an
//! in-memory one with the same backpressure, so the driver's timeouts, cancellation and
//! flow control are tested without a network too.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use blindmatch_protocol::wire::MAX_FRAME_LEN;
use tokio::sync::mpsc;

use super::Traffic;
use crate::transport::{FrameReader, FrameWriter, TransportError};

/// Bytes each frame costs on the stream besides its payload (the length prefix).
const FRAME_OVERHEAD: u64 = 4;

/// The receiving half of a session stream.
pub trait FrameSource: Send + 'static {
    /// The next frame of at most `max_len` bytes; `None` when the peer ended the stream
    /// cleanly between frames.
    fn read_frame(
        &mut self,
        max_len: usize,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send;
}

/// The sending half of a session stream.
pub trait FrameSink: Send + 'static {
    /// Sends one frame, waiting while the peer's flow control allows no more.
    fn write_frame(
        &mut self,
        frame: &[u8],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Ends the stream and waits until the peer has every byte.
    fn finish(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Resolves with the peer's code when it stops reading; `None` if the stream ended
    /// otherwise. Independent of `self`, so it can be awaited while writing.
    fn stopped(&self) -> impl Future<Output = Option<u64>> + Send + 'static;
}

impl FrameSource for FrameReader {
    fn read_frame(
        &mut self,
        max_len: usize,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, TransportError>> + Send {
        FrameReader::read_frame(self, max_len)
    }
}

impl FrameSink for FrameWriter {
    fn write_frame(
        &mut self,
        frame: &[u8],
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        FrameWriter::write_frame(self, frame)
    }

    fn finish(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send {
        FrameWriter::finish(self)
    }

    fn stopped(&self) -> impl Future<Output = Option<u64>> + Send + 'static {
        let stopped = self.0.stopped();
        async move {
            match stopped.await {
                Ok(Some(code)) => Some(code.into_inner()),
                Ok(None) | Err(_) => None,
            }
        }
    }
}

/// Moves frames from `source` into `tx`: the first with `first_limit`, the rest with
/// [`MAX_FRAME_LEN`]. Ends at the stream's end or its first error (which it passes on).
pub(super) async fn read_frames<R: FrameSource>(
    mut source: R,
    tx: mpsc::Sender<Result<Vec<u8>, TransportError>>,
    traffic: Arc<Traffic>,
    first_limit: usize,
) {
    let mut limit = first_limit;
    loop {
        match source.read_frame(limit).await {
            Ok(Some(frame)) => {
                limit = MAX_FRAME_LEN;
                traffic
                    .received
                    .fetch_add(frame.len() as u64 + FRAME_OVERHEAD, Ordering::Relaxed);
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
pub(super) async fn write_frames<W: FrameSink>(
    mut sink: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    traffic: Arc<Traffic>,
) -> Result<(), TransportError> {
    let stopped = sink.stopped();
    tokio::pin!(stopped);
    let mut watch_stop = true;
    loop {
        let frame = tokio::select! {
            // Queued frames first: they are written (or fail) before a stop is reported.
            biased;
            frame = rx.recv() => frame,
            stop = &mut stopped, if watch_stop => {
                match stop {
                    Some(code) => return Err(TransportError::StreamStopped { code }),
                    // The stream or connection ended otherwise: the reader reports it,
                    // and so will the next write or the finish.
                    None => watch_stop = false,
                }
                continue;
            }
        };
        let Some(frame) = frame else { break };
        sink.write_frame(&frame).await?;
        traffic
            .sent
            .fetch_add(frame.len() as u64 + FRAME_OVERHEAD, Ordering::Relaxed);
    }
    sink.finish().await
}
