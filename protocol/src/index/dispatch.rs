//! The server's session for a new connection: a PSI responder or an index provider,
//! whichever the first frame asks for, so one driver serves both.

use super::provider::IndexProvider;
use crate::error::{CloseCode, Error};
use crate::session::{Event, Progress, ReceiptSigner, Responder, ResponderConfig, Session};
use crate::wire::MessageType;

/// A responder until the first frame says otherwise: an `IndexHello` makes it an
/// [`IndexProvider`], anything else goes to the [`Responder`] (which refuses what is not
/// a `Hello`).
pub struct ServerSession {
    state: State,
}

enum State {
    Undecided(Box<(Responder, IndexProvider)>),
    Psi(Responder),
    Index(IndexProvider),
    /// Only while switching from `Undecided`.
    Switching,
}

impl ServerSession {
    /// A session that answers either kind of first frame under `config`; each kind signs
    /// its receipts with its own signer (both the node's audit key).
    pub fn new(
        config: ResponderConfig,
        psi_signer: Box<dyn ReceiptSigner>,
        index_signer: Box<dyn ReceiptSigner>,
    ) -> Self {
        let responder = Responder::new(config.clone(), psi_signer);
        let provider = IndexProvider::new(config, index_signer);
        Self {
            state: State::Undecided(Box::new((responder, provider))),
        }
    }

    /// The PSI responder, once the first frame made this a PSI session.
    pub fn responder(&mut self) -> Option<&mut Responder> {
        match &mut self.state {
            State::Psi(responder) => Some(responder),
            _ => None,
        }
    }

    /// The index provider, once the first frame made this an index session.
    pub fn provider(&mut self) -> Option<&mut IndexProvider> {
        match &mut self.state {
            State::Index(provider) => Some(provider),
            _ => None,
        }
    }

    fn session(&mut self) -> Option<&mut dyn Session> {
        match &mut self.state {
            State::Undecided(both) => Some(&mut both.0),
            State::Psi(responder) => Some(responder),
            State::Index(provider) => Some(provider),
            State::Switching => None,
        }
    }

    fn session_ref(&self) -> Option<&dyn Session> {
        match &self.state {
            State::Undecided(both) => Some(&both.0),
            State::Psi(responder) => Some(responder),
            State::Index(provider) => Some(provider),
            State::Switching => None,
        }
    }
}

impl Session for ServerSession {
    fn handle_frame(&mut self, frame: &[u8]) -> Result<(), Error> {
        if matches!(self.state, State::Undecided(_))
            && let State::Undecided(both) = std::mem::replace(&mut self.state, State::Switching)
        {
            let (responder, provider) = *both;
            self.state = match frame.first() {
                Some(&ty) if MessageType(ty) == MessageType::INDEX_HELLO => State::Index(provider),
                _ => State::Psi(responder),
            };
        }
        match self.session() {
            Some(session) => session.handle_frame(frame),
            None => Err(Error::ApiMisuse("the session was lost while switching")),
        }
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.session()?.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.session()?.poll_event()
    }

    fn progress(&self) -> Progress {
        self.session_ref()
            .map(Session::progress)
            .unwrap_or_default()
    }

    fn is_closed(&self) -> bool {
        self.session_ref().is_none_or(Session::is_closed)
    }

    fn awaits_decision(&self) -> bool {
        self.session_ref().is_some_and(Session::awaits_decision)
    }

    fn abort(&mut self, code: CloseCode) -> Option<Vec<u8>> {
        self.session()?.abort(code)
    }
}
