//! The `blindmatch` binary as a child process: `serve`, which a test can kill with
//! SIGKILL, and one-shot commands.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `blindmatch` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_blindmatch");

/// A running `blindmatch serve`; killed when dropped.
pub struct ServeProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it printed on stderr after it said it was serving, line by line.
    stderr: Arc<Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Starts `serve` for the node in `data_dir` on `listen` and waits until it says
    /// it is serving.
    pub fn start(data_dir: &Path, listen: SocketAddr) -> ServeProcess {
        Self::start_under(&[], data_dir, listen)
    }

    /// [`ServeProcess::start`] with the binary run by the command `prefix` (e.g.
    /// `ip netns exec NAME`, which execs it in place, so killing the child kills
    /// `serve`).
    pub fn start_under(prefix: &[String], data_dir: &Path, listen: SocketAddr) -> ServeProcess {
        Self::spawn(prefix, data_dir, listen, &[])
    }

    /// [`ServeProcess::start`] with `extra` arguments after `serve --listen ADDR`.
    pub fn start_with(data_dir: &Path, listen: SocketAddr, extra: &[&str]) -> ServeProcess {
        Self::spawn(&[], data_dir, listen, extra)
    }

    fn spawn(
        prefix: &[String],
        data_dir: &Path,
        listen: SocketAddr,
        extra: &[&str],
    ) -> ServeProcess {
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn blindmatch serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            assert!(Instant::now() < deadline, "serve did not start in time");
            match lines.next() {
                Some(Ok(line)) if line.contains("serving") => {
                    break serving_addr(&line).unwrap_or(listen);
                }
                Some(Ok(_)) => continue,
                _ => panic!("serve exited before serving"),
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(mut kept) = kept.lock() {
                    kept.push(line);
                }
            }
        });
        ServeProcess {
            child,
            addr,
            stderr,
        }
    }

    /// The lines it printed on stderr since it said it was serving.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Sends it `signal` (`INT`, `TERM`, `HUP`, …) with `kill`.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
    }

    /// Waits up to `limit` for it to exit; its status, or `None` if it still runs.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited (reaped).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait for serve")
    }

    /// Stops the process gracefully with SIGTERM and waits (up to 30 s) for it to exit;
    /// its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs `blindmatch --data-dir DATA_DIR ARGS…` to its end; returns whether it
/// succeeded, its stdout and its stderr.
pub fn blindmatch(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run blindmatch");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The address in "serving `name` on 127.0.0.1:PORT (fingerprint …)".
fn serving_addr(line: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .skip_while(|w| *w != "on")
        .nth(1)
        .and_then(|w| w.parse().ok())
}
