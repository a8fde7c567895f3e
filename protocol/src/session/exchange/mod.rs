//! The exchange phase shared by both roles: send our rounds, answer the peer's with
//! proofs, check the peer's answers to ours, intersect, and confirm with `Finish`.
//!
//! Pacing (see `rounds`):
//! - When we learn which records matched, we keep each round we sent until the peer's
//!   answer to it is checked, and send round `k` only while fewer than [`WINDOW`] rounds
//!   are unanswered; a peer that learns records from us must keep to the same window,
//!   or it is cut off.
//! - When both sides learn something (`both`, `cardinality`) we answer the peer's round
//!   `k` only once we hold its answers to our rounds before `k`: fair release, neither
//!   side more than one round ahead.

use std::collections::VecDeque;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::traits::Identity;
use subtle::ConstantTimeEq;

use super::blind::{self, Sources};
use super::count::{self, Counts, truncate};
use super::finish::ReceiptContext;
use super::plan::SendPlan;
use super::proof::{NonceSeed, check};
use super::reply::{ReplyKind, ShuffledReply, answer_round};
use super::rounds::{Rounds, Units};
use super::{Outcome, PreparedSet, Progress, ReceiptSigner, Role, learns_count, learns_records};
use crate::error::{Error, PeerMisbehaved};
use crate::group::{BlindingKey, decode_points};
use crate::oprf::PublicKey;
use crate::transcript::Transcript;
use crate::wire::{DoubleBytes, Finish, Message, OutputMode, PointBytes, Reblinded};

mod receive;

/// Own rounds that may await the peer's answers at once, when we learn records.
pub(super) const WINDOW: u64 = 2;

/// Parameters fixed when the exchange starts.
pub(super) struct ExchangeParams {
    pub role: Role,
    pub mode: OutputMode,
    pub rounds: Rounds,
    pub peer: Units,
    pub peer_commitment: PublicKey,
    pub receipts: ReceiptContext,
}

/// The per-session secrets, drawn at start from the caller's RNG, and the commitment
/// to the key that the handshake announces.
pub(super) struct Secrets {
    pub key: BlindingKey,
    pub commitment: PublicKey,
    pub plan: SendPlan,
    pub seed: NonceSeed,
}

impl Secrets {
    /// A fresh key, its commitment, the send plan for `mode` and the proof seed.
    pub(super) fn draw<R: rand_core::CryptoRng + ?Sized>(
        set: &PreparedSet,
        mode: OutputMode,
        rng: &mut R,
    ) -> Result<Self, Error> {
        let key = BlindingKey::random(rng);
        // `k` is never zero, so `k·G` is never the identity and this cannot fail.
        let commitment = PublicKey::from_point(key.commitment().0)?;
        let plan = if mode == OutputMode::Cardinality {
            SendPlan::bundles(set, rng)
        } else {
            SendPlan::elements(set, rng)
        };
        Ok(Self {
            key,
            commitment,
            plan,
            seed: NonceSeed::draw(rng),
        })
    }
}

/// A round we sent whose answers we will check.
struct Inflight {
    round: u64,
    encodings: Vec<PointBytes>,
    points: Vec<RistrettoPoint>,
}

/// The exchange phase state.
pub(super) struct Exchange {
    role: Role,
    mode: OutputMode,
    rounds: Rounds,
    own: Units,
    peer: Units,
    key: BlindingKey,
    own_commitment: PublicKey,
    peer_commitment: PublicKey,
    seed: NonceSeed,
    set: PreparedSet,
    plan: SendPlan,
    signer: Box<dyn ReceiptSigner>,
    receipts: ReceiptContext,
    /// How we answer the peer, and how it answers us.
    reply: ReplyKind,
    expect: ReplyKind,
    /// Both sides learn something: answers are released in lockstep.
    fair: bool,

