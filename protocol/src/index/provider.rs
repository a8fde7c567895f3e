//! The provider's index session: waits for `IndexHello`, lets the caller decide (policy
//! lives in the node), sends the index from where the client's copy ends, evaluates the
//! client's blinded identifiers under the epoch key with a batched DLEQ proof per batch,
//! and closes with signed receipts.
//!
//! Invariants: nothing is sent before the caller accepted; the client is cut off at the
//! first identifier beyond the count its `IndexHello` declared (which policy checked and
//! charged), before any of that batch is evaluated; `Finish` is answered only once every
//! declared identifier was evaluated and the client's transcript and receipt agree with
//! ours. The provider learns the number of identifiers and nothing about which matched.

use std::collections::VecDeque;

use rand_core::CryptoRng;

use super::IndexFacts;
use super::rng::SessionRng;
use super::store::{IndexSource, IndexSummary};
use crate::error::{CloseCode, Error, PeerIncompatible, PeerMisbehaved};
use crate::oprf::{Mode, OprfKey};
use crate::session::finish::ReceiptContext;
use crate::session::{Event, Outcome, Progress, ReceiptSigner, ResponderConfig, Role, Session};
use crate::transcript::Transcript;
use crate::wire::{
    Finish, IndexAccept, IndexChunk, IndexHello, MAX_INDEX_CHUNK, Message, OutputMode,
    PROTOCOL_VERSION, Reblinded, Reject, RejectReason, check_text,
};

/// What the caller decides on: the client's `IndexHello`.
pub type IndexRequest = IndexHello;

/// The provider state machine.
pub struct IndexProvider {
    state: State,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    progress: Progress,
}

enum State {
    ExpectHello(Box<(ResponderConfig, Box<dyn ReceiptSigner>)>),
    ExpectDecision(Box<Waiting>),
    Serving(Box<Serving>),
    Closed,
}

struct Waiting {
    config: ResponderConfig,
    signer: Box<dyn ReceiptSigner>,
    hello: IndexHello,
    transcript: Transcript,
}

struct Serving {
    signer: Box<dyn ReceiptSigner>,
    hello: IndexHello,
    transcript: Transcript,
    key: OprfKey,
    summary: IndexSummary,
    source: Box<dyn IndexSource>,
    rng: SessionRng,
    receipts: ReceiptContext,
    send_from: u64,
    next_offset: u64,
    /// Batches received and not yet evaluated.
    pending: VecDeque<Vec<[u8; 32]>>,
    received: u64,
    answered: u64,
}

impl IndexProvider {
    /// A provider waiting for `IndexHello`.
    pub fn new(config: ResponderConfig, signer: Box<dyn ReceiptSigner>) -> Self {
        Self {
            state: State::ExpectHello(Box::new((config, signer))),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            progress: Progress::default(),
        }
    }

    /// Accepts the requested session with the epoch `key` of the index `summary`
    /// describes, whose file `source` reads.
    ///
    /// # Errors
    ///
    /// `ApiMisuse` without a pending `IndexHello`, or for a key that is not a VOPRF key
    /// or not the index's; the session is then left as it was.
    pub fn accept<R: CryptoRng + ?Sized>(
        &mut self,
        key: OprfKey,
        summary: IndexSummary,
        source: Box<dyn IndexSource>,
        rng: &mut R,
    ) -> Result<(), Error> {
        if !matches!(self.state, State::ExpectDecision(_)) {
            return Err(Error::ApiMisuse(
                "accept called without a pending IndexHello",
            ));
        }
        if key.mode() != Mode::Voprf || key.public_key().to_bytes() != summary.public_key {
            return Err(Error::ApiMisuse(
                "the OPRF key is not the index's VOPRF key",
            ));
        }
        check_text("dataset name longer than 1024 bytes", &summary.dataset.name)?;
        let State::ExpectDecision(waiting) = std::mem::replace(&mut self.state, State::Closed)
        else {
            return Err(Error::ApiMisuse(
                "accept called without a pending IndexHello",
            ));
        };
        let Waiting {
            config,
            signer,
            hello,
            mut transcript,
        } = *waiting;
        let send_from = match hello.held {
            Some(held) if held.epoch == summary.epoch && held.len <= summary.file_len => held.len,
            _ => 0,
        };
        let mut accept = IndexAccept::new(summary.epoch, summary.public_key);
        accept.elements = summary.elements;
        accept.file_len = summary.file_len;
        accept.send_from = send_from;
        accept.kinds = summary.kinds;
        accept.dataset = summary.dataset.clone();
        let frame = Message::IndexAccept(Box::new(accept)).to_frame();
        transcript.sent(&frame);
        self.outbox.push_back(frame);
        let receipts = ReceiptContext {
            role: Role::Responder,
            mode: OutputMode::Initiator,
            session_id: hello.session_id,
            parties: config.parties,
            own_dataset: summary.dataset.clone(),
            peer_dataset: hello.own_dataset.clone(),
            own_set_size: summary.elements,
            peer_set_size: hello.query_count,
        };
        self.progress = Progress {
            own_total: summary.elements,
            peer_total: hello.query_count,
            index_total: summary.file_len - send_from,
            ..Progress::default()
        };
        self.state = State::Serving(Box::new(Serving {
            signer,
            hello,
            transcript,
            key,
            summary,
            source,
            rng: SessionRng::draw(rng),
            receipts,
            send_from,
            next_offset: send_from,
            pending: VecDeque::new(),
            received: 0,
            answered: 0,
        }));
        Ok(())
    }

