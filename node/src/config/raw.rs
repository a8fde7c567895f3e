//! The file's shape, as serde sees it, and its validation into typed values.
//!
//! Values that need checking (fingerprints, addresses, modes) are kept as strings
//! here so that a bad one is reported with its key rather than as a serde error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::{
    BelowThreshold, DEFAULT_REPLAY_WINDOW_DAYS, DatasetPolicy, PeerPolicy,
    REPLAY_WINDOW_DAYS_LIMIT, SetRatio, check_at_least_one, check_labels,
};
use super::{
    AllowedMode, ConfigError, DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS,
    DEFAULT_LISTEN, DEFAULT_MAX_CONCURRENT_SESSIONS, IDLE_TIMEOUT_SECS_LIMIT, Limits,
    MAX_CONCURRENT_SESSIONS_LIMIT, NodeConfig, NodeSettings, PeerConfig,
};
use crate::identity::{Fingerprint, name_problem};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    node: RawNode,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    peers: Vec<RawPeer>,
    /// `[datasets.NAME]` record requirements.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    datasets: BTreeMap<String, RawDatasetPolicy>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    #[serde(default = "default_listen")]
    listen: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default = "default_max_concurrent_sessions")]
    max_concurrent_sessions: u64,
    #[serde(default = "default_idle_timeout_secs")]
    idle_timeout_secs: u64,
    /// Omitted (and not written) at its default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connect_timeout_secs: Option<u64>,
    #[serde(default = "default_replay_window_days")]
    replay_window_days: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    name: String,
    addr: String,
    fingerprint: String,
    /// The peer's audit key; omitted until pinned (at the first session, or by the
    /// operator with `peer add --audit-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audit_key: Option<String>,
    #[serde(default)]
    offers: Vec<String>,
    /// Omitted means every mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modes: Option<Vec<String>>,
    /// Modes we may use when we start a session with this peer; omitted means
    /// `["initiator"]` (we learn, the peer learns nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    match_modes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_peer_set_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    purposes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    legal_bases: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    require_legal_basis: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_set_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_identifiers_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_identifiers_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_sessions_per_hour: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_concurrent_sessions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disclosure_threshold: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    below_threshold: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatasetPolicy {
    #[serde(default, skip_serializing_if = "is_false")]
    require_legal_basis: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    require_consent: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    require_source: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    legal_bases: Vec<String>,
}

impl RawConfig {
    pub(super) fn new(name: &str) -> Self {
        Self {
            node: RawNode {
                name: name.to_owned(),
                listen: default_listen(),
            },
            limits: RawLimits::default(),
            peers: Vec::new(),
            datasets: BTreeMap::new(),
        }
    }

