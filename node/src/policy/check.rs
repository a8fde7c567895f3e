//! `blindmatch policy check`: the effective policy per peer, in plain words, with what
//! each peer has used of its budgets and the gaps that leave this node open to being
//! used as a lookup oracle.

use std::fmt::Write as _;
use std::path::Path;

use super::budget::{self, Usage};
use super::ledger::Ledger;
use super::records::{self, Eligibility};
use super::rules::{effective_modes, threshold_forbids};
use blindmatch_protocol::session::Role;

use crate::config::{AllowedMode, BelowThreshold, DatasetPolicy, NodeConfig, PeerConfig};
use crate::dataset::Dataset;

/// The whole report for `config` (of the node in `data_dir`) at `now` (unix seconds),
/// for every peer or only `only_peer`.
pub fn report(config: &NodeConfig, data_dir: &Path, only_peer: Option<&str>, now: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node `{}`: at most {} sessions at once in total; session ids are remembered for {} days, so a replayed session is refused.",
        config.node.name, config.limits.max_concurrent_sessions, config.limits.replay_window_days
    );
    let _ = writeln!(out, "{}", serve_status(data_dir));
    let ledger = Ledger::read_only(data_dir, config.limits.replay_window_days, now);
    if let Err(err) = &ledger {
        let _ = writeln!(out, "WARNING: {err}");
    }

    let mut offered: Vec<&str> = config
        .peers()
        .iter()
        .flat_map(|p| p.offers.iter().map(String::as_str))
        .collect();
    offered.extend(config.datasets.keys().map(String::as_str));
    offered.sort_unstable();
    offered.dedup();
    let mut eligibility = std::collections::BTreeMap::new();
    if !offered.is_empty() {
        let _ = writeln!(out, "\nDatasets");
    }
    for name in offered {
        let policy = config.dataset_policy(name);
        let line = match Dataset::load(data_dir, name) {
            Ok(dataset) => {
                let counts = records::count(dataset.records(), &policy);
                eligibility.insert(name.to_owned(), counts);
                dataset_line(name, &policy, &counts)
            }
            Err(err) => format!("  `{name}`: not available ({err})"),
        };
        let _ = writeln!(out, "{line}");
    }

    let peers: Vec<&PeerConfig> = config
        .peers()
        .iter()
        .filter(|p| only_peer.is_none_or(|name| p.name == name))
        .collect();
    if peers.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            match only_peer {
                Some(name) => format!("no peer named `{name}`"),
                None => "no peers: nobody can match with this node".to_owned(),
            }
        );
    }
    for peer in peers {
        let usage = match &ledger {
            Ok(ledger) => {
                let key = peer.fingerprint.to_string();
                Some(budget::usage(
                    ledger.charges_of(&key),
                    ledger.totals_of(&key).identifiers,
                    now,
                ))
            }
            Err(_) => None,
        };
        out.push('\n');
        peer_section(&mut out, peer, &eligibility, usage.as_ref());
    }
    out
}

/// Whether a `serve` runs on this data directory and has loaded `node.toml` as it is.
fn serve_status(data_dir: &Path) -> String {
    use crate::server::instance::{ServeState, config_sha256, running};
    let Some(pid) = running(data_dir) else {
        return "serve: not running on this data directory (this file applies when it starts)"
            .to_owned();
    };
    match (ServeState::of_running(data_dir), config_sha256(data_dir)) {
        (Some(state), Some(now)) if state.config_sha256 == now => format!(
            "serve: running (pid {pid}) with this node.toml, loaded {}",
            state.loaded_at
        ),
        (Some(state), _) => format!(
            "serve: running (pid {pid}) with an earlier node.toml (loaded {}): it reloads within a second of a change; if this file is invalid it keeps the earlier one and says why in its log and the audit log (`config_rejected`)",
            state.loaded_at
        ),
        (None, _) => format!("serve: running (pid {pid}); what it loaded is unknown"),
    }
}

