//! `blindmatch bench --peers P`: one `match` against P providers in one run, against the
//! same P sessions run one after the other, all real processes of this binary over QUIC
//! on loopback.
//!
//! Our list has `--n` records; each provider holds its own `--n` records, the providers'
//! lists being disjoint slices of one list that shares `--overlap` times P of our persons
//! (at most all of them), spread at random. The P `serve` processes
//! keep running through both measurements, so each provider's CPU is read from its
//! process before and after. The figure that matters: the run's wall time against the
//! CPU of the sequential sessions (ours and the providers') divided by this machine's
//! cores, which is the best a run can do when every party shares these cores. A run
//! hashes our set to the group once; sequential sessions hash it once each.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use blindmatch_protocol::group::CurveBackend;
use serde::Serialize;

use super::party::{Party, Server};
use super::{BenchArgs, count_common, free_udp_port, identifier_values, import};
use crate::synth::{self, SynthSpec};

/// One `bench --peers` result, printed as a JSON line.
#[derive(Debug, Serialize)]
pub struct PeersBenchReport {
    /// Providers in the run.
    pub peers: usize,
    /// Records per party.
    pub n: usize,
    /// Our distinct identifiers (the PSI elements).
    pub elements: u64,
    /// Output mode of every session.
    pub mode: String,
    /// Cores on this machine, shared by every process.
    pub cores: usize,
    /// The curve25519-dalek backend.
    pub curve_backend: &'static str,
    /// Wall seconds of the run's `match` process, start to exit.
    pub run_wall_s: f64,
    /// CPU seconds of the run: our process and every provider during it.
    pub run_cpu_s: f64,
    /// Of which our process.
    pub run_own_cpu_s: f64,
    /// Wall seconds of the P sequential `match` processes, summed.
    pub sequential_wall_s: f64,
    /// CPU seconds of the P sequential sessions: our processes and the providers.
    pub sequential_cpu_s: f64,
    /// Of which our processes.
    pub sequential_own_cpu_s: f64,
    /// `run_wall_s` over `sequential_cpu_s / cores`: 1.0 is every core busy for the whole
    /// run with no more work than the sequential sessions did.
    pub wall_over_sequential_cpu_per_core: f64,
    /// Cores the run kept busy on average (`run_cpu_s / run_wall_s`), and the same for
    /// the sequential sessions: on a machine shared with other work, what the scheduler
    /// gave each; the wall figure above can only approach 1.0 when the run got every core.
    pub cores_used: (f64, f64),
    /// The machine's 1-minute load average when the run ended (`/proc/loadavg`; 0 where
    /// unknown): above `cores`, other work competed for the cores.
    pub load_average: f64,
    /// `run_cpu_s` over `sequential_cpu_s`.
    pub cpu_ratio: f64,
    /// `run_own_cpu_s` over `sequential_own_cpu_s` (our set is hashed once in the run).
    pub own_cpu_ratio: f64,
    /// Peak resident memory of the run's `match` process.
    pub run_peak_rss_bytes: u64,
    /// Identifiers matched per provider in the run, and expected.
    pub intersections: Vec<(u64, u64)>,
}

