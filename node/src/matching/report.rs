//! What a `match` reports as a whole: per peer its outcome (or why it failed), and for
//! a run with several peers how our records combine. Printed as text for a person or as
//! JSON for a script (`match --json`); neither holds an identifier or a record id.

use std::path::PathBuf;
use std::time::Duration;

use blindmatch_protocol::wire::OutputMode;
use serde_json::{Value, json};

use super::{MatchSummary, Require};

/// The summary of a `match`: a run with several peers (printed as a table), or one
/// session (whose text form stays [`MatchSummary`]'s; this gives its JSON).
#[derive(Clone, Debug)]
pub struct RunSummary {
    /// The run id linking the sessions in our audit log (`None`: a single session).
    pub run_id: Option<String>,
    /// Our dataset.
    pub dataset: String,
    /// Our set size (unique identifiers).
    pub our_size: u64,
    /// Our record count.
    pub our_records: usize,
    /// Which records the combined file keeps.
    pub require: Require,
    /// One entry per peer, in the order they were named.
    pub peers: Vec<PeerReport>,
    /// How our records combine, when at least one session of a run completed.
    pub combined: Option<CombinedReport>,
    /// Wall time of the whole run.
    pub duration: Duration,
}

/// One peer's part of a run.
#[derive(Clone, Debug)]
pub struct PeerReport {
    /// Configured peer name.
    pub name: String,
    /// The session's mode.
    pub mode: OutputMode,
    /// Its summary, or the error that ended it (already phrased for the user).
    pub result: Result<MatchSummary, String>,
}

/// Our records combined over the peers whose matched records we know.
#[derive(Clone, Debug)]
pub struct CombinedReport {
    /// Peers whose matched records went into the combination.
    pub over: Vec<String>,
    /// Records matched by at least one of them.
    pub any: u64,
    /// Records matched by all of them.
    pub all: u64,
    /// Records matched by none of them.
    pub none: u64,
    /// Records kept in the combined file.
    pub kept: u64,
    /// The least number of peers a kept record is matched by.
    pub threshold: usize,
    /// The combined file.
    pub out: PathBuf,
}

impl RunSummary {
    /// A single session's summary, as a one-peer report (no run id, no combination).
    pub fn single(
        dataset: &str,
        name: &str,
        mode: OutputMode,
        result: Result<MatchSummary, String>,
    ) -> Self {
        let (our_size, our_records, duration) = match &result {
            Ok(s) => (s.our_size, s.our_records, s.duration),
            Err(_) => (0, 0, Duration::ZERO),
        };
        Self {
            run_id: None,
            dataset: dataset.to_owned(),
            our_size,
            our_records,
            require: Require::Any,
            peers: vec![PeerReport {
                name: name.to_owned(),
                mode,
                result,
            }],
            combined: None,
            duration,
        }
    }

    /// Some sessions failed and some completed.
    pub fn is_partial(&self) -> bool {
        self.failed().next().is_some() && self.peers.iter().any(|p| p.result.is_ok())
    }

    /// No session completed.
    pub fn all_failed(&self) -> bool {
        self.peers.iter().all(|p| p.result.is_err())
    }

    /// The peers whose session failed, with the error.
    pub fn failed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.peers.iter().filter_map(|p| match &p.result {
            Ok(_) => None,
            Err(err) => Some((p.name.as_str(), err.as_str())),
        })
    }

    /// The summary as JSON (see `match --help`).
    pub fn to_json(&self) -> Value {
        let peers: Vec<Value> = self
            .peers
            .iter()
            .map(|p| p.to_json(self.our_records))
            .collect();
        let status = if self.all_failed() {
            "failed"
        } else if self.is_partial() {
            "partial"
        } else {
            "completed"
        };
        json!({
            "run_id": self.run_id,
            "status": status,
            "dataset": self.dataset,
            "our_records": self.our_records,
            "our_identifiers": self.our_size,
            "require": self.require.name(),
            "peers": peers,
            "combined": self.combined.as_ref().map(|c| json!({
                "over": c.over,
                "any": c.any,
                "all": c.all,
                "none": c.none,
                "kept": c.kept,
                "threshold": c.threshold,
                "out": c.out.display().to_string(),
            })),
            "duration_s": self.duration.as_secs_f64(),
        })
    }
}

impl PeerReport {
    fn to_json(&self, our_records: usize) -> Value {
        match &self.result {
            Ok(s) => json!({
                "peer": self.name,
                "mode": self.mode.name(),
                "status": "completed",
                "session_id": s.session_id,
                "their_size": s.their_size,
                "matched_records": s.matched_records,
                "share": s.matched_records.map(|r| share(r, our_records)),
                "identifiers": s.intersection,
                "out": s.out.as_ref().map(|p| p.display().to_string()),
                "transcript_hash": s.transcript_hash,
                "peer_audit_key": s.peer_audit_key,
                "duration_s": s.duration.as_secs_f64(),
                "bytes_sent": s.bytes_sent,
                "bytes_received": s.bytes_received,
            }),
            Err(err) => json!({
                "peer": self.name,
                "mode": self.mode.name(),
                "status": "failed",
                "error": err,
            }),
        }
    }
}

