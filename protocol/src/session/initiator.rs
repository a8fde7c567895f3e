//! The initiator: sends `Hello`, waits for `Accept`, lets the caller decide (its own
//! policy, before anything is blinded), then runs the exchange.

use std::collections::VecDeque;

use rand_core::CryptoRng;

use super::exchange::{Exchange, ExchangeParams, Secrets};
use super::finish::ReceiptContext;
use super::proof::commitment;
use super::queues::{Phase, Queues};
use super::rounds::{Rounds, Units};
use super::{
    AcceptInfo, DEFAULT_BATCH_SIZE, Event, Parties, PreparedSet, Progress, ReceiptSigner, Role,
    Session,
};
use crate::error::{CloseCode, Error, PeerIncompatible, PeerMisbehaved};
use crate::transcript::Transcript;
use crate::wire::{
    Accept, DatasetRef, Hello, MAX_BATCH_POINTS, MAX_BUNDLE_WIDTH, MAX_SET_SIZE, Message,
    OutputMode, PROTOCOL_VERSION, check_text,
};

/// Frames a caller may feed while [`Event::Accepted`] awaits its decision; the node's
/// driver stops reading meanwhile, so this only bounds a caller that does not.
const MAX_HELD_FRAMES: usize = 64;

/// What the initiator asks for.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct InitiatorConfig {
    /// Fresh random session id (the caller draws it and never reuses it).
    pub session_id: [u8; 16],
    /// TLS exporter value of the connection, bound into the transcript.
    pub channel_binding: [u8; 32],
    /// Who the session is between.
    pub parties: Parties,
    /// The responder's dataset to match against (empty: the one it offers us).
    pub dataset: String,
    /// Our own dataset, as we name it to the peer.
    pub own_dataset: DatasetRef,
    /// Declared purpose.
    pub purpose: String,
    /// Declared legal basis.
    pub legal_basis: String,
    /// Output mode.
    pub mode: OutputMode,
    /// Largest responder set we accept to process at all (the caller's policy, on
    /// [`Event::Accepted`], may refuse smaller).
    pub max_peer_set_size: u64,
    /// Most elements per round.
    pub batch_size: usize,
}