/// Runs the bench with `peers` providers in `root` and prints the report.
pub fn run(args: &BenchArgs, peers: usize, root: &Path) -> anyhow::Result<()> {
    ensure!(
        peers >= 2,
        "--peers must be at least 2 (one peer is `bench` alone)"
    );
    let say = |m: &str| {
        if !args.json {
            eprintln!("bench: {m}");
        }
    };
    let exe = std::env::current_exe().context("locating the blindmatch binary")?;
    say(&CurveBackend::describe());
    say(&format!(
        "generating our list and {peers} providers' lists of {} records",
        args.n
    ));
    let overlap = ((args.n as f64) * args.overlap).round() as usize;
    // One pair generation: our list against all providers' records at once, split into
    // disjoint providers afterwards, each sharing `overlap` persons with us.
    let lists = synth::generate_lists(&SynthSpec {
        n_a: args.n,
        n_b: args.n * peers,
        overlap: overlap * peers,
        seed: 11,
        messy: false,
    });
    let ours_csv = root.join("ours.csv");
    synth::write_csv(&lists.a, &ours_csv, false).context("writing our list")?;
    let our_values = identifier_values(&lists.a);
    let mut expected = Vec::new();
    let mut provider_csvs = Vec::new();
    for (i, chunk) in lists.b.chunks(args.n).enumerate() {
        let csv = root.join(format!("provider-{i}.csv"));
        synth::write_csv(chunk, &csv, false).context("writing a provider's list")?;
        expected.push(count_common(&our_values, &identifier_values(chunk)));
        provider_csvs.push(csv);
    }
    let elements = our_values.len() as u64;
    drop((lists, our_values));

    say("setting up the nodes and importing the lists");
    let ours = Party::new(&exe, root.join("initiator"));
    ours.run(&[
        "init",
        "--name",
        "bench-initiator",
        "--listen",
        "127.0.0.1:0",
    ])?;
    import(&ours, &ours_csv, "ours")?;
    let our_fp = ours.fingerprint()?;
    let mut names = Vec::new();
    let mut servers: Vec<Server> = Vec::new();
    for (i, csv) in provider_csvs.iter().enumerate() {
        let name = format!("provider-{i}");
        let party = Party::new(&exe, root.join(&name));
        party.run(&["init", "--name", &name, "--listen", "127.0.0.1:0"])?;
        import(&party, csv, "kp")?;
        let listen = format!("127.0.0.1:{}", free_udp_port()?);
        #[rustfmt::skip]
        party.run(&["peer", "add", "initiator", "--addr", "127.0.0.1:9", "--fingerprint", &our_fp, "--offer", "kp", "--modes", args.mode.name(), "--max-set-ratio", "none", "--max-identifiers-per-day", "none", "--max-identifiers-total", "none", "--max-sessions-per-hour", "none"])?;
        #[rustfmt::skip]
        ours.run(&["peer", "add", &name, "--addr", &listen, "--fingerprint", &party.fingerprint()?, "--match-modes", args.mode.name(), "--max-set-ratio", "none", "--max-identifiers-per-day", "none", "--max-identifiers-total", "none", "--max-sessions-per-hour", "none"])?;
        servers.push(party.serve(&listen)?);
        names.push(name);
    }
    let providers_cpu =
        |servers: &[Server]| -> f64 { servers.iter().map(|s| s.stats().cpu_s).sum() };

    say(&format!("{peers} sessions one after the other"));
    let (mut sequential_wall, mut sequential_own_cpu) = (Duration::ZERO, 0.0);
    let before = providers_cpu(&servers);
    for name in &names {
        #[rustfmt::skip]
        let done = ours.run(&["match", "--peer", name, "--dataset", "ours", "--purpose", "bench", "--mode", args.mode.name(), "--out", &root.join("one.csv").to_string_lossy(), "--force"])?;
        sequential_wall += done.wall;
        sequential_own_cpu += done.stats.cpu_s;
    }
    let sequential_cpu = sequential_own_cpu + providers_cpu(&servers) - before;

    say(&format!("one run against the {peers} providers"));
    let before = providers_cpu(&servers);
    let peer_list = names.join(",");
    #[rustfmt::skip]
    let run = ours.run(&["match", "--peers", &peer_list, "--dataset", "ours", "--purpose", "bench", "--mode", args.mode.name(), "--json", "--out", &root.join("run.csv").to_string_lossy()])?;
    let run_cpu = run.stats.cpu_s + providers_cpu(&servers) - before;
    drop(servers);

    let summary: serde_json::Value =
        serde_json::from_slice(&run.output.stdout).context("reading the run's JSON summary")?;
    let found: Vec<u64> = (0..peers)
        .map(|i| summary["peers"][i]["identifiers"].as_u64().unwrap_or(0))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report = PeersBenchReport {
        peers,
        n: args.n,
        elements,
        mode: args.mode.name().into(),
        cores,
        curve_backend: CurveBackend::detect().name(),
        run_wall_s: run.wall.as_secs_f64(),
        run_cpu_s: run_cpu,
        run_own_cpu_s: run.stats.cpu_s,
        sequential_wall_s: sequential_wall.as_secs_f64(),
        sequential_cpu_s: sequential_cpu,
        sequential_own_cpu_s: sequential_own_cpu,
        wall_over_sequential_cpu_per_core: run.wall.as_secs_f64() / (sequential_cpu / cores as f64),
        cores_used: (
            run_cpu / run.wall.as_secs_f64(),
            sequential_cpu / sequential_wall.as_secs_f64(),
        ),
        load_average: load_average(),
        cpu_ratio: run_cpu / sequential_cpu,
        own_cpu_ratio: run.stats.cpu_s / sequential_own_cpu,
        run_peak_rss_bytes: run.stats.peak_rss_bytes,
        intersections: found
            .iter()
            .copied()
            .zip(expected.iter().copied())
            .collect(),
    };
    println!("{}", serde_json::to_string(&report)?);
    ensure!(
        found == expected,
        "the run found {found:?} identifiers in common per provider, expected {expected:?}"
    );
    Ok(())
}

/// The 1-minute load average, or 0 where `/proc/loadavg` is not there.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}
