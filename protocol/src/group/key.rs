//! The secret blinding key `k` and the batch operations that apply it.
//!
//! Invariants: a [`BlindingKey`] is never zero, cannot be cloned, printed,
//! serialised or read back out, and is wiped when dropped. The batch operations
//! return exactly `compress(k * P)` for each input, in input order; they reach it
//! as `double_and_compress(k/2 * P)`, which shares one field inversion per chunk
//! instead of paying one per point.

use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use rayon::prelude::*;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{decode_point_array, hash_identifier};
use crate::Error;

/// Points per unit of parallel work. Large enough that the one inversion of a
/// batched compression is negligible per point, small enough to spread a
/// few-thousand-element batch over every core.
const CHUNK: usize = 256;

/// A party's secret blinding scalar `k` for one session.
///
/// Not `Clone`, not `Serialize`, and its `Debug` prints nothing of the key. The
/// scalar (and `k/2`, kept for batched compression) is zeroized on drop. Copies
/// the compiler makes on the stack during arithmetic are outside our control;
/// this is best effort, as in every Rust crypto library.
pub struct BlindingKey {
    k: Scalar,
    /// `k * 2^-1 mod l`, so that `double_and_compress(half * P) == compress(k * P)`.
    half: Scalar,
}

impl BlindingKey {
    /// Draws a fresh key uniformly from the non-zero scalars.
    pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        loop {
            // Zero has probability 2^-252; the loop is for correctness, not
            // because it is ever expected to run twice.
            if let Some(key) = Self::from_scalar(Scalar::random(rng)) {
                return key;
            }
        }
    }

    /// A key from its canonical little-endian encoding, for RFC test vectors and
    /// deterministic tests. Production code uses [`BlindingKey::random`].
    ///
    /// Returns `None` if `bytes` is not a canonical scalar (not below the group
    /// order) or is zero.
    pub fn from_scalar_bytes(bytes: [u8; 32]) -> Option<Self> {
        let mut bytes = bytes;
        let k: Option<Scalar> = Scalar::from_canonical_bytes(bytes).into();
        bytes.zeroize();
        Self::from_scalar(k?)
    }

    fn from_scalar(k: Scalar) -> Option<Self> {
        if bool::from(k.ct_eq(&Scalar::ZERO)) {
            return None;
        }
        Some(Self {
            half: k.div_by_2(),
            k,
        })
    }

    /// `k * point`, for one point (tests and vectors; batches use the methods below).
    pub fn multiply(&self, point: &RistrettoPoint) -> RistrettoPoint {
        self.k * point
    }

    /// The public commitment `K = k·G` a session sends so that the peer can check every
    /// re-blinding against it, as a point and its encoding.
    pub fn commitment(&self) -> (RistrettoPoint, [u8; 32]) {
        let point = RistrettoPoint::mul_base(&self.k);
        (point, point.compress().to_bytes())
    }

    /// The scalar, for proofs made inside this crate. Never leaves it.
    pub(crate) fn scalar(&self) -> &Scalar {
        &self.k
    }

    /// [`BlindingKey::blind_identifiers`] that also returns, per item, the point
    /// `k/2 · H(x)` whose double is the blinded element: what a side keeps of a round it
    /// sent until the peer's proof over its answers is checked.
    pub fn blind_identifiers_keeping(
        &self,
        items: &[(u8, &[u8])],
    ) -> (Vec<[u8; 32]>, Vec<RistrettoPoint>) {
        let mut out = vec![[0u8; 32]; items.len()];
        let mut halves = vec![RistrettoPoint::default(); items.len()];
        out.par_chunks_mut(CHUNK)
            .zip(halves.par_chunks_mut(CHUNK))
            .zip(items.par_chunks(CHUNK))
            .for_each(|((out, halves), items)| {
                for (half, &(kind, value)) in halves.iter_mut().zip(items) {
                    *half = self.half * hash_identifier(kind, value);
                }
                write_doubled(halves, out);
            });
        (out, halves)
    }

    /// [`BlindingKey::blind_identifiers`] for identifiers already hashed to the group
    /// (`H(x)` from [`hash_identifier`]): the encoding of `k * P` for each, in input order.
    /// Several sessions over one set hash it once and blind it once each.
    pub fn blind_hashed(&self, hashed: &[RistrettoPoint]) -> Vec<[u8; 32]> {
        let mut out = vec![[0u8; 32]; hashed.len()];
        out.par_chunks_mut(CHUNK)
            .zip(hashed.par_chunks(CHUNK))
            .for_each(|(out, points)| {
                let halves: Vec<RistrettoPoint> = points.iter().map(|p| self.half * p).collect();
                write_doubled(&halves, out);
            });
        out
    }

    /// [`BlindingKey::blind_identifiers_keeping`] for identifiers already hashed to the
    /// group: the encodings of `k * P`, and the points `k/2 * P`.
    pub fn blind_hashed_keeping(
        &self,
        hashed: &[RistrettoPoint],
    ) -> (Vec<[u8; 32]>, Vec<RistrettoPoint>) {
        let mut out = vec![[0u8; 32]; hashed.len()];
        let mut halves = vec![RistrettoPoint::default(); hashed.len()];
        out.par_chunks_mut(CHUNK)
            .zip(halves.par_chunks_mut(CHUNK))
            .zip(hashed.par_chunks(CHUNK))
            .for_each(|((out, halves), points)| {
                for (half, point) in halves.iter_mut().zip(points) {
                    *half = self.half * point;
                }
                write_doubled(halves, out);
            });
        (out, halves)
    }

    /// Re-blinds the peer's blinded points as [`BlindingKey::reblind`] does, and also
    /// returns the decoded points, which a proof over the answers needs.
    ///
    /// # Errors
    ///
    /// As [`BlindingKey::reblind`].
    pub fn reblind_keeping(
        &self,
        points: &[[u8; 32]],
    ) -> Result<(Vec<[u8; 32]>, Vec<RistrettoPoint>), Error> {
        let decoded = decode_points(points)?;
        let mut out = vec![[0u8; 32]; points.len()];
        out.par_chunks_mut(CHUNK)
            .zip(decoded.par_chunks(CHUNK))
            .for_each(|(out, points)| {
                let halves: Vec<RistrettoPoint> = points.iter().map(|p| self.half * p).collect();
                write_doubled(&halves, out);
            });
        Ok((out, decoded))
    }

    /// Blinds identifiers: for each `(kind_code, normalised_value)`, the encoding
    /// of `k * hash_identifier(kind_code, normalised_value)`, in input order.
    ///
    /// Runs on all cores (rayon), in chunks, with batched compression.
    pub fn blind_identifiers(&self, items: &[(u8, &[u8])]) -> Vec<[u8; 32]> {
        let mut out = vec![[0u8; 32]; items.len()];
        out.par_chunks_mut(CHUNK)
            .zip(items.par_chunks(CHUNK))
            .for_each(|(out, items)| {
                let halves: Vec<RistrettoPoint> = items
                    .iter()
                    .map(|&(kind, value)| self.half * hash_identifier(kind, value))
                    .collect();
                write_doubled(&halves, out);
            });
        out
    }

    /// Re-blinds the peer's blinded points: for each encoding `P`, the encoding of
    /// `k * P`, in input order.
    ///
    /// Runs on all cores (rayon), in chunks, with batched compression.
    ///
    /// # Errors
    ///
    /// The error [`decode_point`](super::decode_point) gives for the first (lowest
    /// index) point that is not a canonical encoding of a non-identity element:
    /// `InvalidMessage::InvalidPoint` or `InvalidMessage::IdentityPoint`.
    pub fn reblind(&self, points: &[[u8; 32]]) -> Result<Vec<[u8; 32]>, Error> {
        let mut out = vec![[0u8; 32]; points.len()];
        let all_valid = out
            .par_chunks_mut(CHUNK)
            .zip(points.par_chunks(CHUNK))
            .try_for_each(|(out, points)| {
                let halves = points
                    .iter()
                    .map(|bytes| decode_point_array(bytes).map(|p| self.half * p))
                    .collect::<Result<Vec<RistrettoPoint>, Error>>()?;
                write_doubled(&halves, out);
                Ok::<(), Error>(())
            });
        if all_valid.is_err() {
            // Chunks fail in whatever order the threads run; report the first bad
            // point so the error does not depend on scheduling.
            if let Some(first) = points
                .par_iter()
                .find_map_first(|bytes| decode_point_array(bytes).err())
            {
                return Err(first);
            }
            // Unreachable: a chunk failed, so some point fails to decode. Keep the
            // chunk's error rather than assert.
            return all_valid.map(|()| out);
        }
        Ok(out)
    }
}

