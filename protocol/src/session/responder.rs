//! The responder: waits for `Hello`, lets the caller decide (policy lives in the
//! node), then runs the exchange.

use rand_core::CryptoRng;

use super::exchange::{Exchange, ExchangeParams, Phase, Queues, Secrets};
use super::{DEFAULT_BATCH_SIZE, Event, PreparedSet, Progress, Role, Session};
use crate::error::{CloseCode, Error, PeerMisbehaved};
use crate::transcript::Transcript;
use crate::wire::{Accept, Hello, MAX_SET_SIZE, Message, Reject, RejectReason, check_text};

/// The responder's protocol-level limits (policy beyond these is the caller's).
#[derive(Clone, Debug)]
pub struct ResponderConfig {
    /// TLS exporter value of the connection, bound into the transcript.
    pub channel_binding: [u8; 32],
    /// Largest initiator set accepted at all; the caller's policy may refuse smaller.
    pub max_peer_set_size: u64,
    /// Elements per `Blinded` batch.
    pub batch_size: usize,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        Self {
            channel_binding: [0; 32],
            max_peer_set_size: MAX_SET_SIZE,
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }
}

/// The responder state machine.
pub struct Responder {
    state: State,
    queues: Queues,
}

enum State {
    ExpectHello(Box<ResponderConfig>),
    /// `Hello` received and surfaced as an event; waiting for `accept` / `reject`.
    /// Any frame from the peer now is a protocol violation.
    ExpectDecision(Box<ExpectDecision>),
    Exchanging(Box<Exchange>),
    Closed,
}

struct ExpectDecision {
    config: ResponderConfig,
    hello: Hello,
    transcript: Transcript,
}

impl Responder {
    /// A responder waiting for `Hello`.
    pub fn new(config: ResponderConfig) -> Self {
        Self {
            state: State::ExpectHello(Box::new(config)),
            queues: Queues::default(),
        }
    }

    /// Accepts the session announced by the `Hello` event, matching against `set`.
    pub fn accept<R: CryptoRng + ?Sized>(
        &mut self,
        set: PreparedSet,
        rng: &mut R,
    ) -> Result<(), Error> {
        let State::ExpectDecision(waiting) = std::mem::replace(&mut self.state, State::Closed)
        else {
            return Err(Error::ApiMisuse("accept called without a pending Hello"));
        };
        let ExpectDecision {
            config,
            hello,
            mut transcript,
        } = *waiting;
        let frame = Message::Accept(Accept {
            set_size: set.len() as u64,
            kinds: set.kinds(),
        })
        .to_frame();
        transcript.sent(&frame);
        self.queues.outbox.push_back(frame);
        let params = ExchangeParams {
            role: Role::Responder,
            mode: hello.mode,
            session_id: hello.session_id,
            peer_total: hello.set_size,
            batch_size: config.batch_size,
        };
        let secrets = Secrets::draw(set.len(), rng);
        self.state = State::Exchanging(Box::new(Exchange::new(params, set, transcript, secrets)));
        Ok(())
    }

    /// Refuses the session announced by the `Hello` event with a reason the
    /// initiator's user can act on. The session is closed once the frame is sent.
    pub fn reject(&mut self, reason: RejectReason, text: &str) -> Result<(), Error> {
        if !matches!(self.state, State::ExpectDecision(_)) {
            return Err(Error::ApiMisuse("reject called without a pending Hello"));
        }
        check_text("refusal text longer than 1024 bytes", text)?;
        self.state = State::Closed;
        self.queues.outbox.push_back(
            Message::Reject(Reject {
                reason,
                text: text.to_owned(),
            })
            .to_frame(),
        );
        Ok(())
    }

    fn on_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        let msg = Message::decode(frame)?;
        match std::mem::replace(&mut self.state, State::Closed) {
            State::ExpectHello(config) => match msg {
                Message::Hello(hello) => {
                    if hello.set_size > config.max_peer_set_size {
                        return Err(PeerMisbehaved::SetTooLarge {
                            size: hello.set_size,
                            max: config.max_peer_set_size,
                        }
                        .into());
                    }
                    let mut transcript = Transcript::new(Role::Responder, config.channel_binding);
                    transcript.received(frame);
                    self.queues
                        .events
                        .push_back(Event::HelloReceived(hello.clone()));
                    self.state = State::ExpectDecision(Box::new(ExpectDecision {
                        config: *config,
                        hello,
                        transcript,
                    }));
                    Ok(())
                }
                Message::Abort(code) => Err(Error::PeerAborted(code)),
                other => Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "Hello",
                    got: other.message_type().name(),
                }
                .into()),
            },
            State::ExpectDecision(_) => match msg {
                Message::Abort(code) => Err(Error::PeerAborted(code)),
                other => Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "nothing until we answer Hello",
                    got: other.message_type().name(),
                }
                .into()),
            },
            State::Exchanging(exchange) => {
                if let Message::Hello(_) = msg {
                    return Err(PeerMisbehaved::UnexpectedMessage {
                        expected: "Blinded, Reblinded or Finish",
                        got: "a second Hello",
                    }
                    .into());
                }
                if let Some(exchange) = self.queues.handle(exchange, msg, frame)? {
                    self.state = State::Exchanging(exchange);
                }
                Ok(())
            }
            State::Closed => Err(PeerMisbehaved::AfterEnd.into()),
        }
    }
}

impl Session for Responder {
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
            _ => Progress::default(),
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
