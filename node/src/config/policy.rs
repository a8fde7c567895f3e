//! The policy keys of `node.toml`: per-peer purposes, legal bases, ratio, budgets,
//! rate limits and disclosure threshold, and per-dataset record requirements.
//!
//! Every key is optional, and an omitted key means "no restriction of this kind", so a
//! file written before these keys existed keeps its meaning. Values are validated
//! here; errors name the key (`peers[1].max_set_ratio: ...`).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Default `[limits] replay_window_days`.
pub const DEFAULT_REPLAY_WINDOW_DAYS: u32 = 90;
/// Upper bound of `[limits] replay_window_days` (ten years).
pub const REPLAY_WINDOW_DAYS_LIMIT: u32 = 3650;
/// Upper bound of `max_set_ratio`.
pub const MAX_SET_RATIO_LIMIT: f64 = 1_000_000.0;
/// Longest purpose or legal basis name in the policy (the wire allows 1024 bytes).
pub const MAX_POLICY_TEXT: usize = 256;

/// The policy-related settings of one peer (all optional in `node.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerPolicy {
    /// Purposes this peer may declare (compared ignoring ASCII case and surrounding
    /// spaces); empty: any purpose.
    pub purposes: Vec<String>,
    /// Legal bases this peer may declare; empty: any (including none, unless
    /// `require_legal_basis`). A non-empty list implies a legal basis is required.
    pub legal_bases: Vec<String>,
    /// The peer must declare a (non-empty) legal basis.
    pub require_legal_basis: bool,
    /// Largest ratio of the peer's declared set size to our offered set size.
    pub max_set_ratio: Option<SetRatio>,
    /// Identifiers the peer may have evaluated in any rolling 24 hours.
    pub max_identifiers_per_day: Option<u64>,
    /// Identifiers the peer may have evaluated in total, ever.
    pub max_identifiers_total: Option<u64>,
    /// Sessions the peer may open in any rolling hour.
    pub max_sessions_per_hour: Option<u32>,
    /// Sessions of this peer served at the same time.
    pub max_concurrent_sessions: Option<u32>,
    /// Smallest intersection whose records are disclosed.
    pub disclosure_threshold: Option<u64>,
    /// What a session below the threshold still releases.
    pub below_threshold: BelowThreshold,
}

/// A ratio of set sizes, held exactly in thousandths (`max_set_ratio = 0.5` is 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SetRatio {
    thousandths: u64,
}

/// What a session whose intersection is below `disclosure_threshold` releases to
/// this node's operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BelowThreshold {
    /// Only the number of matches (recorded in the audit log); no records.
    #[default]
    Count,
    /// Neither records nor the count.
    Nothing,
}

/// `[datasets.NAME]`: which records of a dataset may be matched at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DatasetPolicy {
    /// Records without a legal basis are left out of every session.
    pub require_legal_basis: bool,
    /// Records without a consent value are left out.
    pub require_consent: bool,
    /// Records without a source (provenance) are left out.
    pub require_source: bool,
    /// When non-empty, only records whose legal basis is one of these are matched
    /// (compared ignoring ASCII case and surrounding spaces).
    pub legal_bases: Vec<String>,
}

impl PeerPolicy {
    /// Whether a declared `purpose` is allowed.
    pub fn allows_purpose(&self, purpose: &str) -> bool {
        self.purposes.is_empty() || self.purposes.iter().any(|p| same_label(p, purpose))
    }

    /// Whether a declared legal basis (possibly empty) is allowed.
    pub fn allows_legal_basis(&self, basis: &str) -> bool {
        if basis.trim().is_empty() {
            return !self.requires_legal_basis();
        }
        self.legal_bases.is_empty() || self.legal_bases.iter().any(|b| same_label(b, basis))
    }

    /// Whether the peer must declare a legal basis at all.
    pub fn requires_legal_basis(&self) -> bool {
        self.require_legal_basis || !self.legal_bases.is_empty()
    }

    /// Whether a threshold applies.
    pub fn has_threshold(&self) -> bool {
        self.disclosure_threshold.is_some()
    }
}

impl DatasetPolicy {
    /// True when every record is kept (nothing is required).
    pub fn is_open(&self) -> bool {
        !self.require_legal_basis
            && !self.require_consent
            && !self.require_source
            && self.legal_bases.is_empty()
    }
}

impl SetRatio {
    /// The ratio from a number as written in `node.toml` (0.001 to 1,000,000,
    /// rounded to thousandths).
    pub fn from_f64(value: f64) -> Option<Self> {
        if !value.is_finite() || !(0.001..=MAX_SET_RATIO_LIMIT).contains(&value) {
            return None;
        }
        Some(Self {
            thousandths: (value * 1000.0).round() as u64,
        })
    }

    /// The ratio as a number.
    pub fn as_f64(self) -> f64 {
        self.thousandths as f64 / 1000.0
    }

    /// Whether `peer_size / our_size` exceeds the ratio (an empty offered set counts
    /// as one element, so any non-empty peer set is compared against 1).
    pub fn exceeded_by(self, peer_size: u64, our_size: u64) -> bool {
        u128::from(peer_size) * 1000 > u128::from(self.thousandths) * u128::from(our_size.max(1))
    }

    /// The largest peer set this ratio allows against `our_size`.
    pub fn largest_peer_set(self, our_size: u64) -> u64 {
        let max = u128::from(self.thousandths) * u128::from(our_size.max(1)) / 1000;
        u64::try_from(max).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for SetRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

impl BelowThreshold {
    /// The name used in `node.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            BelowThreshold::Count => "count",
            BelowThreshold::Nothing => "nothing",
        }
    }
}

impl fmt::Display for BelowThreshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Two purpose or legal-basis labels are the same ignoring ASCII case and the spaces
/// around them.
pub fn same_label(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Checks a list of labels (purposes, legal bases): non-empty, printable, at most
/// [`MAX_POLICY_TEXT`] bytes, no duplicates. `invalid(key, problem)` builds the error.
pub(super) fn check_labels(
    labels: &[String],
    key: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    for (index, label) in labels.iter().enumerate() {
        let item = format!("{key}[{index}]");
        if label.trim().is_empty() {
            return Err(invalid(&item, "is empty".to_owned()));
        }
        if label.len() > MAX_POLICY_TEXT {
            return Err(invalid(
                &item,
                format!("is longer than {MAX_POLICY_TEXT} bytes"),
            ));
        }
        if label.chars().any(char::is_control) {
            return Err(invalid(&item, "contains control characters".to_owned()));
        }
        if labels[..index].iter().any(|other| same_label(other, label)) {
            return Err(invalid(&item, format!("`{label}` is listed twice")));
        }
    }
    Ok(())
}

/// Checks an optional count that, when present, must be at least 1.
pub(super) fn check_at_least_one<T: Copy + PartialEq + From<u8>>(
    value: Option<T>,
    key: &str,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    if value == Some(T::from(0)) {
        return Err(invalid(
            key,
            "must be at least 1 (omit the key for no limit)".to_owned(),
        ));
    }
    Ok(())
}