    /// Refuses the requested session with a reason the client's user can act on.
    ///
    /// # Errors
    ///
    /// `ApiMisuse` without a pending `IndexHello`; `InvalidArgument` for a text over the
    /// wire limit. Either way the session is left as it was.
    pub fn reject(&mut self, reason: RejectReason, text: &str) -> Result<(), Error> {
        if !matches!(self.state, State::ExpectDecision(_)) {
            return Err(Error::ApiMisuse(
                "reject called without a pending IndexHello",
            ));
        }
        check_text("refusal text longer than 1024 bytes", text)?;
        self.state = State::Closed;
        self.outbox.push_back(
            Message::Reject(Reject {
                reason,
                text: text.to_owned(),
            })
            .to_frame(),
        );
        Ok(())
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        let decoded = Message::decode(frame);
        match std::mem::replace(&mut self.state, State::Closed) {
            State::ExpectHello(waiting) => {
                let (config, signer) = *waiting;
                match decoded {
                    Ok(Message::IndexHello(hello)) => self.on_hello(config, signer, *hello, frame),
                    Ok(Message::Abort(code)) => Err(Error::PeerAborted(code)),
                    Ok(other) => Err(PeerMisbehaved::UnexpectedMessage {
                        expected: "IndexHello",
                        got: other.message_type().name(),
                    }
                    .into()),
                    Err(Error::PeerIncompatible(incompatible)) => {
                        self.refuse_version(&incompatible);
                        Err(incompatible.into())
                    }
                    Err(err) => Err(err),
                }
            }
            State::ExpectDecision(_) => match decoded? {
                Message::Abort(code) => Err(Error::PeerAborted(code)),
                other => Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "nothing until we answer IndexHello",
                    got: other.message_type().name(),
                }
                .into()),
            },
            State::Serving(mut serving) => {
                let done = serving.handle(decoded?, frame, &mut self.outbox)?;
                self.progress.peer_received = serving.received;
                match done {
                    Some(outcome) => {
                        self.events.push_back(Event::Completed(Box::new(outcome)));
                    }
                    None => self.state = State::Serving(serving),
                }
                Ok(())
            }
            State::Closed => Err(PeerMisbehaved::AfterEnd.into()),
        }
    }

    fn on_hello(
        &mut self,
        config: ResponderConfig,
        signer: Box<dyn ReceiptSigner>,
        hello: IndexHello,
        frame: &[u8],
    ) -> Result<(), Error> {
        if hello.query_count > config.max_peer_set_size {
            return Err(PeerMisbehaved::SetTooLarge {
                size: hello.query_count,
                max: config.max_peer_set_size,
            }
            .into());
        }
        let mut transcript = Transcript::new(Role::Responder, config.channel_binding);
        transcript.received(frame);
        self.events
            .push_back(Event::IndexRequested(Box::new(hello.clone())));
        self.state = State::ExpectDecision(Box::new(Waiting {
            config,
            signer,
            hello,
            transcript,
        }));
        Ok(())
    }

    /// An `IndexHello` of another version gets a `Reject` naming both versions.
    fn refuse_version(&mut self, incompatible: &PeerIncompatible) {
        let text = format!(
            "incompatible peer: {incompatible}; this node speaks protocol version {PROTOCOL_VERSION} and its identifier normalisation; both nodes need the same blindmatch release"
        );
        self.outbox.push_back(
            Message::Reject(Reject {
                reason: RejectReason::UNSUPPORTED_VERSION,
                text,
            })
            .to_frame(),
        );
    }

    fn produce(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let State::Serving(serving) = &mut self.state else {
            return Ok(None);
        };
        let frame = serving.next_frame()?;
        self.progress.index_bytes = serving.next_offset - serving.send_from;
        self.progress.replies_sent = serving.answered;
        Ok(frame)
    }
}

impl Serving {
    /// Handles a frame while serving; the outcome once the session completed.
    fn handle(
        &mut self,
        msg: Message,
        frame: &[u8],
        outbox: &mut VecDeque<Vec<u8>>,
    ) -> Result<Option<Outcome>, Error> {
        match msg {
            Message::Evaluate(points) => {
                let declared = self.hello.query_count;
                if self.received + points.len() as u64 > declared {
                    return Err(PeerMisbehaved::TooManyPoints { declared }.into());
                }
                self.transcript.received(frame);
                self.received += points.len() as u64;
                self.pending.push_back(points);
                Ok(None)
            }
            Message::Finish(finish) => self.on_finish(*finish, outbox).map(Some),
            Message::Abort(code) => Err(Error::PeerAborted(code)),
            other => Err(PeerMisbehaved::UnexpectedMessage {
                expected: "Evaluate or Finish",
                got: other.message_type().name(),
            }
            .into()),
        }
    }

