//! `connection_aborted` records: why a connection from a pinned peer ended before a
//! valid `Hello`, in fixed words (never anything the peer sent), coalesced per peer and
//! reason by [`Coalescer`] so that a flood of such connections cannot grow the audit log
//! without bound.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blindmatch_protocol::Error as ProtocolError;
use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::error::{CloseCode, PeerMisbehaved};

use crate::audit::{Coalesced, Coalescer};
use crate::identity::Fingerprint;
use crate::node::Node;

/// Why a connection from a pinned peer ended before a valid `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum NoHello {
    /// Pinned at the handshake, but removed from the configuration since.
    UnknownPeer,
    /// No stream within the idle timeout.
    NoStream,
    /// The connection ended before a stream was opened.
    GoneBeforeStream,
    /// No complete first frame within the idle timeout.
    Timeout,
    /// The stream ended cleanly before any frame.
    ClosedBeforeHello,
    /// The first frame's length prefix was over the limit, or the frame was cut short.
    UnreadableFrame,
    /// The peer reset the stream or closed the connection before a `Hello`.
    GoneBeforeHello,
    /// The first frame is not a decodable message.
    Undecodable,
    /// A `Hello` of a protocol or normalisation version we do not speak.
    Incompatible,
    /// A well-formed message other than `Hello`.
    NotHello,
    /// A `Hello` beyond this node's limits.
    HelloOverLimit,
    /// The peer sent an `Abort` first.
    PeerAborted,
    /// Our own failure before the `Hello` could be read.
    Internal,
}

impl NoHello {
    /// What the audit record says.
    pub(super) fn reason(self) -> &'static str {
        match self {
            NoHello::UnknownPeer => "the peer is no longer configured on this node",
            NoHello::NoStream => "the peer opened no session stream within the idle timeout",
            NoHello::GoneBeforeStream => "the peer closed the connection before opening a stream",
            NoHello::Timeout => "no Hello within the idle timeout",
            NoHello::ClosedBeforeHello => "the peer ended the stream before sending a Hello",
            NoHello::UnreadableFrame => {
                "the first frame could not be read (length over the limit, or cut short)"
            }
            NoHello::GoneBeforeHello => {
                "the peer reset the stream or closed the connection before sending a Hello"
            }
            NoHello::Undecodable => "the first message could not be decoded",
            NoHello::Incompatible => {
                "the Hello names a protocol or normalisation version this node does not speak"
            }
            NoHello::NotHello => "the first message was not a Hello",
            NoHello::HelloOverLimit => "the Hello is beyond this node's limits",
            NoHello::PeerAborted => "the peer aborted before sending a Hello",
            NoHello::Internal => "internal error before the Hello could be read",
        }
    }

    /// The reason for a first frame the responder session refused.
    pub(super) fn of_error(err: &ProtocolError) -> Self {
        match err {
            ProtocolError::InvalidMessage(_) => NoHello::Undecodable,
            ProtocolError::PeerIncompatible(_) => NoHello::Incompatible,
            ProtocolError::PeerAborted(_) => NoHello::PeerAborted,
            ProtocolError::PeerMisbehaved(PeerMisbehaved::UnexpectedMessage { .. }) => {
                NoHello::NotHello
            }
            ProtocolError::PeerMisbehaved(_) => NoHello::HelloOverLimit,
            _ => NoHello::Internal,
        }
    }
}

type Key = (Fingerprint, NoHello);
/// The peer's name and the close code of the latest occurrence.
type Latest = (String, CloseCode);

/// Records connections that ended before a valid `Hello` as `connection_aborted`,
/// coalesced per peer and reason. Writing is best effort: no session depends on it.
pub(super) struct NoHelloLog {
    node: Arc<Node>,
    coalescer: Mutex<Coalescer<Key, Latest>>,
}

impl NoHelloLog {
    /// A log allowing one record per peer and reason per `interval`.
    pub(super) fn new(node: Arc<Node>, interval: Duration) -> Self {
        Self {
            node,
            coalescer: Mutex::new(Coalescer::new(interval)),
        }
    }

    /// Notes one such connection; records it unless its peer and reason already have a
    /// record within the interval.
    pub(super) fn note(&self, peer: Fingerprint, peer_name: &str, why: NoHello, code: CloseCode) {
        let now = Instant::now();
        let due = self.with_coalescer(|c| c.note((peer, why), (peer_name.to_owned(), code), now));
        if let Some(due) = due {
            self.record(due);
        }
    }

    /// Records the counts whose interval has passed.
    pub(super) fn record_due(&self, now: Instant) {
        for due in self.with_coalescer(|c| c.due(now)) {
            self.record(due);
        }
    }

    /// Records every count not yet recorded (at shutdown).
    pub(super) fn record_pending(&self) {
        for due in self.with_coalescer(Coalescer::drain) {
            self.record(due);
        }
    }

    fn with_coalescer<T>(&self, f: impl FnOnce(&mut Coalescer<Key, Latest>) -> T) -> T {
        match self.coalescer.lock() {
            Ok(mut coalescer) => f(&mut coalescer),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn record(&self, due: Coalesced<Key, Latest>) {
        let Coalesced {
            key: (peer, why),
            latest: (peer_name, code),
            count,
        } = due;
        self.node.record_or_warn(AuditEvent::ConnectionAborted {
            peer_fingerprint: peer.to_string(),
            peer_name,
            reason: why.reason().to_owned(),
            close_code: u32::from(code.0),
            attempts: count,
        });
    }
}
