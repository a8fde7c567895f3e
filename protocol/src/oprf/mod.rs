//! RFC 9497 oblivious pseudorandom functions with the `ristretto255-SHA512` suite:
//! the OPRF (mode 0) and the verifiable VOPRF (mode 1) with batched DLEQ proofs.
//! Mode 2 (POPRF) is not implemented.
//!
//! # What is computed
//!
//! The PRF is `F(k, x) = SHA-512(I2OSP(len(x), 2) || x || I2OSP(32, 2) ||
//! encode(k · HashToGroup(x)) || "Finalize")`, with, per mode:
//!
//! - `contextString = "OPRFV1-" || I2OSP(mode, 1) || "-ristretto255-SHA512"`
//!   ([`Mode::context_string`]);
//! - `HashToGroup(x)` = RFC 9380 `hash_to_ristretto255` ([`crate::group::hash_to_group`])
//!   with DST `"HashToGroup-" || contextString`;
//! - `HashToScalar(x)` = `expand_message_xmd(x, "HashToScalar-" || contextString, 64)`
//!   read as a little-endian integer and reduced modulo the group order `l`;
//! - `DeriveKeyPair(seed, info)`: the first non-zero `HashToScalar(seed ||
//!   I2OSP(len(info), 2) || info || I2OSP(counter, 1))` under DST `"DeriveKeyPair" ||
//!   contextString`, for `counter` = 0, 1, …, 255.
//!
//! A client blinds `x` as `blind · HashToGroup(x)` (refusing an `x` that hashes to the
//! identity); the server answers `k · C` for each blinded `C` and, in mode 1, one
//! batched DLEQ proof ([`dleq`]) that it used the key behind its public key
//! `pkS = k · G`; the client verifies the proof, unblinds with `blind⁻¹` and hashes.
//! A server that knows `x` computes the same output directly with RFC 9497 §3.3.1
//! `Evaluate` ([`OprfKey::evaluate_inputs`]).
//!
//! # Two APIs
//!
//! - The encoding-level functions [`derive_key_pair`], [`blind`], [`blind_evaluate`]
//!   and [`finalize`] take and return the RFC's byte strings, with caller-chosen
//!   blinds and proof randomness, so the RFC test vectors and other tools can drive
//!   them. The mode is the RFC's integer.
//! - The typed API — [`OprfKey`], [`PublicKey`], [`ClientBatch`], [`DleqProof`] — draws
//!   its own randomness, keeps the blinds secret, and runs batches on all cores.
//!
//! Both share one implementation, so they agree byte for byte.
//!
//! # Invariants
//!
//! - Scalars given as bytes (keys, blinds, proof randomness) must be canonical and
//!   non-zero; peer points are decoded strictly ([`crate::group::decode_point`]).
//! - Every input is at most [`MAX_INPUT_LEN`] bytes (its length is framed in 2 bytes).
//! - A batch with a proof holds 1 to [`MAX_BATCH`] elements (the proof frames each
//!   index in 2 bytes).
//! - In mode 0 no public key or proof is taken; in mode 1 both are required, and a
//!   client computes no output before the proof verifies.
//! - Secret scalars (keys, blinds, their inverses) are not `Clone`, not printed, and
//!   are zeroized when dropped.
//!
//! # Errors
//!
//! A mode other than 0 or 1, a non-canonical or zero scalar, mismatched lengths and
//! oversized batches or inputs are [`Error::InvalidArgument`]; a peer's invalid or
//! identity point is `InvalidMessage::InvalidPoint` / `IdentityPoint`; a proof that is
//! malformed or does not verify is `PeerMisbehaved::BadProof`.

mod client;
pub mod dleq;
mod server;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use rand_core::CryptoRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

pub use client::ClientBatch;
pub use dleq::DleqProof;
pub use server::{OprfKey, PublicKey};

use crate::Error;
use crate::group::{decode_point, expand_message_xmd_64, hash_to_group};

/// The RFC 9497 ciphersuite identifier implemented here.
pub const IDENTIFIER: &[u8] = b"ristretto255-SHA512";

/// Most elements in a batch that carries a proof: the proof frames each index in
/// two bytes (`I2OSP(i, 2)`).
pub const MAX_BATCH: usize = u16::MAX as usize;