/// Decodes peer points strictly, in parallel; the error is that of the first bad point.
///
/// # Errors
///
/// As [`decode_point`](super::decode_point), for the lowest-index bad point.
pub fn decode_points(points: &[[u8; 32]]) -> Result<Vec<RistrettoPoint>, Error> {
    let mut out = vec![RistrettoPoint::default(); points.len()];
    let all_valid = out
        .par_chunks_mut(CHUNK)
        .zip(points.par_chunks(CHUNK))
        .try_for_each(|(out, points)| {
            for (o, bytes) in out.iter_mut().zip(points) {
                *o = decode_point_array(bytes)?;
            }
            Ok::<(), Error>(())
        });
    match all_valid {
        Ok(()) => Ok(out),
        Err(err) => Err(points
            .par_iter()
            .find_map_first(|bytes| decode_point_array(bytes).err())
            .unwrap_or(err)),
    }
}

/// Writes `compress(2 * P)` for each `P` into `out` (same length), sharing one
/// inversion across the slice.
fn write_doubled(points: &[RistrettoPoint], out: &mut [[u8; 32]]) {
    debug_assert_eq!(points.len(), out.len());
    for (o, c) in out
        .iter_mut()
        .zip(RistrettoPoint::double_and_compress_batch(points))
    {
        *o = c.to_bytes();
    }
}

