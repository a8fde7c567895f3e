//! `blindmatch bench`: a whole session between two real nodes over QUIC with mutual
//! TLS on loopback, measured against the crypto floor in the same run (with `--peers`,
//! one run against several providers against the same sessions one after the other,
//! see [`peers`]; with `--via-index`, index mode, see [`index`]).
//!
//! Each party is its own process of this binary, driven exactly as a user would
//! (`init`, `peer add`, `dataset import`, `serve`, `match`), so each party's peak
//! memory and CPU are measured by the kernel for that party alone, and the figures
//! include everything a real session does: loading and checking the stored dataset,
//! policy, the audit log, writing results. Session facts (sizes, matches, bytes) come
//! from both nodes' audit logs, verified first.
//!
//! The two lists come from [`crate::synth`] (clean, so each shared person matches on
//! every kind) with email and name+company identifiers; phones are left out only to
//! keep *setup* fast (phone normalisation costs ~14 µs, which is import time, not
//! session time). The floor is the primitive batch operations alone over the same
//! elements with the same parallelism: each side blinds its set and re-blinds the
//! other's. Both parties share this machine's cores, so the initiator's end-to-end
//! wall time (process start to exit) is compared with the floor's wall time for both
//! parties' work.

mod index;
pub(crate) mod party;
mod peers;
pub mod procstats;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, ensure};
use blindmatch_protocol::group::{BlindingKey, CurveBackend};
use blindmatch_protocol::ident::{IdentKind, KindSet, Normaliser};
use blindmatch_protocol::session::DEFAULT_BATCH_SIZE;
use blindmatch_protocol::wire::OutputMode;
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use crate::synth::{self, SynthRecord, SynthSpec};
use party::Party;
use procstats::ProcessStats;

/// `blindmatch bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Records per side.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Share of persons on both sides (0.0–1.0).
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// Output mode of the session.
    #[arg(long, default_value = "both")]
    pub mode: OutputMode,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
    /// Keep the two nodes' data directories here instead of a temporary directory.
    #[arg(long)]
    pub keep: Option<std::path::PathBuf>,
    /// Measure index mode instead: the provider builds the index of `--provider-n`
    /// records (against the floor of RFC 9497 Evaluate over the same identifiers), and a
    /// client of `--n` records matches through it twice, fetching the index, then with
    /// it cached. One email per record; `--overlap` of the client's records match.
    #[arg(long, conflicts_with = "mode")]
    pub via_index: bool,
    /// Provider records with `--via-index` (default: 1000 times `--n`).
    #[arg(long, requires = "via_index")]
    pub provider_n: Option<usize>,
    /// Measure one `match` against this many providers (each its own `serve` process
    /// with `--n` records) against the same sessions run one after the other: the run's
    /// wall time and CPU, the sequential sessions' CPU, and the run's wall time over that
    /// CPU divided by this machine's cores.
    #[arg(long, value_name = "P", conflicts_with = "via_index")]
    pub peers: Option<usize>,
}

/// One bench result, printed as a JSON line. Pairs are (initiator, responder).
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Records per side.
    pub n: usize,
    /// Distinct identifiers (the PSI elements) per side.
    pub elements: (u64, u64),
    /// Output mode.
    pub mode: String,
    /// Cores used by each process.
    pub threads: usize,
    /// The curve25519-dalek backend both processes run on (`avx512ifma`, `avx2`, …).
    pub curve_backend: &'static str,
    /// Wall seconds of the initiator's `match` process, start to exit (loading the
    /// dataset, connecting, the session, writing results).
    pub wall_s: f64,
    /// The session alone as the initiator's audit log records it (connect to Finish).
    pub session_s: f64,
    /// CPU of both processes per element per party, in µs.
    pub cpu_us_per_element_per_party: f64,
    /// Wall seconds of the floor (the primitives alone, both parties).
    pub floor_s: f64,
    /// The floor's CPU per element per party, in µs.
    pub floor_cpu_us_per_element_per_party: f64,
    /// End-to-end wall over floor wall.
    pub ratio: f64,
    /// End-to-end CPU over floor CPU: the robust figure on a shared machine, where
    /// two processes' threads can take a larger share of contended cores than the
    /// floor's one process did (then `ratio` dips below 1).
    pub cpu_ratio: f64,
    /// Peak resident memory of each party's process.
    pub peak_rss_bytes: (u64, u64),
    /// Peak resident memory per element of that party's set.
    pub peak_rss_bytes_per_element: (f64, f64),
    /// Seconds each `dataset import` took.
    pub import_s: (f64, f64),
    /// Peak resident memory of each `dataset import` process, per CSV row.
    pub import_peak_rss_bytes_per_row: (f64, f64),
    /// Bytes each party sent, per element of the larger set.
    pub wire_bytes_per_element: (f64, f64),
    /// Matches found and expected.
    pub intersection: (u64, u64),
}