impl InitiatorConfig {
    /// A config with default limits; `channel_binding` is the connection's TLS exporter
    /// value (every session must bind one).
    pub fn new(
        session_id: [u8; 16],
        channel_binding: [u8; 32],
        parties: Parties,
        mode: OutputMode,
    ) -> Self {
        Self {
            session_id,
            channel_binding,
            parties,
            dataset: String::new(),
            own_dataset: DatasetRef::default(),
            purpose: String::new(),
            legal_basis: String::new(),
            mode,
            max_peer_set_size: MAX_SET_SIZE,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// The initiator state machine.
pub struct Initiator {
    state: State,
    queues: Queues,
    hello: Hello,
}

enum State {
    /// `Hello` sent; the only acceptable answers are `Accept`, `Reject` or `Abort`.
    ExpectAccept(Box<Pending>),
    /// `Accept` received and surfaced as [`Event::Accepted`]; waiting for
    /// [`Initiator::confirm`]. Frames fed meanwhile are held.
    ExpectConfirm(Box<(Pending, ExchangeParams)>, Vec<Vec<u8>>),
    Exchanging(Box<Exchange>),
    /// Over; what was exchanged by then stays readable for the audit record.
    Closed(Progress),
}

struct Pending {
    config: InitiatorConfig,
    set: PreparedSet,
    transcript: Transcript,
    /// The fresh key, plan and proof seed are drawn at start from the caller's RNG, so
    /// the session never holds an RNG.
    secrets: Secrets,
    signer: Box<dyn ReceiptSigner>,
}

impl Initiator {
    /// Starts a session: validates the config and queues `Hello`.
    pub fn new<R: CryptoRng + ?Sized>(
        config: InitiatorConfig,
        set: PreparedSet,
        signer: Box<dyn ReceiptSigner>,
        rng: &mut R,
    ) -> Result<Self, Error> {
        check_text("purpose longer than 1024 bytes", &config.purpose)?;
        check_text("legal basis longer than 1024 bytes", &config.legal_basis)?;
        check_text("dataset name longer than 1024 bytes", &config.dataset)?;
        check_text(
            "own dataset name longer than 1024 bytes",
            &config.own_dataset.name,
        )?;
        let secrets = Secrets::draw(&set, config.mode, rng)?;
        if secrets.plan.len() as u64 > MAX_SET_SIZE {
            return Err(Error::InvalidArgument("set larger than 2^32-1 elements"));
        }
        let round_size = config
            .batch_size
            .clamp(usize::from(MAX_BUNDLE_WIDTH), MAX_BATCH_POINTS) as u32;
        let mut hello = Hello::new(
            config.session_id,
            config.mode,
            secrets.plan.len() as u64,
            secrets.commitment.to_bytes(),
        );
        hello.dataset = config.dataset.clone();
        hello.purpose = config.purpose.clone();
        hello.legal_basis = config.legal_basis.clone();
        hello.kinds = set.kinds();
        hello.round_size = round_size;
        hello.bundle_width = secrets.plan.width();
        hello.own_dataset = config.own_dataset.clone();
        let frame = Message::Hello(hello.clone()).to_frame();
        let mut transcript = Transcript::new(Role::Initiator, config.channel_binding);
        transcript.sent(&frame);
        Ok(Self {
            state: State::ExpectAccept(Box::new(Pending {
                secrets,
                config,
                set,
                transcript,
                signer,
            })),
            queues: Queues {
                outbox: VecDeque::from([frame]),
                events: VecDeque::new(),
            },
            hello,
        })
    }

    /// The `Hello` this session sent (what the audit log records about the request).
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Runs the session the responder accepted (after [`Event::Accepted`]): from here on
    /// we blind and send. Frames fed while the decision was pending are handled now.
    ///
    /// # Errors
    ///
    /// `ApiMisuse` without a pending `Accept` (the session is left as it was); any error
    /// of a held frame, as `handle_frame` reports it.
    pub fn confirm(&mut self) -> Result<(), Error> {
        if !matches!(self.state, State::ExpectConfirm(..)) {
            return Err(Error::ApiMisuse("confirm called without a pending Accept"));
        }
        let State::ExpectConfirm(waiting, held) =
            std::mem::replace(&mut self.state, State::Closed(Progress::default()))
        else {
            return Err(Error::ApiMisuse("confirm called without a pending Accept"));
        };
        let (pending, params) = *waiting;
        let Pending {
            set,
            transcript,
            secrets,
            signer,
            ..
        } = pending;
        let exchange = Exchange::new(params, set, transcript, secrets, signer);
        self.state = State::Exchanging(Box::new(exchange));
        for frame in held {
            self.handle_frame(&frame)?;
        }
        Ok(())
    }

    fn on_accept(
        &mut self,
        pending: Box<Pending>,
        accept: Accept,
        frame: &[u8],
    ) -> Result<(), Error> {
        let Pending {
            config,
            set,
            mut transcript,
            secrets,
            signer,
        } = *pending;
        if accept.set_size > config.max_peer_set_size {
            return Err(PeerMisbehaved::SetTooLarge {
                size: accept.set_size,
                max: config.max_peer_set_size,
            }
            .into());
        }
        if config.mode != OutputMode::Cardinality && accept.bundle_width != 1 {
            return Err(PeerMisbehaved::UnexpectedMessage {
                expected: "an Accept with one slot per element outside cardinality mode",
                got: "Accept",
            }
            .into());
        }
        let peer_commitment = commitment(&accept.key_commitment)?;
        transcript.received(frame);
        let own = secrets.plan.units();
        let peer = Units {
            count: accept.set_size / u64::from(accept.bundle_width),
            width: u64::from(accept.bundle_width),
        };
        let round_size = u64::from(self.hello.round_size);
        let params = ExchangeParams {
            role: Role::Initiator,
            mode: config.mode,
            rounds: Rounds::new(own, peer, round_size),
            peer,
            peer_commitment,
            receipts: ReceiptContext {
                role: Role::Initiator,
                mode: config.mode,
                session_id: config.session_id,
                parties: config.parties,
                own_dataset: config.own_dataset.clone(),
                peer_dataset: accept.dataset.clone(),
                own_set_size: own.slots(),
                peer_set_size: peer.slots(),
            },
        };
        self.queues.events.push_back(Event::Accepted(AcceptInfo {
            peer_set_size: accept.set_size,
            peer_kinds: accept.kinds,
            peer_dataset: accept.dataset,
            own_set_size: own.slots(),
        }));
        let pending = Pending {
            config,
            set,
            transcript,
            secrets,
            signer,
        };
        self.state = State::ExpectConfirm(Box::new((pending, params)), Vec::new());
        Ok(())
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        if let State::ExpectConfirm(_, held) = &mut self.state {
            if held.len() >= MAX_HELD_FRAMES {
                return Err(Error::ApiMisuse(
                    "frames fed while the Accept awaited a decision: call confirm or abort first",
                ));
            }
            held.push(frame.to_vec());
            return Ok(());
        }
        let msg = Message::decode(frame)?;
        match std::mem::replace(&mut self.state, State::Closed(Progress::default())) {
            State::ExpectAccept(pending) => match msg {
                Message::Accept(accept) => self.on_accept(pending, accept, frame),
                Message::Reject(reject) => Err(Error::Refused {
                    reason: reject.reason,
                    text: crate::wire::printable(&reject.text),
                }),
                // What an older responder answers a Hello of a version it does not speak.
                Message::Abort(CloseCode::INCOMPATIBLE) => {
                    Err(PeerIncompatible::PeerRefusedVersion {
                        ours: PROTOCOL_VERSION,
                    }
                    .into())
                }
                Message::Abort(code) => Err(Error::PeerAborted(code)),
                other => Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "Accept or Reject",
                    got: other.message_type().name(),
                }
                .into()),
            },
            State::Exchanging(exchange) => {
                let mut last = Progress::default();
                let handled = self.queues.handle(exchange, msg, frame, &mut last);
                self.state = State::Closed(last);
                if let Some(exchange) = handled? {
                    self.state = State::Exchanging(exchange);
                }
                Ok(())
            }
            State::ExpectConfirm(..) | State::Closed(_) => Err(PeerMisbehaved::AfterEnd.into()),
        }
    }
}

impl Session for Initiator {
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        if self.state.is_closed() {
            // Over already, and the peer was told: no second `Abort`.
            return Err(PeerMisbehaved::AfterEnd.into());
        }
        let result = self.on_frame(frame);
        self.queues.after_frame(&mut self.state, result)
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.queues.transmit(&mut self.state)
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.queues.events.pop_front()
    }