/// Longest input, in bytes: `Finalize` frames its length in two bytes.
pub const MAX_INPUT_LEN: usize = u16::MAX as usize;

/// Length of an OPRF output (SHA-512).
pub const OUTPUT_LEN: usize = 64;

/// An RFC 9497 protocol variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Mode 0: the OPRF, without proofs.
    Oprf,
    /// Mode 1: the VOPRF, where the server proves it used the key behind its
    /// public key.
    Voprf,
}

impl Mode {
    /// The RFC's mode integer.
    pub const fn to_u8(self) -> u8 {
        match self {
            Mode::Oprf => 0,
            Mode::Voprf => 1,
        }
    }

    /// `contextString = "OPRFV1-" || I2OSP(mode, 1) || "-ristretto255-SHA512"`.
    pub const fn context_string(self) -> &'static [u8] {
        match self {
            Mode::Oprf => b"OPRFV1-\x00-ristretto255-SHA512",
            Mode::Voprf => b"OPRFV1-\x01-ristretto255-SHA512",
        }
    }

    /// The DST of `HashToGroup`: `"HashToGroup-" || contextString`.
    pub const fn hash_to_group_dst(self) -> &'static [u8] {
        match self {
            Mode::Oprf => b"HashToGroup-OPRFV1-\x00-ristretto255-SHA512",
            Mode::Voprf => b"HashToGroup-OPRFV1-\x01-ristretto255-SHA512",
        }
    }

    /// The DST of `DeriveKeyPair`: `"DeriveKeyPair" || contextString` (no dash).
    const fn derive_key_pair_dst(self) -> &'static [u8] {
        match self {
            Mode::Oprf => b"DeriveKeyPairOPRFV1-\x00-ristretto255-SHA512",
            Mode::Voprf => b"DeriveKeyPairOPRFV1-\x01-ristretto255-SHA512",
        }
    }
}

impl TryFrom<u8> for Mode {
    type Error = Error;

    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for any mode but 0 and 1.
    fn try_from(mode: u8) -> Result<Self, Error> {
        match mode {
            0 => Ok(Mode::Oprf),
            1 => Ok(Mode::Voprf),
            _ => Err(Error::InvalidArgument(
                "OPRF mode must be 0 (OPRF) or 1 (VOPRF)",
            )),
        }
    }
}

/// RFC 9497 `DeriveKeyPair`: the key pair `(skS, pkS)` as encodings.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a bad mode, an `info` longer than 65535 bytes, or
/// (with probability about 2^-2000) no non-zero key in 256 attempts.
pub fn derive_key_pair(
    mode: u8,
    seed: &[u8; 32],
    info: &[u8],
) -> Result<([u8; 32], [u8; 32]), Error> {
    let key = OprfKey::derive(Mode::try_from(mode)?, seed, info)?;
    Ok((key.secret_bytes(), key.public_key().to_bytes()))
}

/// RFC 9497 `Blind` with the caller's `blind`: the blinded element
/// `blind · HashToGroup(input)`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a bad mode, a `blind` that is zero or not a
/// canonical scalar, an input longer than [`MAX_INPUT_LEN`], or an input that hashes
/// to the identity.
pub fn blind(mode: u8, input: &[u8], blind: &[u8; 32]) -> Result<[u8; 32], Error> {
    let mode = Mode::try_from(mode)?;
    let blind = Zeroizing::new(nonzero_scalar(
        blind,
        "blind must be a canonical non-zero scalar",
    )?);
    check_input_lens(&[input])?;
    let point = hash_input(mode, input)?;
    Ok((*blind * point).compress().to_bytes())
}

