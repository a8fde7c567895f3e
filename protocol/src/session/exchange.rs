//! The exchange phase shared by both roles: stream own blinded elements, re-blind the
//! peer's, return what the mode says, intersect, and confirm with `Finish`.

use std::collections::VecDeque;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;

use super::sent_set::SentSet;
use super::{
    Event, MatchedRecord, Outcome, PreparedSet, Progress, Role, learns_count, learns_records,
};
use crate::error::{CloseCode, Error, PeerMisbehaved};
use crate::group::BlindingKey;
use crate::ident::{IdentKind, KindSet};
use crate::transcript::Transcript;
use crate::wire::{
    DOUBLE_LEN, DoubleBytes, Finish, MAX_BATCH_VALUES, Message, OutputMode, PointBytes,
};

/// How we return the peer's doubly-blinded values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reply {
    /// The peer learns nothing: return nothing.
    None,
    /// The peer learns its matched records: return each batch in order.
    InOrder,
    /// The peer learns only the count: return all values sorted, once complete.
    SortedAtEnd,
}

/// Parameters fixed when the exchange starts.
pub(super) struct ExchangeParams {
    pub role: Role,
    pub mode: OutputMode,
    pub session_id: [u8; 16],
    pub peer_total: u64,
    pub batch_size: usize,
}

/// The exchange phase state.
pub(super) struct Exchange {
    role: Role,
    mode: OutputMode,
    session_id: [u8; 16],
    batch_size: usize,
    key: BlindingKey,
    set: PreparedSet,
    /// Send position → unique element index: a uniformly random permutation.
    order: Vec<u32>,
    own_sent: u64,
    /// Truncated encodings of every blinded point we sent, to catch a peer that
    /// reflects them back as its own or returns them without re-blinding.
    sent_prefixes: SentSet,
    peer_total: u64,
    peer_received: u64,
    /// `H(y)^(ba)` for the peer's elements, kept when we learn anything.
    peer_double: Vec<DoubleBytes>,
    reply: Reply,
    /// Cardinality mode: how many of the sorted `peer_double` values went back so far
    /// (`None` until the peer's whole set has arrived and been sorted).
    sorted_reply_pos: Option<usize>,
    sorted_reply_sent: bool,
    /// Our own doubly-blinded values as returned by the peer (send order, or sorted).
    own_double: Vec<DoubleBytes>,
    transcript: Transcript,
    outbox: VecDeque<Vec<u8>>,
    our_finish: Option<Finish>,
    peer_finish: Option<Finish>,
    /// The intersection size, once computed, when this side learns it.
    our_count: Option<u64>,
}

impl Exchange {
    pub(super) fn new(
        params: ExchangeParams,
        set: PreparedSet,
        transcript: Transcript,
        secrets: Secrets,
    ) -> Self {
        let ExchangeParams {
            role,
            mode,
            session_id,
            peer_total,
            batch_size,
        } = params;
        let Secrets { key, order } = secrets;
        let reply = if !learns_count(mode, role.peer()) {
            Reply::None
        } else if learns_records(mode, role.peer()) {
            Reply::InOrder
        } else {
            Reply::SortedAtEnd
        };
        let learns = learns_count(mode, role);
        let keeps_peer_values = learns || reply == Reply::SortedAtEnd;
        // Sized once: our own count is known; the peer's is its declared size, capped
        // so a hostile declaration cannot make us reserve without bound (policy limits
        // it further before a session starts; beyond the cap the vector just grows).
        let peer_reserve = if keeps_peer_values {
            usize::try_from(peer_total.min(PEER_RESERVE_CAP)).unwrap_or(0)
        } else {
            0
        };
        Self {
            role,
            mode,
            session_id,
            batch_size: batch_size.clamp(1, crate::wire::MAX_BATCH_POINTS),
            key,
            order,
            own_sent: 0,
            sent_prefixes: SentSet::with_capacity(set.len()),
            peer_total,
            peer_received: 0,
            peer_double: Vec::with_capacity(peer_reserve),
            reply,
            sorted_reply_pos: None,
            sorted_reply_sent: false,
            own_double: Vec::with_capacity(if learns { set.len() } else { 0 }),
            transcript,
            outbox: VecDeque::new(),
            our_finish: None,
            peer_finish: None,
            our_count: None,
            set,
        }
    }

    fn own_total(&self) -> u64 {
        self.set.len() as u64
    }

    fn learns_count(&self) -> bool {
        learns_count(self.mode, self.role)
    }

    /// Whether `Finish` carries the sender's count, so both sides can check they
    /// agree: only when *both* may learn it (`both`, `cardinality`). In `initiator`
    /// and `responder` modes the side meant to learn nothing must not receive it.
    fn finish_carries_count(&self) -> bool {
        learns_count(self.mode, self.role) && learns_count(self.mode, self.role.peer())
    }

