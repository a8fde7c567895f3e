//! Batched discrete-log-equality (DLEQ) proofs over ristretto255, as RFC 9497 §2.2
//! specifies them, for any context string.
//!
//! A proof shows that one secret `k` links `pk = k · G` and every pair `(Cᵢ, Dᵢ)` as
//! `Dᵢ = k · Cᵢ`, without revealing `k`. The VOPRF ([`super`]) uses the RFC's
//! `contextString`; a PSI session proves its re-blinding under its own context, so
//! proofs of one use can never be replayed as proofs of another.
//!
//! With `context` as the caller's context string:
//!
//! - `seed = SHA-512(I2OSP(32, 2) || encode(pk) || I2OSP(len(seedDST), 2) || seedDST)`,
//!   `seedDST = "Seed-" || context`;
//! - `dᵢ = HashToScalar(I2OSP(64, 2) || seed || I2OSP(i, 2) || I2OSP(32, 2) ||
//!   encode(Cᵢ) || I2OSP(32, 2) || encode(Dᵢ) || "Composite")`, where `HashToScalar`
//!   is `expand_message_xmd` (SHA-512) with DST `"HashToScalar-" || context` to 64
//!   bytes, reduced modulo `l`;
//! - `M = Σ dᵢ · Cᵢ`; the verifier computes `Z = Σ dᵢ · Dᵢ`, the prover `Z = k · M`
//!   (`ComputeCompositesFast`);
//! - the prover draws `r`, sets `t2 = r · G`, `t3 = r · M`; the challenge is
//!   `c = HashToScalar(framed encode(pk), encode(M), encode(Z), encode(t2),
//!   encode(t3) || "Challenge")`, each encoding framed by `I2OSP(32, 2)`; and
//!   `s = r − c · k`. The proof is `c || s`, each scalar 32 bytes little-endian;
//! - the verifier recomputes `t2 = s · G + c · pk`, `t3 = s · M + c · Z` and accepts
//!   iff the challenge it hashes equals `c`.
//!
//! Invariants:
//! - Callers pass every point together with its encoding (they already hold both),
//!   and the proof code never recompresses them: the encodings must be those of the
//!   points.
//! - A batch holds 1 to [`MAX_BATCH`] pairs, and `C` and `D` have the same length.
//! - Only public data goes through variable-time code (`vartime_` functions and the
//!   verifier); the prover's uses of `k` and `r` are constant time.
//! - The composites are multiscalar multiplications, computed in parallel (rayon)
//!   over one chunk per thread, with the `dᵢ` hashed in the same chunks.

use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, VartimeMultiscalarMul};
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use super::{MAX_BATCH, PublicKey, hash_to_scalar};
use crate::Error;
use crate::error::PeerMisbehaved;

/// Length of an encoded proof: two 32-byte scalars, `c || s`.
pub const PROOF_LEN: usize = 64;

/// Fewest pairs per parallel chunk of a composite: below this, splitting costs more
/// than it saves (a multiscalar multiplication is cheaper per point the larger it is).
const MIN_MSM_CHUNK: usize = 256;

/// `I2OSP(64, 2) || seed || I2OSP(i, 2) || I2OSP(32, 2) || C || I2OSP(32, 2) || D ||
/// "Composite"`.
const COMPOSITE_LEN: usize = 2 + 64 + 2 + 2 + 32 + 2 + 32 + 9;

/// Five framed encodings and `"Challenge"`.
const CHALLENGE_LEN: usize = 5 * (2 + 32) + 9;

/// A batched DLEQ proof `(c, s)`.
///
/// Public data: it reveals nothing about the key, so it is `Copy` and printable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DleqProof {
    c: Scalar,
    s: Scalar,
}

impl DleqProof {
    /// The encoding `c || s`, each scalar 32 bytes little-endian.
    pub fn to_bytes(&self) -> [u8; PROOF_LEN] {
        let mut out = [0u8; PROOF_LEN];
        let (c, s) = out.split_at_mut(32);
        c.copy_from_slice(self.c.as_bytes());
        s.copy_from_slice(self.s.as_bytes());
        out
    }

    /// Decodes `c || s` (RFC 9497 `DeserializeScalar` twice).
    ///
    /// # Errors
    ///
    /// `PeerMisbehaved::BadProof` if either scalar is not canonical (not below the
    /// group order).
    pub fn from_bytes(bytes: &[u8; PROOF_LEN]) -> Result<Self, Error> {
        let (c, s) = bytes.split_at(32);
        let canonical = |half: &[u8]| -> Option<Scalar> {
            let half: [u8; 32] = half.try_into().ok()?;
            Scalar::from_canonical_bytes(half).into()
        };
        match (canonical(c), canonical(s)) {
            (Some(c), Some(s)) => Ok(Self { c, s }),
            _ => Err(PeerMisbehaved::BadProof.into()),
        }
    }
}

