//! What an operator meets running the real binary (issue 16): `match --out` checked
//! before anything is sent, Ctrl-C in `match` and `serve`, what `serve` prints, a peer
//! that is down. Every node here is a `blindmatch` process; the network is QUIC on
//! 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blindmatch_node::identity::NodeIdentity;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::ident::{IdentKind, KindSet};
use blindmatch_protocol::wire::{Hello, Message, OutputMode};
use support::audit_kind;
use support::hostile::{HostilePeer, Link};
use support::hostile_server::HostileServer;
use support::process::{BIN, ServeProcess};
use support::server_attacks::ServerAttack;

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

/// A provider `hub` offering dataset `kp` (contacts `0..hub_rows`) in mode `initiator`
/// and a customer `acme` with dataset `crm` (contacts `0..acme_rows`, every other one
/// the hub's), pinned both ways.
struct Pair {
    root: tempfile::TempDir,
    hub: PathBuf,
    acme: PathBuf,
    hub_addr: SocketAddr,
}

impl Pair {
    fn new(hub_rows: usize, acme_rows: usize) -> Pair {
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
        cli(
            &hub,
            &[
                "peer",
                "add",
                "acme",
                "--addr",
                "127.0.0.1:7447",
                "--fingerprint",
                &acme_fp,
                "--offer",
                "kp",
                "--modes",
                "initiator",
                "--max-identifiers-per-day",
                "none",
                "--max-identifiers-total",
                "none",
                "--max-sessions-per-hour",
                "none",
            ],
        );
        cli(
            &acme,
            &[
                "peer",
                "add",
                "hub",
                "--addr",
                &hub_addr.to_string(),
                "--fingerprint",
                &hub_fp,
            ],
        );
        Pair {
            root,
            hub,
            acme,
            hub_addr,
        }
    }

    fn serve(&self) -> ServeProcess {
        ServeProcess::start(&self.hub, self.hub_addr)
    }

