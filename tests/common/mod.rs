//! Shared helpers for the end-to-end tests: real nodes in temporary data directories,
//! real certificates, real QUIC on 127.0.0.1.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blindmatch_node::admin::{self, NewPeer};
use blindmatch_node::config::{AllowedMode, PeerAddr};
use blindmatch_node::dataset::ImportOptions;
use blindmatch_node::node::Node;
use blindmatch_node::transport::{self, PinnedPeers, TransportTuning};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A node in its own temporary data directory.
pub struct TestNode {
    pub name: String,
    pub dir: PathBuf,
    pub fingerprint: String,
}

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
        fingerprint: id.fingerprint,
    }
}

/// Writes `rows` (header first) as a CSV file and imports it as dataset `name`.
pub fn import_csv(node: &TestNode, name: &str, rows: &[&[&str]]) {
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
    admin::import_dataset(&node.dir, &options).expect("import");
}

/// Pins `peer` on `node`, offering `offers`, allowing `modes` (empty: all).
pub fn pin(
    node: &TestNode,
    peer: &TestNode,
    addr: SocketAddr,
    offers: &[&str],
    modes: &[AllowedMode],
) {
    admin::add_peer(
        &node.dir,
        NewPeer {
            name: peer.name.clone(),
            addr: PeerAddr::from(addr),
            fingerprint: peer.fingerprint.parse().expect("fingerprint"),
            offers: offers.iter().map(|s| s.to_string()).collect(),
            modes: modes.to_vec(),
            max_peer_set_size: None,
        },
    )
    .expect("peer add");
}

/// A running `serve` of a node.
pub struct Server {
    pub addr: SocketAddr,
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
        Server { addr, stop, task }
    }

    /// Stops gracefully and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Ids in a result CSV (first column), header skipped.
pub fn result_ids(path: &Path) -> BTreeSet<String> {
    let mut reader = csv::Reader::from_path(path).expect("result file");
    reader
        .records()
        .map(|r| r.expect("row").get(0).expect("id").to_owned())
        .collect()
}

/// The single result file in a node's results directory, if any.
pub fn responder_results(node: &TestNode) -> Vec<PathBuf> {
    match std::fs::read_dir(node.dir.join("results")) {
        Ok(entries) => entries.map(|e| e.expect("entry").path()).collect(),
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