impl fmt::Debug for DleqProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DleqProof({})", hex::encode(self.to_bytes()))
    }
}

/// RFC 9497 `GenerateProof(k, G, pk, C, D)` under `context`, with the randomness `r`
/// and `ComputeCompositesFast`: needs the points `C` but only the encodings of `D`.
///
/// `pk` must be `k · G`, `c_enc` the encodings of `c`, and `d_enc` those of `k · Cᵢ`;
/// otherwise the proof is simply one that does not verify.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `c`, `c_enc` and `d_enc` differ in length, the batch
/// is empty or longer than [`MAX_BATCH`], `r` is zero, or `context` is longer than
/// 65530 bytes.
pub fn generate_proof(
    context: &[u8],
    k: &Scalar,
    pk: &PublicKey,
    c: &[RistrettoPoint],
    c_enc: &[[u8; 32]],
    d_enc: &[[u8; 32]],
    r: &Scalar,
) -> Result<DleqProof, Error> {
    if c.len() != c_enc.len() || c.len() != d_enc.len() {
        return Err(Error::InvalidArgument(
            "generate_proof: C, its encodings and D's encodings differ in number",
        ));
    }
    if !(1..=MAX_BATCH).contains(&c.len()) {
        return Err(Error::InvalidArgument(
            "generate_proof: a batch holds 1 to 65535 pairs",
        ));
    }
    if *r == Scalar::ZERO {
        return Err(Error::InvalidArgument("generate_proof: r must be non-zero"));
    }
    let dsts = Dsts::new(context).ok_or(Error::InvalidArgument(
        "generate_proof: context longer than 65530 bytes",
    ))?;
    let seed = seed(&dsts.seed, pk.as_bytes());
    let m = vartime_composite(&seed, &dsts.scalar, c, c_enc, d_enc);
    let z = k * m;
    let t2 = RistrettoPoint::mul_base(r);
    let t3 = r * m;
    let challenge = challenge(&dsts.scalar, pk.as_bytes(), [&m, &z, &t2, &t3]);
    Ok(DleqProof {
        c: challenge,
        s: r - challenge * k,
    })
}

/// RFC 9497 `VerifyProof(G, pk, C, D, proof)` under `context`: whether `proof`
/// shows `Dᵢ = k · Cᵢ` for every `i` with the `k` of `pk = k · G`.
///
/// `c_enc` and `d_enc` must be the encodings of `c` and `d`. Returns `false` if the
/// lists differ in length, the batch is empty or longer than [`MAX_BATCH`], or
/// `context` is longer than 65530 bytes. Variable time: every input is public.
pub fn verify_proof(
    context: &[u8],
    pk: &PublicKey,
    c: &[RistrettoPoint],
    c_enc: &[[u8; 32]],
    d: &[RistrettoPoint],
    d_enc: &[[u8; 32]],
    proof: &DleqProof,
) -> bool {
    let n = c.len();
    if c_enc.len() != n || d.len() != n || d_enc.len() != n || !(1..=MAX_BATCH).contains(&n) {
        return false;
    }
    let Some(dsts) = Dsts::new(context) else {
        return false;
    };
    let seed = seed(&dsts.seed, pk.as_bytes());
    let (m, z) = vartime_composites(&seed, &dsts.scalar, c, c_enc, d, d_enc);
    let t2 = RistrettoPoint::vartime_double_scalar_mul_basepoint(&proof.c, pk.point(), &proof.s);
    let t3 = RistrettoPoint::vartime_multiscalar_mul([&proof.s, &proof.c], [&m, &z]);
    let expected = challenge(&dsts.scalar, pk.as_bytes(), [&m, &z, &t2, &t3]);
    expected.ct_eq(&proof.c).into()
}

/// The two DSTs a context defines.
struct Dsts {
    /// `"Seed-" || context`.
    seed: Vec<u8>,
    /// `"HashToScalar-" || context`.
    scalar: Vec<u8>,
}

impl Dsts {
    /// `None` if the seed DST's length does not fit its two-byte frame.
    fn new(context: &[u8]) -> Option<Self> {
        let seed = [b"Seed-".as_slice(), context].concat();
        if seed.len() > usize::from(u16::MAX) {
            return None;
        }
        Some(Self {
            seed,
            scalar: [b"HashToScalar-".as_slice(), context].concat(),
        })
    }
}

