//! A whole two-party session in memory against its crypto floor.
//!
//! Run: `cargo bench -p blindmatch-protocol --bench session [-- N]` (default
//! N = 100,000 per side, 50% overlap). Both parties run in this process, one after
//! the other, each batch operation parallel over all cores, so wall time is the sum
//! of both parties' work. The floor is the primitive batch operations alone over the
//! same elements with the same parallelism: blind N (each side) and re-blind N (each
//! side). Prints one JSON line: medians of five alternating rounds, µs per element per party and
//! the ratio session / floor.

use std::time::{Duration, Instant};

use blindmatch_protocol::group::BlindingKey;
use blindmatch_protocol::ident::IdentKind;
use blindmatch_protocol::session::{
    DEFAULT_BATCH_SIZE, Event, Initiator, InitiatorConfig, KeySigner, Parties, PreparedSet,
    PreparedSetBuilder, Responder, ResponderConfig, Session,
};
use blindmatch_protocol::wire::{DatasetRef, OutputMode};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let a_values: Vec<String> = (0..n)
        .map(|i| format!("kp{i}@example-company.cn"))
        .collect();
    let b_values: Vec<String> = (n / 2..n + n / 2)
        .map(|i| format!("kp{i}@example-company.cn"))
        .collect();
    let a_set = prepared(&a_values);
    let b_set = prepared(&b_values);

    // Floor and session alternate, and the ratio is taken per round, so a burst of
    // load from elsewhere on this shared machine skews one round, not the median.
    let mut floors = Vec::new();
    let mut sessions = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..5 {
        let f = floor(&a_values, &b_values, round);
        let (elapsed, matches) = session(a_set.clone(), b_set.clone(), round);
        assert_eq!(
            matches,
            (n - n / 2) as u64,
            "the session found the wrong intersection"
        );
        floors.push(f);
        sessions.push(elapsed);
        ratios.push(elapsed.as_secs_f64() / f.as_secs_f64());
    }
    let floor = median(floors);
    let session = median(sessions);
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    let per = |d: Duration| d.as_secs_f64() * 1e6 / (2 * n) as f64;
    println!(
        "{{\"n\":{n},\"threads\":{},\"session_s\":{:.3},\"floor_s\":{:.3},\"session_us_per_element_per_party\":{:.2},\"floor_us_per_element_per_party\":{:.2},\"median_round_ratio\":{:.3}}}",
        rayon::current_num_threads(),
        session.as_secs_f64(),
        floor.as_secs_f64(),
        per(session),
        per(floor),
        ratio
    );
}

fn prepared(values: &[String]) -> PreparedSet {
    let mut b = PreparedSetBuilder::new();
    for (i, v) in values.iter().enumerate() {
        b.add_normalised(i as u32, IdentKind::Email, v.as_bytes());
    }
    b.build()
}

/// The primitives alone: each side blinds its set and re-blinds the other's, in
/// batches of the session's size.
fn floor(a: &[String], b: &[String], seed: u64) -> Duration {
    let mut rng = StdRng::seed_from_u64(seed);
    let ka = BlindingKey::random(&mut rng);
    let kb = BlindingKey::random(&mut rng);
    let started = Instant::now();
    let a_blinded = blind_all(&ka, a);
    let b_blinded = blind_all(&kb, b);
    let a_double = reblind_all(&kb, &a_blinded);
    let b_double = reblind_all(&ka, &b_blinded);
    let elapsed = started.elapsed();
    assert_eq!(a_double.len() + b_double.len(), a.len() + b.len());
    elapsed
}

fn blind_all(key: &BlindingKey, values: &[String]) -> Vec<[u8; 32]> {
    values
        .chunks(DEFAULT_BATCH_SIZE)
        .flat_map(|chunk| {
            let items: Vec<(u8, &[u8])> = chunk
                .iter()
                .map(|s| (IdentKind::Email.code(), s.as_bytes()))
                .collect();
            key.blind_identifiers(&items)
        })
        .collect()
}

fn reblind_all(key: &BlindingKey, points: &[[u8; 32]]) -> Vec<[u8; 32]> {
    points
        .chunks(DEFAULT_BATCH_SIZE)
        .flat_map(|chunk| key.reblind(chunk).expect("valid points"))
        .collect()
}

fn session(a_set: PreparedSet, b_set: PreparedSet, seed: u64) -> (Duration, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let parties = |own: u8, peer: u8| Parties {
        own_fingerprint: [own; 32],
        peer_fingerprint: [peer; 32],
        peer_audit_key: None,
    };
    let config = InitiatorConfig::new([seed as u8; 16], [0; 32], parties(1, 2), OutputMode::Both);
    let signer = Box::new(KeySigner::from_seed(&[1; 32]));
    let mut a = Initiator::new(config, a_set, signer, &mut rng).expect("valid");
    let mut b = Responder::new(
        ResponderConfig::new([0; 32], parties(2, 1)),
        Box::new(KeySigner::from_seed(&[2; 32])),
    );
    let mut b_set = Some(b_set);
    let mut done = (None, None);
    while done.0.is_none() || done.1.is_none() {
        let mut moved = false;
        if let Some(frame) = a.poll_transmit() {
            moved = true;
            b.handle_frame(&frame).expect("responder handles");
        }
        while let Some(event) = b.poll_event() {
            match event {
                Event::HelloReceived(_) => b
                    .accept(
                        b_set.take().expect("one hello"),
                        DatasetRef::default(),
                        &mut rng,
                    )
                    .expect("accept"),
                Event::Completed(o) => done.1 = o.intersection_size,
                _ => {}
            }
        }
        if let Some(frame) = b.poll_transmit() {
            moved = true;
            a.handle_frame(&frame).expect("initiator handles");
        }
        while let Some(event) = a.poll_event() {
            match event {
                Event::Accepted(_) => a.confirm().expect("confirm"),
                Event::Completed(o) => done.0 = o.intersection_size,
                _ => {}
            }
        }
        assert!(
            moved || done.0.is_some() && done.1.is_some(),
            "session stalled"
        );
    }
    assert_eq!(done.0, done.1);
    (started.elapsed(), done.0.unwrap_or(0))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
