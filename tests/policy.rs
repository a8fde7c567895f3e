//! Policy over real QUIC: one test per rule. The violating session is refused (or cut
//! off) with its specific reason, which the initiator's error names; the responder's
//! audit log records it; and the responder keeps serving a compliant session after.
//!
//! Every fixture has a responder `vendor` offering dataset `kp` (6 identifiers) and two
//! initiators under the same policy: `acme` (7 identifiers, 4 in common) and `beta`
//! (3 identifiers, 2 in common).

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use blindmatch_node::admin;
use blindmatch_node::config::{BelowThreshold, NodeConfig, PeerConfig, SetRatio};
use blindmatch_node::dataset::DatasetCommand;
use blindmatch_node::identity::NodeIdentity;
use blindmatch_node::matching::{self, MatchRequest, MatchSummary};
use blindmatch_node::node::{Node, NodeError};
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::group::hash_identifier;
use blindmatch_protocol::ident::{IdentKind, KindSet};
use blindmatch_protocol::wire::{Hello, Message, OutputMode};
use support::hostile::{HostilePeer, Link};
use support::*;

const CRM: &[&[&str]] = &[
    &["id", "email", "phone"],
    &["c1", "Zhang.Wei@YunFan-Tech.cn", "+86 138-0013-8000"],
    &["c2", "li.na@example.cn", ""],
    &["c3", "", "0086 139 0000 1111"],
    &["c4", "wang.fang@corp.cn", "12345"],
    &["c5", "nobody@nowhere.cn", "13700000000"],
    &["c6", " ZHANG.WEI@yunfan-tech.cn ", ""],
];

const SMALL: &[&[&str]] = &[
    &["id", "email", "phone"],
    &["s1", "zhang.wei@yunfan-tech.cn", "13800138000"],
    &["s2", "other@example.cn", ""],
];

/// The vendor's dataset, with a legal basis and a source on some records.
const KP: &[&[&str]] = &[
    &["id", "email", "phone", "basis", "source"],
    &["p1", "zhang.wei@yunfan-tech.cn", "", "consent", "expo 2024"],
    &["p2", "", "13800138000", "", "web form"],
    &[
        "p3",
        "wang.fang@corp.cn",
        "13900001111",
        "contract",
        "expo 2024",
    ],
    &["p4", "someone@else.cn", "15000000000", "", ""],
];

struct Fixture {
    _root: tempfile::TempDir,
    vendor: TestNode,
    acme: TestNode,
    beta: TestNode,
    server: Option<Server>,
}

/// A vendor serving `kp` to `acme` and `beta`, both under the policy `edit` sets; the
/// vendor's whole config can be changed by `edit_config`.
fn fixture_with(
    edit: impl Fn(&mut PeerConfig),
    edit_config: impl FnOnce(&mut NodeConfig),
) -> Fixture {
    let root = tempfile::tempdir().expect("tempdir");
    let vendor = node(root.path(), "vendor");
    let acme = node(root.path(), "acme");
    let beta = node(root.path(), "beta");
    import_with_provenance(&vendor, "kp", KP);
    import_csv(&acme, "crm", CRM);
    import_csv(&beta, "crm", SMALL);
    for peer in [&acme, &beta] {
        pin_node(&vendor, peer, not_serving(), &["kp"], &[]);
    }
    let mut config = NodeConfig::load(&vendor.dir).expect("config");
    for name in ["acme", "beta"] {
        edit(config.peer_mut(name).expect("peer"));
    }
    edit_config(&mut config);
    config.save(&vendor.dir).expect("save");
    let mut fixture = Fixture {
        _root: root,
        vendor,
        acme,
        beta,
        server: None,
    };
    fixture.start();
    fixture
}

fn fixture(edit: impl Fn(&mut PeerConfig)) -> Fixture {
    fixture_with(edit, |_| {})
}

