//! The client's index session: says which index it holds and how many identifiers it
//! will have evaluated, fetches what it lacks of the current index into its store,
//! checks the whole index (signatures under the provider's pinned audit key, hashes,
//! structure) and that it is the one the provider announced, then sends its identifiers
//! blinded in batches, verifies each batch's proof against the index key before using a
//! single evaluation, looks the results up in its copy and closes with signed receipts.
//!
//! Invariants: no identifier is blinded or sent before the index checked out; an
//! evaluation is used only after its batch's proof verified; the provider is never told
//! how many identifiers matched (our `Finish` and receipt carry no count).

use std::collections::VecDeque;

use rand_core::CryptoRng;

use super::rng::SessionRng;
use super::store::{IndexStore, IndexSummary};
use super::{IndexFacts, oprf_input_into, tag_prefix};
use crate::error::{CloseCode, Error, PeerIncompatible, PeerMisbehaved};
use crate::oprf::{ClientBatch, DleqProof, Mode, PublicKey};
use crate::session::count::{Counts, of_elements};
use crate::session::finish::ReceiptContext;
use crate::session::{
    DEFAULT_BATCH_SIZE, Event, Outcome, Parties, PreparedSet, Progress, ReceiptSigner, Role,
    Session,
};
use crate::transcript::Transcript;
use crate::wire::{
    DatasetRef, Finish, HeldIndex, IndexAccept, IndexChunk, IndexHello, MAX_BATCH_POINTS, Message,
    OutputMode, Reblinded, Receipt, check_text, printable,
};

/// Batches the client keeps in flight: enough to keep the provider busy while a reply
/// travels, few enough that an abort wastes little.
pub const DEFAULT_WINDOW: usize = 4;

/// The client's settings.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct IndexClientConfig {
    /// Fresh random session id.
    pub session_id: [u8; 16],
    /// TLS exporter value of the connection, bound into the transcript.
    pub channel_binding: [u8; 32],
    /// Who the session is between; `peer_audit_key` is what the index must be signed by.
    pub parties: Parties,
    /// The provider's dataset (empty: the one it offers us).
    pub dataset: String,
    /// Our own dataset, as we name it to the provider.
    pub own_dataset: DatasetRef,
    /// Declared purpose.
    pub purpose: String,
    /// Declared legal basis.
    pub legal_basis: String,
    /// Identifiers per `Evaluate` (1..=8192).
    pub batch_size: usize,
    /// `Evaluate` batches in flight.
    pub window: usize,
    /// Longest index file accepted.
    pub max_index_len: u64,
}

impl IndexClientConfig {
    /// A config with default batch, window and size limit.
    pub fn new(session_id: [u8; 16], channel_binding: [u8; 32], parties: Parties) -> Self {
        Self {
            session_id,
            channel_binding,
            parties,
            dataset: String::new(),
            own_dataset: DatasetRef::default(),
            purpose: String::new(),
            legal_basis: String::new(),
            batch_size: DEFAULT_BATCH_SIZE,
            window: DEFAULT_WINDOW,
            max_index_len: super::DEFAULT_MAX_INDEX_LEN,
        }
    }
}

/// The client state machine.
pub struct IndexClient {
    hello: IndexHello,
    state: Option<Box<Running>>,
    outbox: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    progress: Progress,
}

struct Running {
    config: IndexClientConfig,
    set: PreparedSet,
    store: Box<dyn IndexStore>,
    signer: Box<dyn ReceiptSigner>,
    transcript: Transcript,
    rng: SessionRng,
    held: Option<HeldIndex>,
    phase: Phase,
}

enum Phase {
    ExpectAccept,
    Downloading { accept: Box<IndexAccept>, next: u64 },
    Querying(Box<Querying>),
    ExpectFinish(Box<Finishing>),
}

struct Querying {
    checked: Checked,
    next: usize,
    in_flight: VecDeque<(usize, ClientBatch)>,
    /// `(tag prefix, element)` of every evaluated identifier.
    prefixes: Vec<(u128, u32)>,
}

struct Finishing {
    checked: Checked,
    counts: Counts,
    transcript: [u8; 32],
    receipt: Receipt,
}

/// The index as checked, with the session's receipt context.
struct Checked {
    accept: Box<IndexAccept>,
    summary: IndexSummary,
    public_key: PublicKey,
    receipts: ReceiptContext,
}

