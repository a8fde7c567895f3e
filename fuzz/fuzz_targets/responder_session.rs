//! A responder (or, with bit 0 of the first byte set, an initiator) fed an arbitrary
//! sequence of frames by a fuzzer playing its peer. Never panics; every error is a typed
//! peer error; the invariants of `blindmatch_fuzz::session` hold throughout.
//!
//! Input: one setup byte ([`Setup::from_byte`]), then frames as `u16` big-endian length
//! plus bytes ([`blindmatch_fuzz::chunks`]). The seeds are complete recorded sessions.

#![no_main]

use blindmatch_fuzz::chunks;
use blindmatch_fuzz::session::{Harness, Setup};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&setup, frames)) = data.split_first() else {
        return;
    };
    let mut harness = Harness::new(Setup::from_byte(setup));
    for frame in chunks::split(frames).take(64) {
        harness.deliver(frame);
    }
    harness.finish();
});
