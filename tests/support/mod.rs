//! The one shared support module of the end-to-end tests (every file under `tests/`
//! declares `mod support;`): real nodes in temporary data directories, real
//! certificates, real QUIC on 127.0.0.1, audit-log queries, and a panic detector for
//! node and protocol code.
//!
//! Submodules: [`hostile`] (a deliberately misbehaving peer's end of a connection) with
//! [`attacks`] (a hostile initiator's playbook), [`hostile_server`] (a hostile
//! responder) with [`server_attacks`] (its playbook), [`relay`] (a lossy UDP relay),
//! [`process`] (the `blindmatch` binary as a child process that can be killed),
//! [`netns`] (two network namespaces joined by a veth pair, with kernel faults).

#![allow(dead_code)]

pub mod attacks;
pub mod hostile;
pub mod hostile_server;
pub mod netns;
pub mod process;
pub mod relay;
pub mod server_attacks;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use blindmatch_node::admin;
use blindmatch_node::audit::{self as node_audit, AuditCommand};
use blindmatch_node::config::{AllowedMode, NodeConfig, PeerAddr, PeerConfig};
use blindmatch_node::dataset::ImportOptions;
use blindmatch_node::identity::Fingerprint;
use blindmatch_node::matching::{self, MatchRequest, MatchSummary};
use blindmatch_node::node::{Node, NodeError};
use blindmatch_node::transport::{self, PinnedPeers, TransportTuning};
use blindmatch_protocol::wire::OutputMode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A node in its own temporary data directory.
pub struct TestNode {
    pub name: String,
    pub dir: PathBuf,
    pub fingerprint: Fingerprint,
}

/// `127.0.0.1:0`.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The address pinned for a peer that only initiates (it never serves in the test).
pub fn not_serving() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7447))
}

/// Creates a node called `name` under `root`.
pub fn node(root: &Path, name: &str) -> TestNode {
    let dir = root.join(name);
    let id = admin::init_node(&dir, name, loopback()).expect("init");
    TestNode {
        name: name.to_owned(),
        dir,
        fingerprint: id.fingerprint.parse().expect("fingerprint"),
    }
}

/// Sets `[limits]` of `node`: idle timeout (seconds) and concurrent sessions.
pub fn set_limits(node: &TestNode, idle_timeout_secs: u64, max_concurrent_sessions: u32) {
    let mut config = NodeConfig::load(&node.dir).expect("load config");
    config.limits.idle_timeout = Duration::from_secs(idle_timeout_secs);
    config.limits.max_concurrent_sessions = max_concurrent_sessions;
    config.save(&node.dir).expect("save config");
}

/// The email of synthetic contact `i` (simple, so that generation is instant).
pub fn email(i: usize) -> String {
    format!("contact{i}@example.com")
}

/// Imports dataset `name` into `node`: one record `r<i>` per index in `ids`, each with
/// the email of contact `i`.
pub fn import_emails(node: &TestNode, name: &str, ids: impl IntoIterator<Item = usize>) {
    let path = node.dir.join(format!("{name}.csv"));
    let mut text = String::from("id,email\n");
    for i in ids {
        text.push_str(&format!("r{i},{}\n", email(i)));
    }
    std::fs::write(&path, text).expect("csv file");
    let mut options = ImportOptions::new(&path, name);
    options.id_col = Some("id".into());
    options.email_cols = vec!["email".into()];
    options.quiet = true;
    admin::import_dataset(&node.dir, &options).expect("import");
    std::fs::remove_file(&path).expect("remove csv");
}

/// Writes `rows` (header first) as a CSV file and imports it as dataset `name`, with
/// columns `id`, `email` and `phone`.
pub fn import_csv(node: &TestNode, name: &str, rows: &[&[&str]]) {
    import_csv_with(node, name, rows, |_| {});
}

/// [`import_csv`] with the import options changed by `edit` (e.g. provenance columns).
pub fn import_csv_with(
    node: &TestNode,
    name: &str,
    rows: &[&[&str]],
    edit: impl FnOnce(&mut ImportOptions),
) {
    let path = node.dir.join(format!("{name}.csv"));
    let mut writer = csv::Writer::from_path(&path).expect("csv file");
    for row in rows {
        writer.write_record(*row).expect("row");
    }
    writer.flush().expect("flush");
    let mut options = ImportOptions::new(&path, name);
    options.id_col = Some("id".into());
    options.email_cols = vec!["email".into()];
    options.phone_cols = vec!["phone".into()];
    options.quiet = true;
    edit(&mut options);
    admin::import_dataset(&node.dir, &options).expect("import");
}