    pub(super) fn progress(&self) -> Progress {
        Progress {
            own_sent: self.own_sent,
            own_total: self.own_total(),
            peer_received: self.peer_received,
            peer_total: self.peer_total,
        }
    }

    /// Handles a data message; returns the outcome once both `Finish`es agree.
    pub(super) fn handle(&mut self, msg: Message, frame: &[u8]) -> Result<Option<Outcome>, Error> {
        match msg {
            Message::Blinded(points) => {
                self.transcript.received(frame);
                self.on_blinded(&points)?;
            }
            Message::Reblinded(values) => {
                self.transcript.received(frame);
                self.on_reblinded(values)?;
            }
            Message::Finish(finish) => self.on_finish(finish)?,
            Message::Abort(code) => return Err(Error::PeerAborted(code)),
            other => {
                return Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "Blinded, Reblinded or Finish",
                    got: other.message_type().name(),
                }
                .into());
            }
        }
        self.try_finish();
        self.try_complete()
    }

    /// The next frame: queued replies first, then the next batch of our own elements.
    pub(super) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(frame) = self.outbox.pop_front() {
            return Some(frame);
        }
        if self.send_sorted_reply_chunk() {
            return self.outbox.pop_front();
        }
        if self.own_sent < self.own_total() {
            self.blind_next_batch();
            if self.own_sent == self.own_total() {
                // Every element is blinded: the identifier bytes are no longer needed.
                self.set.forget_values();
            }
        }
        self.try_finish();
        self.outbox.pop_front()
    }

    /// Completion check after sending (the peer may have finished first).
    pub(super) fn try_complete(&mut self) -> Result<Option<Outcome>, Error> {
        let (Some(ours), Some(theirs)) = (self.our_finish, self.peer_finish) else {
            return Ok(None);
        };
        if !bool::from(ours.transcript.ct_eq(&theirs.transcript)) {
            return Err(PeerMisbehaved::TranscriptMismatch.into());
        }
        if theirs.intersection.is_some() != self.finish_carries_count() {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "a Finish whose intersection field matches the mode",
                got: "Finish",
            }
            .into());
        }
        if let (Some(o), Some(t)) = (ours.intersection, theirs.intersection)
            && o != t
        {
            return Err(PeerMisbehaved::IntersectionMismatch { ours: o, theirs: t }.into());
        }
        let matches = learns_records(self.mode, self.role).then(|| self.matched_records());
        Ok(Some(Outcome {
            role: self.role,
            mode: self.mode,
            session_id: self.session_id,
            own_set_size: self.own_total(),
            peer_set_size: self.peer_total,
            intersection_size: self.our_count,
            matches,
            transcript_hash: ours.transcript,
        }))
    }

    fn blind_next_batch(&mut self) {
        let start = self.own_sent as usize;
        let end = (start + self.batch_size).min(self.set.len());
        let items: Vec<(u8, &[u8])> = self.order[start..end]
            .iter()
            .map(|&i| self.set.element(i as usize))
            .collect();
        let points = self.key.blind_identifiers(&items);
        for point in &points {
            self.sent_prefixes.insert(truncate(point));
        }
        self.own_sent = end as u64;
        self.send(&Message::Blinded(points));
    }

    fn on_blinded(&mut self, points: &[PointBytes]) -> Result<(), Error> {
        let total = self.peer_received + points.len() as u64;
        if total > self.peer_total {
            return Err(PeerMisbehaved::TooManyPoints {
                declared: self.peer_total,
            }
            .into());
        }
        if points
            .iter()
            .any(|p| self.sent_prefixes.contains(&truncate(p)))
        {
            return Err(PeerMisbehaved::ReflectedPoints.into());
        }
        let doubles: Vec<DoubleBytes> = self.key.reblind(points)?.iter().map(truncate).collect();
        self.peer_received = total;
        if self.reply == Reply::InOrder {
            self.send(&Message::Reblinded(doubles.clone()));
        }
        if self.learns_count() || self.reply == Reply::SortedAtEnd {
            self.peer_double.extend_from_slice(&doubles);
        }
        Ok(())
    }

    fn on_reblinded(&mut self, values: Vec<DoubleBytes>) -> Result<(), Error> {
        if !self.learns_count() {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "Blinded or Finish (this side learns nothing in this mode)",
                got: "Reblinded",
            }
            .into());
        }
        if (self.own_double.len() + values.len()) as u64 > self.own_sent {
            return Err(PeerMisbehaved::TooManyPoints {
                declared: self.own_sent,
            }
            .into());
        }
        if values.iter().any(|v| self.sent_prefixes.contains(v)) {
            return Err(PeerMisbehaved::NotReblinded.into());
        }
        self.own_double.extend_from_slice(&values);
        Ok(())
    }

    fn on_finish(&mut self, finish: Finish) -> Result<(), Error> {
        if self.peer_finish.is_some() {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "nothing after Finish",
                got: "a second Finish",
            }
            .into());
        }
        if self.peer_received != self.peer_total {
            return Err(PeerMisbehaved::TooFewPoints {
                declared: self.peer_total,
                received: self.peer_received,
            }
            .into());
        }
        if self.learns_count() && self.own_double.len() as u64 != self.own_total() {
            return Err(PeerMisbehaved::TooFewPoints {
                declared: self.own_total(),
                received: self.own_double.len() as u64,
            }
            .into());
        }
        self.peer_finish = Some(finish);
        Ok(())
    }

    /// Sends our `Finish` once everything owed in both directions has been handled.
    fn try_finish(&mut self) {
        if self.our_finish.is_some()
            || self.own_sent != self.own_total()
            || self.peer_received != self.peer_total
            || (self.reply == Reply::SortedAtEnd && !self.sorted_reply_sent)
            || (self.learns_count() && self.own_double.len() as u64 != self.own_total())
        {
            return;
        }
        self.our_count = self.learns_count().then(|| self.intersection_size());
        let intersection = self.our_count.filter(|_| self.finish_carries_count());
        let finish = Finish {
            transcript: self.transcript.hash(),
            intersection,
        };
        self.outbox.push_back(Message::Finish(finish).to_frame());
        self.our_finish = Some(finish);
    }

    /// In cardinality mode, returns the peer's doubly-blinded values sorted (so their
    /// order reveals nothing) once the peer's whole set has arrived, one batch per
    /// call so the reply never sits in memory twice. Returns whether it queued one.
    fn send_sorted_reply_chunk(&mut self) -> bool {
        if self.reply != Reply::SortedAtEnd
            || self.sorted_reply_sent
            || self.peer_received != self.peer_total
        {
            return false;
        }
        let start = match self.sorted_reply_pos {
            Some(pos) => pos,
            None => {
                self.peer_double.sort_unstable();
                0
            }
        };
        let end = (start + MAX_BATCH_VALUES).min(self.peer_double.len());
        let chunk = self.peer_double[start..end].to_vec();
        self.sorted_reply_pos = Some(end);
        self.sorted_reply_sent = end == self.peer_double.len();
        if chunk.is_empty() {
            return false;
        }
        self.send(&Message::Reblinded(chunk));
        true
    }

    /// Sorts the peer's values once and counts our values found among them.
    fn intersection_size(&mut self) -> u64 {
        if !self.peer_double.is_sorted() {
            self.peer_double.sort_unstable();
        }
        self.own_double
            .iter()
            .filter(|v| self.peer_double.binary_search(v).is_ok())
            .count() as u64
    }

    /// Maps matched send positions back to records (called only when the peer
    /// returned our values in order).
    fn matched_records(&self) -> Vec<MatchedRecord> {
        let mut matched: Vec<(u32, u8)> = Vec::new();
        for (position, value) in self.own_double.iter().enumerate() {
            if self.peer_double.binary_search(value).is_ok() {
                let element = self.order[position] as usize;
                let kind = self.set.kind_code(element);
                matched.extend(self.set.owners(element).iter().map(|&r| (r, kind)));
            }
        }
        matched.sort_unstable();
        let mut out: Vec<MatchedRecord> = Vec::new();
        for (record, kind_code) in matched {
            let Some(kind) = IdentKind::from_code(kind_code) else {
                continue;
            };
            match out.last_mut() {
                Some(last) if last.record == record => {
                    last.kinds.insert(kind);
                }
                _ => {
                    let mut kinds = KindSet::empty();
                    kinds.insert(kind);
                    out.push(MatchedRecord { record, kinds });
                }
            }
        }
        out
    }

    fn send(&mut self, msg: &Message) {
        let frame = msg.to_frame();
        self.transcript.sent(&frame);
        self.outbox.push_back(frame);
    }
}