    /// The `match` arguments for acme against the hub, then `extra`.
    fn match_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
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
        ];
        args.extend_from_slice(extra);
        args
    }

    /// `acme` runs `match` with `extra` arguments; success, stdout, stderr.
    fn matches(&self, extra: &[&str]) -> (bool, String, String) {
        support::process::blindmatch(&self.acme, &Self::match_args(extra))
    }

    /// Session records (any `session_*` type) in `dir`'s audit log.
    fn sessions(dir: &Path) -> usize {
        support::audit(dir)
            .iter()
            .filter(|e| e.kind.starts_with("session_"))
            .count()
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

/// `--out` that cannot take the results fails before we connect: a clear error, nothing
/// sent (the hub's log holds no session), nothing audited as a session on our side; an
/// existing file is replaced only with `--force`.
#[test]
fn match_out_is_checked_before_connecting() {
    let pair = Pair::new(20, 10);
    let _server = pair.serve();
    let root = pair.root.path();
    let existing = root.join("earlier.csv");
    std::fs::write(&existing, "id,matched_kinds\nold,email\n").expect("write");
    let plain = root.join("plain-file");
    std::fs::write(&plain, "x").expect("write");
    let under_a_file = plain.join("m.csv");

    let cases: [(&Path, &str); 3] = [
        (root, "is a directory"),
        (&existing, "already exists; pass --force"),
        (&under_a_file, "cannot write results to"),
    ];
    for (out, expected) in cases {
        let (ok, stdout, stderr) = pair.matches(&["--out", out.to_str().expect("utf8")]);
        assert!(!ok, "match --out {} succeeded:\n{stdout}", out.display());
        assert!(stderr.contains(expected), "{stderr}");
        assert!(stderr.contains("nothing was sent to the peer"), "{stderr}");
    }
    assert_eq!(Pair::sessions(&pair.acme), 0, "no session audited by acme");
    assert_eq!(Pair::sessions(&pair.hub), 0, "nothing reached the hub");
    assert_eq!(
        std::fs::read_to_string(&existing).expect("read"),
        "id,matched_kinds\nold,email\n",
        "the existing file is untouched"
    );

    let (ok, stdout, stderr) =
        pair.matches(&["--out", existing.to_str().expect("utf8"), "--force"]);
    assert!(ok, "match --force failed:\n{stdout}\n{stderr}");
    let results = std::fs::read_to_string(&existing).expect("read");
    assert!(
        results.starts_with("id,matched_kinds\nr0,email\n"),
        "{results}"
    );
    assert_eq!(audit_kind(&pair.acme, "session_completed").len(), 1);
}

/// A partner's purpose with a newline and ANSI escapes is in both logs as sent (signed,
/// verifiable), but `audit show` prints it escaped: no escape byte reaches the terminal
/// and no line of it becomes a row of the timeline.
#[test]
fn audit_show_escapes_what_a_peer_wrote() {
    let pair = Pair::new(20, 10);
    let _server = pair.serve();
    let forged = "ABM check\n   99  2026-01-01T00:00:00Z      session completed   FORGED\u{1b}[2J\u{1b}[31mred\u{202e}";
    let out = pair.root.path().join("m.csv");
    let args = [
        "match",
        "--peer",
        "hub",
        "--dataset",
        "crm",
        "--purpose",
        forged,
        "--out",
        out.to_str().expect("utf8"),
    ];
    cli(&pair.acme, &args);
    for dir in [&pair.hub, &pair.acme] {
        let records = support::audit(dir).len();
        let shown = cli(dir, &["audit", "show"]);
        assert!(
            !shown.contains('\u{1b}'),
            "an escape byte reached the terminal:\n{shown}"
        );
        assert!(
            !shown.contains('\u{202e}'),
            "a bidi override reached the terminal"
        );
        assert_eq!(
            shown.lines().count(),
            records + 1,
            "one header and one line per record:\n{shown}"
        );
        assert!(
            shown.contains("purpose ABM check\\u{a}   99  2026"),
            "the newline is shown escaped:\n{shown}"
        );
        assert!(shown.contains("\\u{1b}[2J"), "{shown}");
        assert!(!shown.lines().any(|l| l.trim_start().starts_with("99 ")));

        let requested = audit_kind(dir, "session_requested");
        let session = requested[0].session_id().expect("session id");
        let detail = cli(dir, &["audit", "show", "--session", session]);
        assert!(!detail.contains('\u{1b}'), "{detail}");
        assert!(
            detail.contains("purpose:               ABM check\\u{a}"),
            "{detail}"
        );
        assert_eq!(
            requested[0].fields["purpose"].as_str(),
            Some(forged),
            "the signed record keeps the text as sent"
        );
    }
}

/// Import errors never print a contact: a CSV without a header row is described by its
/// width, and a file that is one huge line is not echoed.
#[test]
fn import_errors_print_no_personal_data() {
    let root = tempfile::tempdir().expect("tempdir");
    let node = root.path().join("node");
    cli(&node, &["init", "--name", "solo"]);
    let contact = [
        "A1",
        "张伟",
        "云帆科技",
        "zhang.wei@yunfan.cn",
        "138 0013 8000",
    ];
    let headerless = root.path().join("headerless.csv");
    std::fs::write(
        &headerless,
        format!(
            "{}\nA2,李娜,华为,li.na@huawei.com,139 0000 1111\n",
            contact.join(",")
        ),
    )
    .expect("write");
    let huge = root.path().join("one-line.csv");
    let mut line = String::from("id,email");
    while line.len() < 8 << 20 {
        line.push_str(",wang.fang@example.cn;13700000000");
    }
    std::fs::write(&huge, &line).expect("write");

    for (file, columns) in [(&headerless, "5 columns"), (&huge, "columns")] {
        let (ok, stdout, stderr) = support::process::blindmatch(
            &node,
            &[
                "dataset",
                "import",
                file.to_str().expect("utf8"),
                "--name",
                "crm",
                "--id-col",
                "crm_id",
                "--email-col",
                "email",
            ],
        );
        assert!(!ok, "import succeeded:\n{stdout}");
        assert!(stderr.contains("looks like data"), "{stderr}");
        assert!(stderr.contains(columns), "{stderr}");
        assert!(stderr.len() < 2000, "{} bytes of stderr", stderr.len());
        for cell in contact.iter().chain(&["wang.fang", "13700000000", "li.na"]) {
            assert!(!stderr.contains(cell), "`{cell}` printed:\n{stderr}");
        }
    }
}

/// Ctrl-C in `match` mid-session: the peer gets `Abort(cancelled)`, our log records the
/// session as aborted with that code (no lone `session_requested`), the exit code is 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_match_aborts_and_records_the_session() {
    let root = tempfile::tempdir().expect("tempdir");
    let acme = root.path().join("acme");
    cli(&acme, &["init", "--name", "acme"]);
    import(&acme, root.path(), "crm", 0..30);
    let acme_fp = fingerprint(&acme).parse().expect("fingerprint");
    // Accepts the session, then says nothing more: `match` waits on it.
    let server = HostileServer::start(acme_fp, ServerAttack::SilentAfterAccept);
    cli(
        &acme,
        &[
            "peer",
            "add",
            "hub",
            "--addr",
            &server.addr.to_string(),
            "--fingerprint",
            &server.fingerprint.to_string(),
        ],
    );
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&acme)
        .args(Pair::match_args(&[]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn match");
    wait_for_records(&acme, "session_accepted", 1).await;

    let interrupted = Instant::now();
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let output = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "match did not stop after Ctrl-C");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().expect("output")
    })
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(interrupted.elapsed() < Duration::from_secs(6));
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");

    let requested = audit_kind(&acme, "session_requested");
    let aborted = audit_kind(&acme, "session_aborted");
    assert_eq!((requested.len(), aborted.len()), (1, 1), "{aborted:?}");
    assert_eq!(requested[0].session_id(), aborted[0].session_id());
    assert_eq!(
        aborted[0].close_code(),
        Some(u64::from(CloseCode::CANCELLED.0))
    );
    let verified = cli(&acme, &["audit", "verify"]);
    assert!(
        verified.contains("sessions:    1 (0 completed, 1 aborted, 0 refused)"),
        "{verified}"
    );
    let saw = server.saw().await.expect("server");
    let code = saw
        .observed
        .abort
        .or(saw.observed.conn.as_ref().and_then(|c| c.code));
    assert_eq!(code, Some(CloseCode::CANCELLED), "{:?}", saw.observed);
    assert_eq!(
        std::fs::read_dir(acme.join("results")).map_or(0, |d| d.count()),
        0,
        "no result file"
    );
}