    pub(super) fn validate(self, file: Option<&Path>) -> Result<NodeConfig, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            file: file.map(Path::to_owned),
            key: key.to_owned(),
            problem,
        };
        if let Some(problem) = name_problem(&self.node.name) {
            return Err(invalid(
                "node.name",
                format!("`{}` {problem}", self.node.name),
            ));
        }
        let listen = self.node.listen.parse().map_err(|_| {
            invalid(
                "node.listen",
                format!(
                    "`{}` is not an IP address and port such as {DEFAULT_LISTEN} or [::]:7447",
                    self.node.listen
                ),
            )
        })?;
        let sessions = self.limits.max_concurrent_sessions;
        let max_concurrent_sessions = u32::try_from(sessions)
            .ok()
            .filter(|n| (1..=MAX_CONCURRENT_SESSIONS_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid(
                    "limits.max_concurrent_sessions",
                    format!("{sessions} is outside 1..={MAX_CONCURRENT_SESSIONS_LIMIT}"),
                )
            })?;
        let idle = self.limits.idle_timeout_secs;
        if !(1..=IDLE_TIMEOUT_SECS_LIMIT).contains(&idle) {
            return Err(invalid(
                "limits.idle_timeout_secs",
                format!("{idle} is outside 1..={IDLE_TIMEOUT_SECS_LIMIT} seconds"),
            ));
        }
        let connect = self
            .limits
            .connect_timeout_secs
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        if !(1..=IDLE_TIMEOUT_SECS_LIMIT).contains(&connect) {
            return Err(invalid(
                "limits.connect_timeout_secs",
                format!("{connect} is outside 1..={IDLE_TIMEOUT_SECS_LIMIT} seconds"),
            ));
        }
        let replay = self.limits.replay_window_days;
        let replay_window_days = u32::try_from(replay)
            .ok()
            .filter(|n| (1..=REPLAY_WINDOW_DAYS_LIMIT).contains(n))
            .ok_or_else(|| {
                invalid(
                    "limits.replay_window_days",
                    format!("{replay} is outside 1..={REPLAY_WINDOW_DAYS_LIMIT} days"),
                )
            })?;
        let mut datasets = BTreeMap::new();
        for (name, raw_policy) in self.datasets {
            let prefix = format!("datasets.{name}");
            if let Some(problem) = name_problem(&name) {
                return Err(invalid(&prefix, format!("dataset name `{name}` {problem}")));
            }
            let policy = raw_policy
                .validate(&|key: &str, problem| invalid(&format!("{prefix}.{key}"), problem))?;
            datasets.insert(name, policy);
        }

        let mut peers: Vec<PeerConfig> = Vec::with_capacity(self.peers.len());
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let mut fingerprints: BTreeMap<Fingerprint, usize> = BTreeMap::new();
        for (index, raw_peer) in self.peers.into_iter().enumerate() {
            let prefix = format!("peers[{index}]");
            let peer = raw_peer.validate(file, &prefix)?;
            if let Some(first) = names.insert(peer.name.clone(), index) {
                return Err(invalid(
                    &format!("{prefix}.name"),
                    format!(
                        "`{}` is also the name of peers[{first}]; names must be unique",
                        peer.name
                    ),
                ));
            }
            if let Some(first) = fingerprints.insert(peer.fingerprint, index) {
                return Err(invalid(
                    &format!("{prefix}.fingerprint"),
                    format!(
                        "{} is already pinned for peers[{first}] (`{}`); a node can be listed only once",
                        peer.fingerprint, peers[first].name
                    ),
                ));
            }
            peers.push(peer);
        }
        Ok(NodeConfig {
            node: NodeSettings {
                name: self.node.name,
                listen,
            },
            limits: Limits {
                max_concurrent_sessions,
                idle_timeout: Duration::from_secs(idle),
                connect_timeout: Duration::from_secs(connect),
                replay_window_days,
            },
            peers,
            datasets,
        })
    }
}

impl RawPeer {
    /// Validates one peer; `prefix` is its key path (`peers[2]`).
    pub(super) fn validate(
        self,
        file: Option<&Path>,
        prefix: &str,
    ) -> Result<PeerConfig, ConfigError> {
        let invalid = |key: &str, problem: String| ConfigError::Invalid {
            file: file.map(Path::to_owned),
            key: format!("{prefix}.{key}"),
            problem,
        };
        if let Some(problem) = name_problem(&self.name) {
            return Err(invalid("name", format!("`{}` {problem}", self.name)));
        }
        let addr = super::parse_peer_addr(&self.addr)
            .map_err(|problem| invalid("addr", format!("`{}` {problem}", self.addr)))?;
        let fingerprint: Fingerprint = self.fingerprint.parse().map_err(|err| match err {
            crate::identity::IdentityError::InvalidFingerprint { problem, .. } => invalid(
                "fingerprint",
                format!("not a SHA-256 fingerprint ({problem}); copy it from `blindmatch id` on the peer's node"),
            ),
            other => invalid("fingerprint", other.to_string()),
        })?;
        let audit_key = match &self.audit_key {
            Some(text) => Some(
                text.parse::<crate::identity::AuditKey>()
                    .map_err(|problem| invalid("audit_key", problem))?,
            ),
            None => None,
        };
        for (index, dataset) in self.offers.iter().enumerate() {
            if let Some(problem) = name_problem(dataset) {
                return Err(invalid(
                    &format!("offers[{index}]"),
                    format!("dataset name `{dataset}` {problem}"),
                ));
            }
            if self.offers[..index].contains(dataset) {
                return Err(invalid(
                    &format!("offers[{index}]"),
                    format!("`{dataset}` is listed twice"),
                ));
            }
        }
        let policy = validate_peer_policy(&self, &invalid)?;
        // Nothing is granted by omission: a peer offered a dataset must be given the
        // modes it may ask for in so many words.
        let modes = match &self.modes {
            None if self.offers.is_empty() => Vec::new(),
            None => {
                return Err(invalid(
                    "modes",
                    "is required when `offers` is not empty: list the modes this peer may ask for (\"both\", \"initiator\", \"responder\", \"cardinality\")".to_owned(),
                ));
            }
            Some(names) => parse_modes("modes", names, &invalid)?,
        };
        let match_modes = match &self.match_modes {
            None => vec![AllowedMode::Initiator],
            Some(names) => parse_modes("match_modes", names, &invalid)?,
        };
        if self.max_peer_set_size == Some(0) {
            return Err(invalid(
                "max_peer_set_size",
                "must be at least 1 (omit the key for no cap)".to_owned(),
            ));
        }
        Ok(PeerConfig {
            name: self.name,
            addr,
            fingerprint,
            audit_key,
            offers: self.offers,
            modes,
            match_modes,
            max_peer_set_size: self.max_peer_set_size,
            policy,
        })
    }
}