/// What the plumbing both roles share needs from a role's state enum.
pub(super) trait Phase {
    /// The running exchange, when the session is in that phase.
    fn exchange(&mut self) -> Option<&mut Exchange>;
    /// Whether the session is over (completed, failed or refused).
    fn is_closed(&self) -> bool;
    /// Ends the session.
    fn close(&mut self);
}

/// The outbox and event queue of a session, and the steps both roles take while
/// exchanging.
#[derive(Default)]
pub(super) struct Queues {
    pub outbox: VecDeque<Vec<u8>>,
    pub events: VecDeque<Event>,
}

impl Queues {
    /// Feeds a message to the exchange. Returns the exchange back while it runs, or
    /// `None` once it completed (the outcome is queued as an event).
    pub(super) fn handle(
        &mut self,
        mut exchange: Box<Exchange>,
        msg: Message,
        frame: &[u8],
    ) -> Result<Option<Box<Exchange>>, Error> {
        match exchange.handle(msg, frame)? {
            None => Ok(Some(exchange)),
            Some(outcome) => {
                self.outbox.append(&mut exchange.outbox);
                self.events.push_back(Event::Completed(outcome));
                Ok(None)
            }
        }
    }

    /// Polls the exchange for a frame. Returns whether the session is over (completed
    /// or failed; a failure is queued as [`Event::Failed`] with its `Abort`).
    pub(super) fn poll(&mut self, exchange: &mut Exchange) -> (Option<Vec<u8>>, bool) {
        let frame = exchange.poll_transmit();
        match exchange.try_complete() {
            Ok(None) => (frame, false),
            Ok(Some(outcome)) => {
                self.outbox.append(&mut exchange.outbox);
                self.events.push_back(Event::Completed(outcome));
                (frame, true)
            }
            Err(err) => {
                self.fail(&err);
                self.events.push_back(Event::Failed(err));
                (frame, true)
            }
        }
    }

