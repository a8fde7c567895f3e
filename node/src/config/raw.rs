//! The file's shape, as serde sees it, and its validation into typed values.
//!
//! Values that need checking (fingerprints, addresses, modes) are kept as strings
//! here so that a bad one is reported with its key rather than as a serde error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    AllowedMode, ConfigError, DEFAULT_IDLE_TIMEOUT_SECS, DEFAULT_LISTEN,
    DEFAULT_MAX_CONCURRENT_SESSIONS, IDLE_TIMEOUT_SECS_LIMIT, Limits,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPeer {
    name: String,
    addr: String,
    fingerprint: String,
    #[serde(default)]
    offers: Vec<String>,
    /// Omitted means every mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_peer_set_size: Option<u64>,
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
            },
            peers,
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
        let modes = match self.modes {
            None => AllowedMode::ALL.to_vec(),
            Some(names) => {
                let mut modes = Vec::with_capacity(names.len());
                for (index, name) in names.iter().enumerate() {
                    let key = format!("modes[{index}]");
                    let mode: AllowedMode = name.parse().map_err(|err| match err {
                        ConfigError::Invalid { problem, .. } => invalid(&key, problem),
                        other => invalid(&key, other.to_string()),
                    })?;
                    if modes.contains(&mode) {
                        return Err(invalid(&key, format!("`{mode}` is listed twice")));
                    }
                    modes.push(mode);
                }
                modes
            }
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
            offers: self.offers,
            modes,
            max_peer_set_size: self.max_peer_set_size,
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
            },
            peers: config.peers.iter().map(RawPeer::from).collect(),
        }
    }
}

impl From<&PeerConfig> for RawPeer {
    fn from(peer: &PeerConfig) -> Self {
        Self {
            name: peer.name.clone(),
            addr: peer.addr.to_string(),
            fingerprint: peer.fingerprint.to_string(),
            offers: peer.offers.clone(),
            // Written out even when it is every mode, so that a mode added in a later
            // version is not silently granted to existing peers.
            modes: Some(peer.modes.iter().map(ToString::to_string).collect()),
            max_peer_set_size: peer.max_peer_set_size,
        }
    }
}

impl Default for RawLimits {
    fn default() -> Self {
        Self {
            max_concurrent_sessions: default_max_concurrent_sessions(),
            idle_timeout_secs: default_idle_timeout_secs(),
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
