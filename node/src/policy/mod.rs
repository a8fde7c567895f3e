//! Who may match which dataset, for which purpose, with how large a set, how often — in
//! both roles: decided before any blinding happens.
//!
//! A node answers "is this identifier in your set?" for every identifier a peer sends,
//! whichever side started the session, so the policy is what stops a pinned peer from
//! using this node as a lookup oracle (SECURITY.md, "Using a node as a lookup oracle").
//! [`admission`] documents the sequence both roles go through; [`rules`] holds the rules
//! decided from `node.toml` alone, [`guard`] the shared state (ledger, running sessions),
//! [`budget`] the budgets and rate limits, [`records`] which records may be matched at
//! all. After the exchange, [`disclosure`] applies the threshold to what this node keeps.
//!
//! While streaming, the protocol cuts a peer off at the first point beyond its declared
//! (and so checked and charged) set size.

mod admission;
pub mod anchor;
mod budget;
mod check;
mod disclosure;
mod guard;
mod ledger;
mod records;
mod rules;

use std::time::{SystemTime, UNIX_EPOCH};

use blindmatch_protocol::wire::RejectReason;

pub use admission::Request;
pub use budget::{HOUR_SECS, Usage, usage};
pub use check::report;
pub use disclosure::{Disclosure, disclosure, withhold};
pub use guard::{ActiveSession, PolicyGuard};
pub use ledger::{Carried, Charge, DAY_SECS, LEDGER_FILE, Ledger, LedgerError};
pub use records::{Eligibility, eligible_set, keeps};
pub use rules::{
    allowed_mode, check_ratio, decide, decide_as_initiator, effective_modes, mode_meaning,
    threshold_forbids,
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