impl Drop for BlindingKey {
    fn drop(&mut self) {
        self.k.zeroize();
        self.half.zeroize();
    }
}

impl ZeroizeOnDrop for BlindingKey {}

impl fmt::Debug for BlindingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlindingKey(<redacted>)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::error::InvalidMessage;
    use crate::group::{KIND_CODE_EMAIL, KIND_CODE_PHONE};

    fn rng() -> StdRng {
        StdRng::seed_from_u64(0x5eed)
    }

    /// Values across several chunks, including a short last chunk.
    fn items(n: usize) -> Vec<(u8, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    (i % 4) as u8 + 1,
                    format!("user{i}@example.com").into_bytes(),
                )
            })
            .collect()
    }

    fn borrowed(items: &[(u8, Vec<u8>)]) -> Vec<(u8, &[u8])> {
        items.iter().map(|(k, v)| (*k, v.as_slice())).collect()
    }

    #[test]
    fn blind_identifiers_equals_per_element_k_times_h() {
        let key = BlindingKey::random(&mut rng());
        let owned = items(2 * CHUNK + 7);
        let blinded = key.blind_identifiers(&borrowed(&owned));
        assert_eq!(blinded.len(), owned.len());
        for ((kind, value), got) in owned.iter().zip(&blinded) {
            let want = key.multiply(&hash_identifier(*kind, value)).compress();
            assert_eq!(*got, want.to_bytes());
        }
    }

    #[test]
    fn blinding_hashed_points_equals_blinding_identifiers() {
        let key = BlindingKey::random(&mut rng());
        let owned = items(2 * CHUNK + 7);
        let hashed: Vec<RistrettoPoint> = owned
            .iter()
            .map(|(kind, value)| hash_identifier(*kind, value))
            .collect();
        let from_identifiers = key.blind_identifiers_keeping(&borrowed(&owned));
        assert_eq!(key.blind_hashed(&hashed), from_identifiers.0);
        assert_eq!(key.blind_hashed_keeping(&hashed), from_identifiers);
    }

    #[test]
    fn reblind_commutes() {
        let mut rng = rng();
        let a = BlindingKey::random(&mut rng);
        let b = BlindingKey::random(&mut rng);
        let owned = items(CHUNK + 3);
        let xs = borrowed(&owned);
        let ab = b.reblind(&a.blind_identifiers(&xs)).unwrap();
        let ba = a.reblind(&b.blind_identifiers(&xs)).unwrap();
        assert_eq!(ab, ba);
        // And it is not the identity map.
        assert_ne!(ab, a.blind_identifiers(&xs));
    }

    #[test]
    fn reblind_equals_per_element_multiply() {
        let key = BlindingKey::random(&mut rng());
        let points: Vec<[u8; 32]> = (1..=300u64)
            .map(|i| {
                (Scalar::from(i) * RISTRETTO_BASEPOINT_POINT)
                    .compress()
                    .to_bytes()
            })
            .collect();
        let got = key.reblind(&points).unwrap();
        for (p, g) in points.iter().zip(&got) {
            let want = key.multiply(&decode_point_array(p).unwrap()).compress();
            assert_eq!(*g, want.to_bytes());
        }
    }

    #[test]
    fn reblind_reports_the_first_bad_point() {
        let key = BlindingKey::random(&mut rng());
        let good = RISTRETTO_BASEPOINT_POINT.compress().to_bytes();
        let mut points = vec![good; 3 * CHUNK];
        // Negative field element: not a valid encoding.
        let mut invalid = [0u8; 32];
        invalid[0] = 1;
        points[2 * CHUNK + 5] = [0u8; 32];
        points[CHUNK + 1] = invalid;
        for _ in 0..20 {
            assert_eq!(
                key.reblind(&points),
                Err(Error::InvalidMessage(InvalidMessage::InvalidPoint))
            );
        }
        points[CHUNK + 1] = good;
        assert_eq!(
            key.reblind(&points),
            Err(Error::InvalidMessage(InvalidMessage::IdentityPoint))
        );
    }

    #[test]
    fn empty_batches() {
        let key = BlindingKey::random(&mut rng());
        assert!(key.blind_identifiers(&[]).is_empty());
        assert_eq!(key.reblind(&[]), Ok(Vec::new()));
    }

    #[test]
    fn kinds_are_separated_in_the_blinded_output() {
        let key = BlindingKey::random(&mut rng());
        let v: &[u8] = b"+8613800138000";
        let out = key.blind_identifiers(&[(KIND_CODE_EMAIL, v), (KIND_CODE_PHONE, v)]);
        assert_ne!(out[0], out[1]);
    }

    #[test]
    fn from_scalar_bytes_accepts_only_canonical_non_zero() {
        assert!(BlindingKey::from_scalar_bytes([0u8; 32]).is_none());
        // The group order l is not canonical; l - 1 is.
        let mut l = [0u8; 32];
        hex::decode_to_slice(
            "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010",
            &mut l,
        )
        .unwrap();
        assert_eq!(Scalar::from_bytes_mod_order(l), Scalar::ZERO);
        assert!(BlindingKey::from_scalar_bytes(l).is_none());
        assert!(BlindingKey::from_scalar_bytes([0xff; 32]).is_none());
        let l_minus_1 = (-Scalar::ONE).to_bytes();
        let key = BlindingKey::from_scalar_bytes(l_minus_1).unwrap();
        assert_eq!(
            key.multiply(&RISTRETTO_BASEPOINT_POINT),
            -RISTRETTO_BASEPOINT_POINT
        );
    }

    #[test]
    fn half_doubles_back_to_k() {
        let key = BlindingKey::random(&mut rng());
        assert_eq!(key.half + key.half, key.k);
    }

    #[test]
    fn random_keys_differ_and_debug_redacts() {
        let mut rng = rng();
        let a = BlindingKey::random(&mut rng);
        let b = BlindingKey::random(&mut rng);
        assert_ne!(a.k, b.k);
        let shown = format!("{a:?}");
        assert_eq!(shown, "BlindingKey(<redacted>)");
        assert!(!shown.contains(&hex::encode(a.k.to_bytes())));
    }
}
