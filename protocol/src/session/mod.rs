//! Sans-IO initiator and responder state machines for two-party ECDH-PSI, protocol
//! version 2: safe against a peer that does not follow the protocol.
//!
//! Shape (as in quinn-proto): the caller creates a session with its config, a receipt
//! signer and an injected RNG, feeds it every received frame with `handle_frame`, sends
//! whatever `poll_transmit` returns in order, and reacts to `poll_event`. No clocks,
//! files or sockets; time-outs are the caller's business. Two events wait for the
//! caller's decision: [`Event::HelloReceived`] (the responder's policy: `accept` or
//! `reject`) and [`Event::Accepted`] (the initiator's policy, before it blinds or sends
//! anything: [`Initiator::confirm`] or `abort`).
//!
//! Protocol (A = initiator with set X, B = responder with set Y, `H` = hash-to-group,
//! `G` the ristretto255 generator):
//! 1. A → `Hello` with `A = a·G`, its commitment to a fresh key `a`; B → `Accept` with
//!    `B = b·G`, or `Reject`. Both commitments are in the transcript.
//! 2. Each side sends its own `a·H(x)` as `Blinded` rounds in a random order (see
//!    [`rounds`] for the schedule both derive; in `cardinality` mode one bundle per
//!    record, see [`plan`]).
//! 3. For each round of the peer's that the peer is to learn from, a side returns
//!    `b·P` for every point `P` as whole points with a batched DLEQ proof (RFC 9497 §2.2)
//!    that each is the committed key times its point (`Reblinded`). The receiver checks
//!    the proof with multiscalar multiplication before it uses a single value, and only
//!    then truncates the values to [`DOUBLE_LEN`](crate::wire::DOUBLE_LEN) bytes for
//!    comparison. When the peer learns only the count, the whole reply comes at the end
//!    with record bundles shuffled and each sorted (`Shuffled`), closed by one proof
//!    over its sum (`SumProof`).
//! 4. When both sides learn something, replies flow in lockstep: a side answers the
//!    peer's round `k` only once it holds the peer's answers to its own rounds before
//!    `k`, so neither is ever more than one round ahead; [`Progress`] counts what each
//!    side has answered, for the audit record of an abort.
//! 5. Each side intersects, then sends `Finish`: the transcript hash, the count when
//!    both may know it, and a [`Receipt`] signed with its audit key. Results are
//!    released only when the peer's `Finish` agrees and its receipt verifies.
//!
//! **Truncation bound.** Doubly-blinded values are compared on their first 128 bits.
//! Treating them as uniform, the chance of any false match between sets of sizes `n` and
//! `m` is at most `n·m / 2^128`: for 10^9 × 10^9 that is below 3·10^-21.

mod blind;
pub(crate) mod count;
mod exchange;
pub(crate) mod finish;
mod initiator;
mod plan;
mod prepared;
mod proof;
mod queues;
mod reply;
mod responder;
pub(crate) mod rounds;
mod signer;

pub use initiator::{Initiator, InitiatorConfig};
pub use prepared::{HASHED_POINT_BYTES, PreparedSet, PreparedSetBuilder};
pub use responder::{Responder, ResponderConfig};
pub use signer::KeySigner;

use crate::error::Error;
use crate::ident::KindSet;
use crate::index::IndexFacts;
pub use crate::transcript::Role;
use crate::wire::{DatasetRef, Hello, IndexHello, LogHead, OutputMode, Receipt};

/// Most elements per round: large enough to amortise per-round costs (one proof, one
/// frame) and keep all cores busy, small enough that the network never waits long.
pub const DEFAULT_BATCH_SIZE: usize = 4096;

/// Signs this side's session receipts with its audit key. The node implements it over
/// its audit log, so that the receipt names the log head at the moment of signing.
pub trait ReceiptSigner: Send {
    /// The audit public key (Ed25519) the signatures verify under.
    fn public_key(&self) -> [u8; 32];
    /// The latest record of the signer's audit log.
    fn log_head(&self) -> LogHead;
    /// An Ed25519 signature over `message`.
    fn sign(&self, message: &[u8]) -> [u8; 64];
}

