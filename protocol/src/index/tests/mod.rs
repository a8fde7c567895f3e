//! The index format: round trips, signatures, tampering, deltas and the false-match
//! bound. The sessions are tested in `session`.

mod session;

use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand::rngs::StdRng;
use sha2::Digest;

use super::*;
use crate::error::{Error, PeerMisbehaved};
use crate::ident::KindSet;
use crate::oprf::{Mode, OprfKey};
use crate::wire::DatasetRef;

const EPOCH: EpochId = [0xe0; 16];

fn audit_key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32])
}

fn oprf_key(seed: u8) -> OprfKey {
    OprfKey::derive(Mode::Voprf, &[seed; 32], b"test epoch").unwrap()
}

/// `count` email-kind OPRF inputs `kp{i}@provider.cn` starting at `from`.
fn inputs(from: u32, count: u32) -> Vec<Vec<u8>> {
    (from..from + count)
        .map(|i| oprf_input(IdentKind::Email, format!("kp{i}@provider.cn").as_bytes()))
        .collect()
}

fn prefixes(key: &OprfKey, inputs: &[Vec<u8>]) -> Vec<u128> {
    let refs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    key.evaluate_inputs(&refs)
        .unwrap()
        .iter()
        .map(tag_prefix)
        .collect()
}

fn template(key: &OprfKey) -> SegmentHeader {
    let mut header = SegmentHeader::new(
        EPOCH,
        key.public_key().to_bytes(),
        DatasetRef::new("kp", [9; 16]),
    );
    header.kinds = KindSet::empty().with(IdentKind::Email);
    header
}

/// A base segment over `inputs(0, n)`, signed with audit key 1.
fn base(key: &OprfKey, n: u32) -> (SignedHeader, Vec<u8>) {
    build_segment(
        template(key),
        0,
        &prefixes(key, &inputs(0, n)),
        &audit_key(1),
    )
    .unwrap()
}

/// The base followed by a delta adding `inputs(n, added)`.
fn with_delta(key: &OprfKey, n: u32, added: u32) -> Vec<u8> {
    let (base_header, mut bytes) = base(key, n);
    let mut delta = template(key);
    delta.segment = 1;
    delta.previous = base_header.chain_hash();
    delta.dataset = DatasetRef::new("kp", [10; 16]);
    let (_, delta_bytes) = build_segment(
        delta,
        base_header.header.total_elements,
        &prefixes(key, &inputs(n, added)),
        &audit_key(1),
    )
    .unwrap();
    bytes.extend_from_slice(&delta_bytes);
    bytes
}

fn verify(bytes: &[u8], pinned: Option<[u8; 32]>) -> Result<VerifiedIndex, Error> {
    let mut verifier = Verifier::new(pinned);
    // Odd piece sizes exercise every state boundary.
    for piece in bytes.chunks(97) {
        verifier.update(piece)?;
    }
    verifier.finish()
}

fn lookup(index: &VerifiedIndex, bytes: &[u8], prefixes: &[u128]) -> Vec<bool> {
    let mut sorted: Vec<(u128, usize)> = prefixes.iter().copied().zip(0..).collect();
    sorted.sort_unstable();
    let keys: Vec<u128> = sorted.iter().map(|(p, _)| *p).collect();
    let found = index
        .contains_sorted(&keys, &mut |offset, len| {
            Ok(bytes[offset as usize..offset as usize + len].to_vec())
        })
        .unwrap();
    let mut out = vec![false; prefixes.len()];
    for ((_, i), hit) in sorted.iter().zip(found) {
        out[*i] = hit;
    }
    out
}

fn is_bad_index(result: Result<VerifiedIndex, Error>) -> bool {
    matches!(
        result,
        Err(Error::PeerMisbehaved(PeerMisbehaved::BadIndex(_)))
    )
}

