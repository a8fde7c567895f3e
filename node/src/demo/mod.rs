//! `blindmatch demo`: the whole product on one machine, checked against the truth
//! (with `--parties 3` or more: one run against several providers, see [`parties`]).
//!
//! Creates two nodes (an enterprise CRM and a data provider) in a temporary
//! directory, generates realistic, messy key-person lists with a known overlap,
//! imports them, pins the nodes to each other, starts the provider's `serve` on
//! loopback, runs a `both`-mode match over real QUIC with mutual TLS, checks both
//! sides' result files against the ground truth, verifies and cross-checks both audit
//! logs, and prints a short report. Any discrepancy is an error (non-zero exit).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use blindmatch_protocol::audit::{Record, VerifyOptions, cross_check, verify_log_bytes};
use blindmatch_protocol::wire::OutputMode;
use clap::Args;

mod parties;

use crate::admin;
use crate::config::{AllowedMode, PeerAddr, PeerConfig};
use crate::dataset::ImportOptions;
use crate::matching::{self, MatchRequest};
use crate::node::Node;
use crate::synth::{self, SynthSpec};
use crate::transport::{self, PinnedPeers};

/// `blindmatch demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Records per side.
    #[arg(long, default_value_t = 10_000)]
    pub n: usize,
    /// Share of persons present on both sides (0.0–1.0).
    #[arg(long, default_value_t = 0.3)]
    pub overlap: f64,
    /// Seed for the generated lists (same seed, same lists).
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Keep the nodes' data directories here instead of a temporary directory.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Nodes on this machine: 2 is a CRM and a provider in one session; 3 or more is a
    /// CRM and parties−1 providers, each its own process, matched in one run (mode both,
    /// --require all), every pairwise and the N-way result checked against the known
    /// answer and every pair of audit logs cross-checked.
    #[arg(long, default_value_t = 2)]
    pub parties: usize,
}

