//! Unit tests of the OPRF: the typed batch API agrees with the encoding-level API
//! and with a per-element reference, and every misuse or bad peer value is refused
//! with its typed error. The RFC 9497 vectors are in `tests/oprf_vectors.rs`.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::error::{CloseCode, InvalidMessage, PeerMisbehaved};

const MODES: [Mode; 2] = [Mode::Oprf, Mode::Voprf];

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `n` distinct inputs of varied length, spanning several chunks when `n` is large.
fn owned_inputs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("user{i}@example.com{}", "x".repeat(i % 7)).into_bytes())
        .collect()
}

fn borrowed(inputs: &[Vec<u8>]) -> Vec<&[u8]> {
    inputs.iter().map(Vec::as_slice).collect()
}

fn invalid_argument<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::InvalidArgument(_)))
}

fn point_error(e: InvalidMessage) -> Error {
    Error::InvalidMessage(e)
}

/// The evaluated elements and proof for `batch` under `key`, with a fixed `r`.
fn evaluate(key: &OprfKey, batch: &ClientBatch) -> (Vec<[u8; 32]>, Option<DleqProof>) {
    key.evaluate_batch(batch.blinded(), &mut rng(99)).unwrap()
}

#[test]
fn mode_strings_follow_their_definitions() {
    for mode in MODES {
        let mut context = b"OPRFV1-".to_vec();
        context.push(mode.to_u8());
        context.push(b'-');
        context.extend_from_slice(IDENTIFIER);
        assert_eq!(mode.context_string(), context);
        assert_eq!(
            mode.hash_to_group_dst(),
            [b"HashToGroup-".as_slice(), &context].concat()
        );
        assert_eq!(
            mode.derive_key_pair_dst(),
            [b"DeriveKeyPair".as_slice(), &context].concat()
        );
        assert_eq!(Mode::try_from(mode.to_u8()), Ok(mode));
    }
    for bad in [2, 3, 255] {
        assert!(invalid_argument(Mode::try_from(bad)));
    }
}

#[test]
fn typed_api_agrees_with_encoding_api() {
    let owned = owned_inputs(2 * CHUNK + 5);
    let inputs = borrowed(&owned);
    for mode in MODES {
        let m = mode.to_u8();
        let seed = [7u8; 32];
        let key = OprfKey::derive(mode, &seed, b"info").unwrap();
        let (sk, pk) = derive_key_pair(m, &seed, b"info").unwrap();
        assert_eq!(key.secret_bytes(), sk);
        assert_eq!(key.public_key().to_bytes(), pk);

        let batch = ClientBatch::blind(mode, &inputs, &mut rng(1)).unwrap();
        let blinds: Vec<[u8; 32]> = batch.blinds().iter().map(Scalar::to_bytes).collect();
        for (i, input) in inputs.iter().enumerate() {
            assert_eq!(blind(m, input, &blinds[i]).unwrap(), batch.blinded()[i]);
        }

        let r = Scalar::from(4242u64);
        let (evaluated, proof) = key.evaluate_with(batch.blinded(), Some(&r)).unwrap();
        let (evaluated_enc, proof_enc) =
            blind_evaluate(m, &sk, batch.blinded(), &r.to_bytes()).unwrap();
        assert_eq!(evaluated, evaluated_enc);
        assert_eq!(proof.map(|p| p.to_bytes()), proof_enc);
        assert_eq!(proof.is_some(), mode == Mode::Voprf);

        let pk_arg = (mode == Mode::Voprf).then_some(&pk);
        let from_bytes = finalize(
            m,
            pk_arg,
            &inputs,
            &blinds,
            batch.blinded(),
            &evaluated,
            proof_enc.as_ref(),
        )
        .unwrap();
        let typed_pk = pk_arg.map(|_| key.public_key());
        let typed = batch
            .finalize(typed_pk, &evaluated, proof.as_ref())
            .unwrap();
        assert_eq!(typed, from_bytes);
        assert_eq!(key.evaluate_inputs(&inputs).unwrap(), typed);
    }
}

#[test]
fn outputs_equal_the_per_element_definition() {
    let owned = owned_inputs(CHUNK + 3);
    let inputs = borrowed(&owned);
    for mode in MODES {
        let key = OprfKey::random(mode, &mut rng(2));
        let batch = ClientBatch::blind(mode, &inputs, &mut rng(3)).unwrap();
        let (evaluated, proof) = evaluate(&key, &batch);
        let pk = (mode == Mode::Voprf).then_some(key.public_key());
        let outputs = batch.finalize(pk, &evaluated, proof.as_ref()).unwrap();
        for (input, output) in inputs.iter().zip(&outputs) {
            let k = Scalar::from_bytes_mod_order(key.secret_bytes());
            let y = k * hash_to_group(input, mode.hash_to_group_dst());
            assert_eq!(*output, finalize_hash(input, y.compress().as_bytes()));
        }
    }
    // The modes hash under different DSTs, so their outputs differ.
    let a = OprfKey::from_scalar_bytes(Mode::Oprf, &[9; 32]).unwrap();
    let b = OprfKey::from_scalar_bytes(Mode::Voprf, &[9; 32]).unwrap();
    assert_ne!(
        a.evaluate_inputs(&inputs[..1]).unwrap(),
        b.evaluate_inputs(&inputs[..1]).unwrap()
    );
}

