//! Hostile servers: a test-only responder (real quinn, a real certificate the initiator
//! pins) answers a real node's `match` wrongly on purpose, in many distinct ways.
//!
//! For every attack the initiator — the node's own `matching::run`, the code behind
//! `blindmatch match` — must fail with the specific close code (and an error that says
//! what happened), send the server an `Abort` with that code when it owes one, close
//! the connection with it, write no result file (nothing partial or temporary either),
//! record the aborted session in its audit log with that code and the same error (the
//! log still verifies), and not panic. An honest control session through the same
//! harness completes with the plain intersection.
//!
//! All attacks run at once, each against its own hostile server, with the initiator's
//! idle timeout at 2 s, so the suite takes about as long as the slowest attack. Run one
//! attack alone with `HOSTILE_SERVER_CASE=finish_wrong_count cargo test --release
//! --test hostile_server`; print what each attack observed with `HOSTILE_VERBOSE=1`.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blindmatch_node::config::NodeConfig;
use blindmatch_node::identity::AuditKey;
use blindmatch_node::node::NodeError;
use blindmatch_protocol::error::CloseCode;
use support::hostile::SIGNER_SEED;
use support::hostile_server::{HostileServer, ServerSaw};
use support::process::blindmatch;
use support::server_attacks::{GARBAGE_CODE, GARBAGE_TEXT, SERVER_SET, ServerAttack, name};
use support::*;

/// The initiator's idle timeout.
const IDLE: Duration = Duration::from_secs(2);
/// The initiator's set: contacts `0..30`; the server's honest part holds `20..60`.
const OUR_SET: usize = 30;
/// Matches of an honest session.
const MATCHES: u64 = 10;

/// How the initiator must end the session, as the hostile server sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ends {
    /// It detected the fault: an `Abort` with the code, then the connection closed
    /// with the code.
    Aborts,
    /// The server ended the session (`Reject`, `Abort`): no `Abort` owed back, the
    /// connection closed with the code.
    Closes,
    /// The server closed the connection itself: nothing to see on the wire.
    Gone,
}

#[derive(Clone, Copy, Debug)]
struct Case {
    attack: ServerAttack,
    code: CloseCode,
    /// Words the initiator's error must contain.
    says: &'static str,
    ends: Ends,
    /// Cut off by the idle timeout: not before it, and not long after.
    idle: bool,
}

const fn case(attack: ServerAttack, code: CloseCode, says: &'static str, ends: Ends) -> Case {
    Case {
        attack,
        code,
        says,
        ends,
        idle: false,
    }
}

const fn idle_case(attack: ServerAttack) -> Case {
    Case {
        attack,
        code: CloseCode::TIMEOUT,
        says: "the peer sent nothing for 2s; session aborted (timeout)",
        ends: Ends::Aborts,
        idle: true,
    }
}

