//! Published test vectors for `blindmatch_protocol::group`, read from the JSON
//! kept verbatim under `tests/vectors/`:
//!
//! - RFC 9380 Appendix K.3: `expand_message_xmd` with SHA-512;
//! - RFC 9496 Appendix A.1-A.3: ristretto255 encodings, invalid encodings, and
//!   element derivation from uniform bytes.
//!
//! The RFC 9497 OPRF vectors, which exercise `hash_to_group` and
//! `expand_message_xmd` under the RFC's DSTs, are in `oprf_vectors.rs`.

use blindmatch_protocol::Error;
use blindmatch_protocol::error::InvalidMessage;
use blindmatch_protocol::group::{BlindingKey, decode_point, expand_message_xmd};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use serde_json::Value;

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