impl From<&NodeConfig> for RawConfig {
    fn from(config: &NodeConfig) -> Self {
        Self {
            node: RawNode {
                name: config.node.name.clone(),
                listen: config.node.listen.to_string(),
            },
            limits: RawLimits {
                max_concurrent_sessions: config.limits.max_concurrent_sessions.into(),
                idle_timeout_secs: config.limits.idle_timeout.as_secs(),
                connect_timeout_secs: Some(config.limits.connect_timeout.as_secs())
                    .filter(|&secs| secs != DEFAULT_CONNECT_TIMEOUT_SECS),
                replay_window_days: config.limits.replay_window_days.into(),
            },
            peers: config.peers.iter().map(RawPeer::from).collect(),
            datasets: config
                .datasets
                .iter()
                .map(|(name, policy)| (name.clone(), RawDatasetPolicy::from(policy)))
                .collect(),
        }
    }
}

impl From<&PeerConfig> for RawPeer {
    fn from(peer: &PeerConfig) -> Self {
        Self {
            name: peer.name.clone(),
            addr: peer.addr.to_string(),
            fingerprint: peer.fingerprint.to_string(),
            audit_key: peer.audit_key.map(|key| key.to_string()),
            offers: peer.offers.clone(),
            // Written out even when it is every mode, so that a mode added in a later
            // version is not silently granted to existing peers.
            modes: Some(peer.modes.iter().map(ToString::to_string).collect()),
            match_modes: Some(peer.match_modes.iter().map(ToString::to_string).collect()),
            max_peer_set_size: peer.max_peer_set_size,
            purposes: peer.policy.purposes.clone(),
            legal_bases: peer.policy.legal_bases.clone(),
            require_legal_basis: peer.policy.require_legal_basis,
            max_set_ratio: peer.policy.max_set_ratio.map(SetRatio::as_f64),
            max_identifiers_per_day: peer.policy.max_identifiers_per_day,
            max_identifiers_total: peer.policy.max_identifiers_total,
            max_sessions_per_hour: peer.policy.max_sessions_per_hour.map(u64::from),
            max_concurrent_sessions: peer.policy.max_concurrent_sessions.map(u64::from),
            disclosure_threshold: peer.policy.disclosure_threshold,
            below_threshold: peer
                .policy
                .disclosure_threshold
                .map(|_| peer.policy.below_threshold.as_str().to_owned()),
        }
    }
}

