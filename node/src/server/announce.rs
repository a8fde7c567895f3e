//! One line per session outcome, for whoever watches `serve`: requested, refused,
//! completed (with the result file, if any) and aborted, each starting with "session
//! <outcome>" (or "index session <outcome>") so that a log can be searched for them.
//!
//! The lines go to tracing under [`TARGET`], which `serve` shows at its default
//! verbosity (`-q` hides them) while other commands do not. They carry the peer's name
//! in our configuration, the mode, set sizes, counts and times: never a session id, a
//! record id or a text the peer chose, so a log file of them is no more sensitive than
//! the audit log's counts.

use std::path::Path;
use std::time::Duration;

use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::wire::{OutputMode, RejectReason, printable};

/// The tracing target of these lines.
pub const TARGET: &str = "blindmatch::sessions";

/// What kind of session a line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A PSI session.
    Psi,
    /// A session against our index.
    Index,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Psi => "session",
            Kind::Index => "index session",
        }
    }
}

/// A peer asked for a session (before any policy decision).
pub(super) fn requested(kind: Kind, peer: &str, mode: OutputMode, peer_size: u64) {
    tracing::info!(
        target: TARGET,
        "{} requested by {peer}: mode {mode}, their set {peer_size} identifiers",
        kind.name()
    );
}

/// Our policy refused it.
pub(super) fn refused(kind: Kind, peer: &str, mode: OutputMode, reason: RejectReason) {
    tracing::info!(
        target: TARGET,
        "{} refused for {peer} ({}): mode {mode}",
        kind.name(),
        reason.name()
    );
}

/// What a completed session reports.
pub(super) struct Completed<'a> {
    pub(super) kind: Kind,
    /// The peer's name in our configuration.
    pub(super) peer: &'a str,
    pub(super) mode: OutputMode,
    /// Identifiers in our set (index mode: in our index).
    pub(super) our_size: u64,
    /// Records of our dataset (zero when unknown).
    pub(super) our_records: u64,
    /// Identifiers in the peer's set (index mode: queried).
    pub(super) peer_size: u64,
    /// Our records matched, when the mode lets us know.
    pub(super) matched: Option<u64>,
    pub(super) duration: Duration,
    /// Where our matched records went.
    pub(super) results: Option<&'a Path>,
}

/// The session completed and both sides confirmed it.
pub(super) fn completed(done: &Completed<'_>) {
    let matched = match done.matched {
        Some(n) if done.our_records > 0 => format!(
            "{n} of our {} records matched ({:.1}%)",
            done.our_records,
            n as f64 * 100.0 / done.our_records as f64
        ),
        Some(n) => format!("{n} of our records matched"),
        None => "we learn no matches in this mode".to_owned(),
    };
    let results = done.results.map_or(String::new(), |path| {
        format!(", results in {}", path.display())
    });
    tracing::info!(
        target: TARGET,
        "{} completed with {}: mode {}, our set {} identifiers, theirs {}; {matched}; {:.2} s{results}",
        done.kind.name(),
        done.peer,
        done.mode,
        done.our_size,
        done.peer_size,
        done.duration.as_secs_f64(),
    );
}

/// The session ended without a result; `why` is our error's text (escaped here: it
/// may quote how the peer closed the connection).
pub(super) fn aborted(
    kind: Kind,
    peer: &str,
    mode: OutputMode,
    code: CloseCode,
    why: &str,
    duration: Duration,
) {
    tracing::warn!(
        target: TARGET,
        "{} aborted with {peer} ({code}) after {:.2} s: mode {mode}; {}",
        kind.name(),
        duration.as_secs_f64(),
        printable(why),
    );
}