impl Fixture {
    /// Starts (or restarts, reopening the node) the vendor's server and re-pins it on
    /// the initiators at its new address.
    fn start(&mut self) {
        let server = Server::start(&self.vendor);
        for initiator in [&self.acme, &self.beta] {
            let _ = admin::remove_peer(&initiator.dir, "vendor");
            pin_node(initiator, &self.vendor, server.addr, &[], &[]);
        }
        self.server = Some(server);
    }

    async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        self.start();
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().expect("serving").addr
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

fn import_with_provenance(node: &TestNode, name: &str, rows: &[&[&str]]) {
    import_csv_with(node, name, rows, |options| {
        options.legal_basis_col = Some("basis".into());
        options.source_col = Some("source".into());
    });
}

struct Ask {
    mode: OutputMode,
    purpose: &'static str,
    legal_basis: &'static str,
    remote_dataset: &'static str,
}

const ASK: Ask = Ask {
    mode: OutputMode::Both,
    purpose: "ABM coverage check",
    legal_basis: "consent",
    remote_dataset: "",
};

async fn run(initiator: &TestNode, ask: Ask) -> Result<MatchSummary, NodeError> {
    let out = initiator.dir.join(format!(
        "out-{}.csv",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    ));
    matching::run(
        Node::open(&initiator.dir).expect("open"),
        MatchRequest {
            peer: "vendor".into(),
            dataset: "crm".into(),
            remote_dataset: ask.remote_dataset.into(),
            purpose: ask.purpose.into(),
            legal_basis: ask.legal_basis.into(),
            mode: ask.mode,
            out: Some(out),
        },
        None,
    )
    .await
}

/// The session was refused with `reason`; returns the initiator's error text.
async fn refused(initiator: &TestNode, ask: Ask, reason: &str) -> String {
    match run(initiator, ask).await {
        Ok(summary) => panic!("expected a refusal ({reason}), the session completed: {summary}"),
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains(reason), "expected `{reason}` in: {text}");
            text
        }
    }
}

async fn completes(initiator: &TestNode, ask: Ask) -> MatchSummary {
    run(initiator, ask)
        .await
        .unwrap_or_else(|e| panic!("compliant session failed: {e}"))
}

