//! Length-prefixed frames over one QUIC stream: a big-endian `u32` length, then that
//! many bytes.
//!
//! The reader checks the announced length against the caller's limit before it
//! allocates anything, and grows its buffer only as bytes actually arrive, so a peer
//! cannot make us reserve memory it does not send. A stream that ends between frames
//! is a clean end; one that ends inside a frame is an error.

use super::{TransportError, classify_connection_error};

const LENGTH_PREFIX: usize = 4;
/// Largest buffer reserved up front for an incoming frame; beyond it the buffer grows
/// as data arrives.
const INITIAL_RESERVE: usize = 1 << 20;

/// Writes frames to a QUIC send stream.
#[derive(Debug)]
pub struct FrameWriter(pub quinn::SendStream);

/// Reads frames from a QUIC receive stream.
#[derive(Debug)]
pub struct FrameReader(pub quinn::RecvStream);

impl FrameWriter {
    /// Sends one frame: the length prefix and the bytes in a single stream write.
    pub async fn write_frame(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        let len = u32::try_from(frame.len())
            .map_err(|_| TransportError::FrameTooLargeToSend { len: frame.len() })?;
        let mut buf = Vec::with_capacity(LENGTH_PREFIX + frame.len());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(frame);
        // `write_chunk` takes ownership of the buffer, so quinn does not copy it again.
        self.0.write_chunk(buf.into()).await.map_err(write_error)
    }

    /// Ends the stream cleanly and waits until the peer has acknowledged every byte,
    /// so that closing the connection afterwards cannot lose the last frames.
    pub async fn finish(&mut self) -> Result<(), TransportError> {
        self.0.finish().map_err(|_| TransportError::StreamClosed)?;
        match self.0.stopped().await {
            Ok(None) => Ok(()),
            Ok(Some(code)) => Err(TransportError::StreamStopped {
                code: code.into_inner(),
            }),
            Err(quinn::StoppedError::ConnectionLost(err)) => {
                Err(classify_connection_error(err, None))
            }
            Err(quinn::StoppedError::ZeroRttRejected) => Err(TransportError::StreamClosed),
        }
    }
}

impl FrameReader {
    /// Reads the next frame of at most `max_len` bytes; `None` when the peer ended the
    /// stream cleanly between frames.
    pub async fn read_frame(&mut self, max_len: usize) -> Result<Option<Vec<u8>>, TransportError> {
        let mut prefix = [0u8; LENGTH_PREFIX];
        match self.0.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(quinn::ReadExactError::FinishedEarly(got)) => {
                return Err(TransportError::TruncatedFrame {
                    expected: LENGTH_PREFIX,
                    got,
                });
            }
            Err(quinn::ReadExactError::ReadError(err)) => return Err(read_error(err)),
        }
        let announced = u32::from_be_bytes(prefix);
        let len = usize::try_from(announced)
            .ok()
            .filter(|len| *len <= max_len)
            .ok_or(TransportError::FrameTooLarge {
                len: announced.into(),
                max: max_len,
            })?;
        let mut frame = Vec::with_capacity(len.min(INITIAL_RESERVE));
        while frame.len() < len {
            match self.0.read_chunk(len - frame.len(), true).await {
                Ok(Some(chunk)) => frame.extend_from_slice(&chunk.bytes),
                Ok(None) => {
                    return Err(TransportError::TruncatedFrame {
                        expected: LENGTH_PREFIX + len,
                        got: LENGTH_PREFIX + frame.len(),
                    });
                }
                Err(err) => return Err(read_error(err)),
            }
        }
        Ok(Some(frame))
    }
}

fn read_error(err: quinn::ReadError) -> TransportError {
    match err {
        quinn::ReadError::Reset(code) => TransportError::StreamReset {
            code: code.into_inner(),
        },
        quinn::ReadError::ConnectionLost(err) => classify_connection_error(err, None),
        quinn::ReadError::ClosedStream
        | quinn::ReadError::IllegalOrderedRead
        | quinn::ReadError::ZeroRttRejected => TransportError::StreamClosed,
    }
}

fn write_error(err: quinn::WriteError) -> TransportError {
    match err {
        quinn::WriteError::Stopped(code) => TransportError::StreamStopped {
            code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(err) => classify_connection_error(err, None),
        quinn::WriteError::ClosedStream | quinn::WriteError::ZeroRttRejected => {
            TransportError::StreamClosed
        }
    }
}
