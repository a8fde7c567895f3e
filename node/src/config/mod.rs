//! `node.toml`: the node's name and listen address, its pinned peers, and limits.
//!
//! The file is parsed into raw serde structs (`raw`), then validated into the typed
//! values here; every validation error names the key (`peers[2].fingerprint: ...`).
//! Unknown keys are errors, so a typo never silently disables a setting.
//!
//! Invariants of a [`NodeConfig`]: peer names are unique, fingerprints are unique (a
//! node is pinned once), and every value is within its documented range. `save`
//! re-validates before writing, and writes atomically.
//!
//! Policy settings (per-peer purposes, legal bases, ratio, budgets, rate limits,
//! disclosure threshold; per-dataset record requirements; see `policy`) are optional
//! keys whose absence means "no restriction of this kind", so existing files keep
//! loading with the same meaning. `save` rewrites the file from the
//! typed values: comments in a hand-edited file are not preserved.

mod policy;
mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::files::{self, Access};
use crate::identity::Fingerprint;

pub use policy::{
    BelowThreshold, DEFAULT_REPLAY_WINDOW_DAYS, DatasetPolicy, MAX_POLICY_TEXT, PeerPolicy,
    REPLAY_WINDOW_DAYS_LIMIT, SetRatio, same_label,
};

/// File name of the configuration inside the data directory.
pub const CONFIG_FILE: &str = "node.toml";
/// Listen address when `[node] listen` is omitted.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7447";
/// Default `[limits] max_concurrent_sessions`.
pub const DEFAULT_MAX_CONCURRENT_SESSIONS: u32 = 16;
/// Upper bound of `[limits] max_concurrent_sessions`.
pub const MAX_CONCURRENT_SESSIONS_LIMIT: u32 = 1024;
/// Default `[limits] idle_timeout_secs`.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;
/// Upper bound of `[limits] idle_timeout_secs` (one hour).
pub const IDLE_TIMEOUT_SECS_LIMIT: u64 = 3600;
/// Default `[limits] connect_timeout_secs`.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;

/// Everything that can go wrong loading, validating or saving `node.toml`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// There is no `node.toml`.
    #[error("no configuration at {}; run `blindmatch init` to create one", .path.display())]
    NotFound {
        /// Where we looked.
        path: PathBuf,
    },
    /// Reading or writing the file failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not have the expected shape.
    #[error("{}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line, column and key).
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{}{key}: {problem}", file_prefix(.file.as_deref()))]
    Invalid {
        /// The file, when the value came from one.
        file: Option<PathBuf>,
        /// The key, e.g. `peers[2].fingerprint`.
        key: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// A peer with this name already exists.
    #[error("a peer named `{name}` already exists; remove it first or choose another name")]
    DuplicatePeerName {
        /// The name.
        name: String,
    },
    /// This fingerprint is already pinned for another peer.
    #[error(
        "fingerprint {fingerprint} is already pinned for peer `{existing}`; a node can be listed only once"
    )]
    DuplicateFingerprint {
        /// The fingerprint.
        fingerprint: Fingerprint,
        /// The peer that already has it.
        existing: String,
    },
    /// No peer has this name.
    #[error("no peer named `{name}`; known peers: {}", list_or_none(.known))]
    UnknownPeer {
        /// The name asked for.
        name: String,
        /// The configured peer names.
        known: Vec<String>,
    },
    /// A peer address could not be resolved.
    #[error(
        "resolving {addr} for peer `{peer}`: {problem}; check `addr` in node.toml and your DNS"
    )]
    Resolve {
        /// The peer.
        peer: String,
        /// The address as configured.
        addr: PeerAddr,
        /// What went wrong.
        problem: String,
    },
}

/// The validated contents of `node.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// `[node]`.
    pub node: NodeSettings,
    /// `[limits]`.
    pub limits: Limits,
    peers: Vec<PeerConfig>,
    /// `[datasets.NAME]`: record requirements per dataset (absent: every record).
    pub datasets: BTreeMap<String, DatasetPolicy>,
}

/// `[node]`: who we are and where we listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSettings {
    /// Our node's name (informative; shown to operators).
    pub name: String,
    /// UDP address the server listens on.
    pub listen: SocketAddr,
}

