//! The responder: waits for `Hello`, lets the caller decide (policy lives in the
//! node), then runs the exchange.

use rand_core::CryptoRng;

use super::exchange::{Exchange, ExchangeParams, Secrets};
use super::finish::ReceiptContext;
use super::proof::commitment;
use super::queues::{Phase, Queues};
use super::rounds::{Rounds, Units};
use super::{
    DEFAULT_BATCH_SIZE, Event, Parties, PreparedSet, Progress, ReceiptSigner, Role, Session,
};
use crate::error::{CloseCode, Error, PeerIncompatible, PeerMisbehaved};
use crate::oprf::PublicKey;
use crate::transcript::Transcript;
use crate::wire::{
    Accept, DatasetRef, Hello, MAX_SET_SIZE, Message, PROTOCOL_VERSION, Reject, RejectReason,
    check_text,
};

/// The responder's protocol-level limits (policy beyond these is the caller's).
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct ResponderConfig {
    /// TLS exporter value of the connection, bound into the transcript.
    pub channel_binding: [u8; 32],
    /// Who the session is between.
    pub parties: Parties,
    /// Largest initiator set accepted at all; the caller's policy may refuse smaller.
    pub max_peer_set_size: u64,
    /// Unused by the responder (the initiator's `Hello` fixes the round size); kept so
    /// both configs read alike.
    pub batch_size: usize,
}

