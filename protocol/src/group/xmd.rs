//! `expand_message_xmd` with SHA-512 (RFC 9380 §5.3.1), and its non-allocating
//! 64-byte form used on the hot path of hash-to-group.
//!
//! Invariants: the output is exactly what RFC 9380 §5.3.1 specifies for the given
//! `msg`, `dst` and length; a DST longer than 255 bytes is first reduced as in
//! §5.3.3. The two entry points share every step, and a test checks they agree.

use std::sync::LazyLock;

use sha2::{Digest, Sha512};

use crate::Error;

/// SHA-512 output size in bytes (`b_in_bytes`).
const B_IN_BYTES: usize = 64;
/// SHA-512 input block size in bytes (`s_in_bytes`).
const S_IN_BYTES: usize = 128;
/// Largest `ell` the RFC allows: one counter byte.
const MAX_ELL: usize = 255;
/// Prefix for reducing an oversized DST (RFC 9380 §5.3.3).
const OVERSIZE_DST_PREFIX: &[u8] = b"H2C-OVERSIZE-DST-";

/// `expand_message_xmd` (RFC 9380 §5.3.1) with SHA-512: `len_in_bytes` uniformly
/// random bytes derived from `msg` under the domain-separation tag `dst`.
///
/// A `dst` longer than 255 bytes is replaced by
/// `SHA-512("H2C-OVERSIZE-DST-" || dst)` as RFC 9380 §5.3.3 requires.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if `len_in_bytes` is 0 or above 255 × 64 = 16320
/// (the RFC's `ell > 255` abort; its `len_in_bytes > 65535` abort is implied).
/// The RFC's algorithm would return an empty string for 0; no caller has a use
/// for that, so it is refused as a likely bug.
pub fn expand_message_xmd(msg: &[u8], dst: &[u8], len_in_bytes: usize) -> Result<Vec<u8>, Error> {
    if len_in_bytes == 0 {
        return Err(Error::InvalidArgument(
            "expand_message_xmd: len_in_bytes must be at least 1",
        ));
    }
    let ell = len_in_bytes.div_ceil(B_IN_BYTES);
    if ell > MAX_ELL {
        return Err(Error::InvalidArgument(
            "expand_message_xmd: len_in_bytes must be at most 255 * 64",
        ));
    }
    let dst = Dst::new(dst);
    let dst = dst.as_bytes();
    // Fits: ell <= 255 bounds len_in_bytes by 16320.
    let len = len_in_bytes as u16;

    let b_0 = b_0(msg, len, dst);
    let mut out = Vec::with_capacity(ell * B_IN_BYTES);
    let mut block = b_i(&b_0, 1, dst);
    out.extend_from_slice(&block);
    for i in 2..=ell {
        let mut chained = b_0;
        for (c, prev) in chained.iter_mut().zip(block.iter()) {
            *c ^= prev;
        }
        // Fits: i <= ell <= 255.
        block = b_i(&chained, i as u8, dst);
        out.extend_from_slice(&block);
    }
    out.truncate(len_in_bytes);
    Ok(out)
}

/// `expand_message_xmd(msg, dst, 64)` without heap allocation: with one output
/// block (`ell = 1`) the result is exactly `b_1`, and no length check can fail.
pub(crate) fn expand_message_xmd_64(msg: &[u8], dst: &[u8]) -> [u8; 64] {
    let dst = Dst::new(dst);
    let dst = dst.as_bytes();
    let b_0 = b_0(msg, B_IN_BYTES as u16, dst);
    b_i(&b_0, 1, dst)
}

/// SHA-512 state after absorbing `Z_pad` (one full 128-byte block of zeros), shared
/// by every `b_0`: each call clones it instead of compressing that block again.
static Z_PAD_STATE: LazyLock<Sha512> = LazyLock::new(|| {
    let mut h = Sha512::new();
    h.update([0u8; S_IN_BYTES]);
    h
});

/// `b_0 = H(Z_pad || msg || I2OSP(len_in_bytes, 2) || I2OSP(0, 1) || DST_prime)`.
fn b_0(msg: &[u8], len_in_bytes: u16, dst: &[u8]) -> [u8; 64] {
    let mut h = Z_PAD_STATE.clone();
    h.update(msg);
    h.update(len_in_bytes.to_be_bytes());
    h.update([0u8]);
    absorb_dst_prime(&mut h, dst);
    h.finalize().into()
}

/// `b_i = H(chained || I2OSP(i, 1) || DST_prime)`, where `chained` is `b_0` for
/// `i = 1` and `strxor(b_0, b_(i-1))` after.
fn b_i(chained: &[u8; 64], i: u8, dst: &[u8]) -> [u8; 64] {
    let mut h = Sha512::new();
    h.update(chained);
    h.update([i]);
    absorb_dst_prime(&mut h, dst);
    h.finalize().into()
}