    /// Next own round to send; own slots sent.
    own_next: u64,
    own_sent: u64,
    /// `Σ` of every point we sent (checked against the peer's sum proof).
    own_sum: RistrettoPoint,
    inflight: VecDeque<Inflight>,
    /// Next own round whose answers we await (the round count once all arrived).
    answered_next: u64,
    replies_received: u64,
    /// The peer's answers to our slots, truncated after their proof was checked: in our
    /// send order, or in the peer's shuffled bundle order (`cardinality`).
    own_double: Vec<DoubleBytes>,
    shuffled_sum: RistrettoPoint,
    sum_proof_checked: bool,

    /// Next peer round expected; peer slots received.
    peer_next: u64,
    peer_received: u64,
    /// `k·P` for the peer's points, truncated, when we learn anything.
    peer_double: Vec<DoubleBytes>,
    /// Answers computed and waiting for the lockstep.
    pending: VecDeque<(u64, Reblinded)>,
    /// Next peer round we answer in order; peer slots answered.
    answer_next: u64,
    replies_sent: u64,
    shuffled: Option<ShuffledReply>,
    sum_proof_sent: bool,

    transcript: Transcript,
    outbox: VecDeque<Vec<u8>>,
    counts: Option<Counts>,
    our_finish: Option<Finish>,
    peer_finish: Option<Box<Finish>>,
}

impl Exchange {
    pub(super) fn new(
        params: ExchangeParams,
        set: PreparedSet,
        transcript: Transcript,
        secrets: Secrets,
        signer: Box<dyn ReceiptSigner>,
    ) -> Self {
        let ExchangeParams {
            role,
            mode,
            rounds,
            peer,
            peer_commitment,
            receipts,
        } = params;
        let Secrets {
            key,
            commitment: own_commitment,
            plan,
            seed,
        } = secrets;
        let kind = |learner: Role| {
            if !learns_count(mode, learner) {
                ReplyKind::None
            } else if learns_records(mode, learner) {
                ReplyKind::InOrder
            } else {
                ReplyKind::Shuffled
            }
        };
        let reply = kind(role.peer());
        let expect = kind(role);
        let own = plan.units();
        // Sized once for our own set; the peer's is its declared size, capped so a hostile
        // declaration cannot make us reserve without bound (policy limits it further).
        let peer_reserve = usize::try_from(peer.slots().min(PEER_RESERVE_CAP)).unwrap_or(0);
        let keeps_peer = expect != ReplyKind::None;
        let mut exchange = Self {
            role,
            mode,
            rounds,
            own,
            peer,
            own_commitment,
            peer_commitment,
            key,
            seed,
            signer,
            receipts,
            reply,
            expect,
            fair: learns_count(mode, role) && learns_count(mode, role.peer()),
            own_next: rounds.next_nonempty(own, 0),
            own_sent: 0,
            own_sum: RistrettoPoint::identity(),
            inflight: VecDeque::new(),
            answered_next: if expect == ReplyKind::None {
                rounds.count()
            } else {
                rounds.next_nonempty(own, 0)
            },
            replies_received: 0,
            own_double: Vec::with_capacity(if keeps_peer { plan.len() } else { 0 }),
            shuffled_sum: RistrettoPoint::identity(),
            sum_proof_checked: false,
            peer_next: rounds.next_nonempty(peer, 0),
            peer_received: 0,
            peer_double: Vec::with_capacity(if keeps_peer && reply != ReplyKind::Shuffled {
                peer_reserve
            } else {
                0
            }),
            pending: VecDeque::new(),
            answer_next: rounds.next_nonempty(peer, 0),
            replies_sent: 0,
            shuffled: (reply == ReplyKind::Shuffled).then(|| ShuffledReply::new(peer_reserve)),
            sum_proof_sent: false,
            transcript,
            outbox: VecDeque::new(),
            counts: None,
            our_finish: None,
            peer_finish: None,
            set,
            plan,
        };
        if exchange.peer_next >= rounds.count() {
            // The peer sends nothing: its (empty) set is complete from the start.
            exchange.seal_shuffled();
        }
        exchange
    }

    /// Frames queued by the exchange, for the role's outbox.
    pub(super) fn outbox(&mut self) -> &mut VecDeque<Vec<u8>> {
        &mut self.outbox
    }

