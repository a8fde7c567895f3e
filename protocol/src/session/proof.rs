//! Re-blinding proofs: RFC 9497 §2.2 batched DLEQ proofs (the `oprf::dleq` code) under
//! this protocol's own context string, so that a proof made for a session can never
//! pass as an OPRF proof or the other way round.
//!
//! The prover's randomness `r` is derived, not drawn, so that a session never holds an
//! RNG: `r = SHA-512(NONCE_LABEL || seed || round || SHA-512(D encodings))` reduced
//! modulo the group order, where `seed` is 32 secret bytes drawn with the session key.
//! Binding `r` to the statement means that even two different statements in the same
//! round could never share a nonce (which would reveal the key).

use curve25519_dalek::ristretto::RistrettoPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use crate::error::{Error, PeerMisbehaved};
use crate::group::BlindingKey;
use crate::oprf::dleq::{generate_proof, verify_proof};
use crate::oprf::{DleqProof, PublicKey};
use crate::wire::{PointBytes, ProofBytes};

/// The DLEQ context string of re-blinding proofs.
pub(crate) const REBLIND_CONTEXT: &[u8] = b"blindmatch-v2-reblind-ristretto255-SHA512";

const NONCE_LABEL: &[u8] = b"blindmatch-v2 proof nonce";

/// The secret that a session's proof nonces are derived from.
pub(super) struct NonceSeed(Zeroizing<[u8; 32]>);

impl NonceSeed {
    /// Draws the seed from the caller's RNG.
    pub(super) fn draw<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self(seed)
    }

    /// A stream of random words for `label`, derived from the seed.
    pub(super) fn stream(&self, label: &[u8]) -> super::reply::SeedStream {
        super::reply::SeedStream::new(self.0.as_ref(), label)
    }

    fn nonce(&self, round: u64, d_enc: &[PointBytes]) -> Scalar {
        let mut statement = Sha512::new();
        for d in d_enc {
            statement.update(d);
        }
        let mut h = Sha512::new();
        h.update(NONCE_LABEL);
        h.update(self.0.as_ref());
        h.update(round.to_be_bytes());
        h.update(statement.finalize());
        let wide: Zeroizing<[u8; 64]> = Zeroizing::new(h.finalize().into());
        let r = Scalar::from_bytes_mod_order_wide(&wide);
        if r == Scalar::ZERO { Scalar::ONE } else { r }
    }
}

/// A side's key commitment `K = k·G`, checked: a valid encoding, not the identity and
/// not the generator itself (a key of 1 would "re-blind" by returning the points as
/// they are).
pub(super) fn commitment(encoding: &PointBytes) -> Result<PublicKey, Error> {
    let key = PublicKey::from_bytes(encoding).map_err(|_| PeerMisbehaved::BadCommitment)?;
    if *key.point() == curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT {
        return Err(PeerMisbehaved::BadCommitment.into());
    }
    Ok(key)
}

/// Proves that `d_enc[i]` encodes `k · c[i]` for the key committed in `public`.
pub(super) fn prove(
    key: &BlindingKey,
    public: &PublicKey,
    seed: &NonceSeed,
    round: u64,
    c: &[RistrettoPoint],
    c_enc: &[PointBytes],
    d_enc: &[PointBytes],
) -> Result<ProofBytes, Error> {
    let r = Zeroizing::new(seed.nonce(round, d_enc));
    let proof = generate_proof(REBLIND_CONTEXT, key.scalar(), public, c, c_enc, d_enc, &r)?;
    Ok(proof.to_bytes())
}

/// Checks the peer's proof that `d[i] = k · c[i]` for its committed key.
///
/// # Errors
///
/// `PeerMisbehaved::BadProof` when the proof does not verify or does not decode.
pub(super) fn check(
    public: &PublicKey,
    c: &[RistrettoPoint],
    c_enc: &[PointBytes],
    d: &[RistrettoPoint],
    d_enc: &[PointBytes],
    proof: &ProofBytes,
) -> Result<(), Error> {
    let proof = DleqProof::from_bytes(proof)?;
    if verify_proof(REBLIND_CONTEXT, public, c, c_enc, d, d_enc, &proof) {
        Ok(())
    } else {
        Err(PeerMisbehaved::BadProof.into())
    }
}
