//! The session thread: handles every frame that has arrived before producing more of its
//! own, produces its own frames only while the writer has room, and stops when the
//! session needs a decision from its caller, ends, goes silent past the idle timeout or is
//! cancelled.

use std::time::Instant;

use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::session::{Event, Outcome, Session};
use tokio::sync::mpsc;

use super::{DriverError, DriverOptions, Incoming};
use crate::transport::TransportError;

/// Where a pump stopped.
pub(super) enum Stop {
    /// The session waits for the caller's decision on this event.
    Decision(Event),
    /// The session is over: its outcome, or why there is none.
    Over(Box<Result<Outcome, DriverError>>),
}

/// What the pump hands back with the session when it stops.
pub(super) struct Pumped<S> {
    pub session: S,
    pub in_rx: Incoming,
    pub out_tx: mpsc::Sender<Vec<u8>>,
    pub stop: Stop,
}

/// How long frames already sent by a peer that stopped reading are waited for.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// What the session thread waits for when it has nothing to do.
enum Wake {
    Frame(Option<Result<Vec<u8>, TransportError>>),
    Capacity,
    /// The writer task ended while the session runs: its stream failed (e.g. the peer
    /// stopped reading); `run` reports the writer's own error.
    WriterGone,
    Timeout,
    Cancelled,
    Revoked,
}

/// Resolves once `rx` holds `true`; never, without a receiver or once its sender is gone.
async fn flipped(rx: Option<&mut tokio::sync::watch::Receiver<bool>>) {
    if let Some(rx) = rx
        && rx.wait_for(|set| *set).await.is_ok()
    {
        return;
    }
    std::future::pending::<()>().await;
}

/// Runs `session` until it needs a decision or is over.
pub(super) fn pump<S: Session>(
    mut session: S,
    mut in_rx: Incoming,
    out_tx: mpsc::Sender<Vec<u8>>,
    options: DriverOptions,
    handle: tokio::runtime::Handle,
) -> Pumped<S> {
    let mut state = PumpState {
        outcome: None,
        failure: None,
        decision: None,
        pending_out: None,
        last_heard: Instant::now(),
    };
    state.run(&mut session, &mut in_rx, &out_tx, &options, &handle);
    let stop = match state.decision.take() {
        Some(event) if state.failure.is_none() => Stop::Decision(event),
        _ => Stop::Over(Box::new(match (state.outcome, state.failure) {
            (Some(outcome), None) => Ok(outcome),
            (_, Some(err)) => Err(err),
            (None, None) if session.is_closed() => Err(DriverError::Ended(
                "the session was ended by this node".into(),
            )),
            (None, None) => Err(DriverError::PeerClosedEarly),
        })),
    };
    Pumped {
        session,
        in_rx,
        out_tx,
        stop,
    }
}

struct PumpState {
    outcome: Option<Outcome>,
    failure: Option<DriverError>,
    decision: Option<Event>,
    pending_out: Option<Vec<u8>>,
    last_heard: Instant,
}

impl PumpState {
    fn run<S: Session>(
        &mut self,
        session: &mut S,
        in_rx: &mut Incoming,
        out_tx: &mpsc::Sender<Vec<u8>>,
        options: &DriverOptions,
        handle: &tokio::runtime::Handle,
    ) {
        loop {
            let mut worked = self.handle_arrived(session, in_rx);
            worked |= self.send_own(session, in_rx, out_tx);
            self.drain_events(session);
            if let Some(progress) = &options.on_progress {
                progress(session.progress());
            }
            // A decision waits only once everything queued before it went out.
            if self.decision.is_some() && self.pending_out.is_none() {
                return;
            }
            let finished = self.outcome.is_some() || self.failure.is_some() || session.is_closed();
            if finished && self.pending_out.is_none() {
                break;
            }
            if worked {
                continue;
            }
            self.wait(session, in_rx, out_tx, options, handle);
        }
        // A failure the session did not see itself (a broken frame, a timeout) still
        // owes the peer an Abort with its close code.
        if let Some(err) = &self.failure
            && !session.is_closed()
        {
            self.abort(session, out_tx, err.close_code());
        }
        if let Some(frame) = self.pending_out.take() {
            // Best effort: the writer may already be gone if the stream failed.
            let _ = out_tx.try_send(frame);
        }
    }