/// `[limits]`: resource caps for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sessions served at once; further sessions are refused as busy (1..=1024, default
    /// 16). Each may make the server buffer up to 32 MiB of unread network data (see
    /// [`TransportTuning`](crate::transport::TransportTuning)); connections beyond it
    /// ~80 KiB each until refused.
    pub max_concurrent_sessions: u32,
    /// A connection with no traffic for this long is closed (1 s..=1 h, default 30 s).
    pub idle_timeout: Duration,
    /// `match` gives up reaching a peer after this long (1 s..=1 h, default 10 s): a
    /// node that is down never answers, and waiting out the idle timeout in silence
    /// looks like a hang.
    pub connect_timeout: Duration,
    /// Session ids of accepted sessions are remembered this many days, so a replayed
    /// `Hello` is refused (1..=3650, default 90).
    pub replay_window_days: u32,
}

/// `[[peers]]`: a partner node we pin and may match with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Local name for the peer (unique in this file).
    pub name: String,
    /// Where to reach it.
    pub addr: PeerAddr,
    /// SHA-256 of its certificate: the only certificate accepted for it.
    pub fingerprint: Fingerprint,
    /// Its audit key, which its session receipts must verify under; `None` until pinned
    /// (at the first session, trust on first use, or by the operator).
    pub audit_key: Option<crate::identity::AuditKey>,
    /// Our datasets this peer may match against.
    pub offers: Vec<String>,
    /// Output modes allowed for sessions this peer initiates (empty: it may not
    /// initiate any).
    pub modes: Vec<AllowedMode>,
    /// Output modes we may use when we start a session with this peer (`match`);
    /// `initiator` alone (we learn, the peer learns nothing) unless the operator wrote
    /// more.
    pub match_modes: Vec<AllowedMode>,
    /// Largest set this peer may declare, if capped.
    pub max_peer_set_size: Option<u64>,
    /// Purposes, legal bases, ratio, budgets, rate limits, disclosure threshold.
    pub policy: PeerPolicy,
}

/// An output mode a peer may ask for, as named in `node.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllowedMode {
    /// Each side learns which of its own records matched.
    Both,
    /// Only the initiator learns its matches.
    Initiator,
    /// Only the responder learns its matches.
    Responder,
    /// Only the number of matches.
    Cardinality,
}

/// A peer's address as configured: a host name or IP literal and a port, resolved
/// only when connecting.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerAddr {
    host: String,
    port: u16,
}