#[test]
fn wrong_or_tampered_evaluations_fail_the_proof() {
    let owned = owned_inputs(40);
    let inputs = borrowed(&owned);
    let key = OprfKey::random(Mode::Voprf, &mut rng(4));
    let impostor = OprfKey::random(Mode::Voprf, &mut rng(5));
    let bad_proof = Err(Error::PeerMisbehaved(PeerMisbehaved::BadProof));

    // Evaluated under another key than the pinned one.
    let batch = ClientBatch::blind(Mode::Voprf, &inputs, &mut rng(6)).unwrap();
    let (evaluated, proof) = evaluate(&impostor, &batch);
    let result = batch.finalize(Some(key.public_key()), &evaluated, proof.as_ref());
    assert_eq!(result, bad_proof);
    assert_eq!(result.unwrap_err().close_code(), CloseCode::BAD_PROOF);

    // Two evaluations swapped.
    let batch = ClientBatch::blind(Mode::Voprf, &inputs, &mut rng(6)).unwrap();
    let (mut evaluated, proof) = evaluate(&key, &batch);
    evaluated.swap(0, 39);
    assert_eq!(
        batch.finalize(Some(key.public_key()), &evaluated, proof.as_ref()),
        bad_proof
    );

    // One evaluation replaced by a valid point.
    let batch = ClientBatch::blind(Mode::Voprf, &inputs, &mut rng(6)).unwrap();
    let (mut evaluated, proof) = evaluate(&key, &batch);
    evaluated[7] = RISTRETTO_BASEPOINT_POINT.compress().to_bytes();
    assert_eq!(
        batch.finalize(Some(key.public_key()), &evaluated, proof.as_ref()),
        bad_proof
    );

    // A proof for another batch.
    let batch = ClientBatch::blind(Mode::Voprf, &inputs, &mut rng(6)).unwrap();
    let other = ClientBatch::blind(Mode::Voprf, &inputs, &mut rng(7)).unwrap();
    let (evaluated, _) = evaluate(&key, &batch);
    let (_, other_proof) = evaluate(&key, &other);
    assert_eq!(
        batch.finalize(Some(key.public_key()), &evaluated, other_proof.as_ref()),
        bad_proof
    );
}

#[test]
fn finalize_refuses_mode_mismatches() {
    let inputs: [&[u8]; 1] = [b"alice"];
    let key = OprfKey::random(Mode::Voprf, &mut rng(8));
    let pk = key.public_key().to_bytes();
    let b = [[3u8; 32]];
    let c = [blind(1, inputs[0], &b[0]).unwrap()];
    let (e, proof) = blind_evaluate(1, &key.secret_bytes(), &c, &[5; 32]).unwrap();
    let proof = proof.unwrap();
    for (mode, pk, proof) in [
        (0, None, Some(&proof)),
        (0, Some(&pk), None),
        (0, Some(&pk), Some(&proof)),
        (1, None, None),
        (1, Some(&pk), None),
        (1, None, Some(&proof)),
        (2, Some(&pk), Some(&proof)),
        (2, None, None),
    ] {
        assert!(
            invalid_argument(finalize(mode, pk, &inputs, &b, &c, &e, proof)),
            "mode {mode}, pk {}, proof {}",
            pk.is_some(),
            proof.is_some()
        );
    }
    assert!(finalize(1, Some(&pk), &inputs, &b, &c, &e, Some(&proof)).is_ok());
    assert!(invalid_argument(derive_key_pair(2, &[0; 32], b"")));
    assert!(invalid_argument(blind(2, b"x", &b[0])));
    assert!(invalid_argument(blind_evaluate(2, &[1; 32], &c, &[1; 32])));

    // The typed API applies the same rule.
    let typed_proof = DleqProof::from_bytes(&proof).unwrap();
    let batch = ClientBatch::blind(Mode::Oprf, &inputs, &mut rng(9)).unwrap();
    assert!(invalid_argument(batch.finalize(
        None,
        &e,
        Some(&typed_proof)
    )));
    let batch = ClientBatch::blind(Mode::Voprf, &inputs, &mut rng(9)).unwrap();
    assert!(invalid_argument(batch.finalize(
        Some(key.public_key()),
        &e,
        None
    )));
}

