//! Arbitrary bytes into the audit log verifier, the record reader, the standalone
//! checkpoint parser and the cross-check. Never panics; verification and reading agree;
//! a line that parses is byte-for-byte its record's canonical line.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    blindmatch_fuzz::audit::check_arbitrary(data);
});