/// Pins a peer called `name` with certificate `fingerprint` on `node`, reachable at
/// `addr`, offered `offers`, allowed every mode.
pub fn pin(
    node: &TestNode,
    name: &str,
    fingerprint: Fingerprint,
    addr: SocketAddr,
    offers: &[&str],
) {
    add_peer(node, name, fingerprint, addr, offers, &[]);
}

/// Pins the node `peer` on `node`, reachable at `addr`, offered `offers`, allowed
/// `modes` (empty: every mode).
pub fn pin_node(
    node: &TestNode,
    peer: &TestNode,
    addr: SocketAddr,
    offers: &[&str],
    modes: &[AllowedMode],
) {
    add_peer(node, &peer.name, peer.fingerprint, addr, offers, modes);
}

fn add_peer(
    node: &TestNode,
    name: &str,
    fingerprint: Fingerprint,
    addr: SocketAddr,
    offers: &[&str],
    modes: &[AllowedMode],
) {
    // The tests start sessions in every mode: our own policy allows them all here.
    let peer = PeerConfig::new(name, PeerAddr::from(addr), fingerprint)
        .offering(offers.iter().copied())
        .with_modes(modes.iter().copied())
        .with_match_modes(AllowedMode::ALL);
    admin::add_peer(&node.dir, peer).expect("peer add");
}

/// A `serve` of a node running in this process.
pub struct Server {
    pub addr: SocketAddr,
    pub fingerprint: Fingerprint,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Server {
    /// Starts serving `node` on an ephemeral loopback port.
    pub fn start(node: &TestNode) -> Server {
        let opened = Node::open(&node.dir).expect("open node");
        let config = opened.config();
        let endpoint = transport::server_endpoint(
            loopback(),
            opened.identity(),
            PinnedPeers::new(config.pinned_fingerprints()),
            &TransportTuning::with_idle_timeout(config.limits.idle_timeout),
        )
        .expect("endpoint");
        let addr = endpoint.local_addr().expect("addr");
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(blindmatch_node::server::run(
            Arc::clone(&opened),
            endpoint,
            rx,
        ));
        Server {
            addr,
            fingerprint: node.fingerprint,
            stop,
            task,
        }
    }

    /// Whether the server task is still running (it ends only on shutdown or a panic).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops gracefully and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// A match request against `peer` for our dataset `dataset` in mode `both`.
pub fn request(peer: &str, dataset: &str, out: PathBuf) -> MatchRequest {
    MatchRequest {
        peer: peer.to_owned(),
        dataset: dataset.to_owned(),
        remote_dataset: String::new(),
        purpose: "fault test".into(),
        legal_basis: "consent".into(),
        mode: OutputMode::Both,
        out: Some(out),
    }
}

/// Runs one session as initiator from `node` (whose peer `peer` is pinned).
pub async fn run_match(
    node: &TestNode,
    peer: &str,
    dataset: &str,
    out: PathBuf,
) -> Result<MatchSummary, NodeError> {
    matching::run(
        Node::open(&node.dir).expect("open"),
        request(peer, dataset, out),
        None,
    )
    .await
}

/// Ids in a result CSV (first column), header skipped.
pub fn result_ids(path: &Path) -> BTreeSet<String> {
    let mut reader = csv::Reader::from_path(path).expect("result file");
    reader
        .records()
        .map(|r| r.expect("row").get(0).expect("id").to_owned())
        .collect()
}

/// The files in a node's results directory (none when it does not exist).
pub fn responder_results(node: &TestNode) -> Vec<PathBuf> {
    files_ending(&node.dir.join("results"), "")
}

/// Number of data rows in a result CSV (header skipped).
pub fn result_rows(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).expect("result file");
    text.lines().skip(1).filter(|l| !l.is_empty()).count()
}

/// Files in `dir` whose name ends with `suffix` (none when `dir` does not exist).
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The audit log's lines.
pub fn audit_lines(node: &TestNode) -> Vec<String> {
    std::fs::read_to_string(node.dir.join("audit.jsonl"))
        .expect("audit log")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The `fields` of the audit records of type `kind` in `node`'s log, in order.
pub fn audit_records(node: &TestNode, kind: &str) -> Vec<serde_json::Value> {
    audit_kind(&node.dir, kind)
        .into_iter()
        .map(|e| e.fields)
        .collect()
}

/// Runs `blindmatch audit verify` on `dir`'s log (the node's own key); returns its
/// output, or the output and why it failed.
pub fn audit_verify(dir: &Path) -> Result<String, String> {
    let mut out = Vec::new();
    let verify = AuditCommand::Verify {
        log: None,
        key: None,
        checkpoint: None,
    };
    let code = node_audit::run_with_output(verify, dir, &mut out).map_err(|e| format!("{e:#}"))?;
    let out = String::from_utf8_lossy(&out).into_owned();
    if code == ExitCode::SUCCESS {
        Ok(out)
    } else {
        Err(format!("audit verify failed ({code:?}):\n{out}"))
    }
}

/// One session record of an audit log.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// `session_requested`, `session_aborted`, …
    pub kind: String,
    /// The record's fields.
    pub fields: serde_json::Value,
}

impl AuditEntry {
    /// The session id (hex), for session records.
    pub fn session_id(&self) -> Option<&str> {
        self.fields.get("session_id").and_then(|v| v.as_str())
    }