/// Runs the bench and prints the report.
pub fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.via_index {
        return index::run(&args);
    }
    ensure!(args.n > 0, "--n must be at least 1");
    ensure!(
        (0.0..=1.0).contains(&args.overlap),
        "--overlap must be between 0 and 1"
    );
    let say = |m: &str| {
        if !args.json {
            eprintln!("bench: {m}");
        }
    };
    let temp;
    let root = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    if let Some(peers) = args.peers {
        peers::run(&args, peers, &root)?;
        if args.keep.is_some() {
            say(&format!("data kept in {}", root.display()));
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let exe = std::env::current_exe().context("locating the blindmatch binary")?;

    say(&CurveBackend::describe());
    say(&format!("generating two lists of {} records", args.n));
    let overlap = ((args.n as f64) * args.overlap).round() as usize;
    let lists = synth::generate_lists(&SynthSpec {
        n_a: args.n,
        n_b: args.n,
        overlap,
        seed: 7,
        messy: false,
    });
    let (a_csv, b_csv) = (root.join("a.csv"), root.join("b.csv"));
    synth::write_csv(&lists.a, &a_csv, false).context("writing the first list")?;
    synth::write_csv(&lists.b, &b_csv, false).context("writing the second list")?;
    let a_values = identifier_values(&lists.a);
    let b_values = identifier_values(&lists.b);
    drop(lists);
    let expected = count_common(&a_values, &b_values);

    say("measuring the crypto floor");
    let before = ProcessStats::own();
    let started = Instant::now();
    floor(&a_values, &b_values);
    let floor_wall = started.elapsed();
    let floor_cpu = ProcessStats::own().cpu_s - before.cpu_s;
    let floor_elements = (a_values.len() + b_values.len()) as f64;
    drop((a_values, b_values));

    say("setting up two nodes and importing both lists");
    let a = Party::new(&exe, root.join("initiator"));
    let b = Party::new(&exe, root.join("responder"));
    a.run(&["init", "--name", "bench-a", "--listen", "127.0.0.1:0"])?;
    b.run(&["init", "--name", "bench-b", "--listen", "127.0.0.1:0"])?;
    let import_a = import(&a, &a_csv, "a")?;
    let import_b = import(&b, &b_csv, "b")?;
    let port = free_udp_port()?;
    let listen = format!("127.0.0.1:{port}");
    #[rustfmt::skip]
    b.run(&["peer", "add", "a", "--addr", "127.0.0.1:9", "--fingerprint", &a.fingerprint()?, "--offer", "b", "--modes", args.mode.name(), "--max-set-ratio", "none", "--max-identifiers-per-day", "none", "--max-identifiers-total", "none", "--max-sessions-per-hour", "none"])?;
    #[rustfmt::skip]
    a.run(&["peer", "add", "b", "--addr", &listen, "--fingerprint", &b.fingerprint()?, "--match-modes", args.mode.name()])?;

    say(&format!("running the session over QUIC on {listen}"));
    let server = b.serve(&listen)?;
    let out = root.join("matches.csv");
    let out_arg = out.to_string_lossy();
    #[rustfmt::skip]
    let matched = a.run(&["match", "--peer", "b", "--dataset", "a", "--purpose", "bench", "--mode", args.mode.name(), "--out", &out_arg])?;
    let server_stats = server.stats();
    drop(server);

    let ours = a.last_completed_session()?;
    let theirs = b.last_completed_session()?;
    let (ea, eb) = (ours.our_set_size, theirs.our_set_size);
    let per_party = (ea + eb) as f64;
    let larger = ea.max(eb).max(1) as f64;
    let found = ours
        .intersection_size
        .or(theirs.intersection_size)
        .unwrap_or(0);
    let (peak_a, peak_b) = (matched.stats.peak_rss_bytes, server_stats.peak_rss_bytes);
    let report = BenchReport {
        n: args.n,
        elements: (ea, eb),
        mode: args.mode.name().into(),
        threads: rayon::current_num_threads(),
        curve_backend: CurveBackend::detect().name(),
        wall_s: matched.wall.as_secs_f64(),
        session_s: ours.duration_ms as f64 / 1e3,
        cpu_us_per_element_per_party: (matched.stats.cpu_s + server_stats.cpu_s) * 1e6 / per_party,
        floor_s: floor_wall.as_secs_f64(),
        floor_cpu_us_per_element_per_party: floor_cpu * 1e6 / floor_elements,
        ratio: matched.wall.as_secs_f64() / floor_wall.as_secs_f64(),
        cpu_ratio: (matched.stats.cpu_s + server_stats.cpu_s) / floor_cpu,
        peak_rss_bytes: (peak_a, peak_b),
        peak_rss_bytes_per_element: (peak_a as f64 / ea as f64, peak_b as f64 / eb as f64),
        import_s: (import_a.wall.as_secs_f64(), import_b.wall.as_secs_f64()),
        import_peak_rss_bytes_per_row: (
            import_a.stats.peak_rss_bytes as f64 / args.n as f64,
            import_b.stats.peak_rss_bytes as f64 / args.n as f64,
        ),
        wire_bytes_per_element: (
            ours.bytes_sent as f64 / larger,
            theirs.bytes_sent as f64 / larger,
        ),
        intersection: (found, expected),
    };
    println!("{}", serde_json::to_string(&report)?);
    ensure!(
        found == expected,
        "the session found {found} matches, expected {expected}"
    );
    if args.keep.is_some() {
        say(&format!("data kept in {}", root.display()));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `dataset import` of a generated list: email and name+company (see the module docs).
fn import(party: &Party, csv: &Path, name: &str) -> anyhow::Result<party::Finished> {
    let csv = csv.to_string_lossy();
    #[rustfmt::skip]
    let args = ["dataset", "import", &csv, "--name", name, "--id-col", "id", "--email-col", "email", "--name-col", "name", "--company-col", "company"];
    party.run(&args)
}

/// A UDP port on loopback that was free a moment ago.
pub(crate) fn free_udp_port() -> anyhow::Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").context("finding a free UDP port")?;
    Ok(socket.local_addr()?.port())
}

/// The distinct (kind code, normalised value) pairs of a list's email and
/// name+company identifiers: what the import stores, for the floor and the expected
/// intersection.
fn identifier_values(records: &[SynthRecord]) -> Vec<(u8, String)> {
    let normaliser = Normaliser::default();
    let kinds = KindSet::empty()
        .with(IdentKind::Email)
        .with(IdentKind::NameCompany);
    let mut values: Vec<(u8, String)> = records
        .par_iter()
        .flat_map_iter(|r| {
            synth::record_identifiers(&normaliser, r, kinds)
                .0
                .into_iter()
                .map(|id| (id.kind().code(), id.value().to_owned()))
        })
        .collect();
    values.par_sort_unstable();
    values.dedup();
    values
}

fn count_common(a: &[(u8, String)], b: &[(u8, String)]) -> u64 {
    let b: std::collections::HashSet<&(u8, String)> = b.iter().collect();
    a.iter().filter(|x| b.contains(x)).count() as u64
}

/// Each side blinds its set and re-blinds the other's, batch by batch.
fn floor(a: &[(u8, String)], b: &[(u8, String)]) {
    let mut rng = rand::rng();
    let ka = BlindingKey::random(&mut rng);
    let kb = BlindingKey::random(&mut rng);
    let blind = |key: &BlindingKey, values: &[(u8, String)]| -> Vec<[u8; 32]> {
        values
            .chunks(DEFAULT_BATCH_SIZE)
            .flat_map(|c| {
                let items: Vec<(u8, &[u8])> = c.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
                key.blind_identifiers(&items)
            })
            .collect()
    };
    let reblind = |key: &BlindingKey, points: &[[u8; 32]]| -> usize {
        points
            .chunks(DEFAULT_BATCH_SIZE)
            .map(|c| key.reblind(c).map(|v| v.len()).unwrap_or(0))
            .sum()
    };
    let a_blinded = blind(&ka, a);
    let b_blinded = blind(&kb, b);
    let done = reblind(&kb, &a_blinded) + reblind(&ka, &b_blinded);
    debug_assert_eq!(done, a.len() + b.len());
}
