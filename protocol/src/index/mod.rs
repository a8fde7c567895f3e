//! Index mode: a client matches its small set against a provider's large one by
//! fetching a compact, signed index of the provider's OPRF outputs once, then having
//! only its own identifiers evaluated, blinded, per session.
//!
//! The provider holds a long-term RFC 9497 VOPRF key `k` (ristretto255-SHA512, mode 1)
//! per **epoch**. Its index is the sorted set of `t`-bit **tags** of `F(k, x)` over every
//! identifier `x` it offers. A client blinds each of its identifiers, the provider
//! evaluates them under `k` with a batched DLEQ proof against the index's public key, the
//! client verifies the proof, unblinds, and looks the tag up in its copy of the index.
//! The provider learns how many identifiers were evaluated and nothing else; without
//! evaluations the index is a list of pseudorandom numbers (SECURITY.md, "Index mode").
//!
//! # OPRF input
//!
//! `x = I2OSP(kind_code, 1) || normalised value` ([`oprf_input`]), with the kind codes of
//! [`crate::ident::IdentKind::code`] and the values of [`crate::ident`] at
//! [`NORMALISATION_VERSION`](crate::ident::NORMALISATION_VERSION). RFC 9497 hashes every
//! input under its own fixed DST, so the kind is bound inside the input: an email and a
//! custom identifier with the same text never share an output.
//!
//! # Tags and the false-match bound
//!
//! The tag of an output is its first `t` bits (the first 16 bytes read as a big-endian
//! integer, shifted right by `128 - t`). A segment holding `n_s` tags, `N_s` in total
//! through it, uses `t_s = ceil(log2(2 · N_s · B · 10⁹))` bits ([`tag_bits`]), with the
//! client bound `B` = [`CLIENT_BOUND`] = 4·10⁶ identifiers. Treating outputs as uniform,
//! one client identifier outside the provider's set matches segment `s` with probability
//! at most `n_s / 2^t_s`, so a client with `m ≤ B` identifiers expects at most
//! `m / (2·B·10⁹) · Σ n_s/N_s` false matches. `Σ n_s/N_s ≤ 1 + ln(N_last / N_0)`, and a
//! provider starts a new epoch rather than let deltas outgrow the base segment, so the sum
//! is below `1 + ln 2 < 2`: **at most 10⁻⁹ expected false matches for a client of up to
//! 4·10⁶ identifiers** (a 10⁶-record CRM), whatever the index size. At 10⁸ identifiers
//! `t = 80`.
//!
//! # File format, version 1
//!
//! An index file is one epoch's segments back to back: the **base** segment (number 0)
//! and the **delta** segments that add identifiers under the same key, in order. A file
//! only grows within an epoch, so a client holding a prefix of it (a partial download, or
//! an older version with fewer deltas) resumes from its length.
//!
//! A segment is `header || signature || body`. All integers are big-endian.
//!
//! | bytes | header field |
//! |---|---|
//! | 8 | magic [`MAGIC`] (`\x89BMIX\r\n\x1a`) |
//! | 2 | format version, [`FORMAT_VERSION`] |
//! | 4 | header length in bytes, this table's total (at most [`MAX_HEADER_LEN`]) |
//! | 1 | suite, [`SUITE`]: RFC 9497 ristretto255-SHA512 VOPRF over [`oprf_input`] |
//! | 2 | identifier normalisation version |
//! | 16 | epoch id (random; names the key) |
//! | 4 | segment number (0 = base) |
//! | 32 | SHA-256 of the previous segment's header and signature (zero for the base) |
//! | 32 | the epoch's OPRF public key `pkS = k·G` |
//! | 32 | the signer's Ed25519 key: the provider's audit key |
//! | 2 + n | provider dataset name: length, UTF-8 (at most 1024 bytes) |
//! | 16 | provider dataset version tag |
//! | 1 | identifier kinds in the index (bit `code`, as [`crate::ident::KindSet`]) |
//! | 8 | tags in this segment `n_s` |
//! | 8 | tags through this segment `N_s` |
//! | 1 | tag bits `t` (1..=128) |
//! | 1 | bucket bits `b` (0..=[`MAX_BUCKET_BITS`], at most `t`) |
//! | 1 | Rice parameter `r` (at most `t - b`) |
//! | 8 | data length `d` in bytes |
//! | 32 | SHA-256 of the body |
//!
//! The 64-byte signature is Ed25519 (`verify_strict`) by the signer key over
//! [`SIGNATURE_LABEL`] followed by the header. The header holds the body's hash and the
//! previous segment's, so one signature covers the segment and the chain before it.
//!
//! The body is `d` bytes of **data**, then the **directory**: `2^b + 1` big-endian `u64`
//! bit offsets into the data. Tags are split into `2^b` buckets by their top `b` bits;
//! bucket `h` is coded in data bits `[dir[h], dir[h+1])` (bits are read most significant
//! first within each byte). `dir[0] = 0`, the offsets never decrease, `dir[2^b]` is the
//! number of coded bits and `d = ceil(dir[2^b] / 8)`, the padding bits being zero. Inside a
//! bucket the tags' low `t - b` bits `v_0 < v_1 < …` are Golomb-Rice coded with parameter
//! `r`: the gaps `g_0 = v_0` and `g_i = v_i - v_{i-1} - 1`, each as `g >> r` one-bits, a
//! zero-bit, then the low `r` bits of `g`. With 256 to 511 tags per bucket this costs about
//! `t - log2 n + 1.8` bits per tag: under 7 bytes per provider identifier at any size.
//!
//! A reader checks, for every segment in order: magic, version, suite and normalisation
//! version; the signature under the pinned audit key (or, with none pinned, the key the
//! base names, the same in every segment); the same epoch, public key and signer in every
//! segment; numbers counting up from 0 with the previous-segment hash chaining them; the
//! running totals; the body hash; and the directory's invariants. [`Verifier`] does this
//! on a stream of bytes, without trusting any length before its limit is checked.