impl IndexClient {
    /// A client session matching `set` through the provider's index kept in `store`.
    /// The `IndexHello` is queued at once.
    ///
    /// # Errors
    ///
    /// `InvalidArgument` for texts over the wire limit or a batch size outside
    /// 1..=8192; `Error::Storage` if the store cannot say what it holds.
    pub fn new<R: CryptoRng + ?Sized>(
        config: IndexClientConfig,
        set: PreparedSet,
        mut store: Box<dyn IndexStore>,
        signer: Box<dyn ReceiptSigner>,
        rng: &mut R,
    ) -> Result<Self, Error> {
        check_text("dataset name longer than 1024 bytes", &config.dataset)?;
        check_text("purpose longer than 1024 bytes", &config.purpose)?;
        check_text("legal basis longer than 1024 bytes", &config.legal_basis)?;
        check_text(
            "own dataset name longer than 1024 bytes",
            &config.own_dataset.name,
        )?;
        if !(1..=MAX_BATCH_POINTS).contains(&config.batch_size) || config.window == 0 {
            return Err(Error::InvalidArgument(
                "batch size must be 1..=8192, window ≥ 1",
            ));
        }
        let held = store.held()?;
        let mut hello = IndexHello::new(config.session_id, set.len() as u64);
        hello.dataset = config.dataset.clone();
        hello.purpose = config.purpose.clone();
        hello.legal_basis = config.legal_basis.clone();
        hello.kinds = set.kinds();
        hello.held = held;
        hello.own_dataset = config.own_dataset.clone();
        let frame = Message::IndexHello(Box::new(hello.clone())).to_frame();
        let mut transcript = Transcript::new(Role::Initiator, config.channel_binding);
        transcript.sent(&frame);
        let progress = Progress {
            own_total: set.len() as u64,
            ..Progress::default()
        };
        Ok(Self {
            hello,
            state: Some(Box::new(Running {
                config,
                set,
                store,
                signer,
                transcript,
                rng: SessionRng::draw(rng),
                held,
                phase: Phase::ExpectAccept,
            })),
            outbox: VecDeque::from([frame]),
            events: VecDeque::new(),
            progress,
        })
    }

    /// The `IndexHello` sent.
    pub fn hello(&self) -> &IndexHello {
        &self.hello
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        let msg = Message::decode(frame)?;
        let Some(mut running) = self.state.take() else {
            return Err(PeerMisbehaved::AfterEnd.into());
        };
        let phase = std::mem::replace(&mut running.phase, Phase::ExpectAccept);
        let next = match (phase, msg) {
            (_, Message::Abort(code)) => return Err(Error::PeerAborted(code)),
            (Phase::ExpectAccept, Message::Reject(reject)) => {
                return Err(Error::Refused {
                    reason: reject.reason,
                    text: printable(&reject.text),
                });
            }
            (Phase::ExpectAccept, Message::IndexAccept(accept)) => {
                running.transcript.received(frame);
                running.on_accept(accept, &mut self.progress)?
            }
            (Phase::Downloading { accept, next }, Message::IndexChunk(chunk)) => {
                running.transcript.received(frame);
                running.on_chunk(accept, next, chunk, &mut self.progress)?
            }
            (Phase::Querying(querying), Message::Evaluated(answer)) => {
                running.transcript.received(frame);
                running.on_evaluated(querying, answer, &mut self.progress)?
            }
            (Phase::ExpectFinish(finishing), Message::Finish(theirs)) => {
                let outcome = running.on_finish(*finishing, *theirs)?;
                self.events.push_back(Event::Completed(Box::new(outcome)));
                return Ok(());
            }
            (phase, other) => {
                return Err(PeerMisbehaved::UnexpectedMessage {
                    expected: phase.expects(),
                    got: other.message_type().name(),
                }
                .into());
            }
        };
        // Only a phase change reaches `ExpectFinish`: our `Finish` goes out once.
        if let Phase::ExpectFinish(finishing) = &next {
            self.outbox.push_back(finishing.frame());
        }
        running.phase = next;
        self.state = Some(running);
        Ok(())
    }
}

impl Phase {
    fn expects(&self) -> &'static str {
        match self {
            Phase::ExpectAccept => "IndexAccept or Reject",
            Phase::Downloading { .. } => "IndexChunk",
            Phase::Querying(_) => "Evaluated",
            Phase::ExpectFinish(_) => "Finish",
        }
    }
}

impl Finishing {
    fn frame(&self) -> Vec<u8> {
        Message::Finish(Box::new(Finish::new(
            self.transcript,
            None,
            self.receipt.clone(),
        )))
        .to_frame()
    }
}

