//! Budgets and rate limits, evaluated from the ledger: identifiers per rolling 24 h
//! and in total, sessions per rolling hour. Pure: the time is passed in.
//!
//! A session is charged its declared set size when it is accepted — the number of
//! identifiers the peer may have evaluated against our set — whether or not it
//! completes, since a peer can learn from a session it aborts late. A refusal says
//! when the budget allows the session again (or that it never will).

use std::time::{Duration, UNIX_EPOCH};

use blindmatch_protocol::wire::RejectReason;

use super::Refusal;
use super::ledger::{Charge, DAY_SECS};
use crate::config::PeerPolicy;

/// Seconds in the rate-limit window.
pub const HOUR_SECS: u64 = 3600;

/// What a peer has used, as far as its policy sets limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Identifiers charged in the last 24 hours.
    pub identifiers_today: u64,
    /// Identifiers charged ever.
    pub identifiers_total: u64,
    /// Sessions accepted in the last hour.
    pub sessions_this_hour: u64,
}

/// Usage of a peer at `now` from its retained `charges` and all-time `total`.
pub fn usage<'a>(charges: impl Iterator<Item = &'a Charge>, total: u64, now: u64) -> Usage {
    let mut usage = Usage {
        identifiers_total: total,
        ..Usage::default()
    };
    for charge in charges {
        if in_window(charge.at, now, DAY_SECS) {
            usage.identifiers_today = usage.identifiers_today.saturating_add(charge.identifiers);
        }
        if in_window(charge.at, now, HOUR_SECS) {
            usage.sessions_this_hour += 1;
        }
    }
    usage
}

/// Checks whether a session declaring `declared` identifiers fits the peer's budgets
/// and rate limit at `now`. `charges` are the peer's retained charges and `total` its
/// all-time identifier count.
pub fn check(
    policy: &PeerPolicy,
    charges: &[&Charge],
    total: u64,
    declared: u64,
    now: u64,
) -> Result<(), Refusal> {
    if let Some(max) = policy.max_sessions_per_hour {
        let mut recent: Vec<u64> = charges
            .iter()
            .map(|c| c.at)
            .filter(|at| in_window(*at, now, HOUR_SECS))
            .collect();
        if recent.len() as u64 >= u64::from(max) {
            recent.sort_unstable();
            // Once the oldest `len - max + 1` sessions leave the window, one more fits.
            let freeing = recent[recent.len() - max as usize];
            return Err(Refusal::new(
                RejectReason::RATE_LIMITED,
                format!(
                    "you may open at most {max} session{} per hour and have opened {} in the last hour; try again {}",
                    plural(u64::from(max)),
                    recent.len(),
                    when(freeing.saturating_add(HOUR_SECS), now)
                ),
            ));
        }
    }
    if let Some(max) = policy.max_identifiers_total
        && total.saturating_add(declared) > max
    {
        return Err(Refusal::new(
            RejectReason::BUDGET_EXHAUSTED,
            format!(
                "your total budget is {max} identifiers and {total} were evaluated so far; this session's {declared} would exceed it, and it does not reset: ask this node's operator"
            ),
        ));
    }
    if let Some(max) = policy.max_identifiers_per_day {
        if declared > max {
            return Err(Refusal::new(
                RejectReason::BUDGET_EXHAUSTED,
                format!(
                    "your set of {declared} identifiers exceeds your daily budget of {max}; send at most {max} per day"
                ),
            ));
        }
        let mut today: Vec<&Charge> = charges
            .iter()
            .copied()
            .filter(|c| in_window(c.at, now, DAY_SECS))
            .collect();
        let used: u64 = today.iter().map(|c| c.identifiers).sum();
        if used.saturating_add(declared) > max {
            today.sort_by_key(|c| c.at);
            let mut remaining = used;
            let mut resets = now;
            for charge in today {
                remaining -= charge.identifiers;
                resets = charge.at.saturating_add(DAY_SECS);
                if remaining.saturating_add(declared) <= max {
                    break;
                }
            }
            return Err(Refusal::new(
                RejectReason::BUDGET_EXHAUSTED,
                format!(
                    "your daily budget is {max} identifiers per 24 hours and {used} were evaluated in the last 24 hours; a session of {declared} fits again {}",
                    when(resets, now)
                ),
            ));
        }
    }
    Ok(())
}

