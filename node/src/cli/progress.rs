//! Progress bars on a terminal (one per session; one line per peer for a run), silence
//! in scripts.

use std::io::IsTerminal;
use std::sync::Arc;

use blindmatch_protocol::session::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::matching::{MatchSummary, RunObserver};

/// A progress bar for a match session, or `None` when quiet or not on a terminal.
pub fn session_bar(quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{spinner} {msg} [{bar:30}] {pos}/{len} elements ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message("matching");
    Some(bar)
}

/// A progress callback driving `bar`: total work is our set plus theirs.
pub fn session_callback(bar: &ProgressBar) -> Arc<dyn Fn(Progress) + Send + Sync> {
    let bar = bar.clone();
    Arc::new(move |p: Progress| {
        bar.set_length(p.own_total + p.peer_total);
        bar.set_position(p.own_sent + p.peer_received);
    })
}

/// A progress callback for a match through an index: the index download in bytes while
/// it runs, then our identifiers evaluated.
pub fn index_callback(bar: &ProgressBar) -> Arc<dyn Fn(Progress) + Send + Sync> {
    let bar = bar.clone();
    Arc::new(move |p: Progress| {
        if p.index_total > 0 && p.index_bytes < p.index_total {
            bar.set_message("fetching the index (bytes)");
            bar.set_length(p.index_total);
            bar.set_position(p.index_bytes);
        } else {
            bar.set_message("matching via the index");
            bar.set_length(p.own_total);
            bar.set_position(p.replies_received);
        }
    })
}

/// One progress line per peer of a run, under one display.
pub struct RunBars {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
}

/// The progress display of a run with `peers`, or `None` when quiet or not on a terminal.
pub fn run_bars(quiet: bool, peers: &[&str]) -> Option<Arc<RunBars>> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let multi = MultiProgress::new();
    let width = peers.iter().map(|p| p.len()).max().unwrap_or(0);
    let style = ProgressStyle::with_template(
        "{spinner} {prefix} [{bar:30}] {pos}/{len} elements ({per_sec}, eta {eta}) {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bars = peers
        .iter()
        .map(|peer| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(style.clone());
            bar.set_prefix(format!("{peer:width$}"));
            bar.set_message("connecting");
            bar
        })
        .collect();
    Some(Arc::new(RunBars { multi, bars }))
}

impl RunBars {
    /// Removes the display.
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl RunObserver for RunBars {
    fn progress(&self, peer: usize, p: Progress) {
        if let Some(bar) = self.bars.get(peer) {
            bar.set_message("matching");
            bar.set_length(p.own_total + p.peer_total);
            bar.set_position(p.own_sent + p.peer_received);
        }
    }

    fn finished(&self, peer: usize, result: Result<&MatchSummary, &str>) {
        if let Some(bar) = self.bars.get(peer) {
            let message = match result {
                Ok(_) => "done",
                Err(_) => "FAILED",
            };
            bar.abandon_with_message(message);
        }
    }
}
