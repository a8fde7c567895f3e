//! `blindmatch bench`: the whole protocol between two in-process parties over real
//! QUIC with mutual TLS on loopback, measured against the crypto floor in the same run.
//!
//! The two lists come from [`crate::synth`] (clean, so each shared person matches on
//! every kind) with email and name+company identifiers; phones are left out only to
//! keep *setup* fast (phone normalisation costs ~14 µs, which is import time, not
//! session time). The floor is the primitive batch operations alone over the same
//! elements with the same parallelism: each side blinds its set and re-blinds the
//! other's. Both parties share this machine's cores, so the end-to-end wall time is
//! compared with the floor's wall time for both parties' work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use blindmatch_protocol::group::BlindingKey;
use blindmatch_protocol::ident::{IdentKind, KindSet, Normaliser};
use blindmatch_protocol::session::{
    DEFAULT_BATCH_SIZE, Event, Initiator, InitiatorConfig, PreparedSet, PreparedSetBuilder,
    Responder, ResponderConfig, Session,
};
use blindmatch_protocol::wire::{MAX_FRAME_LEN, OutputMode};
use clap::Args;
use rayon::prelude::*;
use serde::Serialize;

use crate::driver::{self, DriverOptions, Traffic};
use crate::identity::NodeIdentity;
use crate::synth::{self, SynthRecord, SynthSpec};
use crate::transport::{self, FrameReader, FrameWriter, PinnedPeers, TransportTuning};

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
}

/// One bench result, printed as a JSON line.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Records per side.
    pub n: usize,
    /// Distinct identifiers per side (initiator, responder).
    pub elements: (u64, u64),
    /// Output mode.
    pub mode: String,
    /// Cores used.
    pub threads: usize,
    /// Wall seconds of the session (both parties, connect to Finish).
    pub wall_s: f64,
    /// Process CPU seconds during the session, per element per party, in µs.
    pub cpu_us_per_element_per_party: f64,
    /// Wall seconds of the floor (the primitives alone, both parties).
    pub floor_s: f64,
    /// The floor's CPU per element per party, in µs.
    pub floor_cpu_us_per_element_per_party: f64,
    /// End-to-end wall over floor wall.
    pub ratio: f64,
    /// Peak resident memory of the process (both parties) during the session, bytes
    /// (the mark is reset after setup and the floor, where the kernel allows it).
    pub peak_rss_bytes: u64,
    /// Peak resident memory per element per party, bytes.
    pub peak_rss_bytes_per_element_per_party: f64,
    /// Bytes the initiator sent per element (of the larger set), and received.
    pub wire_bytes_per_element: (f64, f64),
    /// Matches found and expected.
    pub intersection: (u64, u64),
}