    pub(super) fn progress(&self) -> Progress {
        Progress {
            own_sent: self.own_sent,
            own_total: self.own.slots(),
            peer_received: self.peer_received,
            peer_total: self.peer.slots(),
            replies_sent: self.replies_sent,
            replies_received: self.replies_received,
            ..Progress::default()
        }
    }

    /// Handles a data message; returns the outcome once both `Finish`es agree.
    pub(super) fn handle(&mut self, msg: Message, frame: &[u8]) -> Result<Option<Outcome>, Error> {
        match msg {
            Message::Blinded(points) => {
                self.transcript.received(frame);
                self.on_blinded(&points)?;
            }
            Message::Reblinded(answer) => {
                self.transcript.received(frame);
                self.on_reblinded(answer)?;
            }
            Message::Shuffled(points) => {
                self.transcript.received(frame);
                self.on_shuffled(&points)?;
            }
            Message::SumProof(proof) => {
                self.transcript.received(frame);
                self.on_sum_proof(&proof)?;
            }
            Message::Finish(finish) => self.on_finish(finish)?,
            Message::Abort(code) => return Err(Error::PeerAborted(code)),
            other => {
                return Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "Blinded, Reblinded, Shuffled, SumProof or Finish",
                    got: other.message_type().name(),
                }
                .into());
            }
        }
        self.try_finish();
        self.try_complete()
    }

    /// The next frame: queued ones first, then answers the lockstep allows, then the
    /// next round of our own elements.
    pub(super) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(frame) = self.outbox.pop_front() {
            return Some(frame);
        }
        if self.send_answer() || self.send_own_round() {
            return self.outbox.pop_front();
        }
        self.try_finish();
        self.outbox.pop_front()
    }

    /// Completion check (the peer may have finished first).
    pub(super) fn try_complete(&mut self) -> Result<Option<Outcome>, Error> {
        let (Some(ours), Some(theirs)) = (&self.our_finish, &self.peer_finish) else {
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
        self.receipts
            .check_peer(&theirs.receipt, ours.transcript, theirs.intersection)?;
        let counts = self.counts.clone().unwrap_or_default();
        let learns = learns_count(self.mode, self.role);
        Ok(Some(Outcome {
            role: self.role,
            mode: self.mode,
            session_id: self.receipts.session_id,
            own_set_size: self.own.slots(),
            peer_set_size: self.peer.slots(),
            intersection_size: learns.then_some(counts.identifiers),
            matched_record_count: learns.then_some(counts.records),
            matches: counts.matches,
            transcript_hash: ours.transcript,
            own_dataset: self.receipts.own_dataset.clone(),
            peer_dataset: self.receipts.peer_dataset.clone(),
            own_receipt: ours.receipt.clone(),
            peer_receipt: theirs.receipt.clone(),
            index: None,
        }))
    }

    /// Whether `Finish` carries the count, so both sides can check they agree: only
    /// when *both* may learn it (`both`, `cardinality`).
    fn finish_carries_count(&self) -> bool {
        self.fair
    }

    /// The lockstep: may we release answers to the peer's round `k`?
    fn may_answer(&self, k: u64) -> bool {
        !self.fair || self.answered_next >= k
    }

    /// Sends one due answer (an in-order round, a shuffled chunk or the sum proof).
    fn send_answer(&mut self) -> bool {
        if let Some((k, _)) = self.pending.front()
            && self.may_answer(*k)
            && let Some((_, answer)) = self.pending.pop_front()
        {
            self.replies_sent += answer.points.len() as u64;
            self.send(&Message::Reblinded(answer));
            return true;
        }
        let Some(shuffled) = self.shuffled.as_mut() else {
            return false;
        };
        if let Some(k) = shuffled.next_round(self.rounds, self.peer) {
            if self.fair && self.answered_next < k {
                return false;
            }
            let chunk = shuffled.chunk(self.rounds, self.peer, k);
            self.replies_sent += chunk.len() as u64;
            self.send(&Message::Shuffled(chunk));
            return true;
        }
        if shuffled.all_sent(self.rounds, self.peer)
            && !self.sum_proof_sent
            && self.peer.slots() > 0
        {
            match shuffled.sum_proof(&self.key, &self.own_commitment, &self.seed) {
                Ok(proof) => {
                    self.sum_proof_sent = true;
                    self.send(&Message::SumProof(proof));
                    return true;
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Blinds and sends our next round, if the pacing allows.
    fn send_own_round(&mut self) -> bool {
        let k = self.own_next;
        if k >= self.rounds.count() {
            return false;
        }
        if self.expect == ReplyKind::InOrder && k >= self.answered_next.saturating_add(WINDOW) {
            return false;
        }
        let slots = self.rounds.slots(self.own, k);
        let (encodings, points) = blind::slots(
            Sources {
                set: &self.set,
                plan: &self.plan,
                key: &self.key,
                seed: &self.seed,
            },
            slots.start as usize..slots.end as usize,
            self.expect != ReplyKind::None,
        );
        match self.expect {
            ReplyKind::InOrder => self.inflight.push_back(Inflight {
                round: k,
                encodings: encodings.clone(),
                points,
            }),
            ReplyKind::Shuffled => self.own_sum += points.iter().sum::<RistrettoPoint>(),
            ReplyKind::None => {}
        }
        self.own_sent = slots.end;
        self.own_next = self.rounds.next_nonempty(self.own, k + 1);
        if self.own_next >= self.rounds.count() {
            // Every element is blinded: the identifier bytes are no longer needed.
            self.set.forget_values();
        }
        self.send(&Message::Blinded(encodings));
        true
    }

    /// Whether every answer the peer owes us arrived and checked out.
    fn answers_complete(&self) -> bool {
        match self.expect {
            ReplyKind::None => true,
            ReplyKind::InOrder => self.replies_received == self.own.slots(),
            ReplyKind::Shuffled => {
                self.answered_next >= self.rounds.count()
                    && (self.sum_proof_checked || self.own.slots() == 0)
            }
        }
    }

    /// Whether we sent every answer we owe.
    fn answers_sent(&self) -> bool {
        match self.reply {
            ReplyKind::None => true,
            ReplyKind::InOrder => self.pending.is_empty() && self.replies_sent == self.peer.slots(),
            ReplyKind::Shuffled => self.shuffled.as_ref().is_some_and(|s| {
                s.all_sent(self.rounds, self.peer)
                    && (self.sum_proof_sent || self.peer.slots() == 0)
            }),
        }
    }

    /// Sends our `Finish` once everything owed in both directions has been handled.
    fn try_finish(&mut self) {
        if self.our_finish.is_some()
            || self.own_next < self.rounds.count()
            || self.peer_received != self.peer.slots()
            || !self.answers_sent()
            || !self.answers_complete()
        {
            return;
        }
        let counts = self.count();
        let intersection = self.finish_carries_count().then_some(counts.identifiers);
        self.counts = Some(counts);
        let transcript = self.transcript.hash();
        let receipt = self
            .receipts
            .sign(self.signer.as_ref(), transcript, intersection);
        let finish = Finish::new(transcript, intersection, receipt);
        self.outbox
            .push_back(Message::Finish(Box::new(finish.clone())).to_frame());
        self.our_finish = Some(finish);
    }

    fn count(&mut self) -> Counts {
        if !self.peer_double.is_sorted() {
            self.peer_double.sort_unstable();
        }
        match self.expect {
            ReplyKind::None => Counts::default(),
            ReplyKind::InOrder => {
                count::in_order(&self.own_double, &self.peer_double, &self.plan, &self.set)
            }
            ReplyKind::Shuffled => {
                count::bundles(&self.own_double, self.own.width as usize, &self.peer_double)
            }
        }
    }

    fn send(&mut self, msg: &Message) {
        let frame = msg.to_frame();
        self.transcript.sent(&frame);
        self.outbox.push_back(frame);
    }
}

/// Most peer values reserved for up front (16 Mi values): see `Exchange::new`.
const PEER_RESERVE_CAP: u64 = 1 << 24;
