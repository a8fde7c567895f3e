//! A CRM matched against a data provider's **index** (RFC 9497 VOPRF): the provider
//! evaluates a keyed OPRF over its whole base once per key epoch and publishes a signed,
//! compact index of the results; the client fetches it once, then per session sends
//! only its own identifiers, blinded, gets them evaluated with a proof under the index's
//! key, and looks them up locally. The provider learns how many identifiers were
//! queried, nothing else. This is how a 10³-record CRM is matched against a
//! 10⁸-contact provider in seconds.
//!
//! Run it with `cargo run --example crm_via_index`.

mod common;

use blindmatch_node::admin;
use blindmatch_node::index::{self, BuildOptions};
use blindmatch_node::node::Node;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Two vendors' nodes, datahub serving (see `common/mod.rs` and `quic_two_vendors`).
    let vendors = common::Vendors::start().await?;

    // 1. The provider builds the index of its dataset: a fresh key for the epoch, one
    //    OPRF evaluation per identifier (all cores), a signed file of coded tags. It is
    //    recorded in its audit log (`index_built`). `serve` answers index sessions for
    //    it under the same per-peer policy as PSI sessions.
    let built = admin::build_index(
        &vendors.datahub_dir,
        "kp-2026",
        BuildOptions::default(),
        true,
    )?;
    println!("{built}");

    // 2. The client matches through it. The first session fetches the index into
    //    acme's data directory (resumable, every segment's signature checked); later
    //    sessions reuse it and send only the blinded queries.
    for run in ["first", "second"] {
        let (request, out) = vendors.acme_request();
        let result = index::client::run(Node::open(&vendors.acme_dir)?, request, None).await?;
        println!("-- {run} session\n{result}");
        let matched = result.summary.matched_records.unwrap_or(0);
        anyhow::ensure!(
            matched == 2,
            "crm-1 and crm-2 are in both lists, got {matched}"
        );
        anyhow::ensure!(out.exists());
        if run == "second" {
            anyhow::ensure!(result.index.bytes == 0, "the cached index was reused");
        }
    }
    vendors.stop().await?;
    Ok(())
}