/// `seed = SHA-512(I2OSP(32, 2) || pk || I2OSP(len(seed_dst), 2) || seed_dst)`.
fn seed(seed_dst: &[u8], pk_enc: &[u8; 32]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(32u16.to_be_bytes());
    h.update(pk_enc);
    // Fits: `Dsts::new` bounds the seed DST by u16::MAX.
    h.update((seed_dst.len() as u16).to_be_bytes());
    h.update(seed_dst);
    h.finalize().into()
}

/// The challenge scalar over `pk`, `M`, `Z`, `t2` and `t3`.
fn challenge(dst: &[u8], pk_enc: &[u8; 32], points: [&RistrettoPoint; 4]) -> Scalar {
    let mut transcript = [0u8; CHALLENGE_LEN];
    let mut frames = transcript.chunks_exact_mut(34);
    let encodings = std::iter::once(*pk_enc).chain(points.map(|p| p.compress().to_bytes()));
    for (frame, encoding) in (&mut frames).zip(encodings) {
        frame[..2].copy_from_slice(&32u16.to_be_bytes());
        frame[2..].copy_from_slice(&encoding);
    }
    frames.into_remainder().copy_from_slice(b"Challenge");
    hash_to_scalar(&transcript, dst)
}

/// Pairs per parallel chunk: one chunk per thread, but not below [`MIN_MSM_CHUNK`].
fn msm_chunk(n: usize) -> usize {
    n.div_ceil(rayon::current_num_threads()).max(MIN_MSM_CHUNK)
}

/// The prover's composite `M = Σ dᵢ · Cᵢ`.
fn vartime_composite(
    seed: &[u8; 64],
    dst: &[u8],
    c: &[RistrettoPoint],
    c_enc: &[[u8; 32]],
    d_enc: &[[u8; 32]],
) -> RistrettoPoint {
    let chunk = msm_chunk(c.len());
    c.par_chunks(chunk)
        .zip(c_enc.par_chunks(chunk))
        .zip(d_enc.par_chunks(chunk))
        .enumerate()
        .map(|(index, ((c, c_enc), d_enc))| {
            let d = composite_scalars(seed, dst, index * chunk, c_enc, d_enc);
            RistrettoPoint::vartime_multiscalar_mul(&d, c)
        })
        .reduce(RistrettoPoint::identity, |a, b| a + b)
}

/// The verifier's composites `(M, Z) = (Σ dᵢ · Cᵢ, Σ dᵢ · Dᵢ)`.
fn vartime_composites(
    seed: &[u8; 64],
    dst: &[u8],
    c: &[RistrettoPoint],
    c_enc: &[[u8; 32]],
    d: &[RistrettoPoint],
    d_enc: &[[u8; 32]],
) -> (RistrettoPoint, RistrettoPoint) {
    let chunk = msm_chunk(c.len());
    c.par_chunks(chunk)
        .zip(c_enc.par_chunks(chunk))
        .zip(d.par_chunks(chunk))
        .zip(d_enc.par_chunks(chunk))
        .enumerate()
        .map(|(index, (((c, c_enc), d), d_enc))| {
            let scalars = composite_scalars(seed, dst, index * chunk, c_enc, d_enc);
            (
                RistrettoPoint::vartime_multiscalar_mul(&scalars, c),
                RistrettoPoint::vartime_multiscalar_mul(&scalars, d),
            )
        })
        .reduce(
            || (RistrettoPoint::identity(), RistrettoPoint::identity()),
            |(m1, z1), (m2, z2)| (m1 + m2, z1 + z2),
        )
}

/// `dᵢ` for the pairs `first, first + 1, …` of a batch.
fn composite_scalars(
    seed: &[u8; 64],
    dst: &[u8],
    first: usize,
    c_enc: &[[u8; 32]],
    d_enc: &[[u8; 32]],
) -> Vec<Scalar> {
    let mut transcript = [0u8; COMPOSITE_LEN];
    transcript[..2].copy_from_slice(&64u16.to_be_bytes());
    transcript[2..66].copy_from_slice(seed);
    transcript[68..70].copy_from_slice(&32u16.to_be_bytes());
    transcript[102..104].copy_from_slice(&32u16.to_be_bytes());
    transcript[136..].copy_from_slice(b"Composite");
    c_enc
        .iter()
        .zip(d_enc)
        .enumerate()
        .map(|(j, (ci, di))| {
            // Fits: callers bound the batch by MAX_BATCH = u16::MAX.
            let i = (first + j) as u16;
            transcript[66..68].copy_from_slice(&i.to_be_bytes());
            transcript[70..102].copy_from_slice(ci);
            transcript[104..136].copy_from_slice(di);
            hash_to_scalar(&transcript, dst)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
