//! The disclosure threshold at result time, on the responder's own side.
//!
//! When a session completes with fewer matched identifiers than the peer's
//! `disclosure_threshold`, this node keeps no matched records (no result file); with
//! `below_threshold = "nothing"` it does not keep the count either (the audit record
//! shows no intersection size). What the *initiator* learns is computed on the
//! initiator's side and cannot be withheld after the exchange, which is why
//! [`super::threshold_forbids`] refuses the modes that would let it learn more.

use blindmatch_protocol::session::Outcome;

use crate::config::{BelowThreshold, PeerPolicy};

/// What this node keeps of a completed session's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disclosure {
    /// Everything the mode gives us.
    Full,
    /// Only the count: matched records are dropped.
    CountOnly,
    /// Neither records nor the count.
    Nothing,
}

/// What `policy` lets this node keep of `outcome`. The threshold is of matched records
/// (contacts), the figure people read.
pub fn disclosure(policy: &PeerPolicy, outcome: &Outcome) -> Disclosure {
    let (Some(threshold), Some(matched)) =
        (policy.disclosure_threshold, outcome.matched_record_count)
    else {
        return Disclosure::Full;
    };
    if matched >= threshold {
        return Disclosure::Full;
    }
    match policy.below_threshold {
        BelowThreshold::Count => Disclosure::CountOnly,
        BelowThreshold::Nothing => Disclosure::Nothing,
    }
}

/// Applies `disclosure` to `outcome`: drops the records, and with
/// [`Disclosure::Nothing`] the count too.
pub fn withhold(outcome: &mut Outcome, disclosure: Disclosure) {
    match disclosure {
        Disclosure::Full => {}
        Disclosure::CountOnly => outcome.matches = None,
        Disclosure::Nothing => {
            outcome.matches = None;
            outcome.intersection_size = None;
            outcome.matched_record_count = None;
        }
    }
}
