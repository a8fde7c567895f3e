//! The server's side of the OPRF: its secret [`OprfKey`], its [`PublicKey`], blind
//! evaluation of a client's batch (with a proof in mode 1), and RFC 9497 §3.3.1
//! `Evaluate` for inputs the server knows.
//!
//! Invariants: an [`OprfKey`] is never zero, belongs to one [`Mode`], cannot be
//! cloned, printed or serialised, and is wiped when dropped. Batch operations return
//! exactly `encode(k · P)` per element, in input order, reached as
//! `double_and_compress(k/2 · P)` so that a chunk shares one inversion.

use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRng;
use rayon::prelude::*;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::dleq::{self, DleqProof};
use super::{
    CHUNK, Mode, check_batch_len, check_input_lens, decode_points, finalize_hash, hash_input,
    hash_to_scalar, nonzero_scalar, random_nonzero_scalar,
};
use crate::Error;
use crate::error::InvalidMessage;
use crate::group::decode_point;

/// A server's public key `pkS = k · G`: a non-identity point with its encoding.
///
/// Clients pin it out of band; a DLEQ proof shows an evaluation used its key.
#[derive(Clone, Copy)]
pub struct PublicKey {
    point: RistrettoPoint,
    bytes: [u8; 32],
}

impl PublicKey {
    /// Decodes a public key strictly (see [`decode_point`]).
    ///
    /// # Errors
    ///
    /// `InvalidMessage::InvalidPoint` or `InvalidMessage::IdentityPoint`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        Ok(Self {
            point: decode_point(bytes)?,
            bytes: *bytes,
        })
    }

    /// A public key from its point, for a key committed elsewhere (such as a PSI
    /// session's `K = k · G`).
    ///
    /// # Errors
    ///
    /// `InvalidMessage::IdentityPoint` for the identity.
    pub fn from_point(point: RistrettoPoint) -> Result<Self, Error> {
        if point.is_identity() {
            return Err(InvalidMessage::IdentityPoint.into());
        }
        Ok(Self {
            point,
            bytes: point.compress().to_bytes(),
        })
    }

    /// The point.
    pub fn point(&self) -> &RistrettoPoint {
        &self.point
    }

    /// The encoding.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The encoding, by value.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.bytes))
    }
}

/// A server's secret OPRF key `k` (RFC 9497 `skS`) for one mode.
///
/// Not `Clone`, not `Serialize`; its `Debug` shows the mode and public key only. The
/// scalar (and `k/2`, kept for batched compression) is zeroized on drop; copies the
/// compiler makes on the stack are outside our control, as in every Rust crypto
/// library.
pub struct OprfKey {
    mode: Mode,
    k: Scalar,
    /// `k · 2⁻¹ mod l`, so that `double_and_compress(half · P) == encode(k · P)`.
    half: Scalar,
    public: PublicKey,
}

impl OprfKey {
    /// A fresh key, uniform over the non-zero scalars (RFC 9497 `GenerateKeyPair`).
    pub fn random<R: CryptoRng + ?Sized>(mode: Mode, rng: &mut R) -> Self {
        Self::from_scalar(mode, random_nonzero_scalar(rng))
    }

    /// RFC 9497 `DeriveKeyPair(seed, info)`: the key a secret 32-byte `seed` and a
    /// public `info` determine, so a server can keep the seed and re-derive the key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `info` is longer than 65535 bytes, or (with
    /// probability about 2^-2000) no counter gives a non-zero key.
    pub fn derive(mode: Mode, seed: &[u8; 32], info: &[u8]) -> Result<Self, Error> {
        let info_len = u16::try_from(info.len())
            .map_err(|_| Error::InvalidArgument("DeriveKeyPair: info is at most 65535 bytes"))?;
        // deriveInput || I2OSP(counter, 1), the counter byte last.
        let mut input = Zeroizing::new(Vec::with_capacity(seed.len() + 2 + info.len() + 1));
        input.extend_from_slice(seed);
        input.extend_from_slice(&info_len.to_be_bytes());
        input.extend_from_slice(info);
        input.push(0);
        let counter_at = input.len() - 1;
        for counter in 0..=u8::MAX {
            input[counter_at] = counter;
            let k = hash_to_scalar(&input, mode.derive_key_pair_dst());
            if k != Scalar::ZERO {
                return Ok(Self::from_scalar(mode, k));
            }
        }
        Err(Error::InvalidArgument(
            "DeriveKeyPair: no non-zero key for this seed and info",
        ))
    }

    /// A key from its canonical little-endian encoding (`skS`), for test vectors
    /// and tools. Servers keep a seed for [`OprfKey::derive`] or use
    /// [`OprfKey::random`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `bytes` is zero or not a canonical scalar.
    pub fn from_scalar_bytes(mode: Mode, bytes: &[u8; 32]) -> Result<Self, Error> {
        let k = nonzero_scalar(bytes, "OPRF key must be a canonical non-zero scalar")?;
        Ok(Self::from_scalar(mode, k))
    }