/// Runs the bench and prints the report.
pub fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
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
    say(&format!("generating two lists of {} records", args.n));
    let overlap = ((args.n as f64) * args.overlap).round() as usize;
    let lists = synth::generate_lists(&SynthSpec {
        n_a: args.n,
        n_b: args.n,
        overlap,
        seed: 7,
        messy: false,
    });
    let (a_set, a_values) = prepare(&lists.a);
    let (b_set, b_values) = prepare(&lists.b);
    let expected = count_common(&a_values, &b_values);
    drop(lists);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    say("measuring the crypto floor");
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    floor(&a_values, &b_values);
    let floor_wall = started.elapsed();
    let floor_cpu = cpu_seconds() - cpu0;
    drop((a_values, b_values));

    say("running the session over QUIC on loopback");
    // Reset the peak-RSS mark (Linux ≥ 4.0) so it measures the session, not the setup.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (elements_a, elements_b) = (a_set.len() as u64, b_set.len() as u64);
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    let (found, traffic) = runtime.block_on(session(a_set, b_set, args.mode))?;
    let wall = started.elapsed();
    let cpu = cpu_seconds() - cpu0;
    let peak = peak_rss_bytes();
    let per_party = (elements_a + elements_b) as f64;
    let report = BenchReport {
        n: args.n,
        elements: (elements_a, elements_b),
        mode: args.mode.name().into(),
        threads: rayon::current_num_threads(),
        wall_s: wall.as_secs_f64(),
        cpu_us_per_element_per_party: cpu * 1e6 / per_party,
        floor_s: floor_wall.as_secs_f64(),
        floor_cpu_us_per_element_per_party: floor_cpu * 1e6 / per_party,
        ratio: wall.as_secs_f64() / floor_wall.as_secs_f64(),
        peak_rss_bytes: peak,
        peak_rss_bytes_per_element_per_party: peak as f64 / per_party,
        wire_bytes_per_element: (
            traffic.0 as f64 / elements_a.max(elements_b) as f64,
            traffic.1 as f64 / elements_a.max(elements_b) as f64,
        ),
        intersection: (found, expected),
    };
    println!("{}", serde_json::to_string(&report)?);
    ensure!(
        found == expected,
        "the session found {found} matches, expected {expected}"
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// Normalises email and name+company of each record into a prepared set; also returns
/// the (kind code, value) list for the floor.
fn prepare(records: &[SynthRecord]) -> (PreparedSet, Vec<(u8, String)>) {
    let normaliser = Normaliser::default();
    let kinds = KindSet::empty()
        .with(IdentKind::Email)
        .with(IdentKind::NameCompany);
    let ids: Vec<Vec<(u8, String)>> = records
        .par_iter()
        .map(|r| {
            synth::record_identifiers(&normaliser, r, kinds)
                .0
                .into_iter()
                .map(|id| (id.kind().code(), id.value().to_owned()))
                .collect()
        })
        .collect();
    let mut builder = PreparedSetBuilder::new();
    let mut values = Vec::new();
    for (i, record) in ids.iter().enumerate() {
        for (kind, value) in record {
            if let Some(kind_enum) = IdentKind::from_code(*kind) {
                builder.add_normalised(i as u32, kind_enum, value.as_bytes());
            }
            values.push((*kind, value.clone()));
        }
    }
    values.sort_unstable();
    values.dedup();
    (builder.build(), values)
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

/// Both parties over real QUIC with pinned mutual TLS; returns (matches, (sent, received)).
async fn session(
    a_set: PreparedSet,
    b_set: PreparedSet,
    mode: OutputMode,
) -> anyhow::Result<(u64, (u64, u64))> {
    let a_id = NodeIdentity::generate("bench-initiator")?;
    let b_id = NodeIdentity::generate("bench-responder")?;
    let tuning = TransportTuning::default();
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = transport::server_endpoint(
        loopback,
        &b_id,
        PinnedPeers::new([a_id.fingerprint()]),
        &tuning,
    )?;
    let addr = server.local_addr()?;
    let options = DriverOptions {
        idle_timeout: Duration::from_secs(60),
        on_progress: None,
        cancel: None,
    };
    let responder_options = options.clone();
    let responder = tokio::spawn(async move {
        let incoming = server.accept().await.context("no connection")?;
        let (conn, _) = transport::accept(incoming).await?;
        let (send, recv) = conn.accept_bi().await?;
        let mut reader = FrameReader(recv);
        let hello = reader
            .read_frame(MAX_FRAME_LEN)
            .await?
            .context("no Hello")?;
        let mut session = Responder::new(ResponderConfig {
            channel_binding: transport::channel_binding(&conn)?,
            ..ResponderConfig::default()
        });
        session.handle_frame(&hello)?;
        ensure!(
            matches!(session.poll_event(), Some(Event::HelloReceived(_))),
            "no Hello event"
        );
        session.accept(b_set, &mut rand::rng())?;
        let report = driver::run(
            session,
            reader,
            FrameWriter(send),
            Arc::new(Traffic::default()),
            responder_options,
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
        report.result.map_err(anyhow::Error::from)
    });
    let client = transport::client_endpoint(&a_id, &tuning)?;
    let conn = transport::connect(&client, addr, "localhost", b_id.fingerprint()).await?;
    let (send, recv) = conn.open_bi().await?;
    let mut config = InitiatorConfig::new([7; 16], "", "bench", mode);
    config.channel_binding = transport::channel_binding(&conn)?;
    let session = Initiator::new(config, a_set, &mut rand::rng())?;
    let report = driver::run(
        session,
        FrameReader(recv),
        FrameWriter(send),
        Arc::new(Traffic::default()),
        options,
    )
    .await;
    transport::close(&conn, blindmatch_protocol::error::CloseCode::OK, "done");
    let outcome = report.result?;
    let theirs = responder.await??;
    let found = outcome
        .intersection_size
        .or(theirs.intersection_size)
        .unwrap_or(0);
    client.shutdown().await;
    Ok((found, (report.bytes_sent, report.bytes_received)))
}

/// User + system CPU seconds of this process so far (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14, 15.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on every Linux platform Rust supports.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size of this process (VmHWM), bytes.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
