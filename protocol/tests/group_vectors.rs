//! Published test vectors for `blindmatch_protocol::group`, read from the JSON
//! kept verbatim under `tests/vectors/`:
//!
//! - RFC 9380 Appendix K.3: `expand_message_xmd` with SHA-512;
//! - RFC 9496 Appendix A.1-A.3: ristretto255 encodings, invalid encodings, and
//!   element derivation from uniform bytes;
//! - RFC 9497 Appendix A.1.1 and A.1.2: the ristretto255-SHA512 OPRF and VOPRF,
//!   written here from our hash-to-group, `expand_message_xmd` and `BlindingKey`,
//!   so that the whole blind / evaluate / finalize path is pinned to the RFC.

use blindmatch_protocol::Error;
use blindmatch_protocol::error::InvalidMessage;
use blindmatch_protocol::group::{BlindingKey, decode_point, expand_message_xmd, hash_to_group};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use serde_json::Value;
use sha2::{Digest, Sha512};

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
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

// ---------------------------------------------------------------------------
// RFC 9380 K.3

#[test]
fn rfc9380_expand_message_xmd_sha512() {
    let doc = load("rfc9380-expand-message-xmd-sha512.json");
    let vectors = doc["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 10);
    for v in vectors {
        let dst = str_of(v, "DST").as_bytes();
        let msg = str_of(v, "msg").as_bytes();
        let len = v["len_in_bytes"].as_u64().expect("len") as usize;

        let mut dst_prime = dst.to_vec();
        dst_prime.push(dst.len() as u8);
        assert_eq!(hex::encode(&dst_prime), str_of(v, "DST_prime"));

        let out = expand_message_xmd(msg, dst, len).expect("in range");
        assert_eq!(
            hex::encode(out),
            str_of(v, "uniform_bytes"),
            "msg {:?}, len {len}",
            String::from_utf8_lossy(&msg[..msg.len().min(16)])
        );
    }
}

// ---------------------------------------------------------------------------
// RFC 9496 A.1-A.3

#[test]
fn rfc9496_multiples_of_the_generator() {
    let doc = load("rfc9496-ristretto255.json");
    let multiples = hex_list(&doc["multiples_of_generator"]["B"]);
    assert_eq!(multiples.len(), 16);
    for (k, enc) in multiples.iter().enumerate() {
        let bytes: [u8; 32] = unhex_n(enc);
        let expected = Scalar::from(k as u64) * RISTRETTO_BASEPOINT_POINT;
        assert_eq!(expected.compress().to_bytes(), bytes, "encode B[{k}]");
        if k == 0 {
            // The identity encodes as all zeros; it is a valid encoding, but a
            // peer never has a reason to send it, so decode_point refuses it.
            assert_eq!(bytes, [0u8; 32]);
            assert_eq!(
                CompressedRistretto(bytes).decompress(),
                Some(RistrettoPoint::identity())
            );
            assert_eq!(
                decode_point(&bytes),
                Err(Error::InvalidMessage(InvalidMessage::IdentityPoint))
            );
            continue;
        }
        let decoded = decode_point(&bytes).unwrap_or_else(|e| panic!("decode B[{k}]: {e}"));
        assert_eq!(decoded, expected, "decode B[{k}]");
        assert_eq!(decoded.compress().to_bytes(), bytes, "re-encode B[{k}]");

        // The blinding key's scalar multiplication and batch path agree too.
        let key = BlindingKey::from_scalar_bytes(Scalar::from(k as u64).to_bytes()).expect("k > 0");
        assert_eq!(key.multiply(&RISTRETTO_BASEPOINT_POINT), expected);
        let base = RISTRETTO_BASEPOINT_POINT.compress().to_bytes();
        assert_eq!(key.reblind(&[base]), Ok(vec![bytes]), "reblind B by {k}");
    }
}

#[test]
fn rfc9496_invalid_encodings_are_rejected() {
    let doc = load("rfc9496-ristretto255.json");
    let groups = doc["invalid_encodings"].as_array().expect("groups");
    let reasons: Vec<&str> = groups.iter().map(|g| str_of(g, "reason")).collect();
    assert_eq!(
        reasons,
        [
            "Non-canonical field encodings.",
            "Negative field elements.",
            "Non-square x^2.",
            "Negative x * y value.",
            "s = -1, which causes y = 0.",
        ]
    );
    let mut count = 0;
    let key = BlindingKey::from_scalar_bytes(Scalar::from(7u64).to_bytes()).expect("non-zero");
    for g in groups {
        for enc in hex_list(&g["encodings"]) {
            let bytes: [u8; 32] = unhex_n(enc);
            assert_eq!(
                decode_point(&bytes),
                Err(Error::InvalidMessage(InvalidMessage::InvalidPoint)),
                "{}: {enc}",
                str_of(g, "reason")
            );
            assert_eq!(
                key.reblind(&[bytes]),
                Err(Error::InvalidMessage(InvalidMessage::InvalidPoint))
            );
            count += 1;
        }
    }
    assert_eq!(count, 29);
}

#[test]
fn rfc9496_group_elements_from_uniform_bytes() {
    let doc = load("rfc9496-ristretto255.json");
    let groups = doc["from_uniform_bytes"]["groups"]
        .as_array()
        .expect("groups");
    let mut count = 0;
    for g in groups {
        let want = str_of(g, "O");
        for input in hex_list(&g["I"]) {
            let p = RistrettoPoint::from_uniform_bytes(&unhex_n::<64>(input));
            assert_eq!(hex::encode(p.compress().as_bytes()), want, "I = {input}");
            assert_eq!(decode_point(&unhex(want)), Ok(p));
            count += 1;
        }
    }
    assert_eq!(count, 11);
}

// ---------------------------------------------------------------------------
// RFC 9497 A.1.1 (OPRF, mode 0) and A.1.2 (VOPRF, mode 1), ristretto255-SHA512

/// `I2OSP(len(x), 2) || x`.
fn framed(x: &[u8]) -> Vec<u8> {
    let mut out = (x.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(x);
    out
}

struct Oprf {
    context: Vec<u8>,
}

impl Oprf {
    /// contextString = "OPRFV1-" || I2OSP(mode, 1) || "-" || identifier.
    fn new(mode: u8) -> Self {
        let mut context = b"OPRFV1-".to_vec();
        context.push(mode);
        context.extend_from_slice(b"-ristretto255-SHA512");
        Oprf { context }
    }

    fn dst(&self, prefix: &str) -> Vec<u8> {
        [prefix.as_bytes(), &self.context].concat()
    }

    /// HashToScalar: expand_message_xmd to 64 bytes, reduced modulo the order.
    fn hash_to_scalar(&self, msg: &[u8], dst: &[u8]) -> Scalar {
        let wide: [u8; 64] = expand_message_xmd(msg, dst, 64)
            .expect("64 bytes is in range")
            .try_into()
            .expect("64 bytes");
        Scalar::from_bytes_mod_order_wide(&wide)
    }

    fn hash_to_group(&self, input: &[u8]) -> RistrettoPoint {
        hash_to_group(input, &self.dst("HashToGroup-"))
    }

    /// DeriveKeyPair (RFC 9497 §3.2.1).
    fn derive_key_pair(&self, seed: &[u8], info: &[u8]) -> Scalar {
        let derive_input = [seed, &framed(info)].concat();
        let dst = self.dst("DeriveKeyPair");
        for counter in 0..=255u8 {
            let sk = self.hash_to_scalar(&[derive_input.as_slice(), &[counter]].concat(), &dst);
            if sk != Scalar::ZERO {
                return sk;
            }
        }
        panic!("DeriveKeyPairError");
    }

    /// GenerateProof (RFC 9497 §2.2.1) with ComputeCompositesFast, A = G, B = k*G.
    fn generate_proof(
        &self,
        k: &Scalar,
        c: &[RistrettoPoint],
        d: &[RistrettoPoint],
        r: &Scalar,
    ) -> Vec<u8> {
        let ser = |p: &RistrettoPoint| p.compress().to_bytes();
        let bm = ser(&(k * RISTRETTO_BASEPOINT_POINT));
        let seed = Sha512::digest([framed(&bm), framed(&self.dst("Seed-"))].concat());
        let hash_to_scalar_dst = self.dst("HashToScalar-");
        let mut m = RistrettoPoint::identity();
        for (i, (ci, di)) in c.iter().zip(d).enumerate() {
            let transcript = [
                framed(&seed),
                (i as u16).to_be_bytes().to_vec(),
                framed(&ser(ci)),
                framed(&ser(di)),
                b"Composite".to_vec(),
            ]
            .concat();
            m += self.hash_to_scalar(&transcript, &hash_to_scalar_dst) * ci;
        }
        let z = k * m;
        let t2 = r * RISTRETTO_BASEPOINT_POINT;
        let t3 = r * m;
        let transcript = [
            framed(&bm),
            framed(&ser(&m)),
            framed(&ser(&z)),
            framed(&ser(&t2)),
            framed(&ser(&t3)),
            b"Challenge".to_vec(),
        ]
        .concat();
        let challenge = self.hash_to_scalar(&transcript, &hash_to_scalar_dst);
        let s = r - challenge * k;
        [challenge.to_bytes(), s.to_bytes()].concat()
    }
}

fn check_oprf_mode(section: &str, mode: u8) {
    let doc = load("rfc9497-ristretto255-sha512.json");
    let suite = &doc[section];
    assert_eq!(suite["mode"].as_u64(), Some(u64::from(mode)));
    let oprf = Oprf::new(mode);
    assert_eq!(
        hex::encode(&oprf.context),
        str_of(suite, "context_string_hex")
    );
    assert_eq!(
        hex::encode(oprf.dst("HashToGroup-")),
        str_of(suite, "hash_to_group_dst_hex")
    );

    // DeriveKeyPair -> skSm (and pkSm in VOPRF mode).
    let sk = oprf.derive_key_pair(
        &unhex(str_of(suite, "Seed")),
        &unhex(str_of(suite, "KeyInfo")),
    );
    assert_eq!(hex::encode(sk.to_bytes()), str_of(suite, "skSm"));
    if let Some(pk) = suite["pkSm"].as_str() {
        assert_eq!(
            hex::encode((sk * RISTRETTO_BASEPOINT_POINT).compress().as_bytes()),
            pk
        );
    }
    let server_key = BlindingKey::from_scalar_bytes(unhex_n(str_of(suite, "skSm"))).expect("skSm");

    let vectors = suite["vectors"].as_array().expect("vectors");
    assert!(!vectors.is_empty());
    for v in vectors {
        let name = str_of(v, "name");
        let inputs = hex_list(&v["Input"]);
        let blinds = hex_list(&v["Blind"]);
        let want_blinded = hex_list(&v["BlindedElement"]);
        let want_evaluated = hex_list(&v["EvaluationElement"]);
        let want_outputs = hex_list(&v["Output"]);
        let n = v["batch_size"].as_u64().expect("batch_size") as usize;
        for list in [
            &inputs,
            &blinds,
            &want_blinded,
            &want_evaluated,
            &want_outputs,
        ] {
            assert_eq!(list.len(), n, "{name}");
        }

        // Blind: blindedElement = blind * HashToGroup(input).
        let mut blinded = Vec::new();
        for (input, blind) in inputs.iter().zip(&blinds) {
            let key = BlindingKey::from_scalar_bytes(unhex_n(blind)).expect("blind");
            blinded.push(
                key.multiply(&oprf.hash_to_group(&unhex(input)))
                    .compress()
                    .to_bytes(),
            );
        }
        let blinded_hex: Vec<String> = blinded.iter().map(hex::encode).collect();
        assert_eq!(blinded_hex, want_blinded, "{name}: BlindedElement");

        // BlindEvaluate: evaluationElement = skS * blindedElement, as a batch.
        let evaluated = server_key
            .reblind(&blinded)
            .expect("valid blinded elements");
        let evaluated_hex: Vec<String> = evaluated.iter().map(hex::encode).collect();
        assert_eq!(evaluated_hex, want_evaluated, "{name}: EvaluationElement");

        // Finalize: Hash(len || input || len || blind^-1 * evaluated || "Finalize").
        for (j, input) in inputs.iter().enumerate() {
            let blind = Scalar::from_canonical_bytes(unhex_n(blinds[j])).expect("canonical blind");
            let n_point = blind.invert() * decode_point(&evaluated[j]).expect("evaluated");
            let transcript = [
                framed(&unhex(input)),
                framed(n_point.compress().as_bytes()),
                b"Finalize".to_vec(),
            ]
            .concat();
            assert_eq!(
                hex::encode(Sha512::digest(&transcript)),
                want_outputs[j],
                "{name}: Output[{j}]"
            );
        }

        // VOPRF: the proof exercises HashToScalar under "HashToScalar-" || contextString.
        if let Some(proof) = v["Proof"].as_str() {
            let r = Scalar::from_canonical_bytes(unhex_n(str_of(v, "ProofRandomScalar")))
                .expect("canonical r");
            let c: Vec<_> = blinded
                .iter()
                .map(|b| decode_point(b).expect("C"))
                .collect();
            let d: Vec<_> = evaluated
                .iter()
                .map(|e| decode_point(e).expect("D"))
                .collect();
            assert_eq!(
                hex::encode(oprf.generate_proof(&sk, &c, &d, &r)),
                proof,
                "{name}: Proof"
            );
        }
    }
}

#[test]
fn rfc9497_oprf_mode0_ristretto255_sha512() {
    check_oprf_mode("oprf_mode0", 0);
}

#[test]
fn rfc9497_voprf_mode1_ristretto255_sha512() {
    check_oprf_mode("voprf_mode1", 1);
}
