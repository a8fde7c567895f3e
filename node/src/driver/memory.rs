//! An in-memory session stream with QUIC's behaviour where the driver depends on it:
//! bounded buffering (a writer waits when the reader falls behind), a clean end only on
//! `finish` (a writer dropped without it looks like a reset stream), and a stop signal
//! when the reader goes away. For tests and examples: a session run over it exercises the
//! same driver code paths as over QUIC.

use std::future::Future;

use tokio::sync::{mpsc, watch};

use super::io::{FrameSink, FrameSource};
use crate::transport::TransportError;

enum Item {
    Frame(Vec<u8>),
    End,
}

/// The receiving half of an in-memory stream.
pub struct MemorySource {
    rx: mpsc::Receiver<Item>,
    /// Tells the writer we stopped reading (on drop).
    stop_tx: watch::Sender<bool>,
    ended: bool,
}

/// The sending half of an in-memory stream.
pub struct MemorySink {
    tx: Option<mpsc::Sender<Item>>,
    stop_rx: watch::Receiver<bool>,
}

/// One direction: a sink and the source it feeds, buffering at most `frames` frames.
pub fn stream(frames: usize) -> (MemorySink, MemorySource) {
    let (tx, rx) = mpsc::channel(frames.max(1));
    let (stop_tx, stop_rx) = watch::channel(false);
    (
        MemorySink {
            tx: Some(tx),
            stop_rx,
        },
        MemorySource {
            rx,
            stop_tx,
            ended: false,
        },
    )
}

/// A bidirectional session stream: each end gets a source and a sink.
pub fn duplex(frames: usize) -> ((MemorySource, MemorySink), (MemorySource, MemorySink)) {
    let (a_sink, b_source) = stream(frames);
    let (b_sink, a_source) = stream(frames);
    ((a_source, a_sink), (b_source, b_sink))
}

impl FrameSource for MemorySource {
    async fn read_frame(&mut self, max_len: usize) -> Result<Option<Vec<u8>>, TransportError> {
        if self.ended {
            return Ok(None);
        }
        match self.rx.recv().await {
            Some(Item::Frame(frame)) if frame.len() > max_len => {
                Err(TransportError::FrameTooLarge {
                    len: frame.len() as u64,
                    max: max_len,
                })
            }
            Some(Item::Frame(frame)) => Ok(Some(frame)),
            Some(Item::End) => {
                self.ended = true;
                Ok(None)
            }
            None => Err(TransportError::StreamReset { code: 0 }),
        }
    }
}

impl Drop for MemorySource {
    /// Like a QUIC receive stream dropped before its end: the writer is told to stop.
    fn drop(&mut self) {
        if !self.ended {
            let _ = self.stop_tx.send(true);
        }
    }
}

impl FrameSink for MemorySink {
    fn write_frame(
        &mut self,
        frame: &[u8],
    ) -> impl Future<Output = Result<(), TransportError>> + Send {
        let tx = self.tx.clone();
        let frame = frame.to_vec();
        async move {
            let Some(tx) = tx else {
                return Err(TransportError::StreamClosed);
            };
            tx.send(Item::Frame(frame))
                .await
                .map_err(|_| TransportError::StreamStopped { code: 0 })
        }
    }

    fn finish(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send {
        let tx = self.tx.take();
        async move {
            let Some(tx) = tx else {
                return Err(TransportError::StreamClosed);
            };
            tx.send(Item::End)
                .await
                .map_err(|_| TransportError::StreamStopped { code: 0 })?;
            // Every byte delivered: the buffer is empty again.
            while tx.capacity() < tx.max_capacity() {
                if tx.is_closed() {
                    return Err(TransportError::StreamStopped { code: 0 });
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            Ok(())
        }
    }

    fn stopped(&self) -> impl Future<Output = Option<u64>> + Send + 'static {
        let mut stop = self.stop_rx.clone();
        async move {
            match stop.wait_for(|stopped| *stopped).await {
                Ok(_) => Some(0),
                Err(_) => None,
            }
        }
    }
}
