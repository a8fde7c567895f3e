//! Criterion benches of the RFC 9497 OPRF / VOPRF batch operations, next to the
//! floor they are measured against: one hash-to-group and one scalar multiplication
//! per element (`BlindingKey::blind_identifiers`).
//!
//! Run: `cargo bench -p blindmatch-protocol --bench oprf` (add `-- --quick` for a
//! fast pass, or a filter such as `-- dleq`). Criterion reports time per batch of
//! `BATCH` elements and elements per second; divide the time by `BATCH` for the cost
//! per element. Each operation runs on every core (`parallel`) and on one thread
//! (`1-thread`): the one-thread figures are the CPU cost per element, and are the
//! ones to compare when another process shares the machine.
//!
//! Layout: one function per benchmark group, all sharing [`config`]; to add a
//! group, write `fn my_group(c: &mut Criterion)` and list it in `criterion_group!`.

use std::hint::black_box;
use std::time::Duration;

use blindmatch_protocol::group::{BlindingKey, KIND_CODE_EMAIL};
use blindmatch_protocol::oprf::dleq::{generate_proof, verify_proof};
use blindmatch_protocol::oprf::{ClientBatch, Mode, OprfKey, PublicKey};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Elements per batch.
const BATCH: usize = 4096;

/// Short runs: these are regression and capacity numbers, not a paper's.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `BATCH` identifiers of realistic length.
fn inputs() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| format!("first.last{i}@example-company.com").into_bytes())
        .collect()
}

fn borrowed(inputs: &[Vec<u8>]) -> Vec<&[u8]> {
    inputs.iter().map(Vec::as_slice).collect()
}

/// Where a bench runs: on every core, or on one thread (the cost per element, which
/// another process on the machine disturbs less).
#[derive(Clone, Copy)]
enum Threads {
    All,
    One,
}

impl Threads {
    const BOTH: [Threads; 2] = [Threads::All, Threads::One];

    fn label(self) -> &'static str {
        match self {
            Threads::All => "parallel",
            Threads::One => "1-thread",
        }
    }

    fn run<T: Send>(self, pool: &rayon::ThreadPool, f: impl FnOnce() -> T + Send) -> T {
        match self {
            Threads::All => f(),
            Threads::One => pool.install(f),
        }
    }
}

fn single_thread_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool")
}

/// The floor: hash-to-group plus one scalar multiplication (and a batched
/// compression) per element; and `reblind`, one decoding plus one multiplication.
fn floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("oprf_4096/floor");
    g.throughput(Throughput::Elements(BATCH as u64));
    let owned = inputs();
    let items: Vec<(u8, &[u8])> = owned
        .iter()
        .map(|v| (KIND_CODE_EMAIL, v.as_slice()))
        .collect();
    let key = BlindingKey::random(&mut rng(1));
    let points = BlindingKey::random(&mut rng(2)).blind_identifiers(&items);
    let one = single_thread_pool();
    for threads in Threads::BOTH {
        let t = threads.label();
        g.bench_function(format!("blind_identifiers/{t}"), |b| {
            b.iter(|| threads.run(&one, || key.blind_identifiers(black_box(&items))))
        });
        g.bench_function(format!("reblind/{t}"), |b| {
            b.iter(|| threads.run(&one, || key.reblind(black_box(&points))))
        });
    }
    g.finish();
}

/// Server and client operations of both modes.
fn protocol(c: &mut Criterion) {
    let mut g = c.benchmark_group("oprf_4096");
    g.throughput(Throughput::Elements(BATCH as u64));
    let owned = inputs();
    let inputs = borrowed(&owned);
    let one = single_thread_pool();
    for mode in [Mode::Voprf, Mode::Oprf] {
        let name = match mode {
            Mode::Voprf => "voprf",
            Mode::Oprf => "oprf",
        };
        let key = OprfKey::random(mode, &mut rng(3));
        let pk = (mode == Mode::Voprf).then_some(key.public_key());
        // A seeded client RNG gives the same blinds every time, so one evaluation
        // serves every finalize iteration.
        let blind = || ClientBatch::blind(mode, &inputs, &mut rng(4)).expect("blind");
        let (evaluated, proof) = key
            .evaluate_batch(blind().blinded(), &mut rng(5))
            .expect("evaluate");
        let blinded = blind().blinded().to_vec();

        for threads in Threads::BOTH {
            let t = threads.label();
            g.bench_function(format!("client_blind/{name}/{t}"), |b| {
                b.iter(|| {
                    threads.run(&one, || {
                        ClientBatch::blind(mode, black_box(&inputs), &mut rng(4))
                    })
                })
            });
            g.bench_function(format!("server_evaluate_batch/{name}/{t}"), |b| {
                let mut rng = rng(6);
                b.iter(|| threads.run(&one, || key.evaluate_batch(black_box(&blinded), &mut rng)))
            });
            g.bench_function(format!("client_finalize/{name}/{t}"), |b| {
                b.iter_batched(
                    blind,
                    |batch| {
                        threads.run(&one, || {
                            batch.finalize(pk, black_box(&evaluated), proof.as_ref())
                        })
                    },
                    BatchSize::PerIteration,
                )
            });
            g.bench_function(format!("server_evaluate_inputs/{name}/{t}"), |b| {
                b.iter(|| threads.run(&one, || key.evaluate_inputs(black_box(&inputs))))
            });
        }
    }
    g.finish();
}

/// The DLEQ proof alone, over `BATCH` pairs `Dᵢ = k · Cᵢ`.
fn dleq(c: &mut Criterion) {
    let mut g = c.benchmark_group("oprf_4096/dleq");
    g.throughput(Throughput::Elements(BATCH as u64));
    const CONTEXT: &[u8] = b"blindmatch-bench-reblind";
    let mut rng = rng(7);
    let k = Scalar::random(&mut rng);
    let pk = PublicKey::from_point(RistrettoPoint::mul_base(&k)).expect("non-zero key");
    let c_points: Vec<RistrettoPoint> = (0..BATCH)
        .map(|_| RistrettoPoint::random(&mut rng))
        .collect();
    let d_points: Vec<RistrettoPoint> = c_points.iter().map(|p| k * p).collect();
    let c_enc: Vec<[u8; 32]> = c_points.iter().map(|p| p.compress().to_bytes()).collect();
    let d_enc: Vec<[u8; 32]> = d_points.iter().map(|p| p.compress().to_bytes()).collect();
    let r = Scalar::random(&mut rng);
    let proof =
        generate_proof(CONTEXT, &k, &pk, &c_points, &c_enc, &d_enc, &r).expect("valid batch");
    assert!(verify_proof(
        CONTEXT, &pk, &c_points, &c_enc, &d_points, &d_enc, &proof
    ));
    let one = single_thread_pool();

    for threads in Threads::BOTH {
        let t = threads.label();
        g.bench_function(format!("generate_proof/{t}"), |b| {
            b.iter(|| {
                threads.run(&one, || {
                    generate_proof(CONTEXT, &k, &pk, black_box(&c_points), &c_enc, &d_enc, &r)
                })
            })
        });
        g.bench_function(format!("verify_proof/{t}"), |b| {
            b.iter(|| {
                threads.run(&one, || {
                    verify_proof(
                        CONTEXT,
                        &pk,
                        black_box(&c_points),
                        &c_enc,
                        &d_points,
                        &d_enc,
                        &proof,
                    )
                })
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = floor, protocol, dleq
}
criterion_main!(benches);
