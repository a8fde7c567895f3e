//! `blindmatch bench --via-index`: a provider of `--provider-n` records builds its index
//! and serves it; a client of `--n` records matches through it twice (first fetching
//! the index, then with the index cached). Every step is a real process of this binary
//! over QUIC on loopback, as in the PSI bench.
//!
//! Both lists hold one email per record (so records and identifiers are the same
//! count), generated procedurally so that 10⁷ records take seconds to write; a share
//! `--overlap` of the client's records are among the provider's. The floor of the index
//! build is measured in the same run: RFC 9497 `Evaluate` alone (one hash to group, one
//! scalar multiplication, the finalize hash per identifier) over the same identifiers on
//! all cores, in the build's chunk size.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use blindmatch_protocol::group::CurveBackend;
use blindmatch_protocol::ident::{IdentKind, Normaliser};
use blindmatch_protocol::index::oprf_input;
use blindmatch_protocol::oprf::{Mode, OprfKey};
use serde::Serialize;

use super::BenchArgs;
use super::party::Party;
use super::procstats::ProcessStats;

/// Identifiers evaluated per call when measuring the floor: the build's chunk size.
const FLOOR_CHUNK: usize = 1 << 19;

/// One index bench result, printed as a JSON line.
#[derive(Debug, Serialize)]
pub struct IndexBenchReport {
    /// Provider records (= identifiers).
    pub provider_n: usize,
    /// Client records (= identifiers).
    pub n: usize,
    /// Cores used by each process.
    pub threads: usize,
    /// The curve25519-dalek backend.
    pub curve_backend: &'static str,
    /// Seconds of the provider's `dataset import` (CSV to stored dataset).
    pub import_s: f64,
    /// Wall seconds of the provider's `dataset index` process, start to exit.
    pub index_build_s: f64,
    /// Wall seconds of the floor: `Evaluate` alone over the same identifiers.
    pub index_floor_s: f64,
    /// Build over floor, wall.
    pub build_ratio: f64,
    /// Build over floor, CPU.
    pub build_cpu_ratio: f64,
    /// Peak resident memory of the `dataset index` process.
    pub build_peak_rss_bytes: u64,
    /// That per provider identifier.
    pub build_peak_rss_bytes_per_identifier: f64,
    /// Bytes of the index file.
    pub index_bytes: u64,
    /// That per provider identifier.
    pub index_bytes_per_identifier: f64,
    /// The first `match --via-index` (fetches the index): process wall seconds.
    pub first_wall_s: f64,
    /// Its bytes on the wire (both directions).
    pub first_bytes: u64,
    /// The second `match --via-index` (index cached): process wall seconds, start to exit.
    pub online_wall_s: f64,
    /// Its session alone (connect to Finish) as the client's audit log records it.
    pub online_session_s: f64,
    /// CPU seconds of the client process and of the provider during it.
    pub online_cpu_s: (f64, f64),
    /// Its bytes on the wire (both directions).
    pub online_bytes: u64,
    /// Peak resident memory of the online client process.
    pub online_client_peak_rss_bytes: u64,
    /// Matches found and expected.
    pub intersection: (u64, u64),
}