/// Who the session is between, as the caller authenticated them (TLS) and pinned them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parties {
    /// Our certificate fingerprint.
    pub own_fingerprint: [u8; 32],
    /// The peer's certificate fingerprint.
    pub peer_fingerprint: [u8; 32],
    /// The peer's pinned audit key; `None` accepts the key its receipt names, which the
    /// caller may then pin.
    pub peer_audit_key: Option<[u8; 32]>,
}

/// Something the caller must react to.
#[non_exhaustive]
#[derive(Debug)]
pub enum Event {
    /// Responder only: a valid `Hello` arrived; call [`Responder::accept`] or
    /// [`Responder::reject`].
    HelloReceived(Hello),
    /// Initiator only: the responder accepted; call [`Initiator::confirm`] to run the
    /// session or [`Session::abort`] to refuse it. Nothing has been blinded yet.
    Accepted(AcceptInfo),
    /// The session finished, both sides agreed and the peer's receipt verified.
    Completed(Box<Outcome>),
    /// The session failed while producing frames (e.g. our `Finish` disagreed with the
    /// peer's, which had arrived first). Errors while handling a frame are returned by
    /// `handle_frame` instead.
    Failed(Error),
    /// Index provider only: a valid `IndexHello` arrived; call
    /// [`IndexProvider::accept`](crate::index::IndexProvider::accept) or `reject`.
    IndexRequested(Box<IndexHello>),
}

impl Event {
    /// Whether the session waits for its caller's decision on this event.
    pub fn is_decision(&self) -> bool {
        matches!(
            self,
            Event::HelloReceived(_) | Event::Accepted(_) | Event::IndexRequested(_)
        )
    }
}

/// What the responder's `Accept` told the initiator.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptInfo {
    /// Elements the responder will send.
    pub peer_set_size: u64,
    /// Identifier kinds in the responder's set.
    pub peer_kinds: KindSet,
    /// The responder's dataset.
    pub peer_dataset: DatasetRef,
    /// Elements we will send.
    pub own_set_size: u64,
}

/// How far the session has come: for progress bars, and for the audit record of a
/// session that ends early (what each side could have learned by then).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Own elements blinded and queued for sending.
    pub own_sent: u64,
    /// Own set size (elements).
    pub own_total: u64,
    /// Peer elements received.
    pub peer_received: u64,
    /// Peer set size (0 until known).
    pub peer_total: u64,
    /// Peer elements we returned re-blinded: what the peer may have learned about.
    pub replies_sent: u64,
    /// Own elements the peer returned re-blinded (proof checked): what we may have
    /// learned about.
    pub replies_received: u64,
    /// Index sessions: index bytes moved in this session (sent or received).
    pub index_bytes: u64,
    /// Index sessions: index bytes to move in this session (0 until known).
    pub index_total: u64,
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
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Our role.
    pub role: Role,
    /// The session's output mode.
    pub mode: OutputMode,
    /// The session id from `Hello`.
    pub session_id: [u8; 16],
    /// Elements we sent (distinct identifiers, or bundle slots in `cardinality`).
    pub own_set_size: u64,
    /// Elements the peer sent.
    pub peer_set_size: u64,
    /// Distinct identifiers in the intersection, if this side learns the count.
    pub intersection_size: Option<u64>,
    /// Our records (contacts) with at least one identifier in the intersection, if this
    /// side learns the count: the figure people read.
    pub matched_record_count: Option<u64>,
    /// Our matched records (sorted by record), if this side learns which.
    pub matches: Option<Vec<MatchedRecord>>,
    /// The transcript hash both sides confirmed.
    pub transcript_hash: [u8; 32],
    /// Our dataset, as named to the peer.
    pub own_dataset: DatasetRef,
    /// The peer's dataset, as it named it.
    pub peer_dataset: DatasetRef,
    /// The receipt we signed and sent.
    pub own_receipt: Receipt,
    /// The peer's receipt, checked against the session and its audit key.
    pub peer_receipt: Receipt,
    /// Index sessions: the index the evaluations were made under, and what of it moved.
    pub index: Option<IndexFacts>,
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
    /// True while the session waits for the caller's decision on an event
    /// ([`Event::HelloReceived`], [`Event::Accepted`]); frames fed meanwhile are held.
    fn awaits_decision(&self) -> bool;
    /// Ends the session locally (timeout, shutdown, refusal): returns the `Abort` frame
    /// to send.
    fn abort(&mut self, code: crate::error::CloseCode) -> Option<Vec<u8>>;
}

#[cfg(test)]
mod tests;