impl ResponderConfig {
    /// A config with default limits; `channel_binding` is the connection's TLS exporter
    /// value (every session must bind one).
    pub fn new(channel_binding: [u8; 32], parties: Parties) -> Self {
        Self {
            channel_binding,
            parties,
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
    ExpectHello(Box<(ResponderConfig, Box<dyn ReceiptSigner>)>),
    /// `Hello` received and surfaced as an event; waiting for `accept` / `reject`.
    /// Any frame from the peer now is a protocol violation.
    ExpectDecision(Box<ExpectDecision>),
    Exchanging(Box<Exchange>),
    /// Over; what was exchanged by then stays readable for the audit record.
    Closed(Progress),
}

struct ExpectDecision {
    config: ResponderConfig,
    signer: Box<dyn ReceiptSigner>,
    hello: Hello,
    peer_commitment: PublicKey,
    transcript: Transcript,
}

impl Responder {
    /// A responder waiting for `Hello`.
    pub fn new(config: ResponderConfig, signer: Box<dyn ReceiptSigner>) -> Self {
        Self {
            state: State::ExpectHello(Box::new((config, signer))),
            queues: Queues::default(),
        }
    }

    /// Accepts the session announced by the `Hello` event, matching `set`, which we
    /// name `own_dataset` to the peer.
    ///
    /// # Errors
    ///
    /// `ApiMisuse` without a pending `Hello` (the session is left as it was);
    /// `InvalidArgument` for a dataset name over the wire limit or a set too large.
    pub fn accept<R: CryptoRng + ?Sized>(
        &mut self,
        set: PreparedSet,
        own_dataset: DatasetRef,
        rng: &mut R,
    ) -> Result<(), Error> {
        let State::ExpectDecision(waiting) = &self.state else {
            return Err(Error::ApiMisuse("accept called without a pending Hello"));
        };
        check_text("own dataset name longer than 1024 bytes", &own_dataset.name)?;
        let secrets = Secrets::draw(&set, waiting.hello.mode, rng)?;
        if secrets.plan.len() as u64 > MAX_SET_SIZE {
            return Err(Error::InvalidArgument("set larger than 2^32-1 elements"));
        }
        let State::ExpectDecision(waiting) =
            std::mem::replace(&mut self.state, State::Closed(Progress::default()))
        else {
            return Err(Error::ApiMisuse("accept called without a pending Hello"));
        };
        let ExpectDecision {
            config,
            signer,
            hello,
            peer_commitment,
            mut transcript,
        } = *waiting;
        let mut accept = Accept::new(secrets.plan.len() as u64, secrets.commitment.to_bytes());
        accept.kinds = set.kinds();
        accept.bundle_width = secrets.plan.width();
        accept.dataset = own_dataset.clone();
        let frame = Message::Accept(accept).to_frame();
        transcript.sent(&frame);
        self.queues.outbox.push_back(frame);
        let own = secrets.plan.units();
        let peer = Units {
            count: hello.set_size / u64::from(hello.bundle_width),
            width: u64::from(hello.bundle_width),
        };
        let params = ExchangeParams {
            role: Role::Responder,
            mode: hello.mode,
            rounds: Rounds::new(own, peer, u64::from(hello.round_size)),
            peer,
            peer_commitment,
            receipts: ReceiptContext {
                role: Role::Responder,
                mode: hello.mode,
                session_id: hello.session_id,
                parties: config.parties,
                own_dataset,
                peer_dataset: hello.own_dataset,
                own_set_size: own.slots(),
                peer_set_size: peer.slots(),
            },
        };
        let exchange = Exchange::new(params, set, transcript, secrets, signer);
        self.state = State::Exchanging(Box::new(exchange));
        Ok(())
    }

    /// Refuses the session announced by the `Hello` event with a reason the
    /// initiator's user can act on. The session is closed once the frame is sent.
    ///
    /// # Errors
    ///
    /// `ApiMisuse` without a pending `Hello`; `InvalidArgument` for a text over the
    /// wire limit. Either way the session is left as it was.
    pub fn reject(&mut self, reason: RejectReason, text: &str) -> Result<(), Error> {
        if !matches!(self.state, State::ExpectDecision(_)) {
            return Err(Error::ApiMisuse("reject called without a pending Hello"));
        }
        check_text("refusal text longer than 1024 bytes", text)?;
        self.state = State::Closed(Progress::default());
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
        let decoded = Message::decode(frame);
        match std::mem::replace(&mut self.state, State::Closed(Progress::default())) {
            State::ExpectHello(waiting) => {
                let msg = match decoded {
                    Ok(msg) => msg,
                    Err(Error::PeerIncompatible(incompatible)) => {
                        self.refuse_version(&incompatible);
                        return Err(incompatible.into());
                    }
                    Err(err) => return Err(err),
                };
                let (config, signer) = *waiting;
                match msg {
                    Message::Hello(hello) => self.on_hello(config, signer, hello, frame),
                    Message::Abort(code) => Err(Error::PeerAborted(code)),
                    other => Err(PeerMisbehaved::UnexpectedMessage {
                        expected: "Hello",
                        got: other.message_type().name(),
                    }
                    .into()),
                }
            }
            State::ExpectDecision(_) => match decoded? {
                Message::Abort(code) => Err(Error::PeerAborted(code)),
                other => Err(PeerMisbehaved::UnexpectedMessage {
                    expected: "nothing until we answer Hello",
                    got: other.message_type().name(),
                }
                .into()),
            },
            State::Exchanging(exchange) => {
                let msg = decoded?;
                if let Message::Hello(_) = msg {
                    return Err(PeerMisbehaved::UnexpectedMessage {
                        expected: "Blinded, Reblinded, Shuffled, SumProof or Finish",
                        got: "a second Hello",
                    }
                    .into());
                }
                let mut last = Progress::default();
                let handled = self.queues.handle(exchange, msg, frame, &mut last);
                self.state = State::Closed(last);
                if let Some(exchange) = handled? {
                    self.state = State::Exchanging(exchange);
                }
                Ok(())
            }
            State::Closed(_) => Err(PeerMisbehaved::AfterEnd.into()),
        }
    }

    fn on_hello(
        &mut self,
        config: ResponderConfig,
        signer: Box<dyn ReceiptSigner>,
        hello: Hello,
        frame: &[u8],
    ) -> Result<(), Error> {
        if hello.set_size > config.max_peer_set_size {
            return Err(PeerMisbehaved::SetTooLarge {
                size: hello.set_size,
                max: config.max_peer_set_size,
            }
            .into());
        }
        let peer_commitment = commitment(&hello.key_commitment)?;
        let mut transcript = Transcript::new(Role::Responder, config.channel_binding);
        transcript.received(frame);
        self.queues
            .events
            .push_back(Event::HelloReceived(hello.clone()));
        self.state = State::ExpectDecision(Box::new(ExpectDecision {
            config,
            signer,
            hello,
            peer_commitment,
            transcript,
        }));
        Ok(())
    }

    /// A `Hello` of another protocol or normalisation version gets a `Reject` naming
    /// both versions, which a peer of any version can read, instead of a bare `Abort`.
    fn refuse_version(&mut self, incompatible: &PeerIncompatible) {
        let text = match incompatible {
            PeerIncompatible::UnsupportedVersion { got, ours } => format!(
                "this node speaks blindmatch protocol version {ours}; your Hello is version {got}: both nodes need a blindmatch release that speaks version {ours}"
            ),
            PeerIncompatible::NormalisationVersion { got, ours } => format!(
                "this node normalises identifiers with rules version {ours}; yours are version {got}: both nodes need the same blindmatch release (and datasets imported with it)"
            ),
            other => format!(
                "incompatible peer: {other}; this node speaks protocol version {PROTOCOL_VERSION}"
            ),
        };
        self.queues.outbox.push_back(
            Message::Reject(Reject {
                reason: RejectReason::UNSUPPORTED_VERSION,
                text,
            })
            .to_frame(),
        );
    }
}

impl Session for Responder {
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        if self.state.is_closed() {
            // Over already, and the peer was told: no second `Abort`.
            return Err(PeerMisbehaved::AfterEnd.into());
        }
        let result = self.on_frame(frame);
        if let Err(Error::PeerIncompatible(_)) = &result
            && !self.queues.outbox.is_empty()
        {
            // Refused with a `Reject` already: no `Abort` on top.
            self.state = State::Closed(Progress::default());
            return result;
        }
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
            State::Closed(progress) => *progress,
            _ => Progress::default(),
        }
    }

    fn is_closed(&self) -> bool {
        self.state.is_closed()
    }

    fn awaits_decision(&self) -> bool {
        matches!(self.state, State::ExpectDecision(_))
    }

    /// Before a `Hello` there is no session to abort: the state closes and no frame is
    /// owed (the caller closes the connection with the code).
    fn abort(&mut self, code: CloseCode) -> Option<Vec<u8>> {
        if matches!(self.state, State::ExpectHello(_)) {
            self.state = State::Closed(Progress::default());
            return None;
        }
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