    fn progress(&self) -> Progress {
        match &self.state {
            State::Exchanging(exchange) => exchange.progress(),
            State::ExpectAccept(pending) => Progress {
                own_total: pending.secrets.plan.len() as u64,
                ..Progress::default()
            },
            State::ExpectConfirm(waiting, _) => Progress {
                own_total: waiting.0.secrets.plan.len() as u64,
                peer_total: waiting.1.peer.slots(),
                ..Progress::default()
            },
            State::Closed(progress) => *progress,
        }
    }

    fn is_closed(&self) -> bool {
        self.state.is_closed()
    }

    fn awaits_decision(&self) -> bool {
        matches!(self.state, State::ExpectConfirm(..))
    }

    fn abort(&mut self, code: CloseCode) -> Option<Vec<u8>> {
        Queues::abort(&mut self.state, code)
    }
}

impl Phase for State {
    fn exchange(&mut self) -> Option<&mut Exchange> {
        match self {
            State::Exchanging(exchange) => Some(exchange.as_mut()),
            _ => None,
        }
    }

    fn is_closed(&self) -> bool {
        matches!(self, State::Closed(_))
    }

    fn close(&mut self) {
        if !self.is_closed() {
            let progress = self.exchange().map(|e| e.progress()).unwrap_or_default();
            *self = State::Closed(progress);
        }
    }
}