    /// `close_code` of a `session_aborted` record.
    pub fn close_code(&self) -> Option<u64> {
        self.fields.get("close_code").and_then(|v| v.as_u64())
    }

    /// `error` of a `session_aborted` record, `reason` of a `session_refused` one.
    pub fn text(&self) -> String {
        ["error", "reason"]
            .iter()
            .filter_map(|k| self.fields.get(*k).and_then(|v| v.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Every record of `dir`'s audit log, in order.
pub fn audit(dir: &Path) -> Vec<AuditEntry> {
    let text = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .map(|v| AuditEntry {
            kind: v
                .get("type")
                .or_else(|| v.get("record_type"))
                .and_then(|t| t.as_str())
                .unwrap_or_default()
                .to_owned(),
            fields: v.get("fields").cloned().unwrap_or_default(),
        })
        .collect()
}

/// The session records of `dir`'s audit log for session `session_id` (hex).
pub fn audit_of(dir: &Path, session_id: &str) -> Vec<AuditEntry> {
    audit(dir)
        .into_iter()
        .filter(|e| e.session_id() == Some(session_id))
        .collect()
}

/// Records of type `kind` in `dir`'s audit log.
pub fn audit_kind(dir: &Path, kind: &str) -> Vec<AuditEntry> {
    audit(dir).into_iter().filter(|e| e.kind == kind).collect()
}

/// A panic seen anywhere in the process.
#[derive(Clone, Debug)]
pub struct PanicSeen {
    pub file: String,
    pub message: String,
}

static PANICS: Mutex<Vec<PanicSeen>> = Mutex::new(Vec::new());
static HOOK: Once = Once::new();

/// Installs (once) a panic hook that remembers every panic, then calls the default
/// hook. A session task that panics inside the server is swallowed by its `JoinSet`,
/// so this is how a test notices one.
pub fn watch_panics() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let file = info
                .location()
                .map(|l| l.file().to_owned())
                .unwrap_or_default();
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if let Ok(mut panics) = PANICS.lock() {
                panics.push(PanicSeen { file, message });
            }
            default(info);
        }));
    });
}

/// Panics raised in node or protocol code (not in the tests themselves) so far.
pub fn node_panics() -> Vec<PanicSeen> {
    PANICS
        .lock()
        .map(|p| {
            p.iter()
                .filter(|p| !p.file.starts_with("tests/") && !p.file.contains("/tests/"))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that the attack cases, by `names`, are each listed once and at least
/// `at_least` in number.
pub fn assert_distinct_attacks(names: &[String], at_least: usize) {
    let mut distinct = names.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), names.len(), "an attack is listed twice");
    assert!(names.len() >= at_least, "only {} attacks", names.len());
}

/// Asserts that none of `total` attacks failed, listing the `failures` otherwise.
pub fn assert_no_attack_failed(failures: &[String], total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} attacks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Two nodes under `root` that share half their contacts: `crm` imports contacts `0..n`
/// as dataset `crm`, `provider` imports `n/2..n/2+n` as `kp` and pins `crm` (which only
/// initiates) with `kp` offered; both with `idle_secs` and `sessions` as limits.
pub fn crm_and_provider(
    root: &Path,
    n: usize,
    idle_secs: u64,
    sessions: u32,
) -> (TestNode, TestNode) {
    let crm = node(root, "crm");
    let provider = node(root, "provider");
    set_limits(&crm, idle_secs, sessions);
    set_limits(&provider, idle_secs, sessions);
    import_emails(&crm, "crm", 0..n);
    import_emails(&provider, "kp", n / 2..n / 2 + n);
    pin(&provider, "crm", crm.fingerprint, not_serving(), &["kp"]);
    (crm, provider)
}