fn cases() -> Vec<Case> {
    use CloseCode as C;
    use Ends::*;
    use ServerAttack::*;
    vec![
        idle_case(SilentAfterHello),
        case(
            HelloOfAnotherVersion,
            C::INCOMPATIBLE,
            "peer is incompatible: unsupported protocol version 3 (we speak 2)",
            Aborts,
        ),
        // What an older responder answers our Hello.
        case(
            AbortsIncompatible,
            C::INCOMPATIBLE,
            "the peer does not speak protocol version 2 (it may run an older blindmatch)",
            Closes,
        ),
        case(
            AcceptWithTrailingBytes,
            C::INVALID_MESSAGE,
            "invalid message from peer: 3 trailing bytes after message",
            Aborts,
        ),
        case(
            AcceptWithUnknownKinds,
            C::INVALID_MESSAGE,
            "invalid identifier kind set 0x80",
            Aborts,
        ),
        case(
            AcceptSetSizeAboveU32,
            C::INVALID_MESSAGE,
            "field out of range: set size above 2^32-1",
            Aborts,
        ),
        case(
            RejectWithGarbageReason,
            C::REFUSED,
            "peer refused the session (unknown-reason (48879))",
            Closes,
        ),
        case(
            AbortWithUnknownCode,
            CloseCode(GARBAGE_CODE),
            "peer aborted the session: unknown (48879)",
            Closes,
        ),
        case(
            BlindedBeforeAccept,
            C::PROTOCOL_VIOLATION,
            "unexpected Blinded while waiting for Accept or Reject",
            Aborts,
        ),
        case(
            FinishBeforeAccept,
            C::PROTOCOL_VIOLATION,
            "unexpected Finish while waiting for Accept or Reject",
            Aborts,
        ),
        case(
            UnknownMessageType,
            C::INVALID_MESSAGE,
            "unknown message type 0x2a",
            Aborts,
        ),
        case(EmptyFrame, C::INVALID_MESSAGE, "empty frame", Aborts),
        case(
            OversizedFrame,
            C::INVALID_MESSAGE,
            "the peer announced a frame of 1048577 bytes, above the limit of 1048576",
            Aborts,
        ),
        case(
            AcceptForAnotherSession,
            C::FINISH_MISMATCH,
            "transcript hash mismatch",
            Aborts,
        ),
        // The server, running another mode, refuses our answers to its rounds first.
        case(
            AcceptForAnotherMode,
            C::PROTOCOL_VIOLATION,
            "peer aborted the session: protocol-violation (2)",
            Closes,
        ),
        case(
            AcceptOnAnotherChannel,
            C::FINISH_MISMATCH,
            "transcript hash mismatch",
            Aborts,
        ),
        idle_case(SilentAfterAccept),
        idle_case(TrickledBatch),
        case(
            InvalidPointInBlinded,
            C::BAD_POINTS,
            "invalid point encoding",
            Aborts,
        ),
        case(
            IdentityPointInBlinded,
            C::BAD_POINTS,
            "identity point",
            Aborts,
        ),
        // Our own round reflected as the server's fits the schedule and gains it
        // nothing: it never answers ours, and the session ends at the idle timeout.
        idle_case(ReflectsPointsAsBlinded),
        case(
            ReflectsPointsAsReblinded,
            C::BAD_PROOF,
            "the peer's proof of re-blinding does not verify",
            Aborts,
        ),
        case(
            MoreReblindedThanSent,
            C::PROTOCOL_VIOLATION,
            "round 0 carried 31 points where the schedule gives it 30",
            Aborts,
        ),
        case(
            FewerReblindedThenFinish,
            C::PROTOCOL_VIOLATION,
            "round 0 carried 29 points where the schedule gives it 30",
            Aborts,
        ),
        case(
            MoreBlindedThanAccepted,
            C::PROTOCOL_VIOLATION,
            "round 0 carried 40 points where the schedule gives it 35",
            Aborts,
        ),
        case(
            BatchCountBeyondBody,
            C::INVALID_MESSAGE,
            "invalid message from peer: message truncated",
            Aborts,
        ),
        case(
            ZeroLengthBatch,
            C::INVALID_MESSAGE,
            "batch of 0 entries is outside 1..=8192",
            Aborts,
        ),
        case(
            FinishWrongTranscript,
            C::FINISH_MISMATCH,
            "transcript hash mismatch",
            Aborts,
        ),
        case(
            FinishWrongCount,
            C::FINISH_MISMATCH,
            "intersection size mismatch: ours 10, theirs 11",
            Aborts,
        ),
        case(
            FinishWithoutCount,
            C::PROTOCOL_VIOLATION,
            "a Finish whose intersection field matches the mode",
            Aborts,
        ),
        case(
            OversizedFrameMidSession,
            C::INVALID_MESSAGE,
            "the peer announced a frame of 1048577 bytes",
            Aborts,
        ),
        case(
            TruncatedFrameThenFin,
            C::INVALID_MESSAGE,
            "the stream ended in the middle of a frame",
            Aborts,
        ),
        case(
            ClosesConnectionMidBatch,
            C::PEER_GONE,
            "the peer closed the connection mid-session (its close code: cancelled (7)",
            Gone,
        ),
        case(
            ResetsStreamMidBatch,
            C::PEER_GONE,
            "the peer closed the connection mid-session: it reset the session stream (code 7)",
            Aborts,
        ),
        case(
            EndsStreamBeforeFinish,
            C::PEER_GONE,
            "it ended the session stream before the session finished",
            Aborts,
        ),
        // A peer after a false result: each is refused before a forged value is used.
        case(
            FabricatedMatches,
            C::BAD_PROOF,
            "the peer's proof of re-blinding does not verify",
            Aborts,
        ),
        case(
            SwappedAnswers,
            C::BAD_PROOF,
            "the peer's proof of re-blinding does not verify",
            Aborts,
        ),
        case(
            KeySwitchedAnswers,
            C::BAD_PROOF,
            "the peer's proof of re-blinding does not verify",
            Aborts,
        ),
        case(
            ForgedReceipt,
            C::BAD_RECEIPT,
            "the peer's session receipt is not valid: it describes another session",
            Aborts,
        ),
        case(
            ReceiptUnderAnotherKey,
            C::BAD_RECEIPT,
            "signed by another audit key than the one pinned for this peer",
            Aborts,
        ),
        case(
            AbortsAfterLearning,
            C::CANCELLED,
            "peer aborted the session: cancelled (7)",
            Closes,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_fail_the_match_cleanly() {
    watch_panics();
    let fx = Arc::new(Fixture::new());
    let only = std::env::var("HOSTILE_SERVER_CASE").ok();
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| only.as_deref().is_none_or(|o| o == name(c.attack)))
        .collect();
    // Pinned one after the other (each pin rewrites node.toml), then all at once.
    let servers: Vec<HostileServer> = cases.iter().map(|c| fx.hostile(c.attack)).collect();
    let control = only.is_none().then(|| fx.hostile(ServerAttack::Honest));
    let started = Instant::now();
    let tasks: Vec<_> = cases
        .iter()
        .zip(servers)
        .map(|(&c, server)| {
            let fx = Arc::clone(&fx);
            tokio::spawn(async move { run_case(&fx, &c, server).await })
        })
        .collect();
    let control = match control {
        Some(server) => Some(fx.honest_session(server).await),
        None => None,
    };
    let mut failures = Vec::new();
    for (case, task) in cases.iter().zip(tasks) {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => failures.push(failure),
            Err(err) => failures.push(format!(
                "{}: the test task failed: {err}",
                name(case.attack)
            )),
        }
    }
    if let Some(Err(err)) = control {
        failures.push(format!("honest control session: {err}"));
    }
    if let Err(err) = audit_verify(&fx.crm.dir) {
        failures.push(format!("the initiator's audit log: {err}"));
    }
    let panics = node_panics();
    if !panics.is_empty() {
        failures.push(format!("panics in node or protocol code: {panics:?}"));
    }
    eprintln!(
        "{} hostile servers handled in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert_no_attack_failed(&failures, cases.len());
}

#[test]
fn at_least_thirty_distinct_server_attacks() {
    let names: Vec<String> = cases().iter().map(|c| name(c.attack)).collect();
    assert_distinct_attacks(&names, 30);
    assert!(
        !names.contains(&name(ServerAttack::Honest)),
        "the control case is not an attack"
    );
}

/// A refusal text is the peer's, untrusted: it must reach the user (the error the
/// library returns and what `blindmatch match` prints) without terminal control
/// characters, so a hostile server cannot clear the screen or forge a line of output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn reject_text_of_a_hostile_server_is_shown_without_control_characters() {
    let fx = Fixture::new();
    let attack = ServerAttack::RejectWithGarbageReason;
    let server = fx.hostile(attack);
    let err = run_match(
        &fx.crm,
        &name(attack),
        "crm",
        fx.out_dir("lib").join("r.csv"),
    )
    .await
    .expect_err("refused");
    let _ = server.saw().await;
    let text = err.to_string();
    assert!(
        !text.chars().any(is_dangerous),
        "control characters in the error: {text:?}"
    );

    // The same through the binary, whose stderr is what a terminal shows.
    let (ok, stderr, out) = fx.cli_match(attack).await;
    assert!(!ok, "the match must fail");
    assert!(!out.exists(), "no result file");
    assert!(stderr.contains("unknown-reason (48879)"), "{stderr}");
    assert!(
        !stderr.contains(GARBAGE_TEXT) && !stderr.contains('\u{1b}'),
        "the peer's text reached the terminal raw: {stderr:?}"
    );
}

/// `blindmatch match` itself against a hostile server: exits non-zero, says why, writes
/// no result, records the abort.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_match_against_a_hostile_server_fails_cleanly() {
    let fx = Fixture::new();
    let (ok, stderr, out) = fx.cli_match(ServerAttack::FinishWrongCount).await;
    assert!(!ok, "the match must fail");
    assert!(
        stderr.contains("intersection size mismatch: ours 10, theirs 11"),
        "{stderr}"
    );
    assert!(!out.exists(), "no result file");
    assert!(files_ending(out.parent().expect("dir"), "").is_empty());
    let aborted = audit_kind(&fx.crm.dir, "session_aborted");
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        aborted[0].close_code(),
        Some(u64::from(CloseCode::FINISH_MISMATCH.0))
    );
    audit_verify(&fx.crm.dir).expect("audit log");
}