impl Running {
    fn on_accept(
        &mut self,
        accept: Box<IndexAccept>,
        progress: &mut Progress,
    ) -> Result<Phase, Error> {
        if accept.file_len > self.config.max_index_len {
            return Err(bad("the index is larger than this node accepts"));
        }
        let holds_prefix = |len: u64| {
            self.held
                .is_some_and(|held| held.epoch == accept.epoch && held.len == len)
        };
        if accept.send_from > 0 && !holds_prefix(accept.send_from) {
            return Err(bad(
                "the provider resumes the index from an offset we do not hold",
            ));
        }
        if accept.send_from == 0 {
            self.store.clear()?;
        }
        progress.index_total = accept.file_len - accept.send_from;
        if accept.send_from < accept.file_len {
            let next = accept.send_from;
            return Ok(Phase::Downloading { accept, next });
        }
        self.open(accept, progress)
    }

    fn on_chunk(
        &mut self,
        accept: Box<IndexAccept>,
        next: u64,
        chunk: IndexChunk,
        progress: &mut Progress,
    ) -> Result<Phase, Error> {
        let end = next + chunk.bytes.len() as u64;
        if chunk.offset != next || end > accept.file_len {
            return Err(bad(
                "an index chunk is out of order or past the announced length",
            ));
        }
        self.store.append(&chunk.bytes)?;
        progress.index_bytes = end - accept.send_from;
        if end < accept.file_len {
            return Ok(Phase::Downloading { accept, next: end });
        }
        self.open(accept, progress)
    }

    /// The whole index is held: check it and that it is what the provider announced.
    fn open(&mut self, accept: Box<IndexAccept>, progress: &mut Progress) -> Result<Phase, Error> {
        let pinned = self.config.parties.peer_audit_key;
        let summary = match self.store.open(pinned) {
            Ok(summary) => summary,
            Err(err) => {
                if matches!(err, Error::PeerMisbehaved(PeerMisbehaved::BadIndex(_))) {
                    // A copy that does not check out is of no use to any later session.
                    let _ = self.store.clear();
                }
                return Err(err);
            }
        };
        let announced = summary.epoch == accept.epoch
            && summary.public_key == accept.public_key
            && summary.elements == accept.elements
            && summary.file_len == accept.file_len
            && summary.dataset == accept.dataset
            && summary.kinds == accept.kinds;
        if !announced {
            return Err(bad("the index is not the one the provider announced"));
        }
        let public_key = PublicKey::from_bytes(&summary.public_key)?;
        let receipts = ReceiptContext {
            role: Role::Initiator,
            mode: OutputMode::Initiator,
            session_id: self.config.session_id,
            parties: self.config.parties,
            own_dataset: self.config.own_dataset.clone(),
            peer_dataset: summary.dataset.clone(),
            own_set_size: self.set.len() as u64,
            peer_set_size: summary.elements,
        };
        progress.peer_total = summary.elements;
        let checked = Checked {
            accept,
            summary,
            public_key,
            receipts,
        };
        if self.set.is_empty() {
            return Ok(self.finish_queries(checked, Vec::new()));
        }
        Ok(Phase::Querying(Box::new(Querying {
            checked,
            next: 0,
            in_flight: VecDeque::new(),
            prefixes: Vec::with_capacity(self.set.len()),
        })))
    }

