//! Shared by the examples: two vendors' nodes, set up as `blindmatch init`, `dataset
//! import` and `peer add` would, with datahub serving on loopback — what
//! `quic_two_vendors` walks through, reused by `auditor` and `crm_via_index`.

// Compiled into each example that uses it; each uses a different part.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use blindmatch_node::admin;
use blindmatch_node::config::{AllowedMode, PeerAddr, PeerConfig};
use blindmatch_node::dataset::ImportOptions;
use blindmatch_node::matching::{self, MatchRequest, MatchSummary};
use blindmatch_node::node::Node;
use blindmatch_node::transport::{self, PinnedPeers, TransportTuning};
use blindmatch_protocol::wire::OutputMode;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// acme (an enterprise) and datahub (a data vendor), datahub serving.
pub struct Vendors {
    /// Holds both data directories; deleted on drop.
    pub root: tempfile::TempDir,
    /// acme's data directory.
    pub acme_dir: PathBuf,
    /// datahub's data directory.
    pub datahub_dir: PathBuf,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Vendors {
    /// Creates both nodes, imports a small list into each, pins each on the other and
    /// starts datahub's `serve`.
    pub async fn start() -> anyhow::Result<Self> {
        let root = tempfile::tempdir()?;
        let loopback: SocketAddr = "127.0.0.1:0".parse()?;

        // 1. Each vendor creates its node: a TLS certificate (its fingerprint is how peers
        //    pin it) and an audit key (how its receipts and log are verified).
        let datahub_dir = root.path().join("datahub");
        let acme_dir = root.path().join("acme");
        let datahub_id = admin::init_node(&datahub_dir, "datahub", loopback)?;
        let acme_id = admin::init_node(&acme_dir, "acme", loopback)?;

        // 2. Each imports its list. Normalisation (e-mail case, +86 phone formats,
        //    full-width characters) happens here, once.
        import(
            &datahub_dir,
            "kp-2026",
            "id,email,phone\n\
             kp-1,zhang.wei@acme-robotics.cn,+86 138 0013 8000\n\
             kp-2,chen.jie@other.cn,13911112222\n\
             kp-3,lina@elsewhere.cn,13912345678\n",
        )?;
        import(
            &acme_dir,
            "crm",
            "id,email,phone\n\
             crm-1,Zhang.Wei@ACME-Robotics.cn,13800138000\n\
             crm-2,li.na@yunfan-tech.cn,139-1234-5678\n\
             crm-3,wang.fang@example.cn,13700000001\n",
        )?;

        // 3. Each pins the other (fingerprints and audit keys exchanged out of band).
        //    datahub offers kp-2026 to acme in mode `initiator` only: acme learns its
        //    matched records, datahub learns nothing about acme's list. acme only starts
        //    sessions, so the address datahub pins for it is never dialled.
        let mut acme_on_datahub = PeerConfig::new(
            "acme",
            PeerAddr::from(SocketAddr::from(([127, 0, 0, 1], 7447))),
            acme_id.fingerprint.parse()?,
        )
        .offering(["kp-2026"])
        .with_modes([AllowedMode::Initiator]);
        acme_on_datahub.audit_key = Some(acme_id.audit_key.parse().map_err(anyhow::Error::msg)?);
        admin::add_peer(&datahub_dir, acme_on_datahub)?;

        // 4. datahub serves on an ephemeral port: what `blindmatch serve` runs.
        let datahub = Node::open(&datahub_dir)?;
        let config = datahub.config();
        let endpoint = transport::server_endpoint(
            loopback,
            datahub.identity(),
            // Only pinned certificates complete the TLS handshake.
            PinnedPeers::new(config.pinned_fingerprints()),
            &TransportTuning::with_idle_timeout(config.limits.idle_timeout),
        )?;
        let datahub_addr = endpoint.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(blindmatch_node::server::run(datahub, endpoint, stopped));

        let mut datahub_on_acme = PeerConfig::new(
            "datahub",
            PeerAddr::from(datahub_addr),
            datahub_id.fingerprint.parse()?,
        );
        datahub_on_acme.audit_key = Some(datahub_id.audit_key.parse().map_err(anyhow::Error::msg)?);
        admin::add_peer(&acme_dir, datahub_on_acme)?;
        Ok(Self {
            root,
            acme_dir,
            datahub_dir,
            stop,
            server,
        })
    }

    /// acme runs one session with datahub in mode `initiator` (acme learns its matched
    /// records, datahub nothing): what `blindmatch match` runs. Returns the summary and
    /// the result file.
    pub async fn acme_matches(&self) -> anyhow::Result<(MatchSummary, PathBuf)> {
        let (request, out) = self.acme_request();
        let summary = matching::run(Node::open(&self.acme_dir)?, request, None).await?;
        Ok((summary, out))
    }

    /// What acme asks of datahub: its `crm` against datahub's `kp-2026`, in mode
    /// `initiator`, with a declared purpose and legal basis (both are bound into the
    /// session and logged on both sides); and the result file it writes.
    pub fn acme_request(&self) -> (MatchRequest, PathBuf) {
        let out = self.root.path().join("matches.csv");
        let request = MatchRequest {
            peer: "datahub".into(),
            dataset: "crm".into(),
            remote_dataset: "kp-2026".into(),
            purpose: "ABM 2027 coverage check".into(),
            legal_basis: "consent".into(),
            mode: OutputMode::Initiator,
            out: Some(out.clone()),
        };
        (request, out)
    }

    /// Stops datahub's `serve` gracefully (sessions in flight finish) and waits.
    pub async fn stop(self) -> anyhow::Result<tempfile::TempDir> {
        let _ = self.stop.send(true);
        self.server.await?;
        Ok(self.root)
    }
}

/// Writes `csv` to a file and imports it as dataset `name` (columns id, email, phone).
pub fn import(data_dir: &Path, name: &str, csv: &str) -> anyhow::Result<()> {
    let path = data_dir.join(format!("{name}.csv"));
    std::fs::write(&path, csv)?;
    let mut options = ImportOptions::new(&path, name);
    options.id_col = Some("id".into());
    options.email_cols = vec!["email".into()];
    options.phone_cols = vec!["phone".into()];
    options.quiet = true;
    let report = admin::import_dataset(data_dir, &options)?;
    println!("{name}: {} records imported", report.accepted);
    std::fs::remove_file(&path)?;
    Ok(())
}
