//! The real binaries across a real kernel link: `blindmatch serve` in one network
//! namespace, `blindmatch match` in another, joined by a veth pair whose faults the
//! kernel injects (see `support::netns`: tc netem, or nftables and a zero-length
//! queue where the kernel has no netem).
//!
//! - 5 % loss and 50 ms delay each way give exactly the result of the clean link.
//! - A link that goes dark mid-session ends `match` within the idle timeout with a
//!   timeout error, no result file and the abort in both audit logs.
//!
//! Needs root and iproute2; elsewhere (or with `BLINDMATCH_NO_NETNS=1`) each test
//! prints `skipped: <reason>` to stderr and passes. Runs by default: about 15 s here.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use support::netns::{LinkFaults, NetnsPair, Side};
use support::process::{BIN, ServeProcess};
use support::*;

/// Records on each side; half are in common.
const N: usize = 5_000;
/// Idle timeout of both nodes in the dark-link test.
const IDLE_SECS: u64 = 3;
/// Port `serve` listens on inside its namespace.
const PORT: u16 = 7447;

#[test]
fn lossy_kernel_link_gives_the_same_result_as_a_clean_one() {
    let Some(net) = namespaces() else { return };
    let p = Pair::new(&net, 30);
    let _serve = p.serve(&net);

    let clean = p.out("clean.csv");
    let started = Instant::now();
    let output = p.run_match(&net, &clean);
    assert_success(&output, "clean link");
    let clean_time = started.elapsed();

    let how = match net.impair(LinkFaults {
        loss_percent: 5,
        delay_ms: 50,
    }) {
        Ok(how) => how,
        Err(reason) => {
            eprintln!("skipped: the link cannot be made lossy here: {reason}");
            return;
        }
    };
    let lossy = p.out("lossy.csv");
    let started = Instant::now();
    let output = p.run_match(&net, &lossy);
    assert_success(&output, &how);
    let dropped = net.dropped();
    eprintln!(
        "{N} records: clean veth {:.1} s, lossy veth ({how}) {:.1} s, {dropped:?} packets dropped",
        clean_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(dropped.is_some_and(|n| n > 0), "the kernel dropped nothing");
    let expected: std::collections::BTreeSet<String> =
        (N / 2..N).map(|i| format!("r{i}")).collect();
    assert_eq!(result_ids(&clean), expected, "the clean result");
    assert_eq!(
        std::fs::read(&clean).expect("clean result"),
        std::fs::read(&lossy).expect("lossy result"),
        "the results differ"
    );
    assert_eq!(audit_kind(&p.crm.dir, "session_completed").len(), 2);
    assert_eq!(audit_kind(&p.provider.dir, "session_completed").len(), 2);
}

#[test]
fn dark_kernel_link_ends_the_match_within_the_idle_timeout() {
    let Some(net) = namespaces() else { return };
    // Large enough that the session is still running when the link goes dark.
    let p = Pair::with_size(&net, IDLE_SECS, 40_000);
    let _serve = p.serve(&net);
    let out = p.out("dark.csv");
    let mut child = p.spawn_match(&net, &out);

    // Dark as soon as the responder has accepted: the exchange is under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while audit_kind(&p.provider.dir, "session_accepted").is_empty() {
        assert!(Instant::now() < deadline, "the session was never accepted");
        assert!(
            child.try_wait().expect("poll").is_none(),
            "match ended before the session was accepted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let how = net
        .go_dark()
        .unwrap_or_else(|e| panic!("cannot drop packets: {e}"));
    let dark_at = Instant::now();
    let output = wait_with_deadline(child, Duration::from_secs(IDLE_SECS + 15));
    let took = dark_at.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "link dark ({how}); match failed {took:?} later: {}",
        stderr.trim()
    );
    assert!(!output.status.success(), "a dark link cannot complete");
    let idle = Duration::from_secs(IDLE_SECS);
    assert!(
        took <= idle + Duration::from_millis(2500),
        "match took {took:?} after the link went dark (idle timeout {idle:?})"
    );
    assert!(
        stderr.contains("timeout") || stderr.contains("timed out"),
        "not a clear timeout error: {stderr}"
    );
    assert!(!out.exists(), "no result file");
    assert!(
        files_ending(&p.out_dir(), "").is_empty(),
        "nothing partial left"
    );
    let aborted = audit_kind(&p.crm.dir, "session_aborted");
    assert_eq!(aborted.len(), 1, "the initiator records the abort");
    assert_eq!(aborted[0].close_code(), Some(8), "{}", aborted[0].text());

    // The responder gives up on its own too.
    let deadline = dark_at + idle + Duration::from_secs(8);
    let theirs = loop {
        if let Some(entry) = audit_kind(&p.provider.dir, "session_aborted").pop() {
            break entry;
        }
        assert!(Instant::now() < deadline, "the responder recorded no abort");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(theirs.close_code(), Some(8), "{}", theirs.text());
    assert_eq!(theirs.session_id(), aborted[0].session_id());
    audit_verify(&p.crm.dir).expect("initiator audit log");
}

/// The namespaces, or `None` after printing why they cannot be used here.
fn namespaces() -> Option<NetnsPair> {
    if std::env::var_os("BLINDMATCH_NO_NETNS").is_some() {
        eprintln!("skipped: BLINDMATCH_NO_NETNS is set");
        return None;
    }
    match NetnsPair::create() {
        Ok(net) => Some(net),
        Err(reason) => {
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// `crm` (contacts `0..n`) in namespace A matches against `provider` (contacts
/// `n/2..n/2+n`, offered as `kp`) serving in namespace B.
struct Pair {
    root: tempfile::TempDir,
    crm: TestNode,
    provider: TestNode,
    listen: SocketAddr,
}

impl Pair {
    fn new(net: &NetnsPair, idle_secs: u64) -> Pair {
        Self::with_size(net, idle_secs, N)
    }

    fn with_size(net: &NetnsPair, idle_secs: u64, n: usize) -> Pair {
        let root = tempfile::tempdir().expect("tempdir");
        let (crm, provider) = crm_and_provider(root.path(), n, idle_secs, 4);
        let listen = SocketAddr::new(net.addr(Side::B), PORT);
        pin(&crm, "provider", provider.fingerprint, listen, &[]);
        std::fs::create_dir_all(root.path().join("out")).expect("out dir");
        Pair {
            root,
            crm,
            provider,
            listen,
        }
    }

    fn out_dir(&self) -> PathBuf {
        self.root.path().join("out")
    }

    fn out(&self, file: &str) -> PathBuf {
        self.out_dir().join(file)
    }

    fn serve(&self, net: &NetnsPair) -> ServeProcess {
        ServeProcess::start_under(&net.exec_prefix(Side::B), &self.provider.dir, self.listen)
    }

    fn spawn_match(&self, net: &NetnsPair, out: &Path) -> Child {
        net.command(Side::A, BIN)
            .arg("--data-dir")
            .arg(&self.crm.dir)
            .args([
                "--quiet",
                "match",
                "--peer",
                "provider",
                "--dataset",
                "crm",
                "--purpose",
                "netns test",
                "--legal-basis",
                "consent",
                "--out",
            ])
            .arg(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn match")
    }

    fn run_match(&self, net: &NetnsPair, out: &Path) -> Output {
        wait_with_deadline(self.spawn_match(net, out), Duration::from_secs(120))
    }
}

/// Waits for `child`, killing it after `limit`.
fn wait_with_deadline(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("poll").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("reap");
            panic!(
                "still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "match over the {what} link failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
