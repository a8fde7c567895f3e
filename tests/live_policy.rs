//! Policy in both roles and a live configuration, over real processes: `serve` and
//! `match` are the `blindmatch` binary, the network is QUIC on 127.0.0.1, and every
//! change is made the way an operator makes it (the CLI, or editing `node.toml`).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blindmatch_node::identity::NodeIdentity;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::ident::{IdentKind, KindSet};
use blindmatch_protocol::wire::{Hello, Message, OutputMode, RejectReason};
use support::hostile::HostilePeer;
use support::process::{BIN, ServeProcess};
use support::{AuditEntry, audit_kind};

/// How long a change may take to reach a running `serve` (it polls every 500 ms).
const RELOAD_WAIT: Duration = Duration::from_secs(15);

/// Runs `blindmatch --data-dir DIR ARGS…`, which must succeed; its stdout.
fn cli(dir: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = support::process::blindmatch(dir, args);
    assert!(ok, "blindmatch {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn fingerprint(dir: &Path) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&cli(dir, &["id", "--json"])).expect("id --json");
    json["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned()
}

/// A provider `hub` serving dataset `kp` and a customer `acme` with dataset `crm`,
/// pinned both ways.
struct Pair {
    root: tempfile::TempDir,
    hub: PathBuf,
    acme: PathBuf,
    hub_addr: SocketAddr,
    outputs: std::cell::Cell<u32>,
}

impl Pair {
    /// `hub` holds contacts `0..hub_rows`; acme's record `i` is contact `i` when `i` is
    /// even and a contact the hub does not hold when odd (so half of acme's records
    /// match when `acme_rows <= hub_rows`). `hub` pins acme with `hub_peer_args` after
    /// `--offer kp`, acme pins hub with `acme_peer_args`.
    fn new(
        hub_rows: usize,
        acme_rows: usize,
        hub_peer_args: &[&str],
        acme_peer_args: &[&str],
    ) -> Pair {
        let root = tempfile::tempdir().expect("tempdir");
        let hub = root.path().join("hub");
        let acme = root.path().join("acme");
        let hub_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        cli(
            &hub,
            &["init", "--name", "hub", "--listen", &hub_addr.to_string()],
        );
        cli(&acme, &["init", "--name", "acme"]);
        import(&hub, root.path(), "kp", 0..hub_rows);
        let crm = (0..acme_rows).map(|i| if i % 2 == 0 { i } else { 1_000_000 + i });
        import(&acme, root.path(), "crm", crm);
        let acme_fp = fingerprint(&acme);
        let hub_fp = fingerprint(&hub);
        let mut args = vec![
            "peer",
            "add",
            "acme",
            "--addr",
            "127.0.0.1:7447",
            "--fingerprint",
            &acme_fp,
            "--offer",
            "kp",
        ];
        args.extend_from_slice(hub_peer_args);
        cli(&hub, &args);
        let addr = hub_addr.to_string();
        let mut args = vec![
            "peer",
            "add",
            "hub",
            "--addr",
            &addr,
            "--fingerprint",
            &hub_fp,
        ];
        args.extend_from_slice(acme_peer_args);
        cli(&acme, &args);
        Pair {
            root,
            hub,
            acme,
            hub_addr,
            outputs: std::cell::Cell::new(0),
        }
    }

    fn serve(&self) -> ServeProcess {
        ServeProcess::start(&self.hub, self.hub_addr)
    }

    /// `acme` runs `match` against `hub` with `extra` arguments; success, stdout, stderr.
    fn matches(&self, extra: &[&str]) -> (bool, String, String) {
        self.outputs.set(self.outputs.get() + 1);
        let out = self
            .root
            .path()
            .join(format!("out-{}.csv", self.outputs.get()));
        let out = out.to_str().expect("utf8").to_owned();
        let mut args = vec![
            "match",
            "--peer",
            "hub",
            "--dataset",
            "crm",
            "--purpose",
            "ABM coverage check",
            "--legal-basis",
            "consent",
            "--out",
            &out,
        ];
        args.extend_from_slice(extra);
        support::process::blindmatch(&self.acme, &args)
    }

    fn match_succeeds(&self, extra: &[&str]) -> String {
        let (ok, stdout, stderr) = self.matches(extra);
        assert!(ok, "match {extra:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    fn match_fails(&self, extra: &[&str]) -> String {
        let (ok, stdout, stderr) = self.matches(extra);
        assert!(!ok, "match {extra:?} succeeded:\n{stdout}");
        stderr
    }

    /// Files the hub's `serve` wrote to its results directory.
    fn hub_results(&self) -> usize {
        std::fs::read_dir(self.hub.join("results")).map_or(0, |dir| dir.count())
    }
}

/// Imports emails `contact{i}@example.com` for `ids` as dataset `name`.
fn import(dir: &Path, root: &Path, name: &str, ids: impl IntoIterator<Item = usize>) {
    let csv = root.join(format!("{name}.csv"));
    let mut text = String::from("id,email\n");
    for i in ids {
        text.push_str(&format!("r{i},contact{i}@example.com\n"));
    }
    std::fs::write(&csv, text).expect("csv");
    cli(
        dir,
        &[
            "dataset",
            "import",
            csv.to_str().expect("utf8"),
            "--name",
            name,
            "--id-col",
            "id",
            "--email-col",
            "email",
        ],
    );
}

/// Waits until `dir`'s audit log holds more than `before` records of `kind`.
fn wait_for_record(dir: &Path, kind: &str, before: usize) -> AuditEntry {
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        let records = audit_kind(dir, kind);
        if records.len() > before {
            return records.into_iter().last().expect("a record");
        }
        assert!(Instant::now() < deadline, "no new `{kind}` record in time");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_responder_of_guessed_numbers_is_refused_by_the_initiators_policy() {
    // The hub "imported" 2,000 guesses and would gladly run `both`, learning which of
    // acme's 50 contacts exist. acme pinned it with the defaults.
    let pair = Pair::new(2000, 50, &["--modes", "both,initiator"], &[]);
    let _server = pair.serve();

    let err = pair.match_fails(&["--mode", "both"]);
    assert!(
        err.contains("refused by this node's own policy (mode-not-allowed)"),
        "{err}"
    );
    assert!(err.contains("match_modes"), "{err}");
    let refused = audit_kind(&pair.acme, "session_refused");
    assert_eq!(refused.len(), 1, "acme records its own refusal");
    assert!(
        audit_kind(&pair.hub, "session_requested").is_empty(),
        "nothing reached the hub"
    );

    // Allowing `both` still caps the hub's set at twice acme's (the default ratio).
    cli(&pair.acme, &["peer", "remove", "hub"]);
    let hub_fp = fingerprint(&pair.hub);
    let addr = pair.hub_addr.to_string();
    let added = cli(
        &pair.acme,
        &[
            "peer",
            "add",
            "hub",
            "--addr",
            &addr,
            "--fingerprint",
            &hub_fp,
            "--match-modes",
            "both,initiator",
        ],
    );
    assert!(!added.is_empty());
    let err = pair.match_fails(&["--mode", "both"]);
    assert!(err.contains("ratio-too-high"), "{err}");
    let refused = audit_kind(&pair.acme, "session_refused");
    assert_eq!(refused.len(), 2);
    assert!(
        refused[1].text().contains("ratio-too-high"),
        "{}",
        refused[1].text()
    );
    assert_eq!(pair.hub_results(), 0, "the hub learned nothing");

    // The default `match` (initiator) runs: acme learns, the hub learns nothing.
    let summary = pair.match_succeeds(&[]);
    assert!(
        summary.contains("matches     25 of our 50 records"),
        "{summary}"
    );
    assert_eq!(pair.hub_results(), 0, "the hub learned nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_peer_is_cut_off_in_flight_and_at_the_next_handshake() {
    let pair = Pair::new(40, 10, &["--modes", "initiator"], &[]);
    let _server = pair.serve();
    let hub_fp = fingerprint(&pair.hub).parse().expect("fingerprint");

    // acme holds a session open: Hello answered by Accept, then nothing more.
    let mut peer = HostilePeer::with_identity(NodeIdentity::load(&pair.acme).expect("identity"));
    peer.aim(pair.hub_addr, hub_fp);
    let mut link = peer.connect().await.expect("connect");
    let mut hello = Hello::new(
        [5; 16],
        OutputMode::Initiator,
        3,
        support::hostile::commitment(),
    );
    hello.dataset = "kp".into();
    hello.purpose = "ABM coverage check".into();
    hello.legal_basis = "consent".into();
    hello.kinds = KindSet::empty().with(IdentKind::Email);
    link.send(&Message::Hello(hello)).await;
    assert!(matches!(
        link.next_message(Duration::from_secs(10)).await,
        Some(Message::Accept(_))
    ));

    let removed = cli(&pair.hub, &["peer", "remove", "acme"]);
    assert!(removed.contains("cut it off"), "{removed}");
    let seen = link.observe(true, Duration::from_secs(10)).await;
    let code = seen.abort.or(seen.conn.as_ref().and_then(|c| c.code));
    assert_eq!(code, Some(CloseCode::PEER_REVOKED), "{seen:?}");
    let aborted = wait_for_record(&pair.hub, "session_aborted", 0);
    assert_eq!(
        aborted.close_code(),
        Some(u64::from(CloseCode::PEER_REVOKED.0))
    );
    assert_eq!(aborted.session_id(), Some(hex::encode([5u8; 16]).as_str()));

    // The next handshake fails: acme is no longer pinned.
    let requested = audit_kind(&pair.hub, "session_requested").len();
    let err = pair.match_fails(&[]);
    assert!(!err.is_empty());
    assert_eq!(audit_kind(&pair.hub, "session_requested").len(), requested);
}

#[test]
fn node_toml_edits_apply_without_restart_and_a_broken_edit_keeps_the_old() {
    // acme's 30 identifiers against the hub's 40: within both sides' default ratio.
    let pair = Pair::new(
        40,
        30,
        &[
            "--modes",
            "initiator,cardinality",
            "--max-identifiers-per-day",
            "none",
            "--max-identifiers-total",
            "none",
        ],
        &["--match-modes", "initiator,cardinality"],
    );
    let _server = pair.serve();
    pair.match_succeeds(&[]);

    let config = pair.hub.join("node.toml");
    let text = std::fs::read_to_string(&config).expect("node.toml");
    let edited = text.replace(
        "modes = [\"initiator\", \"cardinality\"]",
        "modes = [\"cardinality\"]",
    );
    assert_ne!(
        text, edited,
        "the modes line is where the test expects it:\n{text}"
    );
    let reloads = audit_kind(&pair.hub, "config_reloaded").len();
    std::fs::write(&config, &edited).expect("edit node.toml");
    wait_for_record(&pair.hub, "config_reloaded", reloads);
    let check = cli(&pair.hub, &["policy", "check"]);
    assert!(check.contains("with this node.toml"), "{check}");
    let err = pair.match_fails(&[]);
    assert!(err.contains("mode-not-allowed"), "{err}");
    pair.match_succeeds(&["--mode", "cardinality"]);

    // A broken file is refused and recorded; the policy in force stays.
    std::fs::write(&config, format!("{edited}\n[[peers]\nname = ")).expect("break node.toml");
    let rejected = wait_for_record(&pair.hub, "config_rejected", 0);
    assert!(
        rejected.fields["problem"]
            .as_str()
            .is_some_and(|p| !p.is_empty())
    );
    pair.match_succeeds(&["--mode", "cardinality"]);
    let err = pair.match_fails(&[]);
    assert!(err.contains("mode-not-allowed"), "{err}");
}

#[test]
fn a_second_serve_on_one_data_directory_is_refused_naming_the_first() {
    let pair = Pair::new(4, 2, &["--modes", "initiator"], &[]);
    let server = pair.serve();
    let mut second = Command::new(BIN)
        .arg("--data-dir")
        .arg(&pair.hub)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second serve kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(
        stderr.contains(&format!("pid {}", server.pid())),
        "{stderr}"
    );
    // The first one still serves.
    pair.match_succeeds(&[]);
}

#[test]
fn deleting_or_rolling_back_the_ledger_does_not_reset_budgets() {
    // acme tests 10 identifiers per session; the hub allows 25 in total.
    let pair = Pair::new(
        40,
        10,
        &[
            "--modes",
            "initiator",
            "--max-identifiers-total",
            "25",
            "--max-sessions-per-hour",
            "none",
        ],
        &[],
    );
    let ledger = pair.hub.join("policy-ledger.jsonl");
    let mut server = pair.serve();
    pair.match_succeeds(&[]);
    let after_one = std::fs::read(&ledger).expect("ledger after one session");
    pair.match_succeeds(&[]);
    let err = pair.match_fails(&[]);
    assert!(err.contains("budget-exhausted"), "{err}");

    // Deleted under the running serve: rebuilt from the audit log.
    std::fs::remove_file(&ledger).expect("delete ledger");
    let err = pair.match_fails(&[]);
    assert!(err.contains("budget-exhausted"), "{err}");

    // Deleted while stopped, then a restart.
    server.kill9();
    std::fs::remove_file(&ledger).ok();
    let mut server = pair.serve();
    let err = pair.match_fails(&[]);
    assert!(err.contains("budget-exhausted"), "{err}");

    // Rolled back to an older copy: refused until rebuilt, and never reset.
    std::fs::write(&ledger, after_one).expect("roll back");
    let err = pair.match_fails(&[]);
    assert!(err.contains("refused"), "{err}");
    let check = cli(&pair.hub, &["policy", "check"]);
    assert!(
        check.contains("WARNING") && check.contains("rolled back or replaced"),
        "{check}"
    );
    // The one writer of the data directory rebuilds it: serve is stopped first.
    server.stop();
    cli(&pair.hub, &["policy", "rebuild-ledger"]);
    let _server = pair.serve();
    let err = pair.match_fails(&[]);
    assert!(err.contains("budget-exhausted"), "{err}");
    assert_eq!(audit_kind(&pair.hub, "session_completed").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_refused_hellos_cost_bounded_records_and_no_dataset_load() {
    // No identifier budgets, so that an oversized set meets the ratio rule.
    let pair = Pair::new(
        40,
        10,
        &[
            "--modes",
            "cardinality",
            "--max-identifiers-per-day",
            "none",
            "--max-identifiers-total",
            "none",
        ],
        &[],
    );
    // Only the header of a dataset is read before the cheap checks pass: its body is
    // garbage here, and the refusals are still the policy's.
    let stored = pair.hub.join("datasets").join("kp.bmds");
    let mut bytes = std::fs::read(&stored).expect("dataset");
    // Magic (8), versions (2 + 2), metadata length (4), metadata: then the records.
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let body = 16 + meta_len;
    assert!(body < bytes.len());
    for byte in &mut bytes[body..] {
        *byte = 0xA5;
    }
    std::fs::write(&stored, bytes).expect("corrupt dataset body");
    let mut server = pair.serve();
    let hub_fp = fingerprint(&pair.hub).parse().expect("fingerprint");
    let mut peer = HostilePeer::with_identity(NodeIdentity::load(&pair.acme).expect("identity"));
    peer.aim(pair.hub_addr, hub_fp);

    let mut refusals = 0;
    for i in 0..200u32 {
        let Ok(mut link) = peer.connect().await else {
            continue;
        };
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&i.to_be_bytes());
        // Half ask for a mode not allowed, half for a set far over the ratio.
        let (mode, size) = if i % 2 == 0 {
            (OutputMode::Initiator, 5)
        } else {
            (OutputMode::Cardinality, 1_000_000)
        };
        let mut hello = Hello::new(id, mode, size, support::hostile::commitment());
        hello.dataset = "kp".into();
        hello.purpose = "ABM coverage check".into();
        hello.kinds = KindSet::empty().with(IdentKind::Email);
        link.send(&Message::Hello(hello)).await;
        if let Some(Message::Reject(reject)) = link.next_message(Duration::from_secs(10)).await {
            let expected = if i % 2 == 0 {
                RejectReason::MODE_NOT_ALLOWED
            } else {
                RejectReason::RATIO_TOO_HIGH
            };
            assert_eq!(reject.reason, expected, "{}", reject.text);
            refusals += 1;
        }
    }
    assert!(
        refusals >= 190,
        "only {refusals} of 200 Hellos were answered with a Reject"
    );
    // A graceful stop records the refusals still being coalesced.
    assert!(server.stop().success());
    let records = audit_kind(&pair.hub, "session_refused");
    assert!(
        records.len() <= 8,
        "{} session_refused records for {refusals} refusals",
        records.len()
    );
    let attempts: u64 = records
        .iter()
        .map(|r| r.fields["attempts"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(attempts, refusals);
    assert!(audit_kind(&pair.hub, "session_requested").is_empty());
}
