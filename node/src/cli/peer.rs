//! `blindmatch peer add|list|remove`.
//!
//! `peer add` writes an explicit policy: a peer offered a dataset gets the modes the
//! operator names (required: the error explains each) and caps derived from the offered
//! dataset's size, so that nothing is unlimited unless the operator writes so
//! (`--max-identifiers-per-day none`).

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;

use clap::Subcommand;

use crate::admin;
use crate::config::{AllowedMode, PeerAddr, PeerConfig, SetRatio};
use crate::dataset::Dataset;
use crate::identity::{AuditKey, Fingerprint};
use crate::policy;

/// Sessions per rolling hour `peer add` allows a peer offered a dataset by default.
const DEFAULT_SESSIONS_PER_HOUR: u32 = 6;
/// A peer's default daily budget, in multiples of the offered set.
const DEFAULT_DAILY_MULTIPLE: u64 = 2;
/// A peer's default total budget, in multiples of the offered set.
const DEFAULT_TOTAL_MULTIPLE: u64 = 20;
/// A peer's default largest ratio of its set to ours.
const DEFAULT_RATIO: f64 = 2.0;

/// `blindmatch peer ...`.
// Parsed once per process: the size of the `Add` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Pin a partner node by its certificate fingerprint (from its `blindmatch id`).
    ///
    /// With `--offer`, `--modes` is required, and the peer gets explicit limits derived
    /// from the offered dataset's size (a set at most twice ours, twice our set's worth of
    /// identifiers per day, twenty times in total, 6 sessions per hour) unless given
    /// here; `none` writes no limit of that kind. `blindmatch policy check` shows the
    /// result in plain words.
    Add(PeerAddArgs),
    /// List pinned peers: name, address, fingerprint, audit key, datasets, modes.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Unpin a peer: it can no longer connect or be matched with; a running `serve`
    /// cuts it off at once.
    Remove {
        /// The peer's local name.
        name: String,
    },
}

/// `blindmatch peer add`.
#[derive(clap::Args, Debug)]
pub struct PeerAddArgs {
    /// Local name for the peer.
    name: String,
    /// Where its `serve` listens: HOST:PORT.
    #[arg(long)]
    addr: PeerAddr,
    /// Its certificate fingerprint: 64 hex digits (from `blindmatch id` on its node).
    #[arg(long)]
    fingerprint: Fingerprint,
    /// Its audit key (from `blindmatch id` on its node): its session receipts must
    /// verify under it. Without it, the key of its first receipt is pinned.
    #[arg(long, value_name = "KEY")]
    audit_key: Option<AuditKey>,
    /// One of our datasets this peer may match against (repeat for several).
    #[arg(long = "offer", value_name = "DATASET")]
    offers: Vec<String>,
    /// Output modes this peer may ask for when it starts a session (required with
    /// `--offer`; comma-separated or repeated): both, initiator, responder, cardinality.
    #[arg(
        long = "modes",
        alias = "mode",
        value_name = "MODE",
        value_delimiter = ','
    )]
    modes: Vec<AllowedMode>,
    /// Output modes we may use when we start a session with this peer (default:
    /// initiator, where it learns nothing).
    #[arg(long = "match-modes", value_name = "MODE", value_delimiter = ',')]
    match_modes: Vec<AllowedMode>,
    /// Largest set this peer may send in one session (`none`: no cap).
    #[arg(long, value_name = "N|none")]
    max_peer_set_size: Option<Limit>,
    /// Largest ratio of its set to ours (default with `--offer`: 2).
    #[arg(long, value_name = "RATIO|none")]
    max_set_ratio: Option<RatioLimit>,
    /// Identifiers it may test against our set per rolling 24 hours.
    #[arg(long, value_name = "N|none")]
    max_identifiers_per_day: Option<Limit>,
    /// Identifiers it may test against our set in total, ever.
    #[arg(long, value_name = "N|none")]
    max_identifiers_total: Option<Limit>,
    /// Sessions with it per rolling hour (both directions).
    #[arg(long, value_name = "N|none")]
    max_sessions_per_hour: Option<Limit>,
}

/// A number, or `none` for no limit.
#[derive(Clone, Copy, Debug)]
pub struct Limit(Option<u64>);

impl FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(Self(None));
        }
        match s.parse::<u64>() {
            Ok(0) => Err("must be at least 1 (or `none` for no limit)".into()),
            Ok(n) => Ok(Self(Some(n))),
            Err(_) => Err(format!("`{s}` is not a number (or `none` for no limit)")),
        }
    }
}

/// A set ratio, or `none`.
#[derive(Clone, Copy, Debug)]
pub struct RatioLimit(Option<SetRatio>);

impl FromStr for RatioLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("none") {
            return Ok(Self(None));
        }
        s.parse::<f64>()
            .ok()
            .and_then(SetRatio::from_f64)
            .map(|r| Self(Some(r)))
            .ok_or_else(|| format!("`{s}` is not a ratio between 0.001 and 1000000 (or `none`)"))
    }
}

