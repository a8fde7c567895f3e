//! One bench party: a data directory driven through the real `blindmatch` binary, each
//! command its own process, so each party's memory and CPU are its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use blindmatch_protocol::audit::{AuditEvent, SessionFacts, VerifyOptions, verify_log_bytes};

use super::procstats::{ProcessStats, STATS_ENV};

/// A node's data directory and the binary that runs it.
pub struct Party {
    exe: PathBuf,
    pub dir: PathBuf,
}

/// A finished command: its output, what it cost, how long it took.
pub struct Finished {
    pub output: Output,
    pub stats: ProcessStats,
    pub wall: Duration,
}

impl Party {
    pub fn new(exe: &Path, dir: PathBuf) -> Self {
        Self {
            exe: exe.to_path_buf(),
            dir,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--data-dir")
            .arg(&self.dir)
            .arg("--quiet")
            .args(args);
        cmd.env_remove(STATS_ENV);
        cmd
    }

    /// Runs a command to completion; fails with its stderr if it fails.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Finished> {
        let stats_file = self
            .dir
            .with_extension(format!("stats-{}", std::process::id()));
        let _ = std::fs::remove_file(&stats_file);
        let started = Instant::now();
        let output = self
            .command(args)
            .env(STATS_ENV, &stats_file)
            .output()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        let wall = started.elapsed();
        ensure!(
            output.status.success(),
            "`blindmatch {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
        let stats = std::fs::read(&stats_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let _ = std::fs::remove_file(&stats_file);
        Ok(Finished {
            output,
            stats,
            wall,
        })
    }

    /// The node's certificate fingerprint (`blindmatch id --json`).
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        let id = self.run(&["id", "--json"])?;
        let json: serde_json::Value = serde_json::from_slice(&id.output.stdout)
            .context("reading the output of `blindmatch id --json`")?;
        json.get("fingerprint")
            .and_then(|f| f.as_str())
            .map(str::to_owned)
            .context("`blindmatch id --json` printed no fingerprint")
    }

    /// Starts `serve` on `listen` and waits until it says it is serving.
    pub fn serve(&self, listen: &str) -> anyhow::Result<Server> {
        let mut child = self
            .command(&["serve", "--listen", listen])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server { child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("serving") => return Ok(server),
                Ok(_) => {}
                Err(_) => {
                    let status = server.child.try_wait().ok().flatten();
                    server.stop();
                    bail!("`blindmatch serve` did not start (exit status {status:?})");
                }
            }
        }
    }

    /// The facts of the last completed session in this node's audit log, which is
    /// verified (signatures and hash chain) first.
    pub fn last_completed_session(&self) -> anyhow::Result<SessionFacts> {
        let path = self.dir.join(crate::audit::LOG_FILE);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        verify_log_bytes(&bytes, &VerifyOptions::default()).map_err(|fault| {
            anyhow::anyhow!("audit log {} failed verification: {fault}", path.display())
        })?;
        let (records, _) = blindmatch_protocol::audit::read_records(&bytes);
        records
            .iter()
            .rev()
            .find_map(
                |record| match AuditEvent::from_parts(&record.record_type, &record.fields) {
                    Ok(Some(AuditEvent::SessionCompleted(facts))) => Some(facts),
                    _ => None,
                },
            )
            .with_context(|| format!("no completed session in {}", path.display()))
    }
}

/// A running `serve`; killed when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    /// Its resource use so far (read while it runs: a finished session's peak).
    pub fn stats(&self) -> ProcessStats {
        ProcessStats::of(self.child.id())
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
