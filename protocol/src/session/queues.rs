//! The plumbing both roles share: the outbox and event queue, and the steps both take
//! while exchanging (feeding a message to the exchange, polling it for frames, failing
//! with the `Abort` an error owes the peer).

use std::collections::VecDeque;

use super::exchange::Exchange;
use super::{Event, Progress};
use crate::error::{CloseCode, Error, PeerIncompatible};
use crate::wire::Message;

/// What the plumbing needs from a role's state enum.
pub(super) trait Phase {
    /// The running exchange, when the session is in that phase.
    fn exchange(&mut self) -> Option<&mut Exchange>;
    /// Whether the session is over (completed, failed or refused).
    fn is_closed(&self) -> bool;
    /// Ends the session.
    fn close(&mut self);
}

/// The outbox and event queue of a session.
#[derive(Default)]
pub(super) struct Queues {
    pub outbox: VecDeque<Vec<u8>>,
    pub events: VecDeque<Event>,
}

impl Queues {
    /// Feeds a message to the exchange. Returns the exchange back while it runs, or
    /// `None` once it completed (the outcome is queued as an event). `last` receives
    /// the exchange's progress when it ends either way.
    pub(super) fn handle(
        &mut self,
        mut exchange: Box<Exchange>,
        msg: Message,
        frame: &[u8],
        last: &mut Progress,
    ) -> Result<Option<Box<Exchange>>, Error> {
        let handled = exchange.handle(msg, frame);
        *last = exchange.progress();
        match handled? {
            None => Ok(Some(exchange)),
            Some(outcome) => {
                self.outbox.append(exchange.outbox());
                self.events.push_back(Event::Completed(Box::new(outcome)));
                Ok(None)
            }
        }
    }

    /// Polls the exchange for a frame. Returns whether the session is over (completed
    /// or failed; a failure is queued as [`Event::Failed`] with its `Abort`).
    fn poll(&mut self, exchange: &mut Exchange) -> (Option<Vec<u8>>, bool) {
        let frame = exchange.poll_transmit();
        match exchange.try_complete() {
            Ok(None) => (frame, false),
            Ok(Some(outcome)) => {
                self.outbox.append(exchange.outbox());
                self.events.push_back(Event::Completed(Box::new(outcome)));
                (frame, true)
            }
            Err(err) => {
                self.fail(&err);
                self.events.push_back(Event::Failed(err));
                (frame, true)
            }
        }
    }

    /// Ends `handle_frame`: on error the session closes and owes the peer an `Abort`.
    pub(super) fn after_frame<P: Phase>(
        &mut self,
        phase: &mut P,
        result: Result<(), Error>,
    ) -> Result<(), Error> {
        if let Err(err) = &result {
            phase.close();
            self.fail(err);
        }
        result
    }

    /// `poll_transmit` for either role.
    pub(super) fn transmit<P: Phase>(&mut self, phase: &mut P) -> Option<Vec<u8>> {
        if let Some(frame) = self.outbox.pop_front() {
            return Some(frame);
        }
        let exchange = phase.exchange()?;
        let (frame, over) = self.poll(exchange);
        if over {
            phase.close();
        }
        frame.or_else(|| self.outbox.pop_front())
    }

    /// `abort` for either role: the `Abort` frame to send, unless already closed.
    pub(super) fn abort<P: Phase>(phase: &mut P, code: CloseCode) -> Option<Vec<u8>> {
        if phase.is_closed() {
            return None;
        }
        phase.close();
        Some(Message::Abort(code).to_frame())
    }

    /// Queues the `Abort` an error owes the peer: none when the peer ended the session.
    pub(super) fn fail(&mut self, err: &Error) {
        let peer_ended = matches!(
            err,
            Error::PeerAborted(_)
                | Error::Refused { .. }
                | Error::PeerIncompatible(PeerIncompatible::PeerRefusedVersion { .. })
        );
        if !peer_ended {
            self.outbox
                .push_back(Message::Abort(err.close_code()).to_frame());
        }
    }
}