/// `records` as a share (0–1) of `total`.
fn share(records: u64, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        records as f64 / total as f64
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let records = self.our_records;
        let pct = |r: u64| share(r, records) * 100.0;
        if let Some(run_id) = &self.run_id {
            writeln!(f, "run         {run_id}")?;
        }
        writeln!(
            f,
            "our set     {} identifiers ({records} records) of dataset {}",
            self.our_size, self.dataset
        )?;
        writeln!(f)?;
        let width = self
            .peers
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            f,
            "{:width$}  {:9}  {:11}  {:>24}  {:>11}  session",
            "peer", "status", "mode", "matched records", "identifiers"
        )?;
        for peer in &self.peers {
            match &peer.result {
                Ok(s) => {
                    let matched = s.matched_records.map_or_else(
                        || "not disclosed".to_owned(),
                        |r| format!("{r} ({:.1}%)", pct(r)),
                    );
                    let identifiers = s
                        .intersection
                        .map_or_else(|| "-".to_owned(), |n| n.to_string());
                    writeln!(
                        f,
                        "{:width$}  {:9}  {:11}  {matched:>24}  {identifiers:>11}  {}",
                        peer.name,
                        "completed",
                        peer.mode.name(),
                        s.session_id
                    )?;
                }
                Err(_) => writeln!(
                    f,
                    "{:width$}  {:9}  {:11}  {:>24}  {:>11}  -",
                    peer.name,
                    "FAILED",
                    peer.mode.name(),
                    "-",
                    "-"
                )?,
            }
        }
        if self.failed().next().is_some() {
            writeln!(f)?;
        }
        for (name, err) in self.failed() {
            writeln!(f, "failed      {name}: {err}")?;
        }
        if let Some(c) = &self.combined {
            writeln!(f)?;
            writeln!(
                f,
                "combined    over {} of {} peers ({}): any {} ({:.1}%), all {} ({:.1}%), none {} ({:.1}%)",
                c.over.len(),
                self.peers.len(),
                if c.over.is_empty() {
                    "none tells us records".to_owned()
                } else {
                    c.over.join(", ")
                },
                c.any,
                pct(c.any),
                c.all,
                pct(c.all),
                c.none,
                pct(c.none)
            )?;
            let rule = match self.require {
                Require::Any => "matched by at least one peer".to_owned(),
                Require::All => format!("matched by all {} peers", self.peers.len()),
                Require::AtLeast(k) => format!("matched by at least {k} peers"),
            };
            writeln!(f, "kept        {} records {rule}", c.kept)?;
            write!(f, "results     {}", c.out.display())?;
            if c.over.len() < self.peers.len() {
                write!(
                    f,
                    "\npartial     peers without known matches add nothing to the combination; \
                     records they would have matched may be missing"
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn summary(matched: u64) -> MatchSummary {
        MatchSummary {
            session_id: "ab".repeat(16),
            our_size: 20,
            our_records: 10,
            their_size: 30,
            mode: OutputMode::Initiator,
            intersection: Some(matched + 1),
            matched_records: Some(matched),
            peer_audit_key: "cd".repeat(32),
            out: None,
            duration: Duration::from_millis(1500),
            bytes_sent: 1000,
            bytes_received: 2000,
            transcript_hash: "ef".repeat(32),
        }
    }

    fn run(results: Vec<Result<MatchSummary, String>>) -> RunSummary {
        RunSummary {
            run_id: Some("01".repeat(8)),
            dataset: "crm".into(),
            our_size: 20,
            our_records: 10,
            require: Require::All,
            peers: results
                .into_iter()
                .enumerate()
                .map(|(i, result)| PeerReport {
                    name: format!("p{i}"),
                    mode: OutputMode::Initiator,
                    result,
                })
                .collect(),
            combined: None,
            duration: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_failed_peer_makes_the_run_partial_and_is_named_with_its_error() {
        let partial = run(vec![
            Ok(summary(4)),
            Err("the peer refused (budget-exhausted)".into()),
        ]);
        assert!(partial.is_partial() && !partial.all_failed());
        let text = partial.to_string();
        assert!(
            text.contains("failed      p1: the peer refused (budget-exhausted)"),
            "{text}"
        );
        assert!(text.contains("4 (40.0%)"), "{text}");
        let json = partial.to_json();
        assert_eq!(json["status"], "partial");
        assert_eq!(json["require"], "all");
        assert_eq!(json["peers"][0]["matched_records"], 4);
        assert_eq!(json["peers"][0]["share"], 0.4);
        assert_eq!(json["peers"][1]["status"], "failed");
        assert_eq!(
            json["peers"][1]["error"],
            "the peer refused (budget-exhausted)"
        );

        let failed = run(vec![Err("down".into()), Err("down".into())]);
        assert!(failed.all_failed() && !failed.is_partial());
        assert_eq!(failed.to_json()["status"], "failed");
        let fine = run(vec![Ok(summary(1)), Ok(summary(2))]);
        assert!(!fine.is_partial());
        assert_eq!(fine.to_json()["status"], "completed");
    }

    #[test]
    fn a_single_session_has_no_run_id_and_no_combination() {
        let single = RunSummary::single("crm", "hub", OutputMode::Initiator, Ok(summary(3)));
        assert!(single.run_id.is_none());
        assert_eq!(single.to_json()["run_id"], Value::Null);
        assert_eq!(single.to_json()["peers"][0]["matched_records"], 3);
        assert_eq!(single.to_json()["combined"], Value::Null);
    }
}
