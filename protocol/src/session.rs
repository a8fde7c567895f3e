//! Sans-IO initiator and responder state machines for two-party ECDH-PSI.
//!
//! Shape (as in quinn-proto): the caller creates a session with its config and an
//! injected RNG, feeds it every received frame with `handle_frame`, sends whatever
//! `poll_transmit` returns in order, and reacts to `poll_event`. No clocks, files or
//! sockets; time-outs are the caller's business.
//!
//! Protocol (A = initiator with set X, B = responder with set Y, `H` = hash-to-group):
//! 1. A → `Hello`; B → `Accept` or `Reject` (decided by the caller: policy lives in
//!    the node).
//! 2. Each side draws a fresh key (`a`, `b`) and streams its own `H(x)^a` in a random
//!    (shuffled) order as `Blinded` batches, interleaved with answering the peer.
//! 3. For each peer batch, a side computes the doubly-blinded values `H(y)^(ba)`; it
//!    keeps them if it learns anything and returns them (truncated to
//!    [`DOUBLE_LEN`](crate::wire::DOUBLE_LEN) bytes) if the peer learns anything: in
//!    order when the peer learns which records matched, sorted at the end when it
//!    learns only the count.
//! 4. A side intersects its own doubly-blinded values (returned by the peer) with the
//!    peer's (computed by itself), then sends `Finish` with the transcript hash and,
//!    if it learns it, the count. Results are released only when the peer's `Finish`
//!    agrees.
//!
//! Both sides do the same work in every mode; only what is *sent back* differs.
//!
//! **Truncation bound.** Doubly-blinded values are truncated to 128 bits. Treating
//! them as uniform, the chance of any false match between sets of sizes `n` and `m`
//! is at most `n·m / 2^128`: for 10^9 × 10^9 that is below 3·10^-21.

mod exchange;
mod initiator;
mod prepared;
mod responder;
mod sent_set;

#[cfg(test)]
mod tests;

pub use initiator::{Initiator, InitiatorConfig};
pub use prepared::{PreparedSet, PreparedSetBuilder};
pub use responder::{Responder, ResponderConfig};

use crate::error::Error;
use crate::ident::KindSet;
pub use crate::transcript::Role;
use crate::wire::{Hello, OutputMode};

/// Elements blinded per `Blinded` batch: large enough to amortise per-batch costs and
/// keep all cores busy, small enough that the network never waits long.
pub const DEFAULT_BATCH_SIZE: usize = 4096;

/// Something the caller must react to.
#[derive(Debug)]
pub enum Event {
    /// Responder only: a valid `Hello` arrived; call [`Responder::accept`] or
    /// [`Responder::reject`].
    HelloReceived(Hello),
    /// Initiator only: the responder accepted and will send this many elements.
    Accepted {
        /// The responder's set size.
        peer_set_size: u64,
    },
    /// The session finished and both sides agreed.
    Completed(Outcome),
    /// The session failed while producing frames (e.g. our `Finish` disagreed with the
    /// peer's, which had arrived first). Errors while handling a frame are returned by
    /// `handle_frame` instead.
    Failed(Error),
}

/// How far the session has come, for progress bars.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Own elements blinded and queued for sending.
    pub own_sent: u64,
    /// Own set size.
    pub own_total: u64,
    /// Peer elements received and re-blinded.
    pub peer_received: u64,
    /// Peer set size (0 until known).
    pub peer_total: u64,
}

/// A record of ours that matched, with the kinds of identifier that matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchedRecord {
    /// The caller's record index given to [`PreparedSetBuilder::add`].
    pub record: u32,
    /// Which identifier kinds of this record were in the intersection.
    pub kinds: KindSet,
}

/// The agreed result of a session, as far as the mode lets this side know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Our role.
    pub role: Role,
    /// The session's output mode.
    pub mode: OutputMode,
    /// The session id from `Hello`.
    pub session_id: [u8; 16],
    /// Our set size (unique identifiers).
    pub own_set_size: u64,
    /// The peer's set size.
    pub peer_set_size: u64,
    /// The intersection size, if this side learns it.
    pub intersection_size: Option<u64>,
    /// Our matched records (sorted by record), if this side learns them.
    pub matches: Option<Vec<MatchedRecord>>,
    /// The transcript hash both sides confirmed.
    pub transcript_hash: [u8; 32],
}

/// Whether `role` learns which of its records matched in `mode`.
pub fn learns_records(mode: OutputMode, role: Role) -> bool {
    matches!(
        (mode, role),
        (OutputMode::Both, _)
            | (OutputMode::Initiator, Role::Initiator)
            | (OutputMode::Responder, Role::Responder)
    )
}

/// Whether `role` learns the intersection size in `mode`.
pub fn learns_count(mode: OutputMode, role: Role) -> bool {
    mode == OutputMode::Cardinality || learns_records(mode, role)
}

/// The calls a driver needs, common to both roles.
pub trait Session: Send {
    /// Feeds one received frame. On error the session is over; any `Abort` it owes
    /// the peer is still returned by [`Session::poll_transmit`].
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error>;
    /// The next frame to send, doing the blinding work for it if needed.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// The next event.
    fn poll_event(&mut self) -> Option<Event>;
    /// Counters for progress reporting.
    fn progress(&self) -> Progress;
    /// True once the session completed, failed or was refused.
    fn is_closed(&self) -> bool;
    /// Ends the session locally (timeout, shutdown): returns the `Abort` frame to send.
    fn abort(&mut self, code: crate::error::CloseCode) -> Option<Vec<u8>>;
}