    /// Ends `handle_frame`: on error the session closes and owes the peer an `Abort`.
    pub(super) fn after_frame<P: Phase>(
        &mut self,
        phase: &mut P,
        result: Result<(), Error>,
    ) -> Result<(), Error> {
        if let Err(err) = &result {
            phase.close();
            self.fail(err);
        }
        result
    }

    /// `poll_transmit` for either role.
    pub(super) fn transmit<P: Phase>(&mut self, phase: &mut P) -> Option<Vec<u8>> {
        let (frame, over) = self.next_frame(phase.exchange());
        if over {
            phase.close();
        }
        frame
    }

    /// `abort` for either role: the `Abort` frame to send, unless already closed.
    pub(super) fn abort<P: Phase>(phase: &mut P, code: CloseCode) -> Option<Vec<u8>> {
        if phase.is_closed() {
            return None;
        }
        phase.close();
        Some(Message::Abort(code).to_frame())
    }

    /// Queues the `Abort` an error owes the peer: none when the peer ended the session.
    pub(super) fn fail(&mut self, err: &Error) {
        if !matches!(err, Error::PeerAborted(_) | Error::Refused { .. }) {
            self.outbox
                .push_back(Message::Abort(err.close_code()).to_frame());
        }
    }

    /// The next frame: already queued ones first.
    pub(super) fn next_frame(
        &mut self,
        exchange: Option<&mut Exchange>,
    ) -> (Option<Vec<u8>>, bool) {
        if let Some(frame) = self.outbox.pop_front() {
            return (Some(frame), false);
        }
        match exchange {
            Some(exchange) => {
                let (frame, over) = self.poll(exchange);
                (frame.or_else(|| self.outbox.pop_front()), over)
            }
            None => (None, false),
        }
    }
}

/// Most peer values reserved for up front (16 Mi values, 256 MiB): see `Exchange::new`.
const PEER_RESERVE_CAP: u64 = 1 << 24;

/// The per-session secrets: a fresh blinding key and the random send order.
pub(super) struct Secrets {
    key: BlindingKey,
    order: Vec<u32>,
}

impl Secrets {
    /// Draws both from the caller's RNG.
    pub(super) fn draw<R: CryptoRng + ?Sized>(set_len: usize, rng: &mut R) -> Self {
        Self {
            key: BlindingKey::random(rng),
            order: random_permutation(set_len, rng),
        }
    }
}

fn truncate(bytes: &[u8; 32]) -> DoubleBytes {
    let mut out = [0u8; DOUBLE_LEN];
    out.copy_from_slice(&bytes[..DOUBLE_LEN]);
    out
}

/// A uniformly random permutation of `0..n` (Fisher–Yates with rejection sampling).
fn random_permutation<R: CryptoRng + ?Sized>(n: usize, rng: &mut R) -> Vec<u32> {
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = uniform_below((i + 1) as u64, rng) as usize;
        order.swap(i, j);
    }
    order
}

fn uniform_below<R: CryptoRng + ?Sized>(bound: u64, rng: &mut R) -> u64 {
    // Reject the top partial zone so every residue is equally likely.
    let zone = u64::MAX - (u64::MAX % bound);
    loop {
        let x = rng.next_u64();
        if x < zone {
            return x % bound;
        }
    }
}
