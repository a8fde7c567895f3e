//! Answering the peer: re-blinding its rounds with our key and proving it.
//!
//! When the peer learns which of its records matched, each of its rounds is answered in
//! order, as whole points with a batched proof ([`answer_round`]). When it learns only
//! the count, the answers are held until its whole set has arrived, then returned with
//! its record bundles shuffled and each bundle sorted, so that neither position nor order
//! within a bundle says which record matched ([`ShuffledReply`]); one proof over the sum
//! of all answers closes the reply.

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::traits::Identity;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::plan::shuffle;
use super::proof::{NonceSeed, prove};
use super::rounds::{Rounds, Units};
use crate::error::Error;
use crate::group::BlindingKey;
use crate::oprf::PublicKey;
use crate::wire::{PointBytes, ProofBytes, Reblinded};

/// How a side answers the peer's points, by what the peer learns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum ReplyKind {
    /// The peer learns nothing: no answers.
    None,
    /// The peer learns its matched records: every round answered in order, with a proof.
    InOrder,
    /// The peer learns only the count: bundles shuffled at the end, one sum proof.
    Shuffled,
}

/// The answer to one round: `k·P` for each point, in order, and the batched proof.
pub(super) fn answer_round(
    key: &BlindingKey,
    public: &PublicKey,
    seed: &NonceSeed,
    round: u64,
    points: &[PointBytes],
    decoded: &[RistrettoPoint],
    answers: Vec<PointBytes>,
) -> Result<Reblinded, Error> {
    let proof = prove(key, public, seed, round, decoded, points, &answers)?;
    Ok(Reblinded {
        points: answers,
        proof,
    })
}

/// The count-only reply being gathered, then sent.
pub(super) struct ShuffledReply {
    /// `k·P` for every peer slot, in the peer's order, until shuffled.
    held: Vec<PointBytes>,
    /// `Σ P` over every peer slot.
    peer_sum: RistrettoPoint,
    /// Bundle order, once the whole set has arrived.
    order: Option<Vec<u32>>,
    /// Next round of bundles to send.
    next_round: u64,
}

impl ShuffledReply {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            held: Vec::with_capacity(capacity),
            peer_sum: RistrettoPoint::identity(),
            order: None,
            next_round: 0,
        }
    }

    /// Holds the answers to one round of the peer's points.
    pub(super) fn hold(&mut self, decoded: &[RistrettoPoint], answers: &[PointBytes]) {
        self.peer_sum += decoded.iter().sum::<RistrettoPoint>();
        self.held.extend_from_slice(answers);
    }

    /// Every answer held so far, in the peer's order.
    pub(super) fn held(&self) -> &[PointBytes] {
        &self.held
    }

    /// Shuffles the peer's bundles (once its whole set has arrived).
    pub(super) fn seal(&mut self, peer: Units, seed: &NonceSeed) {
        if self.order.is_some() {
            return;
        }
        let mut order: Vec<u32> = (0..peer.count as u32).collect();
        let mut words = seed.stream(b"bundle order");
        shuffle(&mut order, &mut || words.next_u64());
        self.order = Some(order);
    }

    /// The next round whose chunk is due, if the reply is sealed and not all sent.
    pub(super) fn next_round(&self, rounds: Rounds, peer: Units) -> Option<u64> {
        self.order.as_ref()?;
        let k = rounds.next_nonempty(peer, self.next_round);
        (k < rounds.count()).then_some(k)
    }

    /// Whether every chunk went out.
    pub(super) fn all_sent(&self, rounds: Rounds, peer: Units) -> bool {
        self.order.is_some() && rounds.next_nonempty(peer, self.next_round) >= rounds.count()
    }

    /// The chunk of round `k`: its bundles in shuffled order, each sorted.
    pub(super) fn chunk(&mut self, rounds: Rounds, peer: Units, k: u64) -> Vec<PointBytes> {
        let Some(order) = &self.order else {
            return Vec::new();
        };
        let width = peer.width as usize;
        let slots = rounds.slots(peer, k);
        let mut out = Vec::with_capacity((slots.end - slots.start) as usize);
        for position in (slots.start / peer.width)..(slots.end / peer.width) {
            let bundle = order[position as usize] as usize * width;
            let start = out.len();
            out.extend_from_slice(&self.held[bundle..bundle + width]);
            out[start..].sort_unstable();
        }
        self.next_round = k + 1;
        out
    }

    /// The proof that the sum of every answer is `k·Σ P`.
    pub(super) fn sum_proof(
        &self,
        key: &BlindingKey,
        public: &PublicKey,
        seed: &NonceSeed,
    ) -> Result<ProofBytes, Error> {
        let c = self.peer_sum;
        let c_enc = c.compress().to_bytes();
        let d_enc = key.multiply(&c).compress().to_bytes();
        prove(key, public, seed, u64::MAX, &[c], &[c_enc], &[d_enc])
    }
}

/// A stream of uniformly random words derived from a session secret: SHA-512 of a label,
/// the secret and a counter.
pub(super) struct SeedStream {
    key: Zeroizing<[u8; 64]>,
    counter: u64,
    block: Zeroizing<[u8; 64]>,
    used: usize,
}

impl SeedStream {
    pub(super) fn new(secret: &[u8], label: &[u8]) -> Self {
        let mut h = Sha512::new();
        h.update(b"blindmatch-v2 seed stream");
        h.update((label.len() as u64).to_be_bytes());
        h.update(label);
        h.update(secret);
        Self {
            key: Zeroizing::new(h.finalize().into()),
            counter: 0,
            block: Zeroizing::new([0; 64]),
            used: 64,
        }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        if self.used == 64 {
            let mut h = Sha512::new();
            h.update(self.key.as_ref());
            h.update(self.counter.to_be_bytes());
            *self.block = h.finalize().into();
            self.counter += 1;
            self.used = 0;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.block[self.used..self.used + 8]);
        self.used += 8;
        u64::from_le_bytes(word)
    }
}
