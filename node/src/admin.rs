//! Operations that change a node's setup: create it, pin and unpin peers, import,
//! revoke records from and remove datasets. Each is recorded in the audit log before it is reported done.
//! Used by the CLI and by the demo, so both follow the same path.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use blindmatch_protocol::audit::AuditEvent;
use serde::Serialize;

use blindmatch_protocol::ident::NORMALISATION_VERSION;

use crate::audit::AuditLog;
use crate::config::{NodeConfig, PeerConfig};
use crate::dataset::{
    self, DatasetCommand, DatasetOutcome, ImportOptions, ImportReport, RevokeReport,
};
use crate::identity::NodeIdentity;
use crate::index::{self, BuildOptions};
use crate::node::NodeError;

/// Default UDP listen address of `serve`.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7447";

/// What a partner needs to pin this node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeId {
    /// Node name.
    pub name: String,
    /// Listen address.
    pub listen: String,
    /// Certificate fingerprint.
    pub fingerprint: String,
    /// Audit public key (hex).
    pub audit_key: String,
}

/// Creates a node in `data_dir`: identity, `node.toml`, and the first audit record.
/// Refuses if the directory already holds a node.
pub fn init_node(data_dir: &Path, name: &str, listen: SocketAddr) -> Result<NodeId, NodeError> {
    if NodeConfig::path(data_dir).exists() {
        return Err(NodeError::Other(format!(
            "{} already holds a node (node.toml exists); use another --data-dir or remove it first",
            data_dir.display()
        )));
    }
    let identity = NodeIdentity::generate(name)?;
    identity.save(data_dir)?;
    let mut config = NodeConfig::new(name)?;
    config.node.listen = listen;
    config.save(data_dir)?;
    let mut log = AuditLog::open(data_dir, identity.audit_key())?;
    log.append(AuditEvent::NodeInitialised {
        name: name.to_owned(),
        fingerprint: identity.fingerprint().to_string(),
        audit_key: identity.audit_public_hex(),
    })?;
    node_id(data_dir)
}

/// Reads what a partner needs to pin this node.
pub fn node_id(data_dir: &Path) -> Result<NodeId, NodeError> {
    let identity = NodeIdentity::load(data_dir)?;
    let config = NodeConfig::load(data_dir)?;
    Ok(NodeId {
        name: identity.name().to_owned(),
        listen: config.node.listen.to_string(),
        fingerprint: identity.fingerprint().to_string(),
        audit_key: identity.audit_public_hex(),
    })
}

/// Pins `peer` (saved to `node.toml`, recorded in the audit log); build it with
/// [`PeerConfig::new`] and its `offering`/`with_*` methods. Fails if its name or
/// fingerprint is already pinned.
pub fn add_peer(data_dir: &Path, peer: PeerConfig) -> Result<PeerConfig, NodeError> {
    let identity = NodeIdentity::load(data_dir)?;
    let mut config = NodeConfig::load(data_dir)?;
    config.add_peer(peer.clone())?;
    let mut log = AuditLog::open(data_dir, identity.audit_key())?;
    config.save(data_dir)?;
    log.append(AuditEvent::PeerAdded {
        name: peer.name.clone(),
        fingerprint: peer.fingerprint.to_string(),
        audit_key: peer.audit_key.map(|key| key.to_string()),
    })?;
    Ok(peer)
}

/// Unpins a peer.
pub fn remove_peer(data_dir: &Path, name: &str) -> Result<PeerConfig, NodeError> {
    let identity = NodeIdentity::load(data_dir)?;
    let mut config = NodeConfig::load(data_dir)?;
    let removed = config.remove_peer(name)?;
    let mut log = AuditLog::open(data_dir, identity.audit_key())?;
    config.save(data_dir)?;
    log.append(AuditEvent::PeerRemoved {
        name: removed.name.clone(),
        fingerprint: removed.fingerprint.to_string(),
    })?;
    Ok(removed)
}

/// Imports a dataset (progress bar on a terminal unless `options.quiet`) and records
/// it in the audit log.
pub fn import_dataset(data_dir: &Path, options: &ImportOptions) -> Result<ImportReport, NodeError> {
    let identity = NodeIdentity::load(data_dir)?;
    let mut log = AuditLog::open(data_dir, identity.audit_key())?;
    let report = dataset::import_with_progress_bar(data_dir, options)?;
    log.append(imported_event(&identity, &options.name, &report))?;
    Ok(report)
}