/// Ctrl-C in `serve` with a client that went silent mid-session: the server stops
/// within its grace, aborting that session (`Abort(cancelled)`, recorded); with a long
/// grace, a second Ctrl-C stops it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_in_serve_is_bounded_and_a_second_one_forces() {
    let pair = Pair::new(40, 10);
    for (round, grace, twice) in [(1u8, "2", false), (2, "60", true)] {
        let mut server = ServeProcess::start_with(&pair.hub, pair.hub_addr, &["--grace", grace]);
        let link = silent_session(&pair, [round; 16]).await;
        let accepted = audit_kind(&pair.hub, "session_accepted").len();
        assert_eq!(accepted, usize::from(round));

        let asked = Instant::now();
        server.signal("INT");
        if twice {
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.signal("INT");
        }
        let status = tokio::task::block_in_place(|| server.wait_for_exit(Duration::from_secs(8)));
        let took = asked.elapsed();
        assert!(status.is_some_and(|s| s.success()), "serve: {status:?}");
        let bound = if twice { 3 } else { 5 };
        assert!(
            took < Duration::from_secs(bound),
            "serve took {took:?} to stop"
        );
        if !twice {
            assert!(
                took >= Duration::from_millis(1800),
                "grace not given: {took:?}"
            );
        }

        let seen = link.observe(true, Duration::from_secs(5)).await;
        let code = seen.abort.or(seen.conn.as_ref().and_then(|c| c.code));
        assert_eq!(code, Some(CloseCode::CANCELLED), "{seen:?}");
        let session = hex::encode([round; 16]);
        let ended = support::audit_of(&pair.hub, &session);
        let aborted: Vec<_> = ended
            .iter()
            .filter(|e| e.kind == "session_aborted")
            .collect();
        assert_eq!(aborted.len(), 1, "{ended:?}");
        assert_eq!(
            aborted[0].close_code(),
            Some(u64::from(CloseCode::CANCELLED.0))
        );
    }
    assert!(support::audit_verify(&pair.hub).is_ok());
}