#[test]
fn every_indexed_identifier_is_found_and_others_are_not() {
    let key = oprf_key(1);
    let (_, bytes) = base(&key, 5000);
    let index = verify(&bytes, Some(audit_key(1).verifying_key().to_bytes())).unwrap();
    assert_eq!(index.total_elements(), 5000);
    assert_eq!(index.epoch(), EPOCH);
    assert_eq!(index.dataset(), &DatasetRef::new("kp", [9; 16]));
    let inside = prefixes(&key, &inputs(0, 5000));
    assert!(lookup(&index, &bytes, &inside).iter().all(|hit| *hit));
    let outside = prefixes(&key, &inputs(5000, 5000));
    assert!(lookup(&index, &bytes, &outside).iter().all(|hit| !*hit));
    // Under another key the same identifiers are unrelated numbers.
    let other = prefixes(&oprf_key(2), &inputs(0, 5000));
    assert!(lookup(&index, &bytes, &other).iter().all(|hit| !*hit));
}

#[test]
fn a_tiny_index_and_the_memory_store_round_trip() {
    let key = oprf_key(3);
    let (_, bytes) = base(&key, 1);
    let mut store = MemoryIndexStore::holding(bytes.clone());
    let summary = store.open(None).unwrap();
    assert_eq!(summary.elements, 1);
    assert_eq!(summary.file_len, bytes.len() as u64);
    assert_eq!(summary.signer_key, audit_key(1).verifying_key().to_bytes());
    let hit = prefixes(&key, &inputs(0, 1));
    assert_eq!(store.contains_sorted(&hit).unwrap(), vec![true]);
    assert_eq!(held_of(&bytes).unwrap().epoch, EPOCH);
    assert_eq!(held_of(&bytes[..10]), None);
}

#[test]
fn size_per_identifier_is_under_eight_bytes() {
    let key = oprf_key(4);
    let n = 100_000;
    let (header, bytes) = base(&key, n);
    let per = bytes.len() as f64 / f64::from(n);
    assert!(per < 8.0, "{per} bytes per identifier");
    // t - log2(n) + ~1.8 bits: ~6.8 bytes whatever n.
    assert!(per > 6.0, "{per} bytes per identifier");
    assert_eq!(header.header.tag_bits, tag_bits(u64::from(n)));
}

#[test]
fn the_false_match_bound_holds_at_every_scale() {
    assert_eq!(tag_bits(100_000_000), 80);
    for n in [1u64, 1_000, 1_000_000, 100_000_000, 10_000_000_000] {
        let t = tag_bits(n);
        let expected = expected_false_matches(CLIENT_BOUND as u64, &[(n, t)]);
        assert!(expected <= FALSE_MATCH_TARGET / 2.0, "n={n}: {expected}");
    }
    // A base and deltas up to its size: Σ n_s/N_s < 2, so the total stays within 10⁻⁹.
    let base = 1_000_000u64;
    let mut total = base;
    let mut segments = vec![(base, tag_bits(base))];
    for _ in 0..20 {
        let delta = base / 20;
        total += delta;
        segments.push((delta, tag_bits(total)));
    }
    assert!(expected_false_matches(CLIENT_BOUND as u64, &segments) <= FALSE_MATCH_TARGET);
}

#[test]
fn delta_segments_add_identifiers_under_the_same_key() {
    let key = oprf_key(5);
    let bytes = with_delta(&key, 3000, 500);
    let index = verify(&bytes, None).unwrap();
    assert_eq!(index.segments().len(), 2);
    assert_eq!(index.total_elements(), 3500);
    assert_eq!(
        index.dataset().version,
        [10; 16],
        "the last segment names the version"
    );
    let all = prefixes(&key, &inputs(0, 3500));
    assert!(lookup(&index, &bytes, &all).iter().all(|hit| *hit));
    // A client holding only the base still has a valid index: a prefix of the file.
    let (_, base_bytes) = base(&key, 3000);
    assert!(bytes.starts_with(&base_bytes));
}