pub fn run(data_dir: &Path, cmd: PeerCommand, quiet: bool) -> anyhow::Result<ExitCode> {
    match cmd {
        PeerCommand::Add(args) => add(data_dir, args, quiet),
        PeerCommand::List { json } => list(data_dir, json),
        PeerCommand::Remove { name } => {
            let removed = admin::remove_peer(data_dir, &name)?;
            let told = crate::server::instance::ask_to_reload(data_dir);
            if !quiet {
                println!("removed peer `{}` ({})", removed.name, removed.fingerprint);
                if told {
                    println!("the running `serve` cut it off (its sessions in flight are aborted)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn add(data_dir: &Path, args: PeerAddArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    if !args.offers.is_empty() && args.modes.is_empty() {
        let modes: Vec<String> = blindmatch_protocol::wire::OutputMode::ALL
            .iter()
            .map(|m| format!("  {:<12} {}", m.name(), policy::mode_meaning(*m)))
            .collect();
        anyhow::bail!(
            "say which output modes `{}` may ask for with --modes (comma-separated), e.g. --modes cardinality:\n{}",
            args.name,
            modes.join("\n")
        );
    }
    let own = crate::identity::NodeIdentity::load(data_dir)?;
    if own.fingerprint() == args.fingerprint {
        anyhow::bail!(
            "{} is this node's own fingerprint: pin the partner's, from `blindmatch id` on its node",
            args.fingerprint
        );
    }
    let mut offered_size = 0u64;
    for name in &args.offers {
        let meta = Dataset::read_meta(data_dir, name).map_err(|err| {
            anyhow::anyhow!("cannot offer dataset `{name}`: {err} (see `blindmatch dataset list`)")
        })?;
        offered_size = offered_size.max(meta.counts.identifiers);
    }
    let mut peer = PeerConfig::new(&args.name, args.addr, args.fingerprint)
        .offering(args.offers.clone())
        .with_modes(args.modes.clone());
    if args.offers.is_empty() {
        peer.modes.clear();
    }
    if !args.match_modes.is_empty() {
        peer.match_modes = args.match_modes.clone();
    }
    peer.audit_key = args.audit_key;
    // Limits by default wherever the peer learns from our answers: when it starts
    // sessions against an offered dataset, or in a mode we start that answers it.
    let learns_from_us = peer.match_modes.iter().any(|m| {
        matches!(
            m,
            AllowedMode::Both | AllowedMode::Responder | AllowedMode::Cardinality
        )
    });
    let defaults = !args.offers.is_empty() || learns_from_us;
    let pick = |given: Option<Limit>, default: u64| match given {
        Some(Limit(value)) => value,
        None => (defaults && default > 0).then_some(default),
    };
    peer.max_peer_set_size = args.max_peer_set_size.and_then(|l| l.0);
    peer.policy.max_set_ratio = match args.max_set_ratio {
        Some(RatioLimit(value)) => value,
        None => defaults
            .then(|| SetRatio::from_f64(DEFAULT_RATIO))
            .flatten(),
    };
    peer.policy.max_identifiers_per_day = pick(
        args.max_identifiers_per_day,
        offered_size.saturating_mul(DEFAULT_DAILY_MULTIPLE),
    );
    peer.policy.max_identifiers_total = pick(
        args.max_identifiers_total,
        offered_size.saturating_mul(DEFAULT_TOTAL_MULTIPLE),
    );
    peer.policy.max_sessions_per_hour = pick(
        args.max_sessions_per_hour,
        u64::from(DEFAULT_SESSIONS_PER_HOUR),
    )
    .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let peer = admin::add_peer(data_dir, peer)?;
    let told = crate::server::instance::ask_to_reload(data_dir);
    if !quiet {
        if told {
            println!("the running `serve` accepts it from its next handshake");
        }
        println!(
            "pinned peer `{}` at {} ({})",
            peer.name, peer.addr, peer.fingerprint
        );
        match peer.audit_key {
            Some(key) => println!("audit key pinned: {key}"),
            None => {
                println!("its audit key will be pinned at its first session (or give --audit-key)")
            }
        }
        if peer.offers.is_empty() {
            println!("it may match against none of our datasets (add --offer DATASET to allow)");
        } else {
            println!("it may match against: {}", peer.offers.join(", "));
        }
        println!("run `blindmatch policy check` to read its policy in plain words");
    }
    Ok(ExitCode::SUCCESS)
}

fn list(data_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let config = crate::config::NodeConfig::load(data_dir)?;
    let names = |modes: &[AllowedMode]| -> Vec<&str> { modes.iter().map(|m| m.as_str()).collect() };
    if json {
        let peers: Vec<serde_json::Value> = config
            .peers()
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "addr": p.addr.to_string(),
                    "fingerprint": p.fingerprint.to_string(),
                    "audit_key": p.audit_key.map(|k| k.to_string()),
                    "offers": p.offers,
                    "modes": names(&p.modes),
                    "match_modes": names(&p.match_modes),
                    "max_peer_set_size": p.max_peer_set_size,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&peers)?);
        return Ok(ExitCode::SUCCESS);
    }
    if config.peers().is_empty() {
        println!(
            "no peers; add one with `blindmatch peer add NAME --addr HOST:PORT --fingerprint FP`"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let or_dash = |items: Vec<&str>| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(", ")
        }
    };
    for p in config.peers() {
        println!("{}", p.name);
        println!("  addr         {}", p.addr);
        println!("  fingerprint  {}", p.fingerprint);
        match p.audit_key {
            Some(key) => println!("  audit key    {key}"),
            None => println!("  audit key    not pinned yet (pinned at its first session)"),
        }
        println!(
            "  offers       {}",
            or_dash(p.offers.iter().map(String::as_str).collect())
        );
        println!(
            "  modes        {} (when it starts a session)",
            or_dash(names(&p.modes))
        );
        println!(
            "  match modes  {} (when we start one)",
            or_dash(names(&p.match_modes))
        );
    }
    Ok(ExitCode::SUCCESS)
}
