//! Unit tests of the DLEQ proofs: honest proofs verify at every batch size, and
//! every tampering of the statement or the proof is caught.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

const CONTEXT: &[u8] = b"blindmatch-test-reblind";

/// A proof statement: `k`, `pk = k · G`, and pairs `(Cᵢ, Dᵢ = k · Cᵢ)` with
/// their encodings.
struct Statement {
    k: Scalar,
    pk: PublicKey,
    c: Vec<RistrettoPoint>,
    c_enc: Vec<[u8; 32]>,
    d: Vec<RistrettoPoint>,
    d_enc: Vec<[u8; 32]>,
}

impl Statement {
    fn random(n: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let k = Scalar::random(&mut rng);
        let c: Vec<RistrettoPoint> = (0..n).map(|_| RistrettoPoint::random(&mut rng)).collect();
        Self::with_points(k, c)
    }

    fn with_points(k: Scalar, c: Vec<RistrettoPoint>) -> Self {
        let d: Vec<RistrettoPoint> = c.iter().map(|p| k * p).collect();
        Self {
            pk: PublicKey::from_point(RistrettoPoint::mul_base(&k)).unwrap(),
            k,
            c_enc: encode(&c),
            d_enc: encode(&d),
            c,
            d,
        }
    }

    fn prove(&self) -> DleqProof {
        let r = Scalar::from(0x1234_5678u64);
        generate_proof(
            CONTEXT,
            &self.k,
            &self.pk,
            &self.c,
            &self.c_enc,
            &self.d_enc,
            &r,
        )
        .unwrap()
    }

    fn verify(&self, proof: &DleqProof) -> bool {
        verify_proof(
            CONTEXT,
            &self.pk,
            &self.c,
            &self.c_enc,
            &self.d,
            &self.d_enc,
            proof,
        )
    }

    /// Replaces `Dᵢ` by `p`.
    fn set_d(&mut self, i: usize, p: RistrettoPoint) {
        self.d[i] = p;
        self.d_enc[i] = p.compress().to_bytes();
    }
}

fn encode(points: &[RistrettoPoint]) -> Vec<[u8; 32]> {
    points.iter().map(|p| p.compress().to_bytes()).collect()
}

#[test]
fn honest_proofs_verify_at_every_size() {
    // Sizes below, at and across the parallel chunking.
    for n in [
        1,
        2,
        3,
        MIN_MSM_CHUNK - 1,
        MIN_MSM_CHUNK,
        2 * MIN_MSM_CHUNK + 7,
        1500,
    ] {
        let s = Statement::random(n, n as u64);
        assert!(s.verify(&s.prove()), "n = {n}");
    }
}

#[test]
fn composites_equal_the_sequential_definition() {
    let s = Statement::random(2 * MIN_MSM_CHUNK + 3, 7);
    let dsts = Dsts::new(CONTEXT).unwrap();
    let seed = seed(&dsts.seed, s.pk.as_bytes());
    let d = composite_scalars(&seed, &dsts.scalar, 0, &s.c_enc, &s.d_enc);
    let m: RistrettoPoint = d.iter().zip(&s.c).map(|(d, c)| d * c).sum();
    let z: RistrettoPoint = d.iter().zip(&s.d).map(|(d, p)| d * p).sum();
    assert_eq!(
        vartime_composite(&seed, &dsts.scalar, &s.c, &s.c_enc, &s.d_enc),
        m
    );
    assert_eq!(
        vartime_composites(&seed, &dsts.scalar, &s.c, &s.c_enc, &s.d, &s.d_enc),
        (m, z)
    );
    assert_eq!(z, s.k * m);
}

#[test]
fn tampered_d_element_fails() {
    let mut s = Statement::random(50, 1);
    let proof = s.prove();
    let other = s.d[17] + RistrettoPoint::mul_base(&Scalar::ONE);
    s.set_d(17, other);
    assert!(!s.verify(&proof));
}

#[test]
fn swapped_d_elements_fail() {
    let mut s = Statement::random(50, 2);
    let proof = s.prove();
    s.d.swap(3, 40);
    s.d_enc.swap(3, 40);
    assert!(!s.verify(&proof));
}

#[test]
fn reordered_pairs_fail() {
    // Each pair stays k-linked, but the indices enter the composite weights.
    let mut s = Statement::random(20, 3);
    let proof = s.prove();
    s.c.swap(0, 1);
    s.c_enc.swap(0, 1);
    s.d.swap(0, 1);
    s.d_enc.swap(0, 1);
    assert!(!s.verify(&proof));
}

#[test]
fn d_under_another_key_fails() {
    let s = Statement::random(30, 4);
    let proof = s.prove();
    let other_k = s.k + Scalar::ONE;
    let d: Vec<RistrettoPoint> = s.c.iter().map(|c| other_k * c).collect();
    let d_enc = encode(&d);
    assert!(!verify_proof(
        CONTEXT, &s.pk, &s.c, &s.c_enc, &d, &d_enc, &proof
    ));
    // Nor does the prover's proof over them, for its own pk.
    let proof = generate_proof(
        CONTEXT,
        &s.k,
        &s.pk,
        &s.c,
        &s.c_enc,
        &d_enc,
        &Scalar::from(9u64),
    )
    .unwrap();
    assert!(!verify_proof(
        CONTEXT, &s.pk, &s.c, &s.c_enc, &d, &d_enc, &proof
    ));
}