/// Runs a `dataset` subcommand and records imports, revocations, removals and index
/// builds in the audit log. A revocation or removal also ends the dataset's index epoch
/// (see `index`).
pub fn dataset_command(data_dir: &Path, cmd: DatasetCommand, quiet: bool) -> anyhow::Result<()> {
    // Listing only reads: it needs neither the identity nor a writable audit log, so it
    // works on a read-only data directory (a backup, an auditor's copy).
    if matches!(cmd, DatasetCommand::List { .. }) {
        dataset::run(cmd, data_dir, quiet)?;
        return Ok(());
    }
    let identity = NodeIdentity::load(data_dir)?;
    if let DatasetCommand::FileMac { file } = &cmd {
        let sha256 = dataset::file_sha256_hex(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        println!("{}", identity.input_file_mac(&sha256));
        return Ok(());
    }
    let mut log = AuditLog::open(data_dir, identity.audit_key())?;
    let (name, index_after) = match &cmd {
        DatasetCommand::Import(args) => (args.name.clone(), args.index),
        _ => (String::new(), false),
    };
    let build = |log: &mut AuditLog, name: &str, options: BuildOptions| -> anyhow::Result<()> {
        let report = build_index_into(log, &identity, data_dir, name, options, quiet)?;
        if !quiet {
            println!("{report}");
        }
        Ok(())
    };
    match dataset::run(cmd, data_dir, quiet)? {
        DatasetOutcome::Imported(report) => {
            log.append(imported_event(&identity, &name, &report))?;
            if index_after {
                build(&mut log, &name, BuildOptions::default())?;
            }
        }
        DatasetOutcome::Removed { name, .. } => {
            log.append(AuditEvent::DatasetRemoved { name: name.clone() })?;
            if index::exists(data_dir, &name) {
                let epoch = index::remove(data_dir, &name)?;
                log.append(AuditEvent::IndexRemoved {
                    name,
                    epoch,
                    reason: "dataset removed".into(),
                })?;
            }
        }
        DatasetOutcome::Revoked(report) => {
            let rewritten = report.version.is_some();
            let name = report.name.clone();
            if let Some(event) = revoked_event(report) {
                log.append(event)?;
            }
            if rewritten && index::exists(data_dir, &name) {
                let options = BuildOptions {
                    rotate: true,
                    reason: Some("records revoked (consent withdrawn)"),
                };
                build(&mut log, &name, options)?;
            }
        }
        DatasetOutcome::IndexAsked { name, rotate } => {
            let options = BuildOptions {
                rotate,
                reason: None,
            };
            build(&mut log, &name, options)?;
        }
        _ => {}
    }
    Ok(())
}

/// Builds the index of dataset `name` for its current version (a delta segment when
/// only records were added, else a new epoch) and records it in the audit log: what
/// `blindmatch dataset index` runs. `quiet` hides the progress bar.
pub fn build_index(
    data_dir: &Path,
    name: &str,
    options: BuildOptions,
    quiet: bool,
) -> anyhow::Result<index::BuildReport> {
    let identity = NodeIdentity::load(data_dir)?;
    let mut log = AuditLog::open(data_dir, identity.audit_key())?;
    build_index_into(&mut log, &identity, data_dir, name, options, quiet)
}

fn build_index_into(
    log: &mut AuditLog,
    identity: &NodeIdentity,
    data_dir: &Path,
    name: &str,
    options: BuildOptions,
    quiet: bool,
) -> anyhow::Result<index::BuildReport> {
    let config = NodeConfig::load(data_dir)?;
    let report = index::build_with_progress_bar(
        data_dir,
        identity.audit_key(),
        name,
        &config.dataset_policy(name),
        options,
        quiet,
    )?;
    if let Some(event) = index::built_event(&report) {
        log.append(event)?;
    }
    Ok(report)
}

/// The `dataset_revoked` record of a revocation that rewrote the dataset (none when no
/// record was removed).
fn revoked_event(report: RevokeReport) -> Option<AuditEvent> {
    Some(AuditEvent::DatasetRevoked {
        version: report.version?,
        name: report.name,
        revoked: report.removed,
        remaining: report.remaining,
    })
}

fn imported_event(identity: &NodeIdentity, name: &str, report: &ImportReport) -> AuditEvent {
    AuditEvent::DatasetImported {
        name: name.to_owned(),
        accepted: report.accepted,
        rejected: report.rejected_rows,
        duplicates: report.duplicates,
        input_hmac: Some(identity.input_file_mac(&report.input_sha256)),
        input_sha256: None,
        normalisation_version: u32::from(NORMALISATION_VERSION),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