/// The CLI prints a failed session's error once: `NodeError::Session` both shows its
/// cause in its message and returns it as its `source`, so `{err:#}` repeats it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn cli_prints_a_session_failure_once() {
    let fx = Fixture::new();
    let (ok, stderr, _) = fx.cli_match(ServerAttack::FinishWrongCount).await;
    assert!(!ok);
    let cause = "intersection size mismatch: ours 10, theirs 11";
    assert_eq!(stderr.matches(cause).count(), 1, "{stderr}");
}

/// Characters a peer must not get onto the user's terminal.
fn is_dangerous(c: char) -> bool {
    c.is_control()
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// The initiator under test and where its results would go.
struct Fixture {
    root: tempfile::TempDir,
    crm: TestNode,
}

impl Fixture {
    fn new() -> Fixture {
        let root = tempfile::tempdir().expect("tempdir");
        let crm = node(root.path(), "crm");
        set_limits(&crm, IDLE.as_secs(), 64);
        import_emails(&crm, "crm", 0..OUR_SET);
        Fixture { root, crm }
    }

    /// A directory for one session's result file, so that a partial or temporary file
    /// would show.
    fn out_dir(&self, label: &str) -> PathBuf {
        let dir = self.root.path().join("out").join(label);
        std::fs::create_dir_all(&dir).expect("out dir");
        dir
    }

    /// Starts a hostile server performing `attack` and pins it on the initiator as the
    /// peer named after the attack (re-pinned when it already was).
    fn hostile(&self, attack: ServerAttack) -> HostileServer {
        let server = HostileServer::start(self.crm.fingerprint, attack);
        let label = name(attack);
        let _ = blindmatch_node::admin::remove_peer(&self.crm.dir, &label);
        pin(&self.crm, &label, server.fingerprint, server.addr, &[]);
        // Its audit key pinned, so that a receipt under another key is refused.
        let mut config = NodeConfig::load(&self.crm.dir).expect("node.toml");
        let peer = config.peer_mut(&label).expect("just pinned");
        let key = ed25519_dalek::SigningKey::from_bytes(&SIGNER_SEED).verifying_key();
        peer.audit_key = Some(AuditKey(key.to_bytes()));
        config.save(&self.crm.dir).expect("save node.toml");
        server
    }

    /// `blindmatch match` against a fresh hostile server performing `attack`; whether
    /// it succeeded, its stderr, and the result file it was given.
    async fn cli_match(&self, attack: ServerAttack) -> (bool, String, PathBuf) {
        let server = self.hostile(attack);
        let out = self.out_dir(&format!("cli-{}", name(attack))).join("r.csv");
        let crm_dir = self.crm.dir.clone();
        let out_arg = out.to_string_lossy().into_owned();
        let peer = name(attack);
        let (ok, _, stderr) = tokio::task::spawn_blocking(move || {
            blindmatch(
                &crm_dir,
                &[
                    "match",
                    "--peer",
                    &peer,
                    "--dataset",
                    "crm",
                    "--purpose",
                    "hostile server test",
                    "--mode",
                    "both",
                    "--out",
                    &out_arg,
                ],
            )
        })
        .await
        .expect("task");
        let _ = server.saw().await;
        (ok, stderr, out)
    }

    /// A session against `server`, an honest responder run by the same harness.
    async fn honest_session(&self, server: HostileServer) -> Result<(), String> {
        let out = self.out_dir("honest").join("result.csv");
        let summary = run_match(&self.crm, &name(ServerAttack::Honest), "crm", out.clone()).await;
        let saw = server.saw().await?;
        let summary = summary.map_err(|e| e.to_string())?;
        if summary.intersection != Some(MATCHES)
            || summary.their_size != SERVER_SET as u64
            || result_rows(&out) != MATCHES as usize
        {
            return Err(format!(
                "expected {MATCHES} matches, got {summary}; {} rows",
                result_rows(&out)
            ));
        }
        if saw.observed.abort.is_some()
            || saw.observed.conn.as_ref().and_then(|c| c.code) != Some(CloseCode::OK)
        {
            return Err(format!("not a clean end: {:?}", saw.observed));
        }
        Ok(())
    }
}

/// Runs one attack: one `match` against its hostile server (already pinned).
async fn run_case(fx: &Fixture, case: &Case, server: HostileServer) -> Result<(), String> {
    let label = name(case.attack);
    let out_dir = fx.out_dir(&label);
    let out = out_dir.join("result.csv");
    let started = Instant::now();
    let result = run_match(&fx.crm, &label, "crm", out.clone()).await;
    let took = started.elapsed();
    let saw = server.saw().await.map_err(|e| format!("{label}: {e}"))?;
    if std::env::var_os("HOSTILE_VERBOSE").is_some() {
        eprintln!("{label}: {result:?} after {took:?}\n    server saw {saw:?}");
    }
    let verdict = check(fx, case, result, took, &saw, &out_dir);
    verdict.map_err(|e| format!("{label}: {e}; server saw {:?}", saw.observed))
}

fn check(
    fx: &Fixture,
    case: &Case,
    result: Result<blindmatch_node::matching::MatchSummary, NodeError>,
    took: Duration,
    saw: &ServerSaw,
    out_dir: &std::path::Path,
) -> Result<(), String> {
    // A typed failure with the expected code and words.
    let err = match result {
        Ok(summary) => return Err(format!("the match completed: {summary}")),
        Err(err) => err,
    };
    let NodeError::Session(driver) = &err else {
        return Err(format!("not a session failure: {err:?}"));
    };
    if driver.close_code() != case.code {
        return Err(format!(
            "expected close code {}, got {} ({err})",
            case.code,
            driver.close_code()
        ));
    }
    let text = err.to_string();
    if !text.contains(case.says) {
        return Err(format!("expected `{}` in the error: {text}", case.says));
    }
    if case.idle {
        // When the initiator closed the connection (as the server saw it), and when
        // `matching::run` returned (it also waits for its endpoint to drain).
        let closed = saw.observed.conn.as_ref().map_or(took, |c| c.at);
        let early = IDLE - Duration::from_millis(200);
        if closed < early || closed > IDLE + Duration::from_millis(2500) || took > IDLE * 3 {
            return Err(format!(
                "expected the idle timeout ({IDLE:?}) to end it: the connection closed after {closed:?}, the match returned after {took:?}"
            ));
        }
    }

    // Nothing written: no result, nothing partial or temporary.
    let left = files_ending(out_dir, "");
    if !left.is_empty() {
        return Err(format!("files left after a failed session: {left:?}"));
    }
    let results = responder_results(&fx.crm);
    if !results.is_empty() {
        return Err(format!("files in the results directory: {results:?}"));
    }

    // What the server saw of the initiator's end.
    let seen = &saw.observed;
    let conn_code = seen.conn.as_ref().and_then(|c| c.code);
    match case.ends {
        Ends::Aborts => {
            if seen.abort != Some(case.code) {
                return Err(format!(
                    "expected an Abort({}), got {:?}",
                    case.code, seen.abort
                ));
            }
            if conn_code != Some(case.code) {
                return Err(format!(
                    "expected the connection closed with {}, got {conn_code:?}",
                    case.code
                ));
            }
        }
        Ends::Closes => {
            if seen.abort.is_some() {
                return Err(format!(
                    "no Abort is owed to a peer that ended the session, got {:?}",
                    seen.abort
                ));
            }
            if conn_code != Some(case.code) {
                return Err(format!(
                    "expected the connection closed with {}, got {conn_code:?}",
                    case.code
                ));
            }
        }
        Ends::Gone => {}
    }

    // Audited: requested, accepted if the server's Accept came through, then aborted with
    // the code and the same error.
    let session = saw
        .session_id
        .map(hex::encode)
        .ok_or("the server got no Hello")?;
    let records = audit_of(&fx.crm.dir, &session);
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    if kinds != ["session_requested", "session_aborted"]
        && kinds != ["session_requested", "session_accepted", "session_aborted"]
    {
        return Err(format!(
            "expected session_requested, [session_accepted,] session_aborted; audit has {kinds:?}"
        ));
    }
    let aborted = &records[records.len() - 1];
    if aborted.close_code() != Some(u64::from(case.code.0)) {
        return Err(format!(
            "audit close code {:?}, expected {}",
            aborted.close_code(),
            case.code
        ));
    }
    if aborted.text() != driver.to_string() {
        return Err(format!(
            "audit error `{}` differs from `{driver}`",
            aborted.text()
        ));
    }
    Ok(())
}