/// Runs the index bench and prints the report.
pub fn run(args: &BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let provider_n = args.provider_n.unwrap_or(args.n.saturating_mul(1000));
    ensure!(
        args.n > 0 && provider_n > 0,
        "--n and --provider-n must be at least 1"
    );
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
    let exe = std::env::current_exe().context("locating the blindmatch binary")?;
    say(&CurveBackend::describe());

    say(&format!(
        "writing {provider_n} provider and {} client records",
        args.n
    ));
    let shared = ((args.n as f64) * args.overlap).round() as usize;
    let (provider_csv, client_csv) = (root.join("provider.csv"), root.join("client.csv"));
    write_list(
        &provider_csv,
        (0..provider_n).map(|i| (i, provider_email(i))),
    )?;
    // The client's shared records are spread over the provider's list.
    let stride = (provider_n / shared.max(1)).max(1);
    let client = (0..args.n).map(|i| {
        let email = if i < shared {
            provider_email((i * stride) % provider_n)
        } else {
            format!("crm{i:09}@client-only.example.cn")
        };
        (i, email)
    });
    write_list(&client_csv, client)?;
    let expected = shared.min(provider_n) as u64;

    say("measuring the floor: RFC 9497 Evaluate over every provider identifier");
    let (floor_wall, floor_cpu) = floor(provider_n)?;

    say("setting up the provider and the client");
    let provider = Party::new(&exe, root.join("provider"));
    let client_party = Party::new(&exe, root.join("client"));
    let port = super::free_udp_port()?;
    let listen = format!("127.0.0.1:{port}");
    provider.run(&["init", "--name", "provider", "--listen", &listen])?;
    client_party.run(&["init", "--name", "client", "--listen", "127.0.0.1:0"])?;
    let imported = import(&provider, &provider_csv, "kp")?;
    import(&client_party, &client_csv, "crm")?;
    let _ = std::fs::remove_file(&provider_csv);

    say("building the index");
    let built = provider.run(&["dataset", "index", "kp"])?;
    let index_bytes = std::fs::metadata(provider.dir.join("index/kp/index.bmix"))
        .context("reading the index size")?
        .len();

    #[rustfmt::skip]
    provider.run(&["peer", "add", "client", "--addr", "127.0.0.1:9", "--fingerprint", &client_party.fingerprint()?, "--offer", "kp", "--modes", "initiator", "--max-set-ratio", "none", "--max-identifiers-per-day", "none", "--max-identifiers-total", "none", "--max-sessions-per-hour", "none"])?;
    #[rustfmt::skip]
    client_party.run(&["peer", "add", "provider", "--addr", &listen, "--fingerprint", &provider.fingerprint()?])?;

    say(&format!(
        "serving on {listen}; first match (fetches the index)"
    ));
    let server = provider.serve(&listen)?;
    let out = root.join("matches.csv");
    let out_arg = out.to_string_lossy();
    #[rustfmt::skip]
    let match_args = ["match", "--peer", "provider", "--dataset", "crm", "--purpose", "bench", "--via-index", "--out", &out_arg, "--force"];
    client_party.run(&match_args)?;
    let first = client_party.last_completed_session()?;
    say("second match (index cached)");
    let server_before = server.stats();
    let online = client_party.run(&match_args)?;
    let server_after = server.stats();
    drop(server);
    let second = client_party.last_completed_session()?;
    let found = second.intersection_size.unwrap_or(0);

    let report = IndexBenchReport {
        provider_n,
        n: args.n,
        threads: rayon::current_num_threads(),
        curve_backend: CurveBackend::detect().name(),
        import_s: imported.wall.as_secs_f64(),
        index_build_s: built.wall.as_secs_f64(),
        index_floor_s: floor_wall.as_secs_f64(),
        build_ratio: built.wall.as_secs_f64() / floor_wall.as_secs_f64(),
        build_cpu_ratio: built.stats.cpu_s / floor_cpu,
        build_peak_rss_bytes: built.stats.peak_rss_bytes,
        build_peak_rss_bytes_per_identifier: built.stats.peak_rss_bytes as f64 / provider_n as f64,
        index_bytes,
        index_bytes_per_identifier: index_bytes as f64 / provider_n as f64,
        first_wall_s: duration_s(first.duration_ms),
        first_bytes: first.bytes_sent + first.bytes_received,
        online_wall_s: online.wall.as_secs_f64(),
        online_session_s: duration_s(second.duration_ms),
        online_cpu_s: (online.stats.cpu_s, server_after.cpu_s - server_before.cpu_s),
        online_bytes: second.bytes_sent + second.bytes_received,
        online_client_peak_rss_bytes: online.stats.peak_rss_bytes,
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

/// The email of provider record `i`.
fn provider_email(i: usize) -> String {
    format!("kp{i:09}@corp{:04}.example.cn", i % 9973)
}

fn write_list(path: &Path, records: impl Iterator<Item = (usize, String)>) -> anyhow::Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    writeln!(out, "id,email")?;
    for (i, email) in records {
        writeln!(out, "r{i},{email}")?;
    }
    out.flush()?;
    Ok(())
}

fn import(party: &Party, csv: &Path, name: &str) -> anyhow::Result<super::party::Finished> {
    let csv = csv.to_string_lossy();
    #[rustfmt::skip]
    let args = ["dataset", "import", &csv, "--name", name, "--id-col", "id", "--email-col", "email"];
    party.run(&args)
}

/// `Evaluate` over the provider's identifiers (normalised as the import stores them),
/// chunk by chunk; returns the wall and CPU seconds of the evaluations alone.
fn floor(provider_n: usize) -> anyhow::Result<(Duration, f64)> {
    let key = OprfKey::random(Mode::Voprf, &mut rand::rng());
    let normaliser = Normaliser::default();
    let (mut wall, mut cpu) = (Duration::ZERO, 0.0);
    let mut start = 0;
    while start < provider_n {
        let end = (start + FLOOR_CHUNK).min(provider_n);
        let inputs: Vec<Vec<u8>> = (start..end)
            .map(|i| {
                let email = normaliser
                    .email(&provider_email(i))
                    .map_err(|e| anyhow::anyhow!("generated email is invalid: {e}"))?;
                Ok(oprf_input(IdentKind::Email, email.as_bytes()))
            })
            .collect::<anyhow::Result<_>>()?;
        let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let (before, started) = (ProcessStats::own(), Instant::now());
        let outputs = key.evaluate_inputs(&refs)?;
        wall += started.elapsed();
        cpu += ProcessStats::own().cpu_s - before.cpu_s;
        ensure!(outputs.len() == refs.len(), "the floor evaluated too few");
        start = end;
    }
    Ok((wall, cpu))
}

fn duration_s(ms: u64) -> f64 {
    ms as f64 / 1e3
}