fn dataset_line(name: &str, policy: &DatasetPolicy, counts: &Eligibility) -> String {
    let mut needs = Vec::new();
    if !policy.legal_bases.is_empty() {
        needs.push(format!("a legal basis of {}", quoted(&policy.legal_bases)));
    } else if policy.require_legal_basis {
        needs.push("a legal basis".to_owned());
    }
    if policy.require_consent {
        needs.push("consent".to_owned());
    }
    if policy.require_source {
        needs.push("a source".to_owned());
    }
    let rule = if needs.is_empty() {
        "every record may be matched".to_owned()
    } else {
        format!("a record is matched only with {}", needs.join(" and "))
    };
    let mut line = format!(
        "  `{name}`: {} records; {rule}: {} eligible",
        counts.records, counts.kept
    );
    if let Some(summary) = counts.summary() {
        let _ = write!(line, " ({summary})");
    }
    line
}

fn peer_section(
    out: &mut String,
    peer: &PeerConfig,
    eligibility: &std::collections::BTreeMap<String, Eligibility>,
    usage: Option<&Usage>,
) {
    let _ = writeln!(
        out,
        "Peer `{}` ({}, fingerprint {})",
        peer.name, peer.addr, peer.fingerprint
    );
    let _ = writeln!(
        out,
        "  audit key     {}",
        peer.audit_key.map_or_else(
            || "not pinned yet: the key of its first receipt will be".to_owned(),
            |key| key.to_string()
        )
    );
    when_it_starts(out, peer, eligibility);
    when_we_start(out, peer);
    limits(out, peer, usage);
    for warning in oracle_gaps(peer) {
        let _ = writeln!(out, "  WARNING       {warning}");
    }
}

fn row(out: &mut String, label: &str, text: &str) {
    let _ = writeln!(out, "  {label:<14}{text}");
}

/// What the peer may ask for when it starts a session with us.
fn when_it_starts(
    out: &mut String,
    peer: &PeerConfig,
    eligibility: &std::collections::BTreeMap<String, Eligibility>,
) {
    let p = &peer.policy;
    let _ = writeln!(out, "  When it starts a session with us:");
    let datasets: Vec<String> = peer
        .offers
        .iter()
        .map(|name| match eligibility.get(name) {
            Some(counts) => format!(
                "`{name}` ({} eligible record{})",
                counts.kept,
                plural(counts.kept)
            ),
            None => format!("`{name}` (not available)"),
        })
        .collect();
    if datasets.is_empty() {
        row(out, "datasets", "none: it cannot start a session");
        return;
    }
    row(out, "datasets", &datasets.join(", "));
    let modes = effective_modes(peer);
    let mut mode_text = described(&modes, Role::Responder);
    let blocked: Vec<AllowedMode> = peer
        .modes
        .iter()
        .copied()
        .filter(|m| threshold_forbids(p, *m).is_some())
        .collect();
    if !blocked.is_empty() {
        let _ = write!(
            mode_text,
            "; {} refused because of the disclosure threshold",
            names(&blocked)
        );
    }
    row(out, "output modes", &mode_text);
    let purposes = if p.purposes.is_empty() {
        "any purpose".to_owned()
    } else {
        format!("only {}", quoted(&p.purposes))
    };
    row(out, "purposes", &purposes);
    let basis = if !p.legal_bases.is_empty() {
        format!("must declare one of {}", quoted(&p.legal_bases))
    } else if p.require_legal_basis {
        "must declare one (any)".to_owned()
    } else {
        "not required".to_owned()
    };
    row(out, "legal basis", &basis);
    let disclosure = match (p.disclosure_threshold, p.below_threshold) {
        (None, _) => "no threshold: every intersection is disclosed as the mode allows".to_owned(),
        (Some(t), BelowThreshold::Count) => format!(
            "this node keeps matched records only when at least {t} of its records match; below that only the count (in `cardinality` this protects against honest peers only: a dishonest one can learn which of its candidates we hold)"
        ),
        (Some(t), BelowThreshold::Nothing) => format!(
            "this node keeps matched records only when at least {t} of its records match; below that nothing, not even the count"
        ),
    };
    row(out, "disclosure", &disclosure);
}

/// The modes we use when we start a session with the peer.
fn when_we_start(out: &mut String, peer: &PeerConfig) {
    let _ = writeln!(out, "  When we start a session with it (`match`):");
    row(
        out,
        "output modes",
        &described(&peer.match_modes, Role::Initiator),
    );
}