impl RawDatasetPolicy {
    fn validate(
        self,
        invalid: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<DatasetPolicy, ConfigError> {
        check_labels(&self.legal_bases, "legal_bases", invalid)?;
        Ok(DatasetPolicy {
            require_legal_basis: self.require_legal_basis,
            require_consent: self.require_consent,
            require_source: self.require_source,
            legal_bases: self.legal_bases,
        })
    }
}

impl From<&DatasetPolicy> for RawDatasetPolicy {
    fn from(policy: &DatasetPolicy) -> Self {
        Self {
            require_legal_basis: policy.require_legal_basis,
            require_consent: policy.require_consent,
            require_source: policy.require_source,
            legal_bases: policy.legal_bases.clone(),
        }
    }
}

/// Validates the policy keys of a `[[peers]]` entry.
fn validate_peer_policy(
    raw: &RawPeer,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<PeerPolicy, ConfigError> {
    check_labels(&raw.purposes, "purposes", invalid)?;
    check_labels(&raw.legal_bases, "legal_bases", invalid)?;
    let max_set_ratio = match raw.max_set_ratio {
        None => None,
        Some(value) => Some(SetRatio::from_f64(value).ok_or_else(|| {
            invalid(
                "max_set_ratio",
                format!(
                    "{value} is outside 0.001..=1000000 (the peer's set size divided by our offered set size)"
                ),
            )
        })?),
    };
    check_at_least_one(
        raw.max_identifiers_per_day,
        "max_identifiers_per_day",
        invalid,
    )?;
    check_at_least_one(raw.max_identifiers_total, "max_identifiers_total", invalid)?;
    check_at_least_one(raw.disclosure_threshold, "disclosure_threshold", invalid)?;
    let small = |value: Option<u64>, key: &str| -> Result<Option<u32>, ConfigError> {
        check_at_least_one(value, key, invalid)?;
        value
            .map(|n| {
                u32::try_from(n)
                    .map_err(|_| invalid(key, format!("{n} is larger than {}", u32::MAX)))
            })
            .transpose()
    };
    let max_sessions_per_hour = small(raw.max_sessions_per_hour, "max_sessions_per_hour")?;
    let max_concurrent_sessions = small(raw.max_concurrent_sessions, "max_concurrent_sessions")?;
    let below_threshold = match raw.below_threshold.as_deref() {
        None => BelowThreshold::default(),
        Some(_) if raw.disclosure_threshold.is_none() => {
            return Err(invalid(
                "below_threshold",
                "has no effect without `disclosure_threshold`; set both or neither".to_owned(),
            ));
        }
        Some("count") => BelowThreshold::Count,
        Some("nothing") => BelowThreshold::Nothing,
        Some(other) => {
            return Err(invalid(
                "below_threshold",
                format!("unknown value `{other}`; expected `count` or `nothing`"),
            ));
        }
    };
    Ok(PeerPolicy {
        purposes: raw.purposes.clone(),
        legal_bases: raw.legal_bases.clone(),
        require_legal_basis: raw.require_legal_basis,
        max_set_ratio,
        max_identifiers_per_day: raw.max_identifiers_per_day,
        max_identifiers_total: raw.max_identifiers_total,
        max_sessions_per_hour,
        max_concurrent_sessions,
        disclosure_threshold: raw.disclosure_threshold,
        below_threshold,
    })
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_concurrent_sessions: default_max_concurrent_sessions(),
            idle_timeout_secs: default_idle_timeout_secs(),
            connect_timeout_secs: None,
            replay_window_days: default_replay_window_days(),
        }
    }
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_owned()
}

fn default_max_concurrent_sessions() -> u64 {
    DEFAULT_MAX_CONCURRENT_SESSIONS.into()
}

fn default_idle_timeout_secs() -> u64 {
    DEFAULT_IDLE_TIMEOUT_SECS
}

fn default_replay_window_days() -> u64 {
    DEFAULT_REPLAY_WINDOW_DAYS.into()
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A list of output modes under `key`: each known, none twice.
fn parse_modes(
    key: &str,
    names: &[String],
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<AllowedMode>, ConfigError> {
    let mut modes = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let key = format!("{key}[{index}]");
        let mode: AllowedMode = name.parse().map_err(|err| match err {
            ConfigError::Invalid { problem, .. } => invalid(&key, problem),
            other => invalid(&key, other.to_string()),
        })?;
        if modes.contains(&mode) {
            return Err(invalid(&key, format!("`{mode}` is listed twice")));
        }
        modes.push(mode);
    }
    Ok(modes)
}