/// RFC 9497 `BlindEvaluate` over a batch: `skS · C` for each blinded element `C`,
/// and in mode 1 one batched proof (`c || s`) made with the caller's
/// `proof_random` (RFC 9497 §2.2.1 `r`). Mode 0 ignores `proof_random`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a bad mode, an `sk` (or, in mode 1, a
/// `proof_random`) that is zero or not a canonical scalar, or a mode-1 batch outside
/// 1..=[`MAX_BATCH`]; `InvalidMessage::InvalidPoint` / `IdentityPoint` for the first
/// blinded element that is not a valid non-identity point.
// The signature is the encoding-level contract other tools call; the plain tuple
// keeps it readable without a type to look up.
#[allow(clippy::type_complexity)]
pub fn blind_evaluate(
    mode: u8,
    sk: &[u8; 32],
    blinded: &[[u8; 32]],
    proof_random: &[u8; 32],
) -> Result<(Vec<[u8; 32]>, Option<[u8; 64]>), Error> {
    let key = OprfKey::from_scalar_bytes(Mode::try_from(mode)?, sk)?;
    let r = match key.mode() {
        Mode::Oprf => None,
        Mode::Voprf => Some(Zeroizing::new(nonzero_scalar(
            proof_random,
            "proof_random must be a canonical non-zero scalar",
        )?)),
    };
    let (evaluated, proof) = key.evaluate_with(blinded, r.as_deref())?;
    Ok((evaluated, proof.map(|p| p.to_bytes())))
}

/// RFC 9497 `Finalize` over a batch: verifies the proof (mode 1), then returns
/// `SHA-512(I2OSP(len(input), 2) || input || I2OSP(32, 2) || encode(blind⁻¹ · E) ||
/// "Finalize")` for each input and evaluated element `E`.
///
/// Mode 0 takes no `pk` and no `proof` and does not read `blinded` (only its length
/// is checked); mode 1 needs all three.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a bad mode, a `pk` or `proof` given in mode 0 or
/// missing in mode 1, lists of different lengths, a mode-1 batch outside
/// 1..=[`MAX_BATCH`], an input longer than [`MAX_INPUT_LEN`], or a blind that is zero
/// or not canonical; `InvalidMessage::InvalidPoint` / `IdentityPoint` for an invalid
/// `pk`, blinded or evaluated element; `PeerMisbehaved::BadProof` for a proof with a
/// non-canonical scalar or one that does not verify.
pub fn finalize(
    mode: u8,
    pk: Option<&[u8; 32]>,
    inputs: &[&[u8]],
    blinds: &[[u8; 32]],
    blinded: &[[u8; 32]],
    evaluated: &[[u8; 32]],
    proof: Option<&[u8; 64]>,
) -> Result<Vec<[u8; 64]>, Error> {
    let mode = Mode::try_from(mode)?;
    check_verification_args(mode, pk.is_some(), proof.is_some())?;
    let n = inputs.len();
    if blinds.len() != n || blinded.len() != n || evaluated.len() != n {
        return Err(Error::InvalidArgument(
            "finalize: inputs, blinds, blinded and evaluated elements differ in number",
        ));
    }
    check_batch_len(mode, n)?;
    check_input_lens(inputs)?;
    let blinds = Zeroizing::new(
        blinds
            .iter()
            .map(|b| nonzero_scalar(b, "blind must be a canonical non-zero scalar"))
            .collect::<Result<Vec<Scalar>, Error>>()?,
    );
    match (pk, proof) {
        (Some(pk), Some(proof)) => {
            let pk = PublicKey::from_bytes(pk)?;
            let proof = DleqProof::from_bytes(proof)?;
            let blinded_points = decode_points(blinded)?;
            let check = client::ProofCheck {
                pk: &pk,
                proof: &proof,
                blinded_points: &blinded_points,
            };
            client::finalize_batch(mode, inputs, &blinds, blinded, evaluated, Some(check))
        }
        _ => client::finalize_batch(mode, inputs, &blinds, blinded, evaluated, None),
    }
}

/// Elements per unit of parallel work for per-element operations. Large enough
/// that a batched compression's or inversion's one inversion is negligible per
/// element, small enough to spread a few-thousand-element batch over every core.
const CHUNK: usize = 256;

/// RFC 9497 `HashToScalar` with an explicit DST: 64 bytes of `expand_message_xmd`
/// with SHA-512, reduced modulo `l`. The 64 bytes may derive from a secret (a key
/// seed), so they are wiped.
fn hash_to_scalar(msg: &[u8], dst: &[u8]) -> Scalar {
    let mut wide = expand_message_xmd_64(msg, dst);
    let scalar = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    scalar
}

/// `HashToGroup(input)` of `mode`, refusing the identity as RFC 9497 `Blind` and
/// `Evaluate` do.
fn hash_input(mode: Mode, input: &[u8]) -> Result<RistrettoPoint, Error> {
    let point = hash_to_group(input, mode.hash_to_group_dst());
    if point.is_identity() {
        return Err(Error::InvalidArgument(
            "OPRF input hashes to the identity element",
        ));
    }
    Ok(point)
}