/// Set size, ratio, budgets and rates: per peer, across both directions.
fn limits(out: &mut String, peer: &PeerConfig, usage: Option<&Usage>) {
    let p = &peer.policy;
    let _ = writeln!(
        out,
        "  Limits (both directions; budgets count what it may learn about our set):"
    );
    let mut size = Vec::new();
    if let Some(max) = peer.max_peer_set_size {
        size.push(format!("at most {max} identifiers per session"));
    }
    if let Some(ratio) = p.max_set_ratio {
        size.push(format!("at most {ratio} times our set"));
    }
    let size = if size.is_empty() {
        "no limit".to_owned()
    } else {
        size.join("; ")
    };
    row(out, "set size", &size);
    let used = |n: Option<u64>| n.map(|n| format!(" ({n} used)")).unwrap_or_default();
    let daily = match p.max_identifiers_per_day {
        Some(max) => format!(
            "{max} identifiers per rolling 24 hours{}",
            used(usage.map(|u| u.identifiers_today))
        ),
        None => "no limit".to_owned(),
    };
    row(out, "daily budget", &daily);
    let total = match p.max_identifiers_total {
        Some(max) => format!(
            "{max} identifiers ever{}",
            used(usage.map(|u| u.identifiers_total))
        ),
        None => "no limit".to_owned(),
    };
    row(out, "total budget", &total);
    let rate = match p.max_sessions_per_hour {
        Some(max) => format!(
            "at most {max} per rolling hour{}",
            usage
                .map(|u| format!(" ({} in the last hour)", u.sessions_this_hour))
                .unwrap_or_default()
        ),
        None => "no limit".to_owned(),
    };
    row(out, "session rate", &rate);
    let at_once = match p.max_concurrent_sessions {
        Some(max) => format!("at most {max} session{}", plural(max.into())),
        None => "no per-peer limit (the node-wide limit applies)".to_owned(),
    };
    row(out, "at once", &at_once);
}

/// The settings missing for this peer to be unable to enumerate our dataset, in
/// either direction.
fn oracle_gaps(peer: &PeerConfig) -> Vec<&'static str> {
    let p = &peer.policy;
    let answers_it = !peer.offers.is_empty()
        || peer.match_modes.iter().any(|m| {
            matches!(
                m,
                AllowedMode::Both | AllowedMode::Responder | AllowedMode::Cardinality
            )
        });
    let mut gaps = Vec::new();
    if !answers_it {
        return gaps;
    }
    if peer.max_peer_set_size.is_none() && p.max_set_ratio.is_none() {
        gaps.push(
            "no set-size cap or ratio: one session can test any number of guessed identifiers (see SECURITY.md, lookup oracle)",
        );
    }
    if p.max_identifiers_per_day.is_none() && p.max_identifiers_total.is_none() {
        gaps.push(
            "no identifier budget: repeated sessions can test an unlimited number of identifiers",
        );
    }
    if p.max_sessions_per_hour.is_none() {
        gaps.push("no session rate limit");
    }
    gaps
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The modes, each with what it lets the peer and us learn when we are `our_role`.
fn described(modes: &[AllowedMode], our_role: Role) -> String {
    if modes.is_empty() {
        return "none".to_owned();
    }
    modes
        .iter()
        .map(|mode| {
            let what = match (mode, our_role) {
                (AllowedMode::Both, _) => "each side learns its own matched records",
                (AllowedMode::Initiator, Role::Responder)
                | (AllowedMode::Responder, Role::Initiator) => {
                    "the peer learns its matched records, we nothing"
                }
                (AllowedMode::Responder, Role::Responder)
                | (AllowedMode::Initiator, Role::Initiator) => {
                    "we learn our matched records, the peer nothing"
                }
                (AllowedMode::Cardinality, _) => {
                    "both learn only the count; a dishonest peer can learn as much as with records"
                }
            };
            format!("{mode} ({what})")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn names(modes: &[AllowedMode]) -> String {
    if modes.is_empty() {
        return "none".to_owned();
    }
    modes
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn quoted(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
