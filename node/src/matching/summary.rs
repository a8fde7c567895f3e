//! What a completed match reports, and how it reads on a terminal.

use std::path::PathBuf;
use std::time::Duration;

use blindmatch_protocol::wire::OutputMode;

/// What a completed match reports.
#[derive(Clone, Debug)]
pub struct MatchSummary {
    /// Session id (hex).
    pub session_id: String,
    /// Our set size (unique identifiers).
    pub our_size: u64,
    /// Our record count.
    pub our_records: usize,
    /// Their set size: distinct identifiers, or in `cardinality` mode record bundles
    /// times their padded width.
    pub their_size: u64,
    /// The output mode.
    pub mode: OutputMode,
    /// Distinct identifiers in the intersection, if our mode lets us know it.
    pub intersection: Option<u64>,
    /// Our records (contacts) matched, if our mode lets us know the count: the figure
    /// people read.
    pub matched_records: Option<u64>,
    /// The peer's receipt verified under its audit key (hex).
    pub peer_audit_key: String,
    /// Where the result file was written.
    pub out: Option<PathBuf>,
    /// Wall time of the session (excluding loading the dataset).
    pub duration: Duration,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Transcript hash (hex) both sides confirmed.
    pub transcript_hash: String,
}

impl std::fmt::Display for MatchSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "session     {}", self.session_id)?;
        writeln!(
            f,
            "our set     {} identifiers ({} records)",
            self.our_size, self.our_records
        )?;
        if self.mode == OutputMode::Cardinality {
            writeln!(
                f,
                "their set   {} elements (one bundle per record, padded)",
                self.their_size
            )?;
        } else {
            writeln!(f, "their set   {} identifiers", self.their_size)?;
        }
        let rate = |records: u64| {
            if self.our_records == 0 {
                0.0
            } else {
                records as f64 * 100.0 / self.our_records as f64
            }
        };
        match (self.matched_records, self.intersection) {
            (Some(r), Some(n)) => {
                let only = if self.mode == OutputMode::Cardinality {
                    " (count only)"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "matches     {r} of our {} records ({:.1}%), {n} identifiers{only}",
                    self.our_records,
                    rate(r)
                )?;
            }
            _ => writeln!(f, "matches     not disclosed to us in this mode")?,
        }
        if let Some(out) = &self.out {
            writeln!(f, "results     {}", out.display())?;
        }
        writeln!(
            f,
            "time        {:.2} s; sent {:.1} MB, received {:.1} MB",
            self.duration.as_secs_f64(),
            self.bytes_sent as f64 / 1e6,
            self.bytes_received as f64 / 1e6
        )?;
        writeln!(f, "transcript  {}", self.transcript_hash)?;
        write!(
            f,
            "receipt     signed by the peer, verified (audit key {})",
            self.peer_audit_key
        )
    }
}