    fn on_evaluated(
        &mut self,
        mut querying: Box<Querying>,
        answer: Reblinded,
        progress: &mut Progress,
    ) -> Result<Phase, Error> {
        let Some((start, batch)) = querying.in_flight.pop_front() else {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "nothing (no batch is waiting for its evaluation)",
                got: "Evaluated",
            }
            .into());
        };
        if answer.points.len() != batch.len() {
            return Err(PeerMisbehaved::WrongRoundSize {
                round: start as u64,
                expected: batch.len() as u64,
                got: answer.points.len() as u64,
            }
            .into());
        }
        let proof = DleqProof::from_bytes(&answer.proof)?;
        let outputs = batch.finalize(
            Some(&querying.checked.public_key),
            &answer.points,
            Some(&proof),
        )?;
        for (i, output) in outputs.iter().enumerate() {
            // Element indices fit in u32: sets are at most 2^32 - 1 elements.
            querying
                .prefixes
                .push((tag_prefix(output), (start + i) as u32));
        }
        progress.replies_received = querying.prefixes.len() as u64;
        if querying.next < self.set.len() || !querying.in_flight.is_empty() {
            return Ok(Phase::Querying(querying));
        }
        let Querying {
            checked, prefixes, ..
        } = *querying;
        let mut prefixes = prefixes;
        prefixes.sort_unstable();
        let sorted: Vec<u128> = prefixes.iter().map(|(p, _)| *p).collect();
        let found = self.store.contains_sorted(&sorted)?;
        let matched: Vec<usize> = prefixes
            .iter()
            .zip(found)
            .filter(|(_, hit)| *hit)
            .map(|((_, element), _)| *element as usize)
            .collect();
        Ok(self.finish_queries(checked, matched))
    }

    /// Our `Finish`, once every evaluation is in and looked up.
    fn finish_queries(&mut self, checked: Checked, mut matched: Vec<usize>) -> Phase {
        matched.sort_unstable();
        let counts = of_elements(&self.set, matched.into_iter());
        let transcript = self.transcript.hash();
        let receipt = checked
            .receipts
            .sign(self.signer.as_ref(), transcript, None);
        Phase::ExpectFinish(Box::new(Finishing {
            checked,
            counts,
            transcript,
            receipt,
        }))
    }

    fn on_finish(&mut self, finishing: Finishing, theirs: Finish) -> Result<Outcome, Error> {
        let Finishing {
            checked,
            counts,
            transcript,
            receipt,
        } = finishing;
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
        checked
            .receipts
            .check_peer(&theirs.receipt, transcript, None)?;
        if theirs.receipt.signer_key != checked.summary.signer_key {
            return Err(PeerMisbehaved::BadReceipt(
                "it is signed by another audit key than the provider's index",
            )
            .into());
        }
        let summary = &checked.summary;
        Ok(Outcome {
            role: Role::Initiator,
            mode: OutputMode::Initiator,
            session_id: self.config.session_id,
            own_set_size: self.set.len() as u64,
            peer_set_size: summary.elements,
            intersection_size: Some(counts.identifiers),
            matched_record_count: Some(counts.records),
            matches: counts.matches,
            transcript_hash: transcript,
            own_dataset: self.config.own_dataset.clone(),
            peer_dataset: summary.dataset.clone(),
            own_receipt: receipt,
            peer_receipt: theirs.receipt,
            index: Some(IndexFacts {
                epoch: summary.epoch,
                elements: summary.elements,
                file_len: summary.file_len,
                sent_from: checked.accept.send_from,
                bytes: summary.file_len - checked.accept.send_from,
            }),
        })
    }

    /// The next `Evaluate`, if the window has room.
    fn next_batch(&mut self, progress: &mut Progress) -> Result<Option<Vec<u8>>, Error> {
        let Phase::Querying(querying) = &mut self.phase else {
            return Ok(None);
        };
        if querying.in_flight.len() >= self.config.window || querying.next >= self.set.len() {
            return Ok(None);
        }
        let start = querying.next;
        let end = (start + self.config.batch_size).min(self.set.len());
        let mut buffer = Vec::new();
        let mut ends = Vec::with_capacity(end - start);
        for i in start..end {
            let (kind, value) = self.set.element(i);
            oprf_input_into(&mut buffer, kind, value);
            ends.push(buffer.len());
        }
        let mut from = 0;
        let inputs: Vec<&[u8]> = ends
            .iter()
            .map(|&to| {
                let input = &buffer[from..to];
                from = to;
                input
            })
            .collect();
        let batch = ClientBatch::blind(Mode::Voprf, &inputs, &mut self.rng)?;
        zeroize::Zeroize::zeroize(&mut buffer);
        let frame = Message::Evaluate(batch.blinded().to_vec()).to_frame();
        self.transcript.sent(&frame);
        querying.in_flight.push_back((start, batch));
        querying.next = end;
        progress.own_sent = end as u64;
        Ok(Some(frame))
    }
}

impl Session for IndexClient {
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        if self.state.is_none() {
            return Err(PeerMisbehaved::AfterEnd.into());
        }
        let result = self.on_frame(frame);
        if let Err(err) = &result {
            self.state = None;
            let peer_ended = matches!(
                err,
                Error::PeerAborted(_)
                    | Error::Refused { .. }
                    | Error::PeerIncompatible(PeerIncompatible::PeerRefusedVersion { .. })
            );
            self.outbox.clear();
            if !peer_ended {
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
        let running = self.state.as_mut()?;
        match running.next_batch(&mut self.progress) {
            Ok(frame) => frame,
            Err(err) => {
                let code = err.close_code();
                self.state = None;
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
        self.state.is_none()
    }

    fn awaits_decision(&self) -> bool {
        false
    }

    fn abort(&mut self, code: CloseCode) -> Option<Vec<u8>> {
        self.state.take()?;
        self.outbox.clear();
        Some(Message::Abort(code).to_frame())
    }
}

fn bad(what: &'static str) -> Error {
    PeerMisbehaved::BadIndex(what).into()
}
