//! A valid signed audit log, changed by fuzzer-chosen edits. Any change is detected,
//! except dropping whole records from the end (caught only by an external checkpoint,
//! which is checked too) and, when only the head signature is checked, replacing an
//! earlier record's signature: see `blindmatch_fuzz::audit::check_tampered`.
//!
//! Input: edits of 4 bytes each: an operation, a big-endian `u16` position (modulo the
//! current length) and a value. Operations: 0 overwrite a byte, 1 insert a byte, 2 delete
//! a byte, 3 flip one bit, 4 truncate, 5 swap two lines, 6 delete a line, 7 duplicate a
//! line (lines are picked by position and value).

#![no_main]

use blindmatch_fuzz::audit::{check_tampered, fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut log = fixture().log.clone();
    for edit in data.chunks_exact(4).take(16) {
        let pos = usize::from(u16::from_be_bytes([edit[1], edit[2]]));
        apply(&mut log, edit[0] % 8, pos, edit[3]);
    }
    check_tampered(&log);
});

fn apply(log: &mut Vec<u8>, op: u8, pos: usize, value: u8) {
    let at = |len: usize| if len == 0 { 0 } else { pos % len };
    match op {
        0 if !log.is_empty() => {
            let i = at(log.len());
            log[i] = value;
        }
        1 => {
            let i = pos % (log.len() + 1);
            log.insert(i, value);
        }
        2 if !log.is_empty() => {
            let i = at(log.len());
            log.remove(i);
        }
        3 if !log.is_empty() => {
            let i = at(log.len());
            log[i] ^= 1 << (value % 8);
        }
        4 => log.truncate(pos % (log.len() + 1)),
        5..=7 => {
            let mut lines: Vec<Vec<u8>> = log
                .split_inclusive(|&b| b == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
            if lines.is_empty() {
                return;
            }
            let a = at(lines.len());
            let b = usize::from(value) % lines.len();
            match op {
                5 => lines.swap(a, b),
                6 => {
                    lines.remove(a);
                }
                _ => {
                    let line = lines[a].clone();
                    lines.insert(b, line);
                }
            }
            *log = lines.concat();
        }
        _ => {}
    }
}
