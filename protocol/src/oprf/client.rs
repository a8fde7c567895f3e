//! The client's side of the OPRF: a [`ClientBatch`] blinds its inputs with fresh
//! secret blinds and later turns the server's evaluations into outputs, verifying
//! the server's proof first in mode 1.
//!
//! Invariants: the blinds and the inputs stay inside the batch, are never printed,
//! and are wiped when it drops; a batch is finalized at most once (it is consumed).
//! In mode 1 no output is computed unless the proof verifies. Batch work runs on
//! all cores in chunks; each chunk shares one inversion for its blinds' inverses and
//! one for its compressions.

use std::fmt;

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use rand_core::CryptoRng;
use rayon::prelude::*;
use zeroize::{Zeroize, Zeroizing};

use super::dleq::{self, DleqProof};
use super::server::PublicKey;
use super::{
    CHUNK, Mode, check_batch_len, check_input_lens, check_verification_args, decode_points,
    finalize_hash, hash_input, random_nonzero_scalars,
};
use crate::Error;
use crate::error::PeerMisbehaved;

/// A client's batch of blinded inputs, waiting for the server's evaluations.
///
/// Holds the inputs and their secret blinds (RFC 9497 `Blind` per input); not
/// `Clone`, and its `Debug` shows only the mode and size.
pub struct ClientBatch {
    mode: Mode,
    /// The inputs, concatenated; `ends[i]` is where input `i` ends.
    data: Vec<u8>,
    ends: Vec<usize>,
    blinds: Vec<Scalar>,
    blinded: Vec<[u8; 32]>,
    /// The blinded points, kept in mode 1 for verifying the proof (empty in mode 0).
    blinded_points: Vec<RistrettoPoint>,
}

impl ClientBatch {
    /// Blinds `inputs` with fresh non-zero blinds from `rng`: the blinded element of
    /// input `i` is `blinds[i] · HashToGroup(inputs[i])`, in [`ClientBatch::blinded`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a mode-1 batch outside 1..=[`super::MAX_BATCH`],
    /// an input longer than [`super::MAX_INPUT_LEN`], or one that hashes to the
    /// identity.
    pub fn blind<R: CryptoRng + ?Sized>(
        mode: Mode,
        inputs: &[&[u8]],
        rng: &mut R,
    ) -> Result<Self, Error> {
        check_batch_len(mode, inputs.len())?;
        check_input_lens(inputs)?;
        let n = inputs.len();
        // Built first so that its `Drop` wipes the blinds on every return path.
        let mut batch = Self {
            mode,
            data: Vec::with_capacity(inputs.iter().map(|i| i.len()).sum()),
            ends: Vec::with_capacity(n),
            blinds: random_nonzero_scalars(rng, n),
            blinded: vec![[0u8; 32]; n],
            blinded_points: vec![RistrettoPoint::default(); n],
        };
        batch
            .blinded
            .par_chunks_mut(CHUNK)
            .zip(batch.blinded_points.par_chunks_mut(CHUNK))
            .zip(inputs.par_chunks(CHUNK))
            .zip(batch.blinds.par_chunks(CHUNK))
            .try_for_each(|(((out, points), inputs), blinds)| {
                let halves = inputs
                    .iter()
                    .zip(blinds)
                    .map(|(input, b)| hash_input(mode, input).map(|p| b.div_by_2() * p))
                    .collect::<Result<Vec<RistrettoPoint>, Error>>()?;
                for (o, e) in out
                    .iter_mut()
                    .zip(RistrettoPoint::double_and_compress_batch(&halves))
                {
                    *o = e.to_bytes();
                }
                for (p, h) in points.iter_mut().zip(&halves) {
                    *p = h + h;
                }
                Ok::<(), Error>(())
            })?;
        if mode == Mode::Oprf {
            batch.blinded_points = Vec::new();
        }
        for input in inputs {
            batch.data.extend_from_slice(input);
            batch.ends.push(batch.data.len());
        }
        Ok(batch)
    }

