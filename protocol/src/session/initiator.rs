//! The initiator: sends `Hello`, waits for `Accept`, then runs the exchange.

use std::collections::VecDeque;

use rand_core::CryptoRng;

use super::exchange::{Exchange, ExchangeParams, Phase, Queues, Secrets};
use super::{DEFAULT_BATCH_SIZE, Event, PreparedSet, Progress, Role, Session};
use crate::error::{CloseCode, Error, PeerMisbehaved};
use crate::ident::NORMALISATION_VERSION;
use crate::transcript::Transcript;
use crate::wire::{Hello, MAX_SET_SIZE, Message, OutputMode, PROTOCOL_VERSION, check_text};

/// What the initiator asks for.
#[derive(Clone, Debug)]
pub struct InitiatorConfig {
    /// Fresh random session id (the caller draws it and never reuses it).
    pub session_id: [u8; 16],
    /// The responder's dataset to match against.
    pub dataset: String,
    /// Declared purpose.
    pub purpose: String,
    /// Declared legal basis.
    pub legal_basis: String,
    /// Output mode.
    pub mode: OutputMode,
    /// TLS exporter value of the connection, bound into the transcript.
    pub channel_binding: [u8; 32],
    /// Largest responder set we accept to process.
    pub max_peer_set_size: u64,
    /// Elements per `Blinded` batch.
    pub batch_size: usize,
}

impl InitiatorConfig {
    /// A config with default limits.
    pub fn new(session_id: [u8; 16], dataset: &str, purpose: &str, mode: OutputMode) -> Self {
        Self {
            session_id,
            dataset: dataset.to_owned(),
            purpose: purpose.to_owned(),
            legal_basis: String::new(),
            mode,
            channel_binding: [0; 32],
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
    ExpectAccept(Box<ExpectAccept>),
    Exchanging(Box<Exchange>),
    Closed,
}

struct ExpectAccept {
    config: InitiatorConfig,
    set: PreparedSet,
    transcript: Transcript,
    /// The fresh key and shuffle are drawn at start from the caller's RNG, so the
    /// session never holds an RNG.
    secrets: Secrets,
}

impl Initiator {
    /// Starts a session: validates the config and queues `Hello`.
    pub fn new<R: CryptoRng + ?Sized>(
        config: InitiatorConfig,
        set: PreparedSet,
        rng: &mut R,
    ) -> Result<Self, Error> {
        check_text("purpose longer than 1024 bytes", &config.purpose)?;
        check_text("legal basis longer than 1024 bytes", &config.legal_basis)?;
        check_text("dataset name longer than 1024 bytes", &config.dataset)?;
        if set.len() as u64 > MAX_SET_SIZE {
            return Err(Error::InvalidArgument("set larger than 2^32-1 elements"));
        }
        let hello = Hello {
            version: PROTOCOL_VERSION,
            normalisation_version: NORMALISATION_VERSION,
            session_id: config.session_id,
            dataset: config.dataset.clone(),
            purpose: config.purpose.clone(),
            legal_basis: config.legal_basis.clone(),
            kinds: set.kinds(),
            mode: config.mode,
            set_size: set.len() as u64,
        };
        let frame = Message::Hello(hello.clone()).to_frame();
        let mut transcript = Transcript::new(Role::Initiator, config.channel_binding);
        transcript.sent(&frame);
        Ok(Self {
            state: State::ExpectAccept(Box::new(ExpectAccept {
                secrets: Secrets::draw(set.len(), rng),
                config,
                set,
                transcript,
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

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        let msg = Message::decode(frame)?;
        match std::mem::replace(&mut self.state, State::Closed) {
            State::ExpectAccept(waiting) => match msg {
                Message::Accept(accept) => {
                    let ExpectAccept {
                        config,
                        set,
                        mut transcript,
                        secrets,
                    } = *waiting;
                    if accept.set_size > config.max_peer_set_size {
                        return Err(PeerMisbehaved::SetTooLarge {
                            size: accept.set_size,
                            max: config.max_peer_set_size,
                        }
                        .into());
                    }
                    transcript.received(frame);
                    let params = ExchangeParams {
                        role: Role::Initiator,
                        mode: config.mode,
                        session_id: config.session_id,
                        peer_total: accept.set_size,
                        batch_size: config.batch_size,
                    };
                    let exchange = Exchange::new(params, set, transcript, secrets);
                    self.state = State::Exchanging(Box::new(exchange));
                    self.queues.events.push_back(Event::Accepted {
                        peer_set_size: accept.set_size,
                    });
                    Ok(())
                }
                Message::Reject(reject) => Err(Error::Refused {
                    reason: reject.reason,
                    text: crate::wire::printable(&reject.text),
                }),
                Message::Abort(code) => Err(Error::PeerAborted(code)),
                other => Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "Accept or Reject",
                    got: other.message_type().name(),
                }
                .into()),
            },
            State::Exchanging(exchange) => {
                if let Some(exchange) = self.queues.handle(exchange, msg, frame)? {
                    self.state = State::Exchanging(exchange);
                }
                Ok(())
            }
            State::Closed => Err(PeerMisbehaved::AfterEnd.into()),
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
            State::ExpectAccept(waiting) => Progress {
                own_total: waiting.set.len() as u64,
                ..Progress::default()
            },
            State::Closed => Progress::default(),
        }
    }

    fn is_closed(&self) -> bool {
        self.state.is_closed()
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
        matches!(self, State::Closed)
    }

    fn close(&mut self) {
        *self = State::Closed;
    }
}