#[test]
fn invalid_and_identity_points_are_refused() {
    let identity = [0u8; 32];
    // A negative field element: not a valid encoding.
    let mut invalid = [0u8; 32];
    invalid[0] = 1;
    let good = RISTRETTO_BASEPOINT_POINT.compress().to_bytes();
    let sk = [1u8; 32];
    for mode in [0, 1] {
        assert_eq!(
            blind_evaluate(mode, &sk, &[good, identity], &[1; 32]),
            Err(point_error(InvalidMessage::IdentityPoint))
        );
        // The first bad element decides the error, whatever the scheduling.
        let mut points = vec![good; 3 * CHUNK];
        points[2 * CHUNK] = identity;
        points[CHUNK + 1] = invalid;
        for _ in 0..10 {
            assert_eq!(
                blind_evaluate(mode, &sk, &points, &[1; 32]),
                Err(point_error(InvalidMessage::InvalidPoint))
            );
        }
        let key = OprfKey::from_scalar_bytes(Mode::try_from(mode).unwrap(), &sk).unwrap();
        assert_eq!(
            key.evaluate_batch(&[invalid], &mut rng(10)),
            Err(point_error(InvalidMessage::InvalidPoint))
        );
    }

    let inputs: [&[u8]; 2] = [b"a", b"b"];
    let blinds = [[2u8; 32], [3u8; 32]];
    let c = [
        blind(1, inputs[0], &blinds[0]).unwrap(),
        blind(1, inputs[1], &blinds[1]).unwrap(),
    ];
    let (e, proof) = blind_evaluate(1, &sk, &c, &[4; 32]).unwrap();
    let proof = proof.unwrap();
    let pk = OprfKey::from_scalar_bytes(Mode::Voprf, &sk)
        .unwrap()
        .public_key()
        .to_bytes();
    let run = |pk: &[u8; 32], c: &[[u8; 32]], e: &[[u8; 32]]| {
        finalize(1, Some(pk), &inputs, &blinds, c, e, Some(&proof))
    };
    assert!(run(&pk, &c, &e).is_ok());
    for (bad, error) in [
        (identity, InvalidMessage::IdentityPoint),
        (invalid, InvalidMessage::InvalidPoint),
    ] {
        assert_eq!(run(&bad, &c, &e), Err(point_error(error.clone())));
        assert_eq!(run(&pk, &[c[0], bad], &e), Err(point_error(error.clone())));
        assert_eq!(run(&pk, &c, &[bad, e[1]]), Err(point_error(error.clone())));
        assert_eq!(
            finalize(0, None, &inputs, &blinds, &c, &[e[0], bad], None),
            Err(point_error(error.clone()))
        );
        assert_eq!(PublicKey::from_bytes(&bad), Err(point_error(error)));
    }
    assert_eq!(
        PublicKey::from_point(RistrettoPoint::default()),
        Err(point_error(InvalidMessage::IdentityPoint))
    );
}

#[test]
fn scalars_must_be_canonical_and_non_zero() {
    let l: [u8; 32] = {
        let mut l = [0u8; 32];
        hex::decode_to_slice(
            "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010",
            &mut l,
        )
        .unwrap();
        l
    };
    let good = [1u8; 32];
    let c = [blind(0, b"x", &good).unwrap()];
    for bad in [[0u8; 32], l, [0xff; 32]] {
        for mode in [0, 1] {
            assert!(invalid_argument(blind(mode, b"x", &bad)));
            assert!(invalid_argument(blind_evaluate(mode, &bad, &c, &good)));
            assert!(invalid_argument(finalize(
                0,
                None,
                &[b"x"],
                &[bad],
                &c,
                &c,
                None
            )));
        }
        assert!(invalid_argument(blind_evaluate(1, &good, &c, &bad)));
        assert!(OprfKey::from_scalar_bytes(Mode::Oprf, &bad).is_err());
    }
    // Mode 0 makes no proof, so it ignores the proof randomness.
    assert!(blind_evaluate(0, &good, &c, &[0u8; 32]).is_ok());
}