impl NodeConfig {
    /// A configuration with defaults and no peers, for a new node called `name`.
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        raw::RawConfig::new(name).validate(None)
    }

    /// Path of `node.toml` inside `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(CONFIG_FILE)
    }

    /// Loads and validates `<data_dir>/node.toml`.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        let path = Self::path(data_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotFound { path });
            }
            Err(source) => {
                return Err(ConfigError::Io {
                    action: "reading",
                    path,
                    source,
                });
            }
        };
        Self::parse(&text, Some(&path))
    }

    /// Parses and validates TOML text; `file` is only used in error messages.
    pub fn parse(text: &str, file: Option<&Path>) -> Result<Self, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: file.map_or_else(|| PathBuf::from(CONFIG_FILE), Path::to_owned),
            message: err.to_string().trim_end().to_owned(),
        })?;
        raw.validate(file)
    }

    /// The configuration as TOML text, validated first.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        let raw = raw::RawConfig::from(self);
        raw.clone().validate(None)?;
        toml::to_string(&raw).map_err(|err| ConfigError::Invalid {
            file: None,
            key: "(whole file)".to_owned(),
            problem: format!("could not be written as TOML: {err}"),
        })
    }

    /// Validates and atomically writes `<data_dir>/node.toml` (mode 0600: the peer list
    /// says who we do business with).
    pub fn save(&self, data_dir: &Path) -> Result<(), ConfigError> {
        let text = self.to_toml()?;
        let path = Self::path(data_dir);
        files::write_file(&path, text.as_bytes(), Access::OwnerOnly).map_err(|source| {
            ConfigError::Io {
                action: "writing",
                path,
                source,
            }
        })
    }

    /// All pinned peers, in file order.
    pub fn peers(&self) -> &[PeerConfig] {
        &self.peers
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&PeerConfig> {
        self.peers.iter().find(|peer| peer.name == name)
    }

    /// The peer called `name`, to change its settings. Uniqueness of names and
    /// fingerprints is checked again by [`save`](Self::save) and [`to_toml`](Self::to_toml).
    pub fn peer_mut(&mut self, name: &str) -> Option<&mut PeerConfig> {
        self.peers.iter_mut().find(|peer| peer.name == name)
    }

    /// The peer whose certificate has this fingerprint.
    pub fn peer_by_fingerprint(&self, fingerprint: &Fingerprint) -> Option<&PeerConfig> {
        self.peers
            .iter()
            .find(|peer| peer.fingerprint.ct_eq(fingerprint))
    }

    /// The record requirements of dataset `name` (none when it has no section).
    pub fn dataset_policy(&self, name: &str) -> DatasetPolicy {
        self.datasets.get(name).cloned().unwrap_or_default()
    }

    /// The fingerprints the transport should accept.
    pub fn pinned_fingerprints(&self) -> Vec<Fingerprint> {
        self.peers.iter().map(|peer| peer.fingerprint).collect()
    }

    /// Adds a peer after validating it; names and fingerprints must be new.
    pub fn add_peer(&mut self, peer: PeerConfig) -> Result<(), ConfigError> {
        raw::RawPeer::from(&peer).validate(None, "peer")?;
        if self.peer(&peer.name).is_some() {
            return Err(ConfigError::DuplicatePeerName { name: peer.name });
        }
        if let Some(existing) = self.peer_by_fingerprint(&peer.fingerprint) {
            return Err(ConfigError::DuplicateFingerprint {
                fingerprint: peer.fingerprint,
                existing: existing.name.clone(),
            });
        }
        self.peers.push(peer);
        Ok(())
    }

    /// Removes and returns the peer called `name`.
    pub fn remove_peer(&mut self, name: &str) -> Result<PeerConfig, ConfigError> {
        match self.peers.iter().position(|peer| peer.name == name) {
            Some(index) => Ok(self.peers.remove(index)),
            None => Err(ConfigError::UnknownPeer {
                name: name.to_owned(),
                known: self.peers.iter().map(|peer| peer.name.clone()).collect(),
            }),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_sessions: DEFAULT_MAX_CONCURRENT_SESSIONS,
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            replay_window_days: DEFAULT_REPLAY_WINDOW_DAYS,
        }
    }
}

impl PeerConfig {
    /// A peer that offers nothing yet, may use every mode, has no size cap and no other
    /// policy; the `offering`/`with_*` methods adjust it, e.g. for
    /// [`admin::add_peer`](crate::admin::add_peer):
    ///
    /// ```
    /// # use blindmatch_node::config::{AllowedMode, PeerConfig};
    /// # let addr = "partner.example.com:7447".parse().unwrap();
    /// # let fingerprint = "00".repeat(32).parse().unwrap();
    /// let peer = PeerConfig::new("partner", addr, fingerprint)
    ///     .offering(["kp-contacts"])
    ///     .with_modes([AllowedMode::Cardinality])
    ///     .with_max_peer_set_size(Some(50_000));
    /// assert!(peer.offers("kp-contacts") && !peer.allows_mode(AllowedMode::Both));
    /// ```
    pub fn new(name: &str, addr: PeerAddr, fingerprint: Fingerprint) -> Self {
        Self {
            name: name.to_owned(),
            addr,
            fingerprint,
            audit_key: None,
            offers: Vec::new(),
            modes: AllowedMode::ALL.to_vec(),
            match_modes: vec![AllowedMode::Initiator],
            max_peer_set_size: None,
            policy: PeerPolicy::default(),
        }
    }

    /// This peer with the datasets it may match against (instead of none).
    pub fn offering<I, S>(mut self, datasets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.offers = datasets.into_iter().map(Into::into).collect();
        self
    }

