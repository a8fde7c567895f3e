//! The server's policy state: the ledger (budgets, rate limits, seen session ids) and
//! the sessions each peer has running.
//!
//! Checking and charging happen under one lock, so two sessions of the same peer
//! arriving together cannot both fit a budget that only has room for one, and two
//! `Hello`s with the same session id cannot both be accepted. If the ledger cannot be
//! read or written, every session is refused: budgets are never silently skipped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use blindmatch_protocol::wire::RejectReason;

use super::budget;
use super::ledger::{Charge, Ledger, LedgerError};
use super::{Refusal, unix_now};
use crate::config::PeerConfig;

/// Policy state shared by the sessions of one server.
#[derive(Debug)]
pub struct PolicyGuard {
    ledger: Mutex<Result<Ledger, String>>,
    active: Mutex<HashMap<String, u32>>,
}

/// A running session of a peer, counted against its `max_concurrent_sessions` until
/// dropped.
#[derive(Debug)]
pub struct ActiveSession {
    guard: Arc<PolicyGuard>,
    peer: String,
}

impl PolicyGuard {
    /// Opens the ledger in `data_dir`. A ledger that cannot be opened is logged and
    /// makes every session be refused (see [`PolicyGuard::try_open`] to get the error).
    pub fn open(data_dir: &Path, replay_window_days: u32) -> Arc<Self> {
        let ledger = Ledger::open(data_dir, replay_window_days, unix_now()).map_err(|err| {
            tracing::error!(error = %err, "policy ledger unavailable: every session will be refused");
            err.to_string()
        });
        Arc::new(Self::with(ledger))
    }

    /// Opens the ledger in `data_dir`, failing if it cannot be.
    pub fn try_open(data_dir: &Path, replay_window_days: u32) -> Result<Arc<Self>, LedgerError> {
        let ledger = Ledger::open(data_dir, replay_window_days, unix_now())?;
        Ok(Arc::new(Self::with(Ok(ledger))))
    }

    fn with(ledger: Result<Ledger, String>) -> Self {
        Self {
            ledger: Mutex::new(ledger),
            active: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses a session id that was accepted before.
    pub fn check_replay(&self, session_id: &[u8; 16]) -> Result<(), Refusal> {
        let ledger = self.ledger()?;
        check_replay(&ledger, session_id)
    }

    /// Counts a session of `peer` as running, or refuses it when the peer already has
    /// `max_concurrent_sessions` running.
    pub fn enter(self: &Arc<Self>, peer: &PeerConfig) -> Result<ActiveSession, Refusal> {
        let key = peer.fingerprint.to_string();
        let mut active = lock(&self.active);
        let running = active.entry(key.clone()).or_insert(0);
        if let Some(max) = peer.policy.max_concurrent_sessions
            && *running >= max
        {
            return Err(Refusal::new(
                RejectReason::BUSY,
                format!(
                    "you may run at most {max} session{} at once with this node and have {running} running; try again when one has finished",
                    if max == 1 { "" } else { "s" }
                ),
            ));
        }
        *running += 1;
        Ok(ActiveSession {
            guard: Arc::clone(self),
            peer: key,
        })
    }

    /// Checks budgets and rate limits for a session charging `charge` identifiers,
    /// without charging (a cheap early refusal before the dataset is loaded).
    pub fn precheck(&self, peer: &PeerConfig, charge: u64) -> Result<(), Refusal> {
        let ledger = self.ledger()?;
        let Ok(ledger) = &*ledger else {
            return Err(unavailable());
        };
        check_budget(ledger, peer, charge, unix_now())
    }

    /// Checks replay, budgets and rate limits again and, if they pass, charges
    /// `charge` identifiers to `peer` for session `session_id` (durably) — under the
    /// ledger lock that every process of this node takes.
    pub fn charge(
        &self,
        peer: &PeerConfig,
        session_id: [u8; 16],
        charge: u64,
    ) -> Result<(), Refusal> {
        let mut guard = self.ledger()?;
        let Ok(ledger) = &mut *guard else {
            return Err(unavailable());
        };
        let now = unix_now();
        let transacted = ledger.transact(now, |ledger| {
            if ledger.seen(&session_id) {
                return Err(replayed(&session_id));
            }
            check_budget(ledger, peer, charge, now)?;
            let entry = Charge {
                at: now,
                peer: peer.fingerprint.to_string(),
                session: session_id,
                identifiers: charge,
            };
            Ok((Some(entry), ()))
        });
        match transacted {
            Ok(decided) => decided,
            Err(err) => {
                tracing::error!(error = %err, "could not record the session in the policy ledger");
                Err(unavailable())
            }
        }
    }

    fn ledger(&self) -> Result<MutexGuard<'_, Result<Ledger, String>>, Refusal> {
        let guard = lock(&self.ledger);
        match &*guard {
            Ok(_) => Ok(guard),
            Err(problem) => {
                tracing::error!(%problem, "session refused: policy ledger unavailable");
                Err(unavailable())
            }
        }
    }
}

impl Drop for ActiveSession {
    fn drop(&mut self) {
        let mut active = lock(&self.guard.active);
        if let Some(running) = active.get_mut(&self.peer) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                active.remove(&self.peer);
            }
        }
    }
}

fn check_replay(ledger: &Result<Ledger, String>, session_id: &[u8; 16]) -> Result<(), Refusal> {
    match ledger {
        Ok(ledger) if ledger.seen(session_id) => Err(replayed(session_id)),
        Ok(_) => Ok(()),
        Err(_) => Err(unavailable()),
    }
}

fn replayed(session_id: &[u8; 16]) -> Refusal {
    Refusal::new(
        RejectReason::REPLAYED_SESSION,
        format!(
            "session id {} was already used; every session needs a fresh id",
            hex::encode(session_id)
        ),
    )
}

fn check_budget(ledger: &Ledger, peer: &PeerConfig, charge: u64, now: u64) -> Result<(), Refusal> {
    let key = peer.fingerprint.to_string();
    let charges: Vec<&Charge> = ledger.charges_of(&key).collect();
    let total = ledger.totals_of(&key).identifiers;
    budget::check(&peer.policy, &charges, total, charge, now)
}

fn unavailable() -> Refusal {
    Refusal::new(
        RejectReason::INTERNAL,
        "this node cannot check its usage limits right now; its operator has been told".into(),
    )
}

/// Locks a mutex, recovering from poisoning (the data is counters and a ledger whose
/// every write is complete before it is visible).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
