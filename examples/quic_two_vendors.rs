//! Two vendors match their contact lists over real QUIC with pinned mutual TLS, through
//! `blindmatch-node`, in one process: what `blindmatch init`, `dataset import`, `peer
//! add`, `serve` and `match` do, called as a library.
//!
//! Each node is a data directory (here in a temporary folder): its TLS identity, its
//! audit key and signed audit log, its datasets and its `node.toml` policy. The setup
//! (steps 1–4) is in `common/mod.rs`; read it first.
//!
//! Run it with `cargo run --example quic_two_vendors`.

mod common;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let vendors = common::Vendors::start().await?;

    // 5. acme matches (see `Vendors::acme_matches`): both nodes check their policy,
    //    both write signed audit records, each stores the other's signed receipt.
    let (summary, out) = vendors.acme_matches().await?;
    println!("{summary}");
    print!("{}", std::fs::read_to_string(&out)?);

    // In mode `initiator` the responder learns nothing: datahub keeps no result file.
    let datahub_results = std::fs::read_dir(vendors.datahub_dir.join("results"))
        .map(|dir| dir.count())
        .unwrap_or(0);
    println!("datahub's result files: {datahub_results}");
    vendors.stop().await?;
    anyhow::ensure!(datahub_results == 0);
    let matched = summary.matched_records.unwrap_or(0);
    anyhow::ensure!(
        matched == 2,
        "crm-1 and crm-2 are in both lists, got {matched}"
    );
    Ok(())
}
