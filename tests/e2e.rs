//! End-to-end: two real nodes over QUIC with mutual TLS on loopback, every output
//! mode, results compared with the plain intersection of the input files; refusals.

mod support;

use std::collections::BTreeSet;

use blindmatch_node::config::AllowedMode;
use blindmatch_node::matching::{self, MatchRequest};
use blindmatch_node::node::{Node, NodeError};
use blindmatch_protocol::wire::OutputMode;
use support::*;

/// CRM rows: several identifier kinds per record, a duplicate identifier across two
/// records, an invalid phone, an email in messy form.
const CRM: &[&[&str]] = &[
    &["id", "email", "phone"],
    &["c1", "Zhang.Wei@YunFan-Tech.cn", "+86 138-0013-8000"],
    &["c2", "li.na@example.cn", ""],
    &["c3", "", "0086 139 0000 1111"],
    &["c4", "wang.fang@corp.cn", "12345"],
    &["c5", "nobody@nowhere.cn", "13700000000"],
    &["c6", " ZHANG.WEI@yunfan-tech.cn ", ""],
];

const PROVIDER: &[&[&str]] = &[
    &["id", "email", "phone"],
    &["p1", "zhang.wei@yunfan-tech.cn", ""],
    &["p2", "", "13800138000"],
    &["p3", "wang.fang@corp.cn", "13900001111"],
    &["p4", "someone@else.cn", "15000000000"],
];