/// `DST_prime = DST || I2OSP(len(DST), 1)`; `dst` is at most 255 bytes here.
fn absorb_dst_prime(h: &mut Sha512, dst: &[u8]) {
    h.update(dst);
    // Fits: `Dst::new` reduces anything longer than 255 bytes to 64.
    h.update([dst.len() as u8]);
}

/// A DST as used in `DST_prime`: the caller's, or its §5.3.3 reduction.
enum Dst<'a> {
    Given(&'a [u8]),
    Reduced([u8; 64]),
}

impl<'a> Dst<'a> {
    fn new(dst: &'a [u8]) -> Self {
        if dst.len() > 255 {
            let mut h = Sha512::new();
            h.update(OVERSIZE_DST_PREFIX);
            h.update(dst);
            Dst::Reduced(h.finalize().into())
        } else {
            Dst::Given(dst)
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Dst::Given(d) => d,
            Dst::Reduced(d) => d,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A plain transcription of RFC 9380 §5.3.1 and §5.3.3 with no shortcuts, to
    /// check the optimised code against (the RFC K.3 vectors are in
    /// `tests/group_vectors.rs`).
    fn reference(msg: &[u8], dst: &[u8], len: usize) -> Vec<u8> {
        let dst: Vec<u8> = if dst.len() > 255 {
            Sha512::digest([b"H2C-OVERSIZE-DST-".as_slice(), dst].concat()).to_vec()
        } else {
            dst.to_vec()
        };
        let mut dst_prime = dst.clone();
        dst_prime.push(dst.len() as u8);
        let ell = len.div_ceil(64);
        let mut msg_prime = vec![0u8; 128];
        msg_prime.extend_from_slice(msg);
        msg_prime.extend_from_slice(&(len as u16).to_be_bytes());
        msg_prime.push(0);
        msg_prime.extend_from_slice(&dst_prime);
        let b0 = Sha512::digest(&msg_prime).to_vec();
        let mut b = vec![Sha512::digest([b0.as_slice(), &[1], &dst_prime].concat()).to_vec()];
        for i in 2..=ell {
            let x: Vec<u8> = b0.iter().zip(&b[i - 2]).map(|(a, c)| a ^ c).collect();
            b.push(Sha512::digest([x.as_slice(), &[i as u8], &dst_prime].concat()).to_vec());
        }
        let mut out = b.concat();
        out.truncate(len);
        out
    }

    #[test]
    fn matches_reference_for_many_shapes() {
        let long_dst = vec![b'D'; 300];
        let dst_255 = vec![b'E'; 255];
        let dst_256 = vec![b'F'; 256];
        let msgs: [&[u8]; 4] = [b"", b"abc", &[0x5a; 111], &[0xa5; 300]];
        let dsts: [&[u8]; 5] = [b"", b"x", &dst_255, &dst_256, &long_dst];
        for msg in msgs {
            for dst in dsts {
                for len in [1, 31, 32, 63, 64, 65, 128, 129, 255 * 64] {
                    assert_eq!(
                        expand_message_xmd(msg, dst, len).unwrap(),
                        reference(msg, dst, len),
                        "msg {} bytes, dst {} bytes, len {len}",
                        msg.len(),
                        dst.len()
                    );
                }
                assert_eq!(
                    expand_message_xmd_64(msg, dst).to_vec(),
                    reference(msg, dst, 64)
                );
            }
        }
    }

    #[test]
    fn fixed_64_equals_general() {
        for n in 0..200u8 {
            let msg = vec![n; n as usize];
            let dst = vec![b'a' + n % 26; (n as usize * 2) % 300];
            assert_eq!(
                expand_message_xmd_64(&msg, &dst).to_vec(),
                expand_message_xmd(&msg, &dst, 64).unwrap()
            );
        }
    }

    #[test]
    fn rejects_lengths_out_of_range() {
        for len in [0, 255 * 64 + 1, 65535, 65536, usize::MAX] {
            assert!(
                matches!(
                    expand_message_xmd(b"m", b"d", len),
                    Err(Error::InvalidArgument(_))
                ),
                "len {len}"
            );
        }
        assert_eq!(
            expand_message_xmd(b"m", b"d", 255 * 64).unwrap().len(),
            255 * 64
        );
    }

    #[test]
    fn oversize_dst_is_reduced_not_truncated() {
        let a = vec![b'A'; 300];
        let mut b = a.clone();
        b[299] = b'B';
        assert_ne!(
            expand_message_xmd_64(b"m", &a),
            expand_message_xmd_64(b"m", &b)
        );
        let reduced = Sha512::digest([OVERSIZE_DST_PREFIX, &a].concat());
        assert_eq!(
            expand_message_xmd_64(b"m", &a),
            expand_message_xmd_64(b"m", &reduced)
        );
    }
}