/// Whether a charge at `at` is inside the window of `len` seconds ending at `now`. A
/// charge from the future (the clock went back) counts, which errs on the safe side.
fn in_window(at: u64, now: u64, len: u64) -> bool {
    at.saturating_add(len) > now
}

/// "at 2025-01-01T10:00:00Z (in 3h 12m)".
pub fn when(at: u64, now: u64) -> String {
    let stamp = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(at));
    let wait = at.saturating_sub(now);
    // Whole minutes, rounded up, read better than seconds.
    let rounded = if wait >= 60 {
        wait.div_ceil(60) * 60
    } else {
        wait
    };
    format!(
        "at {stamp} (in {})",
        humantime::format_duration(Duration::from_secs(rounded))
    )
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;

    fn at(ago: u64, identifiers: u64) -> Charge {
        Charge {
            at: NOW - ago,
            peer: "aa".into(),
            session: [0; 16],
            identifiers,
        }
    }

    fn policy() -> PeerPolicy {
        PeerPolicy::default()
    }

    #[test]
    fn no_limits_allow_anything() {
        let charges = [at(10, u64::MAX / 2)];
        let refs: Vec<&Charge> = charges.iter().collect();
        assert!(check(&policy(), &refs, u64::MAX / 2, 1 << 40, NOW).is_ok());
    }

    #[test]
    fn daily_budget_is_rolling_and_says_when_it_resets() {
        let mut p = policy();
        p.max_identifiers_per_day = Some(1000);
        let charges = [at(20 * 3600, 600), at(3600, 300), at(25 * 3600, 900)];
        let refs: Vec<&Charge> = charges.iter().collect();
        // 900 used in the last 24 h (the 25 h old charge is out of the window).
        assert!(check(&p, &refs, 1800, 100, NOW).is_ok());
        let refused = check(&p, &refs, 1800, 101, NOW).unwrap_err();
        assert_eq!(refused.reason, RejectReason::BUDGET_EXHAUSTED);
        // Fits once the 600 from 20 h ago expires: in 4 hours.
        assert!(refused.text.contains("(in 4h)"), "{}", refused.text);
        let too_big = check(&p, &[], 0, 1001, NOW).unwrap_err();
        assert!(too_big.text.contains("exceeds your daily budget"));
    }

    #[test]
    fn total_budget_never_resets() {
        let mut p = policy();
        p.max_identifiers_total = Some(5000);
        assert!(check(&p, &[], 4000, 1000, NOW).is_ok());
        let refused = check(&p, &[], 4000, 1001, NOW).unwrap_err();
        assert_eq!(refused.reason, RejectReason::BUDGET_EXHAUSTED);
        assert!(refused.text.contains("does not reset"));
    }

    #[test]
    fn hourly_rate_limit_says_when_the_next_session_fits() {
        let mut p = policy();
        p.max_sessions_per_hour = Some(2);
        let charges = [at(50 * 60, 1), at(10 * 60, 1), at(2 * 3600, 1)];
        let refs: Vec<&Charge> = charges.iter().collect();
        let refused = check(&p, &refs, 3, 1, NOW).unwrap_err();
        assert_eq!(refused.reason, RejectReason::RATE_LIMITED);
        assert!(refused.text.contains("(in 10m)"), "{}", refused.text);
        assert!(check(&p, &refs[..1], 3, 1, NOW).is_ok());
    }

    #[test]
    fn usage_counts_windows() {
        let charges = [at(20 * 3600, 600), at(60, 300), at(25 * 3600, 900)];
        let u = usage(charges.iter(), 1800, NOW);
        assert_eq!(
            u,
            Usage {
                identifiers_today: 900,
                identifiers_total: 1800,
                sessions_this_hour: 1
            }
        );
    }
}