/// `SHA-512(I2OSP(len(input), 2) || input || I2OSP(32, 2) || element || "Finalize")`,
/// for an input already checked to be at most [`MAX_INPUT_LEN`] bytes.
fn finalize_hash(input: &[u8], element: &[u8; 32]) -> [u8; OUTPUT_LEN] {
    debug_assert!(input.len() <= MAX_INPUT_LEN);
    let mut h = Sha512::new();
    // Fits: callers check every input against MAX_INPUT_LEN = u16::MAX first.
    h.update((input.len() as u16).to_be_bytes());
    h.update(input);
    h.update(32u16.to_be_bytes());
    h.update(element);
    h.update(b"Finalize");
    h.finalize().into()
}

/// A scalar from its canonical encoding, refusing zero.
fn nonzero_scalar(bytes: &[u8; 32], what: &'static str) -> Result<Scalar, Error> {
    let scalar: Option<Scalar> = Scalar::from_canonical_bytes(*bytes).into();
    match scalar {
        Some(s) if s != Scalar::ZERO => Ok(s),
        _ => Err(Error::InvalidArgument(what)),
    }
}

/// A uniformly random non-zero scalar (RFC 9497 `RandomScalar`).
fn random_nonzero_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    loop {
        // Zero has probability 2^-252; the loop is for correctness only.
        let s = Scalar::random(rng);
        if s != Scalar::ZERO {
            return s;
        }
    }
}

/// `n` uniformly random non-zero scalars: one draw from `rng` for the whole batch
/// (one system call with an OS generator), reduced on all cores.
fn random_nonzero_scalars<R: CryptoRng + ?Sized>(rng: &mut R, n: usize) -> Vec<Scalar> {
    let mut wide = Zeroizing::new(vec![0u8; n * 64]);
    rng.fill_bytes(&mut wide);
    let (blocks, _) = wide.as_chunks::<64>();
    let mut scalars: Vec<Scalar> = blocks
        .par_iter()
        .map(Scalar::from_bytes_mod_order_wide)
        .collect();
    for s in &mut scalars {
        if *s == Scalar::ZERO {
            *s = random_nonzero_scalar(rng);
        }
    }
    scalars
}

/// Decodes peer points strictly, on all cores. On failure, the error is that of the
/// first (lowest-index) bad point, so it does not depend on thread scheduling.
fn decode_points(encoded: &[[u8; 32]]) -> Result<Vec<RistrettoPoint>, Error> {
    let decoded: Result<Vec<RistrettoPoint>, Error> =
        encoded.par_iter().map(|b| decode_point(b)).collect();
    decoded.map_err(|any| {
        encoded
            .par_iter()
            .find_map_first(|b| decode_point(b).err())
            .unwrap_or(any)
    })
}

/// In mode 0 no public key or proof may be given; in mode 1 both are needed.
fn check_verification_args(mode: Mode, has_pk: bool, has_proof: bool) -> Result<(), Error> {
    match (mode, has_pk, has_proof) {
        (Mode::Oprf, false, false) | (Mode::Voprf, true, true) => Ok(()),
        (Mode::Oprf, _, _) => Err(Error::InvalidArgument(
            "OPRF mode (0) takes no public key and no proof",
        )),
        (Mode::Voprf, _, _) => Err(Error::InvalidArgument(
            "VOPRF mode (1) needs the server's public key and proof",
        )),
    }
}

/// A mode-1 batch must fit a proof: 1..=[`MAX_BATCH`] elements.
fn check_batch_len(mode: Mode, n: usize) -> Result<(), Error> {
    if mode == Mode::Voprf && !(1..=MAX_BATCH).contains(&n) {
        return Err(Error::InvalidArgument(
            "a VOPRF batch holds 1 to 65535 elements",
        ));
    }
    Ok(())
}

/// Every input must be at most [`MAX_INPUT_LEN`] bytes.
fn check_input_lens(inputs: &[&[u8]]) -> Result<(), Error> {
    if inputs.iter().any(|i| i.len() > MAX_INPUT_LEN) {
        return Err(Error::InvalidArgument(
            "an OPRF input is at most 65535 bytes",
        ));
    }
    Ok(())
}
