//! What the kernel counts for a process: peak resident memory and CPU time (Linux
//! `/proc`; zeros elsewhere, which the bench reports as such).
//!
//! A child that exits cannot be read afterwards, so a child started with
//! [`STATS_ENV`] set writes its own figures at exit ([`write_own_stats_if_asked`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Environment variable naming the file a `blindmatch` process writes its
/// [`ProcessStats`] to when it exits (used by `bench` for its child processes).
pub const STATS_ENV: &str = "BLINDMATCH_STATS_FILE";

/// A process's resource use so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Peak resident set size (VmHWM), bytes.
    pub peak_rss_bytes: u64,
    /// User + system CPU seconds.
    pub cpu_s: f64,
}

impl ProcessStats {
    /// This process.
    pub fn own() -> Self {
        Self::read(Path::new("/proc/self"))
    }

    /// A running process, by id.
    pub fn of(pid: u32) -> Self {
        Self::read(&Path::new("/proc").join(pid.to_string()))
    }

    fn read(proc_dir: &Path) -> Self {
        Self {
            peak_rss_bytes: std::fs::read_to_string(proc_dir.join("status"))
                .map(|status| peak_rss(&status))
                .unwrap_or(0),
            cpu_s: std::fs::read_to_string(proc_dir.join("stat"))
                .map(|stat| cpu_seconds(&stat))
                .unwrap_or(0.0),
        }
    }
}

/// If [`STATS_ENV`] is set, writes this process's stats there as JSON. Called by the
/// command line just before exit; failures are ignored (the bench then reports the
/// missing file).
pub fn write_own_stats_if_asked() {
    if let Some(path) = std::env::var_os(STATS_ENV)
        && let Ok(json) = serde_json::to_vec(&ProcessStats::own())
    {
        let _ = std::fs::write(path, json);
    }
}

/// Resets this process's peak-RSS mark to the current RSS (Linux ≥ 4.0; ignored
/// elsewhere), so a later reading measures what came after.
pub fn reset_own_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `VmHWM` from `/proc/<pid>/status`, bytes.
fn peak_rss(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// utime + stime from `/proc/<pid>/stat`, seconds.
fn cpu_seconds(stat: &str) -> f64 {
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux platform Rust supports.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_peak_rss_and_cpu_from_proc_text() {
        let status = "Name:\tblindmatch\nVmPeak:\t  900 kB\nVmHWM:\t  1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(peak_rss(status), 1234 * 1024);
        let stat = "42 (blind match) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3";
        assert!((cpu_seconds(stat) - 3.0).abs() < 1e-9);
        assert_eq!(peak_rss("garbage"), 0);
        assert_eq!(cpu_seconds("no parenthesis"), 0.0);
    }

    #[test]
    fn reads_this_process() {
        let stats = ProcessStats::own();
        if cfg!(target_os = "linux") {
            assert!(stats.peak_rss_bytes > 1 << 20, "{stats:?}");
        }
    }
}
