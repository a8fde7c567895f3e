//! Who may match which dataset, for which purpose, with how large a set, how often:
//! decided on `Hello`, before any blinding happens.
//!
//! A responder answers "is this identifier in your set?" for every identifier a peer
//! sends, so the policy is what stops a pinned peer from using this node as a lookup
//! oracle (SECURITY.md, "Using a node as a lookup oracle"). The server applies, in
//! order, refusing at the first rule that fails:
//!
//! 1. [`decide`] — on `Hello` and `node.toml` alone: offered dataset, output mode,
//!    purpose, legal basis, maximum set size, and the modes a disclosure threshold
//!    rules out ([`rules`]).
//! 2. [`PolicyGuard::check_replay`] — a session id accepted before is refused.
//! 3. [`PolicyGuard::enter`] — concurrent sessions of this peer; then the node-wide
//!    semaphore (in the server).
//! 4. [`PolicyGuard::precheck`] — budgets and rate limit ([`budget`]).
//! 5. The dataset is loaded and only the records its `[datasets.NAME]` policy keeps
//!    are prepared ([`records`]); [`check_ratio`] compares the declared size with it.
//! 6. [`PolicyGuard::admit`] — replay, budgets and rate limit again, and the charge
//!    (the declared size) written durably to the [`ledger`], under one lock.
//!
//! While streaming, the protocol's responder cuts a peer off at the first point beyond
//! its declared (and so checked) set size. After the exchange, [`disclosure`] applies
//! the threshold to what this node keeps.

mod budget;
mod check;
mod disclosure;
mod guard;
mod ledger;
mod records;
mod rules;

use std::time::{SystemTime, UNIX_EPOCH};

use blindmatch_protocol::wire::RejectReason;

pub use budget::{HOUR_SECS, Usage, usage};
pub use check::report;
pub use disclosure::{Disclosure, disclosure, withhold};
pub use guard::{ActiveSession, PolicyGuard};
pub use ledger::{Carried, Charge, DAY_SECS, LEDGER_FILE, Ledger, LedgerError};
pub use records::{Eligibility, eligible_set, keeps};
pub use rules::{
    allowed_mode, check_accepted, check_ratio, decide, effective_modes, threshold_forbids,
};

/// A refusal the initiator sees: a reason code and a sentence it can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// What the initiator's user can do about it.
    pub text: String,
}

impl Refusal {
    /// A refusal with `reason` and `text`.
    pub fn new(reason: RejectReason, text: String) -> Self {
        Self { reason, text }
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
