//! Harnesses shared by the fuzz targets in `fuzz_targets/` and the seed generator in
//! `examples/seeds.rs`.
//!
//! Everything here is deterministic: the sets, the RNG seeds, the channel binding and the
//! audit key are fixed, so an input replays to the same run, and a session recorded by
//! the seed generator is a complete, valid session when the target replays it.
//!
//! Invariants are checked with `assert!`: a failed assertion is a finding, exactly as a
//! panic inside the protocol crate is.

#![forbid(unsafe_code)]

pub mod audit;
pub mod chunks;
pub mod session;
