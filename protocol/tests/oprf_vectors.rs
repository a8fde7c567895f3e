//! RFC 9497 Appendix A.1.1 (OPRF, mode 0) and A.1.2 (VOPRF, mode 1) test vectors for
//! the ristretto255-SHA512 suite, read from `tests/vectors/rfc9497-ristretto255-sha512.json`
//! (kept verbatim) and run through the public encoding-level functions of
//! `blindmatch_protocol::oprf` — `derive_key_pair`, `blind`, `blind_evaluate`,
//! `finalize` — and, for the server-side `Evaluate`, `OprfKey::evaluate_inputs`.

use blindmatch_protocol::group::decode_point;
use blindmatch_protocol::oprf::{
    self, DleqProof, Mode, OprfKey, PublicKey, blind, blind_evaluate, derive_key_pair, finalize,
};
use serde_json::Value;

fn load() -> Value {
    let path = format!(
        "{}/tests/vectors/rfc9497-ristretto255-sha512.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {key}"))
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

fn unhex_n<const N: usize>(s: &str) -> [u8; N] {
    unhex(s)
        .try_into()
        .unwrap_or_else(|v: Vec<u8>| panic!("{s:?} is {} bytes, not {N}", v.len()))
}

fn hex_list(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("hex string"))
        .collect()
}

fn hexes<const N: usize>(items: &[[u8; N]]) -> Vec<String> {
    items.iter().map(hex::encode).collect()
}

/// Runs every vector of one mode; returns how many it ran.
fn check_mode(section: &str, mode: u8) -> usize {
    let doc = load();
    let suite = &doc[section];
    assert_eq!(suite["mode"].as_u64(), Some(u64::from(mode)));
    assert_eq!(str_of(suite, "identifier").as_bytes(), oprf::IDENTIFIER);
    let typed_mode = Mode::try_from(mode).expect("mode 0 or 1");
    assert_eq!(
        hex::encode(typed_mode.context_string()),
        str_of(suite, "context_string_hex")
    );
    assert_eq!(
        hex::encode(typed_mode.hash_to_group_dst()),
        str_of(suite, "hash_to_group_dst_hex")
    );

    // DeriveKeyPair -> skSm (and pkSm in VOPRF mode).
    let seed: [u8; 32] = unhex_n(str_of(suite, "Seed"));
    let info = unhex(str_of(suite, "KeyInfo"));
    let (sk, pk) = derive_key_pair(mode, &seed, &info).expect("DeriveKeyPair");
    assert_eq!(hex::encode(sk), str_of(suite, "skSm"));
    if let Some(want) = suite["pkSm"].as_str() {
        assert_eq!(hex::encode(pk), want);
    }
    let key = OprfKey::derive(typed_mode, &seed, &info).expect("DeriveKeyPair");
    assert_eq!(key.public_key().to_bytes(), pk);

    let vectors = suite["vectors"].as_array().expect("vectors");
    for v in vectors {
        let name = str_of(v, "name");
        let inputs: Vec<Vec<u8>> = hex_list(&v["Input"]).into_iter().map(unhex).collect();
        let inputs: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
        let blinds: Vec<[u8; 32]> = hex_list(&v["Blind"]).into_iter().map(unhex_n).collect();
        let n = v["batch_size"].as_u64().expect("batch_size") as usize;
        assert_eq!(inputs.len(), n, "{name}");
        assert_eq!(blinds.len(), n, "{name}");

        // Blind.
        let blinded: Vec<[u8; 32]> = inputs
            .iter()
            .zip(&blinds)
            .map(|(input, b)| blind(mode, input, b).expect("Blind"))
            .collect();
        assert_eq!(
            hexes(&blinded),
            hex_list(&v["BlindedElement"]),
            "{name}: BlindedElement"
        );

        // BlindEvaluate, batched, with the vector's proof randomness in mode 1.
        let r: [u8; 32] = v["ProofRandomScalar"].as_str().map_or([0; 32], unhex_n);
        let (evaluated, proof) = blind_evaluate(mode, &sk, &blinded, &r).expect("BlindEvaluate");
        assert_eq!(
            hexes(&evaluated),
            hex_list(&v["EvaluationElement"]),
            "{name}: EvaluationElement"
        );
        assert_eq!(
            proof.map(hex::encode).as_deref(),
            v["Proof"].as_str(),
            "{name}: Proof"
        );

        // Finalize (verifying the proof in mode 1).
        let pk_arg = (mode == 1).then_some(&pk);
        let outputs = finalize(
            mode,
            pk_arg,
            &inputs,
            &blinds,
            &blinded,
            &evaluated,
            proof.as_ref(),
        )
        .expect("Finalize");
        let want_outputs = hex_list(&v["Output"]);
        assert_eq!(hexes(&outputs), want_outputs, "{name}: Output");

        // The server-side Evaluate gives the same outputs without blinding.
        let direct = key.evaluate_inputs(&inputs).expect("Evaluate");
        assert_eq!(hexes(&direct), want_outputs, "{name}: Evaluate");

        // The RFC's proof verifies through the typed API too.
        if let Some(proof) = proof {
            let proof = DleqProof::from_bytes(&proof).expect("canonical proof");
            assert_eq!(proof.to_bytes().to_vec(), unhex(str_of(v, "Proof")));
            let pk = PublicKey::from_bytes(&pk).expect("pkSm");
            let c: Vec<_> = blinded
                .iter()
                .map(|b| decode_point(b).expect("C"))
                .collect();
            let d: Vec<_> = evaluated
                .iter()
                .map(|e| decode_point(e).expect("D"))
                .collect();
            assert!(oprf::dleq::verify_proof(
                typed_mode.context_string(),
                &pk,
                &c,
                &blinded,
                &d,
                &evaluated,
                &proof
            ));
        }
    }
    vectors.len()
}

#[test]
fn rfc9497_oprf_mode0_ristretto255_sha512() {
    assert_eq!(check_mode("oprf_mode0", 0), 2);
}

#[test]
fn rfc9497_voprf_mode1_ristretto255_sha512() {
    assert_eq!(check_mode("voprf_mode1", 1), 3);
}