#[test]
fn proof_for_another_pk_fails() {
    let s = Statement::random(30, 5);
    let other = Statement::with_points(s.k + s.k, s.c.clone());
    assert!(!verify_proof(
        CONTEXT,
        &other.pk,
        &s.c,
        &s.c_enc,
        &s.d,
        &s.d_enc,
        &s.prove()
    ));
    assert!(!s.verify(&other.prove()));
}

#[test]
fn truncated_and_extended_batches_fail() {
    let s = Statement::random(30, 6);
    let proof = s.prove();
    let n = 29;
    assert!(!verify_proof(
        CONTEXT,
        &s.pk,
        &s.c[..n],
        &s.c_enc[..n],
        &s.d[..n],
        &s.d_enc[..n],
        &proof
    ));
    let mut longer = Statement::with_points(s.k, s.c.clone());
    longer.c.push(RistrettoPoint::mul_base(&Scalar::from(5u64)));
    longer.c_enc.push(longer.c[30].compress().to_bytes());
    longer.d.push(s.k * longer.c[30]);
    longer.d_enc.push(longer.d[30].compress().to_bytes());
    assert!(longer.verify(&longer.prove()));
    assert!(!longer.verify(&proof));
    // Mismatched lengths and empty batches are refused outright.
    assert!(!verify_proof(
        CONTEXT,
        &s.pk,
        &s.c,
        &s.c_enc,
        &s.d[..n],
        &s.d_enc[..n],
        &proof
    ));
    assert!(!verify_proof(CONTEXT, &s.pk, &[], &[], &[], &[], &proof));
}

#[test]
fn other_context_fails() {
    let s = Statement::random(10, 8);
    let proof = s.prove();
    assert!(!verify_proof(
        b"blindmatch-test-other",
        &s.pk,
        &s.c,
        &s.c_enc,
        &s.d,
        &s.d_enc,
        &proof
    ));
}

#[test]
fn altered_proofs_fail() {
    let s = Statement::random(10, 9);
    let proof = s.prove();
    let swapped = DleqProof {
        c: proof.s,
        s: proof.c,
    };
    let bumped = DleqProof {
        c: proof.c,
        s: proof.s + Scalar::ONE,
    };
    assert!(!s.verify(&swapped));
    assert!(!s.verify(&bumped));
}

#[test]
fn proof_encoding_round_trips_and_rejects_non_canonical_scalars() {
    let s = Statement::random(4, 10);
    let proof = s.prove();
    let bytes = proof.to_bytes();
    assert_eq!(DleqProof::from_bytes(&bytes), Ok(proof));
    // l, the group order, is the smallest non-canonical scalar; c + l reduces to c.
    let l = {
        let mut l = [0u8; 32];
        hex::decode_to_slice(
            "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010",
            &mut l,
        )
        .unwrap();
        l
    };
    for half in [0..32, 32..64] {
        for bad in [l, [0xff; 32]] {
            let mut tampered = bytes;
            tampered[half.clone()].copy_from_slice(&bad);
            assert_eq!(
                DleqProof::from_bytes(&tampered),
                Err(Error::PeerMisbehaved(PeerMisbehaved::BadProof))
            );
        }
    }
    // Zero is a canonical scalar.
    assert!(DleqProof::from_bytes(&[0u8; 64]).is_ok());
}

#[test]
fn generate_refuses_bad_arguments() {
    let s = Statement::random(3, 11);
    let r = Scalar::ONE;
    let invalid = |e: Result<DleqProof, Error>| matches!(e, Err(Error::InvalidArgument(_)));
    assert!(invalid(generate_proof(
        CONTEXT,
        &s.k,
        &s.pk,
        &s.c,
        &s.c_enc,
        &s.d_enc[..2],
        &r
    )));
    assert!(invalid(generate_proof(
        CONTEXT,
        &s.k,
        &s.pk,
        &[],
        &[],
        &[],
        &r
    )));
    assert!(invalid(generate_proof(
        CONTEXT,
        &s.k,
        &s.pk,
        &s.c,
        &s.c_enc,
        &s.d_enc,
        &Scalar::ZERO
    )));
    let huge = vec![0u8; 70_000];
    assert!(invalid(generate_proof(
        &huge, &s.k, &s.pk, &s.c, &s.c_enc, &s.d_enc, &r
    )));
    // One pair more than an index can frame.
    let n = MAX_BATCH + 1;
    let c = vec![s.c[0]; n];
    let c_enc = vec![s.c_enc[0]; n];
    let d = vec![s.d[0]; n];
    let d_enc = vec![s.d_enc[0]; n];
    assert!(invalid(generate_proof(
        CONTEXT, &s.k, &s.pk, &c, &c_enc, &d_enc, &r
    )));
    assert!(!verify_proof(
        CONTEXT,
        &s.pk,
        &c,
        &c_enc,
        &d,
        &d_enc,
        &s.prove()
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn verify_accepts_what_generate_proves(
        n in 1usize..=40,
        seed in any::<u64>(),
        r in any::<[u8; 32]>(),
        tamper in any::<prop::sample::Index>(),
    ) {
        let mut s = Statement::random(n, seed);
        let r = Scalar::from_bytes_mod_order(r);
        prop_assume!(r != Scalar::ZERO);
        let proof = generate_proof(CONTEXT, &s.k, &s.pk, &s.c, &s.c_enc, &s.d_enc, &r)
            .unwrap();
        prop_assert!(s.verify(&proof));
        prop_assert_eq!(DleqProof::from_bytes(&proof.to_bytes()).unwrap(), proof);
        let i = tamper.index(n);
        let moved = s.d[i] + s.c[i];
        s.set_d(i, moved);
        prop_assert!(!s.verify(&proof));
    }
}