mod bits;
mod builder;
mod client;
mod dispatch;
mod format;
mod provider;
mod rng;
mod store;
mod verify;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use builder::{FinishedBody, SegmentBuilder, build_segment};
pub use client::{IndexClient, IndexClientConfig};
pub use dispatch::ServerSession;
pub use format::{SegmentHeader, SignedHeader};
pub use provider::{IndexProvider, IndexRequest};
pub use store::{
    IndexSource, IndexStore, IndexSummary, MemoryIndexSource, MemoryIndexStore, held_of,
};
pub use verify::{SegmentLayout, VerifiedIndex, Verifier};

use crate::ident::IdentKind;

/// First bytes of every index segment.
pub const MAGIC: [u8; 8] = *b"\x89BMIX\r\n\x1a";
/// Version of the index file layout.
pub const FORMAT_VERSION: u16 = 1;
/// The one suite: RFC 9497 ristretto255-SHA512 in VOPRF mode over [`oprf_input`].
pub const SUITE: u8 = 1;
/// What every segment signature starts with.
pub const SIGNATURE_LABEL: &[u8] = b"blindmatch-index-v1\n";
/// Longest segment header accepted.
pub const MAX_HEADER_LEN: usize = 4096;
/// Most bucket bits: a directory of at most 2^24 + 1 offsets (128 MiB), room for
/// ~4·10⁹ tags at the default bucket size.
pub const MAX_BUCKET_BITS: u8 = 24;
/// Identifiers a client may query that the false-match bound is stated for.
pub const CLIENT_BOUND: f64 = 4.0e6;
/// Expected false matches allowed for a client of [`CLIENT_BOUND`] identifiers.
pub const FALSE_MATCH_TARGET: f64 = 1.0e-9;
/// Tags per bucket the builder aims for: a lookup decodes about this many codes.
pub const BUCKET_TARGET: u64 = 256;
/// Longest index file a client accepts by default (room for ~2·10⁹ identifiers).
pub const DEFAULT_MAX_INDEX_LEN: u64 = 16 << 30;
/// Bytes of an epoch id.
pub const EPOCH_LEN: usize = 16;

/// An index epoch: one OPRF key, named by a random id.
pub type EpochId = [u8; EPOCH_LEN];

/// What an index session's outcome says of the index: which one, and what of it moved.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexFacts {
    /// The epoch the evaluations were made under.
    pub epoch: EpochId,
    /// Tags in the index.
    pub elements: u64,
    /// Bytes of the index file.
    pub file_len: u64,
    /// Where this session's transfer started (the client's held length, or 0).
    pub sent_from: u64,
    /// Index bytes moved in this session (0 when the client's copy was current).
    pub bytes: u64,
}

/// The OPRF input of an identifier: `I2OSP(kind_code, 1) || value`, appended to `out`.
pub fn oprf_input_into(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.extend_from_slice(value);
}

/// The OPRF input of an identifier of `kind` with normalised `value`.
pub fn oprf_input(kind: IdentKind, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + value.len());
    oprf_input_into(&mut out, kind.code(), value);
    out
}

/// The first 128 bits of an OPRF output, from which each segment's tag is cut.
pub fn tag_prefix(output: &[u8; 64]) -> u128 {
    let mut first = [0u8; 16];
    first.copy_from_slice(&output[..16]);
    u128::from_be_bytes(first)
}

/// The `bits`-bit tag of a 128-bit prefix (`bits` in 1..=128).
pub fn tag_of(prefix: u128, bits: u8) -> u128 {
    match bits {
        0 => 0,
        128.. => prefix,
        t => prefix >> (128 - u32::from(t)),
    }
}

/// Tag bits for a segment that brings the index to `total` tags: the smallest `t` with
/// `2^t ≥ 2 · total · CLIENT_BOUND / FALSE_MATCH_TARGET` (see the module docs), at most
/// 128.
pub fn tag_bits(total: u64) -> u8 {
    let need = 2.0 * (total.max(1) as f64) * CLIENT_BOUND / FALSE_MATCH_TARGET;
    let bits = need.log2().ceil();
    // `need` ≥ 8·10¹⁵, so `bits` is in 53..=128 for any u64 total.
    bits.clamp(1.0, 128.0) as u8
}

/// Expected false matches of `queried` client identifiers against segments of
/// `(tags in the segment, tag bits)`: `Σ queried · n_s / 2^t_s`.
pub fn expected_false_matches(queried: u64, segments: &[(u64, u8)]) -> f64 {
    segments
        .iter()
        .map(|&(n, t)| queried as f64 * n as f64 / 2f64.powi(i32::from(t)))
        .sum()
}

/// Bucket and Rice parameters for a segment of `n` tags of `t` bits: about
/// [`BUCKET_TARGET`] tags per bucket, and `r = floor(log2(2^(t) / n))`, the Rice
/// parameter within 0.6 bits of the optimum for uniform tags.
pub fn coding_params(n: u64, t: u8) -> (u8, u8) {
    let n = n.max(1);
    let buckets = (n / BUCKET_TARGET).max(1);
    // floor(log2(buckets)), at most MAX_BUCKET_BITS and at most t.
    let b = (63 - buckets.leading_zeros()) as u8;
    let b = b.min(MAX_BUCKET_BITS).min(t);
    // Mean gap 2^t / n: r = t - ceil(log2 n), at least 0, at most t - b.
    let log_n = 64 - (n - 1).leading_zeros();
    let r = i32::from(t) - log_n as i32;
    let r = r.clamp(0, i32::from(t - b)) as u8;
    (b, r)
}