    /// The client's `Finish`: everything declared was evaluated and sent, and its
    /// transcript and receipt agree with ours; answers with our own `Finish`.
    fn on_finish(
        &mut self,
        theirs: Finish,
        outbox: &mut VecDeque<Vec<u8>>,
    ) -> Result<Outcome, Error> {
        let declared = self.hello.query_count;
        if self.received < declared || !self.pending.is_empty() {
            return Err(PeerMisbehaved::TooFewPoints {
                declared,
                received: self.received,
            }
            .into());
        }
        if self.next_offset < self.summary.file_len {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "the rest of the index to be sent",
                got: "Finish",
            }
            .into());
        }
        let transcript = self.transcript.hash();
        if theirs.transcript != transcript {
            return Err(PeerMisbehaved::TranscriptMismatch.into());
        }
        if theirs.intersection.is_some() {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "a Finish without a count",
                got: "a Finish with a count",
            }
            .into());
        }
        self.receipts
            .check_peer(&theirs.receipt, transcript, None)?;
        let receipt = self.receipts.sign(self.signer.as_ref(), transcript, None);
        outbox.push_back(
            Message::Finish(Box::new(Finish::new(transcript, None, receipt.clone()))).to_frame(),
        );
        Ok(Outcome {
            role: Role::Responder,
            mode: OutputMode::Initiator,
            session_id: self.hello.session_id,
            own_set_size: self.summary.elements,
            peer_set_size: declared,
            intersection_size: None,
            matched_record_count: None,
            matches: None,
            transcript_hash: transcript,
            own_dataset: self.summary.dataset.clone(),
            peer_dataset: self.hello.own_dataset.clone(),
            own_receipt: receipt,
            peer_receipt: theirs.receipt,
            index: Some(IndexFacts {
                epoch: self.summary.epoch,
                elements: self.summary.elements,
                file_len: self.summary.file_len,
                sent_from: self.send_from,
                bytes: self.summary.file_len - self.send_from,
            }),
        })
    }

    /// The next chunk of the index, else the evaluation of the oldest pending batch.
    fn next_frame(&mut self) -> Result<Option<Vec<u8>>, Error> {
        if self.next_offset < self.summary.file_len {
            let left = self.summary.file_len - self.next_offset;
            let len = left.min(MAX_INDEX_CHUNK as u64) as usize;
            let mut bytes = vec![0u8; len];
            self.source.read_at(self.next_offset, &mut bytes)?;
            let frame = Message::IndexChunk(IndexChunk {
                offset: self.next_offset,
                bytes,
            })
            .to_frame();
            self.next_offset += len as u64;
            self.transcript.sent(&frame);
            return Ok(Some(frame));
        }
        let Some(batch) = self.pending.pop_front() else {
            return Ok(None);
        };
        let (points, proof) = self.key.evaluate_batch(&batch, &mut self.rng)?;
        let proof = proof.ok_or(Error::ApiMisuse("a VOPRF key gave no proof"))?;
        self.answered += points.len() as u64;
        let frame = Message::Evaluated(Reblinded {
            points,
            proof: proof.to_bytes(),
        })
        .to_frame();
        self.transcript.sent(&frame);
        Ok(Some(frame))
    }
}

impl Session for IndexProvider {
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        if matches!(self.state, State::Closed) {
            return Err(PeerMisbehaved::AfterEnd.into());
        }
        let result = self.on_frame(frame);
        if let Err(err) = &result {
            let refused_version =
                matches!(err, Error::PeerIncompatible(_)) && !self.outbox.is_empty();
            self.state = State::Closed;
            if !refused_version && !matches!(err, Error::PeerAborted(_)) {
                self.outbox.clear();
                self.outbox
                    .push_back(Message::Abort(err.close_code()).to_frame());
            }
        }
        result
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(frame) = self.outbox.pop_front() {
            return Some(frame);
        }
        match self.produce() {
            Ok(frame) => frame,
            Err(err) => {
                let code = err.close_code();
                self.state = State::Closed;
                self.events.push_back(Event::Failed(err));
                Some(Message::Abort(code).to_frame())
            }
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn progress(&self) -> Progress {
        self.progress
    }

    fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    fn awaits_decision(&self) -> bool {
        matches!(self.state, State::ExpectDecision(_))
    }

    fn abort(&mut self, code: CloseCode) -> Option<Vec<u8>> {
        match std::mem::replace(&mut self.state, State::Closed) {
            State::ExpectHello(_) | State::Closed => None,
            State::ExpectDecision(_) | State::Serving(_) => {
                self.outbox.clear();
                Some(Message::Abort(code).to_frame())
            }
        }
    }
}