/// The plain intersection computed by hand from the rows above.
fn expected_crm() -> BTreeSet<String> {
    ["c1", "c3", "c4", "c6"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
fn expected_provider() -> BTreeSet<String> {
    ["p1", "p2", "p3"].iter().map(|s| s.to_string()).collect()
}

struct Pair {
    _root: tempfile::TempDir,
    crm: TestNode,
    provider: TestNode,
}

fn pair(modes: &[AllowedMode], offers: &[&str]) -> Pair {
    let root = tempfile::tempdir().expect("tempdir");
    let crm = node(root.path(), "crm");
    let provider = node(root.path(), "provider");
    import_csv(&crm, "crm", CRM);
    import_csv(&provider, "kp", PROVIDER);
    pin_node(&provider, &crm, not_serving(), offers, modes);
    Pair {
        _root: root,
        crm,
        provider,
    }
}

fn request(mode: OutputMode, out: std::path::PathBuf) -> MatchRequest {
    MatchRequest {
        peer: "provider".into(),
        dataset: "crm".into(),
        remote_dataset: String::new(),
        purpose: "e2e test".into(),
        legal_basis: "consent".into(),
        mode,
        out: Some(out),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_matches_the_plain_intersection() {
    for mode in OutputMode::ALL {
        let p = pair(&[], &["kp"]);
        let server = Server::start(&p.provider);
        pin_node(&p.crm, &p.provider, server.addr, &[], &[]);
        let out = p.crm.dir.join("out.csv");
        let summary = matching::run(
            Node::open(&p.crm.dir).expect("open"),
            request(mode, out.clone()),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
        server.stop().await;

        let crm_learns = matches!(mode, OutputMode::Both | OutputMode::Initiator);
        let provider_learns = matches!(mode, OutputMode::Both | OutputMode::Responder);
        assert_eq!(out.exists(), crm_learns, "{mode}: initiator result file");
        if crm_learns {
            assert_eq!(result_ids(&out), expected_crm(), "{mode}");
        }
        let provider_files = responder_results(&p.provider);
        if provider_learns {
            assert_eq!(provider_files.len(), 1, "{mode}");
            assert_eq!(
                result_ids(&provider_files[0]),
                expected_provider(),
                "{mode}"
            );
        } else {
            assert!(
                provider_files.is_empty(),
                "{mode}: responder learns nothing"
            );
        }
        // Distinct identifiers in common: zhang.wei email, +8613800138000, +8613900001111,
        // wang.fang email.
        let expected_count = (crm_learns || mode == OutputMode::Cardinality).then_some(4);
        assert_eq!(summary.intersection, expected_count, "{mode}");
        assert_eq!(
            summary.our_size, 7,
            "{mode}: distinct valid identifiers on the CRM side"
        );
        // In cardinality mode each record travels as a bundle padded to the widest.
        let their_size = if mode == OutputMode::Cardinality {
            8
        } else {
            6
        };
        assert_eq!(summary.their_size, their_size, "{mode}");
        let completed = |n: &TestNode| {
            audit_lines(n)
                .iter()
                .filter(|l| l.contains("\"session_completed\""))
                .count()
        };
        assert_eq!(completed(&p.crm), 1, "{mode}");
        assert_eq!(completed(&p.provider), 1, "{mode}");
    }
}

async fn refused(p: &Pair, mode: OutputMode, remote_dataset: &str) -> NodeError {
    let server = Server::start(&p.provider);
    pin_node(&p.crm, &p.provider, server.addr, &[], &[]);
    let out = p.crm.dir.join("refused.csv");
    let mut req = request(mode, out.clone());
    req.remote_dataset = remote_dataset.into();
    let err = matching::run(Node::open(&p.crm.dir).expect("open"), req, None)
        .await
        .expect_err("must be refused");
    server.stop().await;
    assert!(!out.exists(), "no result file after a refusal");
    assert!(
        responder_results(&p.provider).is_empty(),
        "nothing processed on the responder"
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dataset_not_offered_is_refused_with_a_clear_reason() {
    let p = pair(&[], &["kp"]);
    let err = refused(&p, OutputMode::Both, "secret-list")
        .await
        .to_string();
    assert!(
        err.contains("dataset-not-offered") && err.contains("secret-list"),
        "{err}"
    );
    let log = audit_lines(&p.provider).join("\n");
    assert!(log.contains("\"session_refused\""), "refusal recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_not_allowed_is_refused() {
    let p = pair(&[AllowedMode::Cardinality], &["kp"]);
    let err = refused(&p, OutputMode::Both, "").await.to_string();
    assert!(
        err.contains("mode-not-allowed") && err.contains("cardinality"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_peer_is_refused_at_the_handshake() {
    let p = pair(&[], &["kp"]);
    let root = tempfile::tempdir().expect("tempdir");
    let stranger = node(root.path(), "stranger");
    import_csv(&stranger, "crm", CRM);
    let server = Server::start(&p.provider);
    pin_node(&stranger, &p.provider, server.addr, &[], &[]);
    let req = MatchRequest {
        dataset: "crm".into(),
        ..request(OutputMode::Both, stranger.dir.join("out.csv"))
    };
    let err = matching::run(Node::open(&stranger.dir).expect("open"), req, None)
        .await
        .expect_err("unpinned client must be refused");
    server.stop().await;
    let text = err.to_string();
    assert!(
        text.to_lowercase().contains("refused") || text.contains("pinned"),
        "{text}"
    );
    assert!(responder_results(&p.provider).is_empty());
    let log = audit_lines(&p.provider).join("\n");
    assert!(
        !log.contains("session_requested"),
        "no protocol message processed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_server_fingerprint_is_refused() {
    let p = pair(&[], &["kp"]);
    let root = tempfile::tempdir().expect("tempdir");
    let impostor = node(root.path(), "provider");
    import_csv(&impostor, "kp", PROVIDER);
    pin_node(&impostor, &p.crm, not_serving(), &["kp"], &[]);
    // The CRM pins the real provider's fingerprint but reaches the impostor.
    let server = Server::start(&impostor);
    pin_node(&p.crm, &p.provider, server.addr, &[], &[]);
    let err = matching::run(
        Node::open(&p.crm.dir).expect("open"),
        request(OutputMode::Both, p.crm.dir.join("o.csv")),
        None,
    )
    .await
    .expect_err("impostor must be refused");
    server.stop().await;
    let text = err.to_string();
    assert!(text.contains(&p.provider.fingerprint.to_string()), "{text}");
    assert!(responder_results(&impostor).is_empty());
}