    /// This peer allowed only `modes`; an empty list leaves every mode allowed (as a
    /// `peer add` without `--mode` does). To forbid every mode, clear
    /// [`modes`](Self::modes) itself.
    pub fn with_modes(mut self, modes: impl IntoIterator<Item = AllowedMode>) -> Self {
        let modes: Vec<AllowedMode> = modes.into_iter().collect();
        if !modes.is_empty() {
            self.modes = modes;
        }
        self
    }

    /// This peer with the largest set it may declare (`None`: no cap).
    pub fn with_max_peer_set_size(mut self, max: Option<u64>) -> Self {
        self.max_peer_set_size = max;
        self
    }

    /// Whether this peer may initiate a session with output `mode`.
    pub fn allows_mode(&self, mode: AllowedMode) -> bool {
        self.modes.contains(&mode)
    }

    /// This peer with the modes we may use when we start a session with it.
    pub fn with_match_modes(mut self, modes: impl IntoIterator<Item = AllowedMode>) -> Self {
        self.match_modes = modes.into_iter().collect();
        self
    }

    /// Whether we may start a session with this peer in output `mode`.
    pub fn allows_match_mode(&self, mode: AllowedMode) -> bool {
        self.match_modes.contains(&mode)
    }

    /// Whether we offer `dataset` to this peer.
    pub fn offers(&self, dataset: &str) -> bool {
        self.offers.iter().any(|offered| offered == dataset)
    }
}

impl AllowedMode {
    /// Every mode, the default for a peer.
    pub const ALL: [AllowedMode; 4] = [
        AllowedMode::Both,
        AllowedMode::Initiator,
        AllowedMode::Responder,
        AllowedMode::Cardinality,
    ];

    /// The name used in `node.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            AllowedMode::Both => "both",
            AllowedMode::Initiator => "initiator",
            AllowedMode::Responder => "responder",
            AllowedMode::Cardinality => "cardinality",
        }
    }
}

impl fmt::Display for AllowedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AllowedMode {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AllowedMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| ConfigError::Invalid {
                file: None,
                key: "mode".to_owned(),
                problem: format!(
                    "unknown output mode `{s}`; expected one of both, initiator, responder, cardinality"
                ),
            })
    }
}

impl PeerAddr {
    /// The host name or IP literal (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resolves the address (DNS if needed) and returns the first result.
    pub async fn resolve(&self, peer: &str) -> Result<SocketAddr, ConfigError> {
        let resolve_err = |problem: String| ConfigError::Resolve {
            peer: peer.to_owned(),
            addr: self.clone(),
            problem,
        };
        let mut addrs = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|err| resolve_err(err.to_string()))?;
        addrs
            .next()
            .ok_or_else(|| resolve_err("the name has no addresses".to_owned()))
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for PeerAddr {
    type Err = ConfigError;

    /// Accepts `host:port`, `1.2.3.4:port` and `[v6]:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_peer_addr(s).map_err(|problem| ConfigError::Invalid {
            file: None,
            key: "addr".to_owned(),
            problem: format!("`{s}` {problem}"),
        })
    }
}

fn parse_peer_addr(s: &str) -> Result<PeerAddr, &'static str> {
    const EXPECTED: &str =
        "is not host:port (e.g. partner.example.com:7447, 10.0.0.5:7447 or [2001:db8::5]:7447)";
    let (host, port) = s.rsplit_once(':').ok_or(EXPECTED)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => {
            let inner = inner.strip_suffix(']').ok_or(EXPECTED)?;
            inner
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| "has an invalid IPv6 address in brackets")?;
            inner
        }
        None if host.contains(':') => {
            return Err("looks like an IPv6 address: put it in brackets, e.g. [2001:db8::5]:7447");
        }
        None => host,
    };
    let port: u16 = port
        .parse()
        .map_err(|_| "has an invalid port (expected 1-65535)")?;
    if port == 0 {
        return Err("has port 0 (expected 1-65535)");
    }
    let is_dns_name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if host.parse::<IpAddr>().is_err() && !is_dns_name {
        return Err("has an invalid host name");
    }
    Ok(PeerAddr {
        host: host.to_owned(),
        port,
    })
}

fn file_prefix(file: Option<&Path>) -> String {
    file.map(|path| format!("{}: ", path.display()))
        .unwrap_or_default()
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