/// The responder's audit log has a `session_refused` record naming `reason`.
fn audit_refused(node: &TestNode, reason: &str) {
    let lines = audit_lines(node);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"session_refused\"") && l.contains(reason)),
        "no session_refused record with `{reason}` in the audit log:\n{}",
        lines.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purpose_outside_the_list_is_refused() {
    let f = fixture(|p| p.policy.purposes = vec!["ABM coverage check".into()]);
    let text = refused(
        &f.acme,
        Ask {
            purpose: "resale to third parties",
            ..ASK
        },
        "purpose-not-allowed",
    )
    .await;
    assert!(text.contains("`ABM coverage check`"), "{text}");
    audit_refused(&f.vendor, "purpose-not-allowed");
    completes(
        &f.acme,
        Ask {
            purpose: "abm coverage check",
            ..ASK
        },
    )
    .await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legal_basis_missing_or_not_accepted_is_refused() {
    let f = fixture(|p| p.policy.legal_bases = vec!["consent".into(), "contract".into()]);
    let text = refused(
        &f.acme,
        Ask {
            legal_basis: "",
            ..ASK
        },
        "legal-basis-not-allowed",
    )
    .await;
    assert!(text.contains("declare the legal basis"), "{text}");
    refused(
        &f.acme,
        Ask {
            legal_basis: "legitimate interest",
            ..ASK
        },
        "legal-basis-not-allowed",
    )
    .await;
    audit_refused(&f.vendor, "legal-basis-not-allowed");
    completes(
        &f.acme,
        Ask {
            legal_basis: "Contract",
            ..ASK
        },
    )
    .await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_and_mode_outside_the_policy_are_refused() {
    let f = fixture(|p| p.modes = vec![blindmatch_node::config::AllowedMode::Cardinality]);
    refused(
        &f.acme,
        Ask {
            remote_dataset: "everything",
            mode: OutputMode::Cardinality,
            ..ASK
        },
        "dataset-not-offered",
    )
    .await;
    let text = refused(&f.acme, ASK, "mode-not-allowed").await;
    assert!(text.contains("allowed: cardinality"), "{text}");
    audit_refused(&f.vendor, "dataset-not-offered");
    audit_refused(&f.vendor, "mode-not-allowed");
    let summary = completes(
        &f.acme,
        Ask {
            mode: OutputMode::Cardinality,
            ..ASK
        },
    )
    .await;
    assert_eq!(summary.intersection, Some(4));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_larger_than_the_cap_is_refused() {
    let f = fixture(|p| p.max_peer_set_size = Some(5));
    let text = refused(&f.acme, ASK, "set-too-large").await;
    assert!(
        text.contains("7 identifiers exceeds the limit of 5"),
        "{text}"
    );
    audit_refused(&f.vendor, "set-too-large");
    completes(&f.beta, ASK).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_too_large_for_the_ratio_is_refused() {
    // The offered set has 6 identifiers: acme's 7 is over 1x, beta's 3 is not. The
    // refusal names the rule but not the size of the offered set.
    let f = fixture(|p| p.policy.max_set_ratio = SetRatio::from_f64(1.0));
    let text = refused(&f.acme, ASK, "ratio-too-high").await;
    assert!(text.contains("more than 1 times the set offered"), "{text}");
    assert!(!text.contains('6'), "{text}");
    audit_refused(&f.vendor, "ratio-too-high");
    completes(&f.beta, ASK).await;
    f.stop().await;
}

/// A pinned client speaking the protocol by hand, with `from`'s identity, connected
/// to `to` at `addr`.
async fn raw_session(from: &TestNode, to: &TestNode, addr: std::net::SocketAddr) -> Link {
    let identity = NodeIdentity::load(&from.dir).expect("identity");
    let mut peer = HostilePeer::with_identity(identity);
    peer.aim(addr, to.fingerprint);
    peer.connect().await.expect("connect")
}

/// How long a raw session waits for the next message.
const RAW_WAIT: Duration = Duration::from_secs(10);

fn raw_hello(session_id: [u8; 16], mode: OutputMode, set_size: u64) -> Message {
    let mut hello = Hello::new(session_id, mode, set_size, support::hostile::commitment());
    hello.purpose = "ABM coverage check".into();
    hello.legal_basis = "consent".into();
    hello.kinds = KindSet::empty().with(IdentKind::Email);
    Message::Hello(hello)
}

fn points(range: std::ops::Range<u32>) -> Vec<[u8; 32]> {
    range
        .map(|i| {
            let email = format!("guess{i}@example.cn");
            hash_identifier(IdentKind::Email.code(), email.as_bytes())
                .compress()
                .to_bytes()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_beyond_the_declared_size_are_cut_off() {
    let f = fixture(|p| p.max_peer_set_size = Some(3));
    let mut raw = raw_session(&f.acme, &f.vendor, f.addr()).await;
    raw.send(&raw_hello([7; 16], OutputMode::Initiator, 3))
        .await;
    assert!(matches!(
        raw.next_message(RAW_WAIT).await,
        Some(Message::Accept(_))
    ));
    // The declared 3 points are re-blinded...
    raw.send(&Message::Blinded(points(0..3))).await;
    let mut reblinded = 0;
    while reblinded < 3 {
        match raw.next_message(RAW_WAIT).await {
            Some(Message::Reblinded(values)) => reblinded += values.points.len(),
            Some(_) => {}
            None => panic!("the declared points were not re-blinded"),
        }
    }
    // ...the first one beyond them ends the session.
    raw.send(&Message::Blinded(points(3..4))).await;
    let mut abort = None;
    while let Some(message) = raw.next_message(RAW_WAIT).await {
        match message {
            Message::Reblinded(values) => reblinded += values.points.len(),
            Message::Abort(code) => {
                abort = Some(code);
                break;
            }
            _ => {}
        }
    }
    drop(raw);
    assert_eq!(abort, Some(CloseCode::LIMIT_EXCEEDED));
    assert_eq!(reblinded, 3, "no point beyond the declared 3 is re-blinded");
    // Recorded just after the server ends the session.
    let deadline = Instant::now() + Duration::from_secs(5);
    while audit_records(&f.vendor, "session_aborted").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let aborted = audit_records(&f.vendor, "session_aborted");
    assert!(
        aborted.iter().any(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("more than the 3 points"))),
        "{aborted:?}"
    );
    completes(&f.beta, ASK).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_session_id_is_refused_even_after_a_restart() {
    let mut f = fixture(|_| {});
    let id = [42; 16];
    let mut first = raw_session(&f.acme, &f.vendor, f.addr()).await;
    first.send(&raw_hello(id, OutputMode::Cardinality, 3)).await;
    assert!(matches!(
        first.next_message(RAW_WAIT).await,
        Some(Message::Accept(_))
    ));
    drop(first);
    for round in ["same server", "after restart"] {
        if round == "after restart" {
            f.restart().await;
        }
        let mut again = raw_session(&f.acme, &f.vendor, f.addr()).await;
        again.send(&raw_hello(id, OutputMode::Cardinality, 3)).await;
        match again.next_message(RAW_WAIT).await {
            Some(Message::Reject(reject)) => {
                assert_eq!(reject.reason.name(), "replayed-session", "{round}");
                assert!(reject.text.contains(&hex_id(id)), "{}", reject.text);
            }
            other => panic!("{round}: expected a Reject, got {other:?}"),
        }
        drop(again);
    }
    audit_refused(&f.vendor, "replayed-session");
    completes(&f.acme, ASK).await;
    f.stop().await;
}

fn hex_id(id: [u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daily_budget_survives_a_restart() {
    let mut f = fixture(|p| p.policy.max_identifiers_per_day = Some(10));
    completes(&f.acme, ASK).await;
    let text = refused(&f.acme, ASK, "budget-exhausted").await;
    assert!(
        text.contains("7 were evaluated in the last 24 hours"),
        "{text}"
    );
    assert!(text.contains("fits again at"), "{text}");
    f.restart().await;
    refused(&f.acme, ASK, "budget-exhausted").await;
    audit_refused(&f.vendor, "budget-exhausted");
    // Budgets are per peer: beta still has its own.
    completes(&f.beta, ASK).await;
    let ledger = std::fs::read_to_string(f.vendor.dir.join("policy-ledger.jsonl")).expect("ledger");
    assert_eq!(
        ledger.lines().count(),
        3,
        "header and two sessions: {ledger}"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_budget_is_enforced() {
    let f = fixture(|p| p.policy.max_identifiers_total = Some(10));
    completes(&f.acme, ASK).await;
    let text = refused(&f.acme, ASK, "budget-exhausted").await;
    assert!(text.contains("does not reset"), "{text}");
    audit_refused(&f.vendor, "budget-exhausted");
    completes(&f.beta, ASK).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_rate_limit_is_enforced() {
    let f = fixture(|p| p.policy.max_sessions_per_hour = Some(1));
    completes(&f.acme, ASK).await;
    let text = refused(&f.acme, ASK, "rate-limited").await;
    assert!(text.contains("try again at"), "{text}");
    audit_refused(&f.vendor, "rate-limited");
    completes(&f.beta, ASK).await;
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sessions_per_peer_are_capped() {
    let f = fixture(|p| p.policy.max_concurrent_sessions = Some(1));
    let mut held = raw_session(&f.acme, &f.vendor, f.addr()).await;
    held.send(&raw_hello([9; 16], OutputMode::Cardinality, 3))
        .await;
    assert!(matches!(
        held.next_message(RAW_WAIT).await,
        Some(Message::Accept(_))
    ));
    let text = refused(&f.acme, ASK, "busy").await;
    assert!(text.contains("at most 1 session at once"), "{text}");
    audit_refused(&f.vendor, "busy");
    // Another peer is not held back by acme's running session.
    completes(&f.beta, ASK).await;
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match run(&f.acme, ASK).await {
            Ok(_) => break,
            Err(err) if Instant::now() < deadline && err.to_string().contains("busy") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("acme not served after its session ended: {err}"),
        }
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disclosure_threshold_withholds_small_intersections() {
    // 4 identifiers (3 records: p1, p2, p3) in common with acme, 2 with beta; the
    // threshold counts records, the figure people read.
    let f = fixture(|p| p.policy.disclosure_threshold = Some(3));
    let text = refused(&f.acme, ASK, "mode-not-allowed").await;
    assert!(text.contains("at least 3"), "{text}");
    refused(
        &f.acme,
        Ask {
            mode: OutputMode::Initiator,
            ..ASK
        },
        "mode-not-allowed",
    )
    .await;
    audit_refused(&f.vendor, "mode-not-allowed");
    let responder = Ask {
        mode: OutputMode::Responder,
        ..ASK
    };
    completes(&f.beta, responder).await;
    assert!(
        responder_results(&f.vendor).is_empty(),
        "2 matched records are below the threshold: none kept"
    );
    completes(
        &f.acme,
        Ask {
            mode: OutputMode::Responder,
            ..ASK
        },
    )
    .await;
    let files = responder_results(&f.vendor);
    assert_eq!(files.len(), 1, "3 matched records reach the threshold");
    assert_eq!(result_ids(&files[0]), ids(&["p1", "p2", "p3"]));
    let counts: Vec<_> = audit_records(&f.vendor, "session_completed")
        .iter()
        .map(|r| r["intersection_size"].as_u64())
        .collect();
    assert_eq!(
        counts,
        [Some(2), Some(4)],
        "below `count`, the count is kept"
    );
    let records: Vec<_> = audit_records(&f.vendor, "session_completed")
        .iter()
        .map(|r| r["matched_records"].as_u64())
        .collect();
    assert_eq!(
        records[1],
        Some(3),
        "acme's 4 identifiers are 3 of our records"
    );
    // Cardinality only releases the count, which `count` allows.
    completes(
        &f.beta,
        Ask {
            mode: OutputMode::Cardinality,
            ..ASK
        },
    )
    .await;
    f.stop().await;

    let g = fixture(|p| {
        p.policy.disclosure_threshold = Some(3);
        p.policy.below_threshold = BelowThreshold::Nothing;
    });
    refused(
        &g.beta,
        Ask {
            mode: OutputMode::Cardinality,
            ..ASK
        },
        "mode-not-allowed",
    )
    .await;
    completes(
        &g.beta,
        Ask {
            mode: OutputMode::Responder,
            ..ASK
        },
    )
    .await;
    assert!(responder_results(&g.vendor).is_empty());
    let completed = audit_records(&g.vendor, "session_completed");
    assert_eq!(completed.len(), 1);
    assert!(completed[0]["intersection_size"].is_null(), "{completed:?}");
    g.stop().await;
}

fn ids(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_legal_basis_never_reach_the_peer() {
    let f = fixture_with(
        |_| {},
        |config| {
            config.datasets.insert(
                "kp".into(),
                blindmatch_node::config::DatasetPolicy {
                    require_legal_basis: true,
                    ..Default::default()
                },
            );
        },
    );
    let summary = completes(&f.acme, ASK).await;
    // Only p1 (1 email) and p3 (email + phone) have a legal basis: 3 identifiers.
    assert_eq!(
        summary.their_size, 3,
        "the peer received only eligible points"
    );
    assert_eq!(summary.intersection, Some(3));
    let out = summary.out.expect("result file");
    assert_eq!(result_ids(&out), ids(&["c1", "c3", "c4", "c6"]));
    let files = responder_results(&f.vendor);
    assert_eq!(result_ids(&files[0]), ids(&["p1", "p3"]));
    let accepted = audit_records(&f.vendor, "session_accepted");
    assert_eq!(accepted[0]["our_set_size"].as_u64(), Some(3));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_records_leave_future_sessions() {
    let f = fixture(|_| {});
    let before = completes(&f.acme, ASK).await;
    assert_eq!(before.their_size, 6);
    let list: PathBuf = f.vendor.dir.join("withdrawn.txt");
    std::fs::write(&list, "id\n# consent withdrawn\np3\nunknown-id\n").expect("list");
    admin::dataset_command(
        &f.vendor.dir,
        DatasetCommand::Revoke {
            name: "kp".into(),
            ids: list,
        },
        true,
    )
    .expect("revoke");
    // The running server picks the rewritten dataset up at the next session.
    let after = completes(&f.acme, ASK).await;
    assert_eq!(after.their_size, 4, "p3's email and phone are gone");
    assert_eq!(
        result_ids(&after.out.expect("result file")),
        ids(&["c1", "c6"])
    );
    let revoked = audit_records(&f.vendor, "dataset_revoked");
    let last = revoked.last().expect("revocation recorded");
    assert_eq!(last["revoked"].as_u64(), Some(1));
    assert_eq!(last["remaining"].as_u64(), Some(3));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_check_prints_the_effective_policy() {
    let f = fixture(|p| {
        if p.name == "acme" {
            p.max_peer_set_size = Some(50_000);
            p.policy.purposes = vec!["ABM coverage check".into()];
            p.policy.max_identifiers_per_day = Some(100);
            p.policy.max_sessions_per_hour = Some(4);
            p.policy.disclosure_threshold = Some(5);
        }
    });
    completes(
        &f.acme,
        Ask {
            mode: OutputMode::Cardinality,
            ..ASK
        },
    )
    .await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_blindmatch"))
        .arg("--data-dir")
        .arg(&f.vendor.dir)
        .args(["policy", "check"])
        .output()
        .expect("run blindmatch");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    for expected in [
        "Peer `acme`",
        "only `ABM coverage check`",
        "at most 50000 identifiers per session",
        // The cardinality session charged its padded record bundles.
        "100 identifiers per rolling 24 hours (12 used)",
        "at most 4 per rolling hour (1 in the last hour)",
        "; both, initiator refused because of the disclosure threshold",
        "Peer `beta`",
        "WARNING       no set-size cap or ratio",
        "`kp`: 4 records; every record may be matched: 4 eligible",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    f.stop().await;
}

/// The `node.toml` examples under "### Policy examples" in the README are valid, and
/// mean what the text around them says.
#[test]
fn readme_policy_examples_are_valid() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("### Policy examples")
        .expect("README has policy examples");
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let blocks: Vec<&str> = section
        .split("```toml\n")
        .skip(1)
        .map(|rest| &rest[..rest.find("```").expect("closed block")])
        .collect();
    assert_eq!(blocks.len(), 2, "a vendor and an enterprise example");
    let mut configs = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        let mut text = block.to_string();
        for (n, placeholder) in ["<ACME-FP>", "<YUNFAN-FP>", "<DATAHUB-FP>", "<AGENCY-FP>"]
            .iter()
            .enumerate()
        {
            text = text.replace(placeholder, &format!("{:064x}", n + 1));
        }
        // The Ed25519 base point: a valid public key.
        text = text.replace("<DATAHUB-AUDIT-KEY>", &format!("58{}", "66".repeat(31)));
        let config = NodeConfig::parse(&text, None)
            .unwrap_or_else(|e| panic!("README example {}: {e}", index + 1));
        for peer in config.peers() {
            if !peer.offers.is_empty() {
                assert!(
                    !blindmatch_node::policy::effective_modes(peer).is_empty(),
                    "peer `{}` can use no mode",
                    peer.name
                );
            }
        }
        configs.push(config);
    }
    let trial = configs[0].peer("acme").expect("acme");
    assert_eq!(trial.policy.max_set_ratio, SetRatio::from_f64(0.5));
    let agency = configs[1].peer("agency").expect("agency");
    assert_eq!(agency.policy.disclosure_threshold, Some(10));
    assert!(
        configs[1]
            .peer("datahub")
            .expect("datahub")
            .modes
            .is_empty()
    );
    let datahub = configs[1].peer("datahub").expect("datahub");
    assert!(datahub.audit_key.is_some());
    assert_eq!(datahub.match_modes.len(), 2, "initiator and cardinality");
}