/// acme (its own key) opens a session on the hub: `Hello`, answered by `Accept`, then
/// nothing more.
async fn silent_session(pair: &Pair, session_id: [u8; 16]) -> Link {
    let hub_fp = fingerprint(&pair.hub).parse().expect("fingerprint");
    let mut peer = HostilePeer::with_identity(NodeIdentity::load(&pair.acme).expect("identity"));
    peer.aim(pair.hub_addr, hub_fp);
    let mut link = peer.connect().await.expect("connect");
    let mut hello = Hello::new(
        session_id,
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
    link
}

/// Waits (up to 15 s) until `dir`'s audit log holds `count` records of `kind`.
async fn wait_for_records(dir: &Path, kind: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while audit_kind(dir, kind).len() < count {
        assert!(Instant::now() < deadline, "no `{kind}` record in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `match` against a node that is down gives up after the connect timeout (default
/// 10 s, `--connect-timeout`) with an error naming the address and what to check.
#[test]
fn match_against_a_node_that_is_down_times_out_clearly() {
    let pair = Pair::new(20, 10);
    // No `serve`: nothing answers on the hub's port.
    let addr = pair.hub_addr.to_string();
    for (extra, bound) in [(&[][..], 14), (&["--connect-timeout", "2"][..], 5)] {
        let started = Instant::now();
        let (ok, stdout, stderr) = pair.matches(extra);
        let took = started.elapsed();
        assert!(!ok, "match succeeded:\n{stdout}");
        assert!(took < Duration::from_secs(bound), "took {took:?}");
        assert!(took >= Duration::from_secs(bound - 4), "took {took:?}");
        assert!(
            stderr.contains(&format!("no answer from {addr}")),
            "{stderr}"
        );
        assert!(stderr.contains("is running"), "{stderr}");
        assert!(stderr.contains("--connect-timeout"), "{stderr}");
        assert_eq!(
            stderr.matches("no answer").count(),
            1,
            "said once:\n{stderr}"
        );
    }
    assert_eq!(Pair::sessions(&pair.acme), 0, "no session was started");
}

/// `serve` says what happens at its default verbosity: one line per session requested,
/// refused and completed (mode, sizes, counts, time), with no session id, no contact and
/// no colour codes when stderr is not a terminal.
#[test]
fn serve_prints_one_line_per_session_outcome() {
    let pair = Pair::new(20, 10);
    let server = pair.serve();
    let out = pair.root.path().join("m.csv");
    let (ok, stdout, stderr) = pair.matches(&["--out", out.to_str().expect("utf8")]);
    assert!(ok, "{stdout}\n{stderr}");
    // Refused by the hub, which lets acme use `initiator` only.
    cli(&pair.acme, &["peer", "remove", "hub"]);
    cli(
        &pair.acme,
        &[
            "peer",
            "add",
            "hub",
            "--addr",
            &pair.hub_addr.to_string(),
            "--fingerprint",
            &fingerprint(&pair.hub),
            "--match-modes",
            "responder",
        ],
    );
    let (ok, _, stderr) = pair.matches(&["--mode", "responder"]);
    assert!(!ok, "the hub allows only initiator");
    assert!(stderr.contains("mode-not-allowed"), "{stderr}");

    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines = server.stderr_lines();
        if lines.iter().any(|l| l.contains("session refused")) || Instant::now() > deadline {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = lines.join("\n");
    let one = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(
        one("session requested by acme: mode initiator, their set 10 identifiers"),
        1,
        "{text}"
    );
    assert_eq!(
        one("session requested by acme: mode responder"),
        1,
        "{text}"
    );
    assert_eq!(
        one("session refused for acme (mode-not-allowed): mode responder"),
        1,
        "{text}"
    );
    assert_eq!(
        one(
            "session completed with acme: mode initiator, our set 20 identifiers, theirs 10; we learn no matches in this mode"
        ),
        1,
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file:\n{text}"
    );
    assert!(
        !text.contains("@example.com"),
        "a contact in the log:\n{text}"
    );
    for session in audit_kind(&pair.hub, "session_requested") {
        let id = session.session_id().expect("id");
        assert!(!text.contains(&id[..8]), "a session id in the log:\n{text}");
    }
}
