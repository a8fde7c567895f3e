//! The exchange's handlers of the peer's messages: its rounds (answered when the pacing
//! allows), its answers to ours (checked against its committed key before any value is
//! used), the count-only reply and its sum proof, and its `Finish`.

use super::*;

impl Exchange {
    pub(super) fn on_blinded(&mut self, points: &[PointBytes]) -> Result<(), Error> {
        let k = self.peer_next;
        if k >= self.rounds.count() {
            return Err(PeerMisbehaved::TooManyPoints {
                declared: self.peer.slots(),
            }
            .into());
        }
        if self.reply == ReplyKind::InOrder && k >= self.answer_next.saturating_add(WINDOW) {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "no round beyond the two our answers allow",
                got: "Blinded",
            }
            .into());
        }
        let slots = self.rounds.slots(self.peer, k);
        check_round_size(k, slots.end - slots.start, points.len())?;
        match self.reply {
            ReplyKind::InOrder => {
                let (answers, decoded) = self.key.reblind_keeping(points)?;
                if self.expect != ReplyKind::None {
                    self.peer_double.extend(answers.iter().map(truncate));
                }
                let answer = answer_round(
                    &self.key,
                    &self.own_commitment,
                    &self.seed,
                    k,
                    points,
                    &decoded,
                    answers,
                )?;
                self.pending.push_back((k, answer));
                self.answer_next = self.rounds.next_nonempty(self.peer, k + 1);
            }
            ReplyKind::Shuffled => {
                let (answers, decoded) = self.key.reblind_keeping(points)?;
                if let Some(shuffled) = self.shuffled.as_mut() {
                    shuffled.hold(&decoded, &answers);
                }
            }
            ReplyKind::None => {
                let answers = self.key.reblind(points)?;
                self.peer_double.extend(answers.iter().map(truncate));
            }
        }
        self.peer_received = slots.end;
        self.peer_next = self.rounds.next_nonempty(self.peer, k + 1);
        if self.peer_next >= self.rounds.count() {
            self.seal_shuffled();
        }
        Ok(())
    }

    /// Once the peer's whole set is in: our own values for counting, then the shuffle.
    pub(super) fn seal_shuffled(&mut self) {
        let Some(shuffled) = self.shuffled.as_mut() else {
            return;
        };
        if self.peer_double.is_empty() {
            self.peer_double = shuffled.held().iter().map(truncate).collect();
        }
        shuffled.seal(self.peer, &self.seed);
    }

    pub(super) fn on_reblinded(&mut self, answer: Reblinded) -> Result<(), Error> {
        if self.expect != ReplyKind::InOrder {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "no Reblinded (this side does not learn records in this mode)",
                got: "Reblinded",
            }
            .into());
        }
        let Some(round) = self.inflight.front() else {
            return Err(PeerMisbehaved::TooManyPoints {
                declared: self.own_sent,
            }
            .into());
        };
        check_round_size(
            round.round,
            round.encodings.len() as u64,
            answer.points.len(),
        )?;
        let decoded = decode_points(&answer.points)?;
        check(
            &self.peer_commitment,
            &round.points,
            &round.encodings,
            &decoded,
            &answer.points,
            &answer.proof,
        )?;
        let k = round.round;
        self.inflight.pop_front();
        self.own_double.extend(answer.points.iter().map(truncate));
        self.replies_received += answer.points.len() as u64;
        self.answered_next = self.rounds.next_nonempty(self.own, k + 1);
        Ok(())
    }

    pub(super) fn on_shuffled(&mut self, points: &[PointBytes]) -> Result<(), Error> {
        let k = self.answered_next;
        if self.expect != ReplyKind::Shuffled
            || self.own_next < self.rounds.count()
            || k >= self.rounds.count()
        {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "Shuffled only in cardinality mode, after our whole set, once per round",
                got: "Shuffled",
            }
            .into());
        }
        let slots = self.rounds.slots(self.own, k);
        check_round_size(k, slots.end - slots.start, points.len())?;
        let decoded = decode_points(points)?;
        self.shuffled_sum += decoded.iter().sum::<RistrettoPoint>();
        self.own_double.extend(points.iter().map(truncate));
        self.replies_received += points.len() as u64;
        self.answered_next = self.rounds.next_nonempty(self.own, k + 1);
        Ok(())
    }

    pub(super) fn on_sum_proof(&mut self, proof: &[u8; 64]) -> Result<(), Error> {
        if self.expect != ReplyKind::Shuffled
            || self.answered_next < self.rounds.count()
            || self.sum_proof_checked
            || self.own.slots() == 0
        {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "one SumProof after the whole shuffled reply",
                got: "SumProof",
            }
            .into());
        }
        let c = self.own_sum;
        let d = self.shuffled_sum;
        check(
            &self.peer_commitment,
            &[c],
            &[c.compress().to_bytes()],
            &[d],
            &[d.compress().to_bytes()],
            proof,
        )?;
        self.sum_proof_checked = true;
        Ok(())
    }

    pub(super) fn on_finish(&mut self, finish: Box<Finish>) -> Result<(), Error> {
        if self.peer_finish.is_some() {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "nothing after Finish",
                got: "a second Finish",
            }
            .into());
        }
        if self.peer_received != self.peer.slots() {
            return Err(PeerMisbehaved::TooFewPoints {
                declared: self.peer.slots(),
                received: self.peer_received,
            }
            .into());
        }
        if !self.answers_complete() {
            return Err(PeerMisbehaved::TooFewPoints {
                declared: self.own.slots(),
                received: self.replies_received,
            }
            .into());
        }
        self.peer_finish = Some(finish);
        Ok(())
    }
}

/// A round must carry exactly the slots the schedule gives it.
fn check_round_size(round: u64, expected: u64, got: usize) -> Result<(), Error> {
    if got as u64 == expected {
        return Ok(());
    }
    Err(PeerMisbehaved::WrongRoundSize {
        round,
        expected,
        got: got as u64,
    }
    .into())
}
