//! An enterprise matches its CRM against two data providers in one run: one session
//! per provider, at the same time, each under that provider's policy, linked by one run
//! id in the enterprise's audit log; then the records every provider covers.
//!
//! What each party learns (SECURITY.md, "Several peers in one run"): with pairwise
//! `initiator` sessions the enterprise learns each pairwise intersection — which of its
//! records each provider holds — not only the records all of them hold; each provider
//! learns nothing about the CRM but its size.
//!
//! Run it with `cargo run --example three_parties`.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use blindmatch_node::admin;
use blindmatch_node::config::{AllowedMode, PeerAddr, PeerConfig};
use blindmatch_node::matching::{self, PeerTarget, Require, RunRequest};
use blindmatch_node::node::Node;
use blindmatch_node::transport::{self, PinnedPeers, TransportTuning};
use blindmatch_protocol::wire::OutputMode;
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let loopback: SocketAddr = "127.0.0.1:0".parse()?;
    let acme_dir = root.path().join("acme");
    let acme = admin::init_node(&acme_dir, "acme", loopback)?;
    common::import(
        &acme_dir,
        "crm",
        "id,email,phone\n\
         crm-1,zhang.wei@acme-robotics.cn,13800138000\n\
         crm-2,li.na@yunfan-tech.cn,13912345678\n\
         crm-3,wang.fang@example.cn,13700000001\n\
         crm-4,chen.jie@other.cn,13911112222\n",
    )?;

    // Two providers, each holding part of acme's contacts; both serve.
    let mut stops = Vec::new();
    let mut servers = Vec::new();
    for (name, csv) in [
        (
            "datahub",
            "id,email,phone\n\
             d-1,zhang.wei@acme-robotics.cn,\n\
             d-2,,13912345678\n\
             d-3,someone@else.cn,\n",
        ),
        (
            "kpbase",
            "id,email,phone\n\
             k-1,,+86 138 0013 8000\n\
             k-2,chen.jie@other.cn,\n",
        ),
    ] {
        let dir = root.path().join(name);
        let id = admin::init_node(&dir, name, loopback)?;
        common::import(&dir, "kp", csv)?;
        // acme may match against `kp` and learn its own matched records; it is never
        // dialled, so its pinned address is a placeholder.
        let acme_there = PeerConfig::new(
            "acme",
            PeerAddr::from(SocketAddr::from(([127, 0, 0, 1], 7447))),
            acme.fingerprint.parse()?,
        )
        .offering(["kp"])
        .with_modes([AllowedMode::Initiator]);
        admin::add_peer(&dir, acme_there)?;
        let (addr, stop, server) = serve(&dir)?;
        admin::add_peer(
            &acme_dir,
            PeerConfig::new(name, PeerAddr::from(addr), id.fingerprint.parse()?),
        )?;
        stops.push(stop);
        servers.push(server);
    }

    // One run: both sessions at once, our set hashed to the group once for both.
    // `Require::All` keeps, in the combined file, the records every provider matched.
    let out = root.path().join("covered-by-all.csv");
    let summary = matching::run_with_peers(
        Node::open(&acme_dir)?,
        RunRequest {
            peers: ["datahub", "kpbase"]
                .into_iter()
                .map(|name| PeerTarget {
                    name: name.into(),
                    mode: OutputMode::Initiator,
                })
                .collect(),
            dataset: "crm".into(),
            remote_dataset: "kp".into(),
            purpose: "provider coverage comparison".into(),
            legal_basis: "consent".into(),
            require: Require::All,
            out: Some(out.clone()),
        },
        None,
    )
    .await?;
    println!("{summary}");
    print!("{}", std::fs::read_to_string(&out)?);

    for stop in stops {
        let _ = stop.send(true);
    }
    for server in servers {
        server.await?;
    }
    let combined = summary
        .combined
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no result"))?;
    // datahub: crm-1 (email), crm-2 (phone); kpbase: crm-1 (phone), crm-4 (email).
    anyhow::ensure!(combined.any == 3 && combined.all == 1 && combined.none == 1);
    Ok(())
}

/// Starts `serve` for the node in `dir` on an ephemeral loopback port.
fn serve(
    dir: &Path,
) -> anyhow::Result<(SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>)> {
    let node = Node::open(dir)?;
    let config = node.config();
    let endpoint = transport::server_endpoint(
        "127.0.0.1:0".parse()?,
        node.identity(),
        PinnedPeers::new(config.pinned_fingerprints()),
        &TransportTuning::with_idle_timeout(config.limits.idle_timeout),
    )?;
    let addr = endpoint.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(blindmatch_node::server::run(node, endpoint, stopped));
    Ok((addr, stop, server))
}
