//! `blindmatch demo --parties P` (P ≥ 3): an enterprise and P−1 data providers, each
//! node its own process of this binary driven as an operator would (`init`, `dataset
//! import`, `peer add`, `serve`, `match`), over QUIC with mutual TLS on loopback.
//!
//! The enterprise matches its CRM export against every provider in one run, in `both`
//! mode, keeping only the records all providers hold (`--require all`). The lists come
//! from the synthetic generator: one enterprise list and one provider list with a known
//! overlap, the provider list cut into overlapping parts, one per provider. The truth of
//! each pair is computed from the records themselves; the N-way truth is the records of
//! the enterprise every pair's truth names. Checked: each session's result on both sides,
//! the combined file, the run's counts, every audit log, and every pair of logs cross-
//! checked (the providers, who never talked, must agree on having nothing in common).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, ensure};
use blindmatch_protocol::audit::cross_check;

use super::{DemoArgs, audit_records, check_ids, only_file, read_ids};
use crate::bench::party::{Party, Server};
use crate::synth::{self, SYNTH_KINDS, SynthRecord, SynthSpec, compute_truth};

/// Runs the demo with `args.parties` nodes in `root`; returns the report.
pub fn run(root: &Path, args: &DemoArgs, quiet: bool) -> anyhow::Result<String> {
    let say = |msg: &str| {
        if !quiet {
            eprintln!("demo: {msg}");
        }
    };
    let started = Instant::now();
    let providers = args.parties - 1;
    let exe = std::env::current_exe().context("locating the blindmatch binary")?;
    let overlap = ((args.n as f64) * args.overlap).round() as usize;
    say(&format!(
        "generating a CRM list of {} records and {providers} providers' lists ({overlap} of the CRM's persons held among them)",
        args.n
    ));
    let lists = synth::generate_lists(&SynthSpec {
        n_a: args.n,
        n_b: args.n,
        overlap,
        seed: args.seed,
        messy: true,
    });
    let windows = windows(&lists.b, providers);
    let crm_csv = root.join("crm-export.csv");
    synth::write_csv(&lists.a, &crm_csv, true)?;
    let mut truths = Vec::new();
    for (i, window) in windows.iter().enumerate() {
        synth::write_csv(window, &root.join(format!("provider-{}.csv", i + 1)), false)?;
        truths.push(compute_truth(&lists.a, window, SYNTH_KINDS));
    }
    let n_way: BTreeSet<String> = truths
        .iter()
        .map(|t| t.a_matched_ids.clone())
        .reduce(|all, next| all.intersection(&next).cloned().collect())
        .unwrap_or_default();
    let any: BTreeSet<&String> = truths.iter().flat_map(|t| &t.a_matched_ids).collect();

    say(&format!(
        "creating {} nodes, each its own process (keys, certificates, audit logs)",
        args.parties
    ));
    let crm = Party::new(&exe, root.join("crm-node"));
    crm.run(&["init", "--name", "crm", "--listen", "127.0.0.1:0"])?;
    import(&crm, &crm_csv, "crm-kp")?;
    let crm_fp = crm.fingerprint()?;
    let mut names = Vec::new();
    let mut nodes = Vec::new();
    let mut servers: Vec<Server> = Vec::new();
    for i in 1..=providers {
        let name = format!("provider-{i}");
        let node = Party::new(&exe, root.join(format!("{name}-node")));
        let listen = format!("127.0.0.1:{}", crate::bench::free_udp_port()?);
        node.run(&["init", "--name", &name, "--listen", &listen])?;
        import(&node, &root.join(format!("{name}.csv")), "provider-kp")?;
        // Sizes and budgets are left unlimited so that any --parties and --n run: the
        // lists are generated, and each policy rule has its own tests (tests/policy.rs).
        #[rustfmt::skip]
        node.run(&["peer", "add", "crm", "--addr", "127.0.0.1:7447", "--fingerprint", &crm_fp, "--offer", "provider-kp", "--modes", "both", "--max-set-ratio", "none", "--max-identifiers-per-day", "none", "--max-identifiers-total", "none"])?;
        #[rustfmt::skip]
        crm.run(&["peer", "add", &name, "--addr", &listen, "--fingerprint", &node.fingerprint()?, "--match-modes", "both", "--max-set-ratio", "none", "--max-identifiers-per-day", "none", "--max-identifiers-total", "none"])?;
        servers.push(node.serve(&listen)?);
        names.push(name);
        nodes.push(node);
    }

    say(&format!(
        "matching with {} over QUIC with mutual TLS, all at once (mode both, --require all)",
        names.join(", ")
    ));
    let out = root.join("crm-all-providers.csv");
    let peers: Vec<String> = names.iter().map(|n| format!("{n}:both")).collect();
    #[rustfmt::skip]
    let run = crm.run(&["match", "--peers", &peers.join(","), "--dataset", "crm-kp", "--purpose", "ABM campaign 2027: which providers cover our target accounts' key persons", "--legal-basis", "consent", "--require", "all", "--json", "--out", &out.to_string_lossy()])?;
    drop(servers);
    let summary: serde_json::Value =
        serde_json::from_slice(&run.output.stdout).context("reading the run's JSON summary")?;
    ensure!(
        summary["status"] == "completed",
        "the run did not complete: {summary}"
    );

    // Each pair, both sides, against its truth.
    let mut lines = Vec::new();
    for (i, truth) in truths.iter().enumerate() {
        let peer = &summary["peers"][i];
        let crm_file = peer["out"]
            .as_str()
            .with_context(|| format!("no result file for {}", names[i]))?;
        check_ids(
            &format!("crm with {}", names[i]),
            &read_ids(Path::new(crm_file))?,
            &truth.a_matched_ids,
        )?;
        let theirs = read_ids(&only_file(&nodes[i].dir.join(crate::node::RESULTS_DIR))?)?;
        check_ids(&names[i], &theirs, &truth.b_matched_ids)?;
        ensure!(
            peer["identifiers"].as_u64() == Some(truth.unique_intersection),
            "{}: {} identifiers in common, expected {}",
            names[i],
            peer["identifiers"],
            truth.unique_intersection
        );
        lines.push(format!(
            "pair     {}: crm matched {} records, {} matched {}: both equal the known answer",
            names[i],
            truth.a_matched_ids.len(),
            names[i],
            truth.b_matched_ids.len()
        ));
    }
    // The N-way result and the run's counts.
    check_ids("crm, all providers", &read_ids(&out)?, &n_way)?;
    let combined = &summary["combined"];
    ensure!(
        combined["all"].as_u64() == Some(n_way.len() as u64)
            && combined["any"].as_u64() == Some(any.len() as u64),
        "the run counts any {} and all {}, expected {} and {}",
        combined["any"],
        combined["all"],
        any.len(),
        n_way.len()
    );

    // Every log verifies; every pair of logs tells the same story.
    let mut logs = vec![("crm".to_owned(), audit_records(&crm.dir)?)];
    for (name, node) in names.iter().zip(&nodes) {
        logs.push((name.clone(), audit_records(&node.dir)?));
    }
    let run_id = summary["run_id"].as_str().unwrap_or_default();
    let linked = logs[0]
        .1
        .1
        .iter()
        .filter(|r| {
            r.record_type == "session_completed"
                && r.fields.get("run_id").and_then(|v| v.as_str()) == Some(run_id)
        })
        .count();
    ensure!(
        linked == providers,
        "crm's log links {linked} completed sessions to run {run_id}, expected {providers}"
    );
    let mut pairs = 0;
    for (i, (name_a, (_, log_a))) in logs.iter().enumerate() {
        for (name_b, (_, log_b)) in &logs[i + 1..] {
            let cross = cross_check(log_a, log_b);
            ensure!(
                cross.agrees(),
                "the logs of {name_a} and {name_b} disagree: {cross:?}"
            );
            let expected = usize::from(i == 0);
            ensure!(
                cross.compared.len() == expected && cross.receipts_checked == 2 * expected as u64,
                "{name_a} and {name_b}: {} sessions in common and {} receipts checked, expected {expected} and {}",
                cross.compared.len(),
                cross.receipts_checked,
                2 * expected
            );
            pairs += 1;
        }
    }
    let records: Vec<String> = logs
        .iter()
        .map(|(name, (count, _))| format!("{name} {count}"))
        .collect();
    Ok(format!(
        "\nblindmatch demo — {} nodes as separate processes, real QUIC + mutual TLS on loopback\n\
         \n\
         run      {}: crm against {} providers at once, mode both, --require all\n\
         records  crm {}: any provider {}, all providers {}, none {}\n\
         \n\
         {}\n\
         n-way    {} records held by every provider: equal to the known answer\n\
         audit    every log verified (records: {}); run sessions linked by the run id in crm's log\n\
         cross    {pairs} pairs of logs cross-checked: crm agrees with each provider on its session and both receipts; providers share no session\n\
         total    {:.1} s\n",
        args.parties,
        run_id,
        providers,
        summary["our_records"],
        any.len(),
        n_way.len(),
        combined["none"],
        lines.join("\n"),
        n_way.len(),
        records.join(", "),
        started.elapsed().as_secs_f64()
    ))
}

/// The provider list cut into `providers + 1` slices; provider `i` holds every slice but
/// slice `i`, so that all share the last slice and any two share all but two slices
/// (with two providers: the last and the first two thirds).
fn windows(list: &[SynthRecord], providers: usize) -> Vec<Vec<SynthRecord>> {
    let slices = providers + 1;
    let bounds = |j: usize| j * list.len() / slices..(j + 1) * list.len() / slices;
    (0..providers)
        .map(|i| {
            (0..slices)
                .filter(|&j| j != i)
                .flat_map(|j| list[bounds(j)].iter().cloned())
                .collect()
        })
        .collect()
}

/// `dataset import` of a generated list through the CLI, every identifier kind.
fn import(party: &Party, csv: &Path, name: &str) -> anyhow::Result<()> {
    let csv = csv.to_string_lossy();
    #[rustfmt::skip]
    party.run(&["dataset", "import", &csv, "--name", name, "--id-col", "id", "--email-col", "email", "--phone-col", "mobile", "--name-col", "name", "--company-col", "company"])?;
    Ok(())
}