    /// 1. Everything that has arrived is handled first (none while a decision waits).
    fn handle_arrived<S: Session>(&mut self, session: &mut S, in_rx: &mut Incoming) -> bool {
        let mut worked = false;
        while self.failure.is_none() && !session.is_closed() && !session.awaits_decision() {
            match in_rx.try_recv() {
                Ok(frame) => {
                    worked = true;
                    self.last_heard = Instant::now();
                    self.on_frame(session, Some(frame));
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.on_frame(session, None);
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
            self.drain_events(session);
        }
        worked
    }

    /// 2. Then our own frames, while the writer has room.
    fn send_own<S: Session>(
        &mut self,
        session: &mut S,
        in_rx: &Incoming,
        out_tx: &mpsc::Sender<Vec<u8>>,
    ) -> bool {
        let mut worked = false;
        loop {
            let frame = match self.pending_out.take() {
                Some(frame) => frame,
                None => match session.poll_transmit() {
                    Some(frame) => frame,
                    None => break,
                },
            };
            worked = true;
            match out_tx.try_send(frame) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    self.pending_out = Some(frame);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.failure.get_or_insert(DriverError::PeerClosedEarly);
                    break;
                }
            }
            self.drain_events(session);
            if !in_rx.is_empty() || self.decision.is_some() {
                break;
            }
        }
        worked
    }

    /// 3. Nothing to do: wait for a frame, room to send, the timeout or cancellation.
    fn wait<S: Session>(
        &mut self,
        session: &mut S,
        in_rx: &mut Incoming,
        out_tx: &mpsc::Sender<Vec<u8>>,
        options: &DriverOptions,
        handle: &tokio::runtime::Handle,
    ) {
        let wait = options
            .idle_timeout
            .saturating_sub(self.last_heard.elapsed());
        let mut cancel = options.cancel.clone();
        let mut revoked = options.revoked.clone();
        let has_pending = self.pending_out.is_some();
        let wake = handle.block_on(async {
            tokio::select! {
                frame = in_rx.recv() => Wake::Frame(frame),
                permit = out_tx.reserve(), if has_pending => {
                    drop(permit);
                    Wake::Capacity
                }
                _ = tokio::time::sleep(wait) => Wake::Timeout,
                _ = out_tx.closed() => Wake::WriterGone,
                _ = flipped(cancel.as_mut()) => Wake::Cancelled,
                _ = flipped(revoked.as_mut()) => Wake::Revoked,
            }
        });
        match wake {
            Wake::Frame(Some(frame)) => {
                self.last_heard = Instant::now();
                self.on_frame(session, Some(frame));
            }
            Wake::Frame(None) => self.on_frame(session, None),
            Wake::Capacity => {}
            Wake::WriterGone => {
                // The peer stopped reading: it may have ended the session itself (its
                // `Reject`, `Abort` or `Finish` can still be on the way), so what it sent
                // is read before the session is judged.
                let grace = (options.idle_timeout / 2).min(STOP_GRACE);
                match handle.block_on(tokio::time::timeout(grace, in_rx.recv())) {
                    Ok(Some(frame)) => {
                        self.last_heard = Instant::now();
                        self.on_frame(session, Some(frame));
                    }
                    Ok(None) => self.on_frame(session, None),
                    Err(_) => {
                        self.failure.get_or_insert(DriverError::PeerClosedEarly);
                    }
                }
            }
            Wake::Timeout => {
                let err = DriverError::Timeout(options.idle_timeout);
                self.abort(session, out_tx, err.close_code());
                self.failure.get_or_insert(err);
            }
            Wake::Cancelled => {
                self.abort(session, out_tx, CloseCode::CANCELLED);
                self.failure.get_or_insert(DriverError::Cancelled);
            }
            Wake::Revoked => {
                self.abort(session, out_tx, CloseCode::PEER_REVOKED);
                self.failure.get_or_insert(DriverError::Revoked);
            }
        }
        self.drain_events(session);
    }

    fn on_frame<S: Session>(
        &mut self,
        session: &mut S,
        frame: Option<Result<Vec<u8>, TransportError>>,
    ) {
        match frame {
            Some(Ok(frame)) => {
                if let Err(err) = session.handle_frame(&frame) {
                    self.failure.get_or_insert(err.into());
                }
            }
            Some(Err(err)) => {
                self.failure.get_or_insert(err.into());
            }
            None => {
                if !session.is_closed() {
                    self.failure.get_or_insert(DriverError::PeerClosedEarly);
                }
            }
        }
    }

    fn drain_events<S: Session>(&mut self, session: &mut S) {
        while let Some(event) = session.poll_event() {
            match event {
                Event::Completed(o) => self.outcome = Some(*o),
                Event::Failed(err) => {
                    self.failure.get_or_insert(err.into());
                }
                event if event.is_decision() => {
                    self.decision = Some(event);
                }
                // `Event` is not exhaustive across versions; ignore what we do not know.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    fn abort<S: Session>(
        &mut self,
        session: &mut S,
        out_tx: &mpsc::Sender<Vec<u8>>,
        code: CloseCode,
    ) {
        if let Some(frame) = session.abort(code) {
            // The Abort replaces whatever we were about to send.
            self.pending_out = None;
            let _ = out_tx.try_send(frame);
        }
    }
}