#[test]
fn a_signature_under_another_key_than_the_pinned_one_is_refused() {
    let key = oprf_key(6);
    let (_, bytes) = base(&key, 100);
    assert!(is_bad_index(verify(
        &bytes,
        Some(audit_key(2).verifying_key().to_bytes())
    )));
    // Re-signing with another key is caught against the pinned one, and without a pin
    // the index names its signer, which the caller compares with the receipts'.
    let (_, other) = build_segment(
        template(&key),
        0,
        &prefixes(&key, &inputs(0, 100)),
        &audit_key(2),
    )
    .unwrap();
    assert!(is_bad_index(verify(
        &other,
        Some(audit_key(1).verifying_key().to_bytes())
    )));
    let unpinned = verify(&other, None).unwrap();
    assert_eq!(
        unpinned.base().signer_key,
        audit_key(2).verifying_key().to_bytes()
    );
}

#[test]
fn any_tampered_byte_is_caught() {
    let key = oprf_key(7);
    let bytes = with_delta(&key, 400, 40);
    let pinned = Some(audit_key(1).verifying_key().to_bytes());
    // Every byte position: header fields, signatures, data, directories of both segments.
    for position in (0..bytes.len()).step_by(7) {
        let mut tampered = bytes.clone();
        tampered[position] ^= 0x20;
        assert!(
            verify(&tampered, pinned).is_err(),
            "flipping byte {position} of {} went unnoticed",
            bytes.len()
        );
    }
}

#[test]
fn truncation_reordering_and_foreign_segments_are_caught() {
    let key = oprf_key(8);
    let bytes = with_delta(&key, 300, 30);
    let delta_start = base(&key, 300).1.len();
    assert!(
        verify(&bytes[..delta_start], None).is_ok(),
        "the base alone is an index"
    );
    assert!(is_bad_index(verify(&bytes[..bytes.len() - 1], None)));
    assert!(is_bad_index(verify(&bytes[..delta_start + 10], None)));
    assert!(is_bad_index(verify(&[], None)));
    // A delta of another epoch appended to this base.
    let (base_header, mut mixed) = base(&key, 300);
    let mut foreign = template(&oprf_key(9));
    foreign.segment = 1;
    foreign.previous = base_header.chain_hash();
    let (_, foreign_bytes) = build_segment(
        foreign,
        300,
        &prefixes(&oprf_key(9), &inputs(300, 30)),
        &audit_key(1),
    )
    .unwrap();
    mixed.extend_from_slice(&foreign_bytes);
    assert!(is_bad_index(verify(&mixed, None)));
    // A delta on its own is no index.
    assert!(is_bad_index(verify(&bytes[delta_start..], None)));
}

#[test]
fn a_hostile_but_signed_body_never_panics_a_lookup() {
    // A provider signs whatever it likes: a directory pointing everywhere, garbage data.
    let key = oprf_key(10);
    let mut header = template(&key);
    header.elements = 3;
    header.total_elements = 3;
    header.tag_bits = 80;
    header.bucket_bits = 2;
    header.rice_bits = 70;
    let data = vec![0xFFu8; 40];
    let directory: [u64; 5] = [0, 3, 3, 300, 320];
    let mut body = data.clone();
    for offset in directory {
        body.extend_from_slice(&offset.to_be_bytes());
    }
    header.data_len = data.len() as u64;
    header.body_sha256 = sha2::Sha256::digest(&body).into();
    let signed = header.sign(&audit_key(1));
    let mut bytes = signed.to_bytes();
    bytes.extend_from_slice(&body);
    let index = verify(&bytes, None).unwrap();
    let probes: Vec<u128> = (0..64u128).map(|i| i << 122).collect();
    let result = index.contains_sorted(&probes, &mut |offset, len| {
        Ok(bytes[offset as usize..offset as usize + len].to_vec())
    });
    assert!(matches!(
        result,
        Err(Error::PeerMisbehaved(PeerMisbehaved::BadIndex(_)))
    ));
}
