//! Criterion benches of the PSI hot path, reported per element.
//!
//! Run: `cargo bench -p blindmatch-protocol --bench psi` (add `-- --quick` for a
//! fast pass, or a filter such as `-- blind`). For the AVX-512 IFMA backend of
//! curve25519-dalek, build with `RUSTFLAGS="-C target-cpu=native"` into a separate
//! `CARGO_TARGET_DIR`.
//!
//! Layout: one function per benchmark group, all sharing [`config`]; to add a
//! group, write `fn my_group(c: &mut Criterion)` and list it in `criterion_group!`.

use std::hint::black_box;
use std::time::Duration;

use blindmatch_protocol::group::{
    BlindingKey, KIND_CODE_EMAIL, KIND_CODE_PHONE, decode_point, hash_identifier,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Elements per batch in the batch benches.
const BATCH: usize = 10_000;

/// Short runs: these are regression and capacity numbers, not a paper's.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(42)
}

/// `BATCH` normalised identifiers of realistic length, alternating email / phone.
fn identifiers() -> Vec<(u8, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            if i % 2 == 0 {
                (
                    KIND_CODE_EMAIL,
                    format!("first.last{i}@example-company.com").into_bytes(),
                )
            } else {
                (KIND_CODE_PHONE, format!("+86138{i:08}").into_bytes())
            }
        })
        .collect()
}

fn borrowed(items: &[(u8, Vec<u8>)]) -> Vec<(u8, &[u8])> {
    items.iter().map(|(k, v)| (*k, v.as_slice())).collect()
}

fn single_thread_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool")
}

/// Single-element primitives.
fn primitives(c: &mut Criterion) {
    let mut g = c.benchmark_group("primitive");
    g.throughput(Throughput::Elements(1));
    let key = BlindingKey::random(&mut rng());
    let point = hash_identifier(KIND_CODE_EMAIL, b"first.last@example-company.com");
    let encoded = point.compress().to_bytes();

    g.bench_function("hash_identifier", |b| {
        b.iter(|| {
            hash_identifier(
                KIND_CODE_EMAIL,
                black_box(b"first.last@example-company.com"),
            )
        })
    });
    g.bench_function("decode_point", |b| {
        b.iter(|| decode_point(black_box(&encoded)))
    });
    g.bench_function("multiply", |b| b.iter(|| key.multiply(black_box(&point))));
    g.bench_function("multiply_and_compress_unbatched", |b| {
        b.iter(|| key.multiply(black_box(&point)).compress())
    });
    g.finish();
}

/// `blind_identifiers` and `reblind` over `BATCH` elements, on all cores and on one.
fn batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_10k");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut rng = rng();
    let ours = BlindingKey::random(&mut rng);
    let theirs = BlindingKey::random(&mut rng);
    let owned = identifiers();
    let items = borrowed(&owned);
    let peer_points = theirs.blind_identifiers(&items);
    let one = single_thread_pool();

    g.bench_function("blind_identifiers/parallel", |b| {
        b.iter(|| ours.blind_identifiers(black_box(&items)))
    });
    g.bench_function("reblind/parallel", |b| {
        b.iter(|| ours.reblind(black_box(&peer_points)))
    });
    g.bench_function("blind_identifiers/1-thread", |b| {
        b.iter(|| one.install(|| ours.blind_identifiers(black_box(&items))))
    });
    g.bench_function("reblind/1-thread", |b| {
        b.iter(|| one.install(|| ours.reblind(black_box(&peer_points))))
    });
    g.bench_function("hash_identifier/sequential", |b| {
        b.iter(|| {
            for (kind, value) in &items {
                black_box(hash_identifier(*kind, value));
            }
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = primitives, batches
}
criterion_main!(benches);