    fn from_scalar(mode: Mode, k: Scalar) -> Self {
        debug_assert!(k != Scalar::ZERO);
        let public = RistrettoPoint::mul_base(&k);
        Self {
            mode,
            half: k.div_by_2(),
            k,
            // k is non-zero and the group has prime order, so k · G is not the identity.
            public: PublicKey {
                point: public,
                bytes: public.compress().to_bytes(),
            },
        }
    }

    /// The mode this key serves.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The public key `pkS = k · G`.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The encoding of `k`, for the encoding-level [`super::derive_key_pair`].
    pub(crate) fn secret_bytes(&self) -> [u8; 32] {
        self.k.to_bytes()
    }

    /// RFC 9497 `BlindEvaluate` over a batch: `encode(k · C)` for each blinded
    /// element `C`, in order, and in mode 1 one batched proof for all of them.
    ///
    /// Runs on all cores, in chunks, with batched compression; the proof's
    /// composite is a parallel multiscalar multiplication.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a mode-1 batch outside 1..=[`super::MAX_BATCH`];
    /// `InvalidMessage::InvalidPoint` / `IdentityPoint` for the first element that is
    /// not a valid non-identity point.
    pub fn evaluate_batch<R: CryptoRng + ?Sized>(
        &self,
        blinded: &[[u8; 32]],
        rng: &mut R,
    ) -> Result<(Vec<[u8; 32]>, Option<DleqProof>), Error> {
        let r = match self.mode {
            Mode::Oprf => None,
            Mode::Voprf => Some(Zeroizing::new(random_nonzero_scalar(rng))),
        };
        self.evaluate_with(blinded, r.as_deref())
    }

    /// RFC 9497 §3.3.1 `Evaluate` over a batch of inputs the server knows: for each,
    /// `SHA-512(I2OSP(len(x), 2) || x || I2OSP(32, 2) || encode(k · HashToGroup(x)) ||
    /// "Finalize")` — the output a client gets from [`super::ClientBatch`] for `x`
    /// under this key and mode. Runs on all cores, in chunks.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if an input is longer than [`super::MAX_INPUT_LEN`]
    /// or hashes to the identity.
    pub fn evaluate_inputs(&self, inputs: &[&[u8]]) -> Result<Vec<[u8; 64]>, Error> {
        check_input_lens(inputs)?;
        let mut out = vec![[0u8; 64]; inputs.len()];
        out.par_chunks_mut(CHUNK)
            .zip(inputs.par_chunks(CHUNK))
            .try_for_each(|(out, inputs)| {
                let halves = inputs
                    .iter()
                    .map(|input| hash_input(self.mode, input).map(|p| self.half * p))
                    .collect::<Result<Vec<RistrettoPoint>, Error>>()?;
                let encoded = RistrettoPoint::double_and_compress_batch(&halves);
                for ((o, input), element) in out.iter_mut().zip(inputs).zip(&encoded) {
                    *o = finalize_hash(input, element.as_bytes());
                }
                Ok::<(), Error>(())
            })?;
        Ok(out)
    }

    /// [`OprfKey::evaluate_batch`] with the proof randomness given (`None` in
    /// mode 0).
    pub(crate) fn evaluate_with(
        &self,
        blinded: &[[u8; 32]],
        r: Option<&Scalar>,
    ) -> Result<(Vec<[u8; 32]>, Option<DleqProof>), Error> {
        check_batch_len(self.mode, blinded.len())?;
        let c = decode_points(blinded)?;
        let mut evaluated = vec![[0u8; 32]; c.len()];
        evaluated
            .par_chunks_mut(CHUNK)
            .zip(c.par_chunks(CHUNK))
            .for_each(|(out, c)| {
                let halves: Vec<RistrettoPoint> = c.iter().map(|p| self.half * p).collect();
                for (o, e) in out
                    .iter_mut()
                    .zip(RistrettoPoint::double_and_compress_batch(&halves))
                {
                    *o = e.to_bytes();
                }
            });
        let proof = match (self.mode, r) {
            (Mode::Oprf, _) => None,
            (Mode::Voprf, Some(r)) => Some(dleq::generate_proof(
                self.mode.context_string(),
                &self.k,
                &self.public,
                &c,
                blinded,
                &evaluated,
                r,
            )?),
            (Mode::Voprf, None) => {
                return Err(Error::ApiMisuse(
                    "a VOPRF evaluation needs proof randomness",
                ));
            }
        };
        Ok((evaluated, proof))
    }
}

impl Drop for OprfKey {
    fn drop(&mut self) {
        self.k.zeroize();
        self.half.zeroize();
    }
}

impl ZeroizeOnDrop for OprfKey {}

impl fmt::Debug for OprfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OprfKey")
            .field("mode", &self.mode)
            .field("public_key", &self.public)
            .finish_non_exhaustive()
    }
}