    /// The mode of this batch.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.blinded.len()
    }

    /// Whether the batch has no inputs.
    pub fn is_empty(&self) -> bool {
        self.blinded.is_empty()
    }

    /// The blinded elements to send to the server, in input order.
    pub fn blinded(&self) -> &[[u8; 32]] {
        &self.blinded
    }

    /// The secret blinds, for tests that check the batch against per-element code.
    #[cfg(test)]
    pub(super) fn blinds(&self) -> &[Scalar] {
        &self.blinds
    }

    /// RFC 9497 `Finalize` for the whole batch: in mode 1, verifies `proof` for `pk`
    /// over the blinded and evaluated elements first; then returns one output per
    /// input, in input order.
    ///
    /// Mode 0 takes no `pk` and no `proof`; mode 1 needs both. Consumes the batch: a
    /// blind is used once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a `pk` or `proof` given in mode 0 or missing in
    /// mode 1, or `evaluated` not of the batch's length (callers check the peer's
    /// count when decoding its message); `InvalidMessage::InvalidPoint` /
    /// `IdentityPoint` for the first evaluated element that is not a valid
    /// non-identity point; `PeerMisbehaved::BadProof` if the proof does not verify.
    pub fn finalize(
        self,
        pk: Option<&PublicKey>,
        evaluated: &[[u8; 32]],
        proof: Option<&DleqProof>,
    ) -> Result<Vec<[u8; 64]>, Error> {
        check_verification_args(self.mode, pk.is_some(), proof.is_some())?;
        if evaluated.len() != self.len() {
            return Err(Error::InvalidArgument(
                "finalize: evaluated elements differ in number from the batch",
            ));
        }
        let mut start = 0;
        let inputs: Vec<&[u8]> = self
            .ends
            .iter()
            .map(|&end| {
                let input = &self.data[start..end];
                start = end;
                input
            })
            .collect();
        let check = match (pk, proof) {
            (Some(pk), Some(proof)) => Some(ProofCheck {
                pk,
                proof,
                blinded_points: &self.blinded_points,
            }),
            _ => None,
        };
        finalize_batch(
            self.mode,
            &inputs,
            &self.blinds,
            &self.blinded,
            evaluated,
            check,
        )
    }
}

impl Drop for ClientBatch {
    fn drop(&mut self) {
        self.blinds.zeroize();
        self.data.zeroize();
    }
}

impl fmt::Debug for ClientBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBatch")
            .field("mode", &self.mode)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// What a mode-1 client checks before finalizing: the server's public key, its
/// proof, and the blinded points the proof covers.
pub(super) struct ProofCheck<'a> {
    pub(super) pk: &'a PublicKey,
    pub(super) proof: &'a DleqProof,
    pub(super) blinded_points: &'a [RistrettoPoint],
}

/// `Finalize` over a batch whose arguments are already checked: same lengths, and
/// `check` present exactly in mode 1. Decodes `evaluated`, verifies the proof (if
/// any), then unblinds and hashes on all cores.
pub(super) fn finalize_batch(
    mode: Mode,
    inputs: &[&[u8]],
    blinds: &[Scalar],
    blinded: &[[u8; 32]],
    evaluated: &[[u8; 32]],
    check: Option<ProofCheck<'_>>,
) -> Result<Vec<[u8; 64]>, Error> {
    let points = decode_points(evaluated)?;
    if let Some(check) = check {
        let verified = dleq::verify_proof(
            mode.context_string(),
            check.pk,
            check.blinded_points,
            blinded,
            &points,
            evaluated,
            check.proof,
        );
        if !verified {
            return Err(PeerMisbehaved::BadProof.into());
        }
    }
    let mut out = vec![[0u8; 64]; inputs.len()];
    out.par_chunks_mut(CHUNK)
        .zip(inputs.par_chunks(CHUNK))
        .zip(blinds.par_chunks(CHUNK))
        .zip(points.par_chunks(CHUNK))
        .for_each(|(((out, inputs), blinds), points)| {
            // (2b)⁻¹ = b⁻¹/2, so double_and_compress((2b)⁻¹ · E) = encode(b⁻¹ · E).
            // Blinds are non-zero and l is odd, so every 2b is invertible.
            let mut inverses = Zeroizing::new(blinds.iter().map(|b| b + b).collect::<Vec<_>>());
            Scalar::invert_batch_alloc(&mut inverses);
            let halves: Vec<RistrettoPoint> =
                inverses.iter().zip(points).map(|(i, e)| i * e).collect();
            let unblinded = RistrettoPoint::double_and_compress_batch(&halves);
            for ((o, input), n) in out.iter_mut().zip(inputs).zip(&unblinded) {
                *o = finalize_hash(input, n.as_bytes());
            }
        });
    Ok(out)
}