#[test]
fn lengths_and_batch_sizes_are_checked() {
    let g = RISTRETTO_BASEPOINT_POINT.compress().to_bytes();
    let one = [1u8; 32];
    let x: &[u8] = b"x";
    // Lists of different lengths.
    assert!(invalid_argument(finalize(
        0,
        None,
        &[x, x],
        &[one],
        &[g],
        &[g],
        None
    )));
    assert!(invalid_argument(finalize(
        0,
        None,
        &[x],
        &[one],
        &[g, g],
        &[g],
        None
    )));
    assert!(invalid_argument(finalize(
        0,
        None,
        &[x],
        &[one],
        &[g],
        &[],
        None
    )));
    let batch = ClientBatch::blind(Mode::Oprf, &[x, x], &mut rng(11)).unwrap();
    assert!(invalid_argument(batch.finalize(None, &[g], None)));

    // Mode 1 batches hold 1..=MAX_BATCH elements; mode 0 has no limit.
    let pk = [0u8; 32];
    let proof = [0u8; 64];
    assert!(invalid_argument(blind_evaluate(1, &one, &[], &one)));
    assert!(invalid_argument(finalize(
        1,
        Some(&pk),
        &[],
        &[],
        &[],
        &[],
        Some(&proof)
    )));
    assert!(invalid_argument(ClientBatch::blind(
        Mode::Voprf,
        &[],
        &mut rng(12)
    )));
    let huge = vec![g; MAX_BATCH + 1];
    assert!(invalid_argument(blind_evaluate(1, &one, &huge, &one)));
    let inputs = vec![x; MAX_BATCH + 1];
    let blinds = vec![one; MAX_BATCH + 1];
    assert!(invalid_argument(finalize(
        1,
        Some(&pk),
        &inputs,
        &blinds,
        &huge,
        &huge,
        Some(&proof)
    )));
    assert!(invalid_argument(ClientBatch::blind(
        Mode::Voprf,
        &inputs,
        &mut rng(13)
    )));
    assert_eq!(blind_evaluate(0, &one, &[], &one), Ok((Vec::new(), None)));
    let empty = ClientBatch::blind(Mode::Oprf, &[], &mut rng(14)).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.finalize(None, &[], None), Ok(Vec::new()));
}

#[test]
fn inputs_are_at_most_65535_bytes() {
    let longest = vec![b'a'; MAX_INPUT_LEN];
    let too_long = vec![b'a'; MAX_INPUT_LEN + 1];
    let key = OprfKey::random(Mode::Voprf, &mut rng(15));
    assert!(blind(1, &longest, &[1; 32]).is_ok());
    assert!(key.evaluate_inputs(&[&longest]).is_ok());
    assert!(invalid_argument(blind(1, &too_long, &[1; 32])));
    assert!(invalid_argument(key.evaluate_inputs(&[b"ok", &too_long])));
    assert!(invalid_argument(ClientBatch::blind(
        Mode::Voprf,
        &[&too_long],
        &mut rng(16)
    )));
    let c = [[0u8; 32]];
    assert!(invalid_argument(finalize(
        0,
        None,
        &[&too_long],
        &[[1; 32]],
        &c,
        &c,
        None
    )));
}

#[test]
fn derive_is_deterministic_and_separates_info_and_mode() {
    let seed = [0xa3; 32];
    let key = |mode, info: &[u8]| OprfKey::derive(mode, &seed, info).unwrap().secret_bytes();
    assert_eq!(key(Mode::Voprf, b"a"), key(Mode::Voprf, b"a"));
    assert_ne!(key(Mode::Voprf, b"a"), key(Mode::Voprf, b"b"));
    assert_ne!(key(Mode::Oprf, b"a"), key(Mode::Voprf, b"a"));
    let long_info = vec![0u8; 65536];
    assert!(invalid_argument(OprfKey::derive(
        Mode::Oprf,
        &seed,
        &long_info
    )));
    assert!(OprfKey::derive(Mode::Oprf, &seed, &long_info[1..]).is_ok());
}

#[test]
fn random_blinds_are_non_zero_and_distinct() {
    let blinds = random_nonzero_scalars(&mut rng(17), 1000);
    assert_eq!(blinds.len(), 1000);
    assert!(blinds.iter().all(|b| *b != Scalar::ZERO));
    let mut bytes: Vec<[u8; 32]> = blinds.iter().map(Scalar::to_bytes).collect();
    bytes.sort_unstable();
    bytes.dedup();
    assert_eq!(bytes.len(), 1000);
    assert!(random_nonzero_scalars(&mut rng(18), 0).is_empty());
}

#[test]
fn secrets_are_not_printed() {
    let key = OprfKey::random(Mode::Voprf, &mut rng(19));
    let shown = format!("{key:?}");
    assert!(!shown.contains(&hex::encode(key.secret_bytes())), "{shown}");
    assert!(
        shown.contains(&hex::encode(key.public_key().as_bytes())),
        "{shown}"
    );
    let batch = ClientBatch::blind(Mode::Oprf, &[b"alice@example.com"], &mut rng(20)).unwrap();
    let shown = format!("{batch:?}");
    assert!(!shown.contains("alice"), "{shown}");
    assert!(
        !shown.contains(&hex::encode(batch.blinds()[0].to_bytes())),
        "{shown}"
    );
}
