//! An auditor (or a data-protection officer) verifies two nodes' audit logs and
//! cross-checks them against each other with `blindmatch-protocol` alone: no access to
//! either node, no personal data — only the two `audit.jsonl` files and the audit keys
//! the operators published (`blindmatch id`).
//!
//! To have logs to check, it first runs one session between two vendors (the setup of
//! `quic_two_vendors`), then reads their logs as an auditor would receive them.
//!
//! Run it with `cargo run --example auditor`.

mod common;

use blindmatch_node::admin;
use blindmatch_protocol::audit::{cross_check, read_records, verify_log};
use ed25519_dalek::VerifyingKey;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let vendors = common::Vendors::start().await?;
    vendors.acme_matches().await?;
    let (acme_dir, datahub_dir) = (vendors.acme_dir.clone(), vendors.datahub_dir.clone());
    // The published audit keys: what the auditor trusts, out of band.
    let acme_key = audit_key(&admin::node_id(&acme_dir)?.audit_key)?;
    let datahub_key = audit_key(&admin::node_id(&datahub_dir)?.audit_key)?;
    let root = vendors.stop().await?; // keep the files until the end

    // 1. Each log on its own: every record's hash chains to the one before, every
    //    signature verifies under the published key, and every peer receipt stored in
    //    it verifies under the key that node pinned for its peer.
    let acme_log = std::fs::read_to_string(acme_dir.join("audit.jsonl"))?;
    let datahub_log = std::fs::read_to_string(datahub_dir.join("audit.jsonl"))?;
    for (name, log, key) in [
        ("acme", &acme_log, &acme_key),
        ("datahub", &datahub_log, &datahub_key),
    ] {
        let report =
            verify_log(log, Some(key)).map_err(|fault| anyhow::anyhow!("{name}: {fault}"))?;
        println!(
            "{name}: {} records verify; {} session(s), {} completed; {} peer receipt(s) checked; head {}",
            report.records,
            report.sessions,
            report.sessions_completed,
            report.receipts,
            hex::encode(&report.head.head_hash.0[..8]),
        );
    }

    // 2. The two logs against each other: every session in one is in the other, they
    //    agree on its facts (sizes, mode, counts, datasets, transcript), and each side's
    //    stored receipt of the other matches the other's log.
    let (acme_records, _) = read_records(acme_log.as_bytes());
    let (datahub_records, _) = read_records(datahub_log.as_bytes());
    let report = cross_check(&acme_records, &datahub_records);
    println!(
        "cross-check: {} common session(s), {} receipt(s) checked against the other log: {}",
        report.compared.len(),
        report.receipts_checked,
        if report.agrees() {
            "the logs agree"
        } else {
            "THE LOGS DISAGREE"
        },
    );
    for session in report.disagreeing() {
        for d in &session.disagreements {
            println!(
                "  session {}: {} differs ({} vs {})",
                session.session_id, d.field, d.a, d.b
            );
        }
    }
    drop(root);
    anyhow::ensure!(report.agrees() && report.compared.len() == 1);
    Ok(())
}

/// Parses an audit key as `blindmatch id` prints it (64 hex digits).
fn audit_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text, &mut bytes)?;
    Ok(VerifyingKey::from_bytes(&bytes)?)
}