/// Runs the demo; prints the report on success.
pub fn run(args: DemoArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    ensure!(args.n > 0, "--n must be at least 1");
    ensure!(
        (0.0..=1.0).contains(&args.overlap),
        "--overlap must be between 0 and 1"
    );
    let temp;
    let root: PathBuf = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    ensure!(args.parties >= 2, "--parties must be at least 2");
    let report = if args.parties > 2 {
        parties::run(&root, &args, quiet)?
    } else {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(run_in(&root, &args, quiet))?
    };
    println!("{report}");
    if args.keep.is_some() {
        println!("data kept in {}", root.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_in(root: &Path, args: &DemoArgs, quiet: bool) -> anyhow::Result<String> {
    let say = |msg: &str| {
        if !quiet {
            eprintln!("demo: {msg}");
        }
    };
    let started = Instant::now();
    let overlap = ((args.n as f64) * args.overlap).round() as usize;
    say(&format!(
        "generating two messy KP lists of {} records, {overlap} shared persons",
        args.n
    ));
    let pair = synth::generate_pair(&SynthSpec {
        n_a: args.n,
        n_b: args.n,
        overlap,
        seed: args.seed,
        messy: true,
    });
    let crm_csv = root.join("crm-export.csv");
    let provider_csv = root.join("provider-kp.csv");
    synth::write_csv(&pair.a, &crm_csv, true)?;
    synth::write_csv(&pair.b, &provider_csv, false)?;

    let crm = root.join("crm-node");
    let provider = root.join("provider-node");
    let loopback: SocketAddr = "127.0.0.1:0".parse()?;
    say("creating two nodes (keys, certificates, audit logs)");
    let crm_id = admin::init_node(&crm, "crm", loopback)?;
    let provider_id = admin::init_node(&provider, "provider", loopback)?;

    say("importing both lists");
    let crm_import = import(&crm, &crm_csv, "crm-kp")?;
    let provider_import = import(&provider, &provider_csv, "provider-kp")?;

    // The provider serves on an ephemeral loopback port.
    admin::add_peer(
        &provider,
        PeerConfig::new(
            "crm",
            // The CRM only initiates in the demo; its address is informational.
            PeerAddr::from(SocketAddr::from(([127, 0, 0, 1], 7447))),
            crm_id.fingerprint.parse()?,
        )
        .offering(["provider-kp"]),
    )?;
    let provider_node = Node::open(&provider)?;
    let config = provider_node.config();
    let endpoint = transport::server_endpoint(
        loopback,
        provider_node.identity(),
        PinnedPeers::new(config.pinned_fingerprints()),
        &provider_node.transport_tuning(),
    )?;
    let listen = endpoint.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::server::run(
        Arc::clone(&provider_node),
        endpoint,
        stop_rx,
    ));

    admin::add_peer(
        &crm,
        PeerConfig::new(
            "provider",
            PeerAddr::from(listen),
            provider_id.fingerprint.parse()?,
        )
        .with_match_modes([AllowedMode::Both]),
    )?;

    say(&format!(
        "matching over QUIC with mutual TLS on {listen} (mode both)"
    ));
    let crm_node = Node::open(&crm)?;
    let out = root.join("crm-matches.csv");
    let summary = matching::run(
        crm_node,
        MatchRequest {
            peer: "provider".into(),
            dataset: "crm-kp".into(),
            remote_dataset: String::new(),
            purpose: "ABM campaign 2027: check coverage of target accounts' key persons".into(),
            legal_basis: "consent".into(),
            mode: OutputMode::Both,
            out: Some(out.clone()),
        },
        None,
    )
    .await
    .context("the match session failed")?;
    let _ = stop_tx.send(true);
    server.await.context("the provider's server task failed")?;
    drop(provider_node);

    // Check both sides against the ground truth.
    let crm_ids = read_ids(&out)?;
    let provider_results = only_file(&provider.join(crate::node::RESULTS_DIR))?;
    let provider_ids = read_ids(&provider_results)?;
    check_ids("crm", &crm_ids, &pair.truth.a_matched_ids)?;
    check_ids("provider", &provider_ids, &pair.truth.b_matched_ids)?;
    ensure!(
        summary.intersection == Some(pair.truth.unique_intersection),
        "intersection size {:?} differs from the truth {}",
        summary.intersection,
        pair.truth.unique_intersection
    );

    // Verify both audit logs and check that they tell the same story.
    let crm_log = audit_records(&crm)?;
    let provider_log = audit_records(&provider)?;
    let cross = cross_check(&crm_log.1, &provider_log.1);
    ensure!(cross.agrees(), "the two audit logs disagree: {cross:?}");
    ensure!(
        cross.compared.len() == 1,
        "expected one session in both logs, found {}",
        cross.compared.len()
    );
    ensure!(
        cross.receipts_checked == 2,
        "expected both receipts checked, found {}",
        cross.receipts_checked
    );

    Ok(format!(
        "\nblindmatch demo — two nodes, real QUIC + mutual TLS on loopback\n\
         \n\
         crm      {} rows imported: {} accepted, {} rejected, {} duplicates\n\
         provider {} rows imported: {} accepted, {} rejected, {} duplicates\n\
         \n\
         {summary}\n\
         \n\
         check    crm matched {} records, provider {} records: both equal the known answer\n\
         audit    crm log {} records, provider log {} records: signatures and hash chains verified\n\
         cross    both logs agree on session {} (purpose, mode, sizes, matches, transcript)\n\
         receipts each log holds the other node's signed receipt: {} verified against the other log\n\
         cpu      {}\n\
         total    {:.1} s\n",
        crm_import.0,
        crm_import.1,
        crm_import.2,
        crm_import.3,
        provider_import.0,
        provider_import.1,
        provider_import.2,
        provider_import.3,
        crm_ids.len(),
        provider_ids.len(),
        crm_log.0,
        provider_log.0,
        summary.session_id,
        cross.receipts_checked,
        blindmatch_protocol::group::CurveBackend::describe(),
        started.elapsed().as_secs_f64()
    ))
}

/// Imports a generated CSV; returns (rows, accepted, rejected, duplicates).
fn import(data_dir: &Path, csv: &Path, name: &str) -> anyhow::Result<(u64, u64, u64, u64)> {
    let mut options = ImportOptions::new(csv, name);
    options.id_col = Some("id".into());
    options.email_cols = vec!["email".into()];
    options.phone_cols = vec!["mobile".into()];
    options.name_col = Some("name".into());
    options.company_col = Some("company".into());
    options.quiet = true;
    let report = admin::import_dataset(data_dir, &options)?;
    Ok((
        report.rows,
        report.accepted,
        report.rejected_rows,
        report.duplicates,
    ))
}

fn read_ids(path: &Path) -> anyhow::Result<BTreeSet<String>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ids = BTreeSet::new();
    for row in reader.records() {
        let row = row?;
        let Some(id) = row.get(0) else {
            bail!("empty row in {}", path.display())
        };
        ids.insert(id.to_owned());
    }
    Ok(ids)
}

fn only_file(dir: &Path) -> anyhow::Result<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    ensure!(
        files.len() == 1,
        "expected one result file in {}, found {}",
        dir.display(),
        files.len()
    );
    Ok(files.remove(0))
}

fn check_ids(side: &str, got: &BTreeSet<String>, truth: &BTreeSet<String>) -> anyhow::Result<()> {
    if got == truth {
        return Ok(());
    }
    let missing = truth.difference(got).count();
    let extra = got.difference(truth).count();
    bail!(
        "{side}: {} matched records, expected {} ({missing} missing, {extra} unexpected)",
        got.len(),
        truth.len()
    )
}

fn audit_records(data_dir: &Path) -> anyhow::Result<(u64, Vec<Record>)> {
    let path = data_dir.join(crate::audit::LOG_FILE);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let report = verify_log_bytes(&bytes, &VerifyOptions::default()).map_err(|fault| {
        anyhow::anyhow!("audit log {} failed verification: {fault}", path.display())
    })?;
    let records = bytes
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(Record::parse_line)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("parsing {}: {e:?}", path.display()))?;
    Ok((report.records, records))
}
