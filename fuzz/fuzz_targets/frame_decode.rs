//! Arbitrary bytes into the wire decoder, as one frame and as the length-prefixed
//! stream the transport reads. Whatever decodes re-encodes to the same bytes (the
//! encoding is canonical, which the transcript hash relies on) and decodes again to
//! the same message; whatever fails is a decoding error, never a panic.

#![no_main]

use blindmatch_protocol::error::Error;
use blindmatch_protocol::wire::{MAX_FRAME_LEN, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_frame(data);
    // The transport's framing: a big-endian u32 length checked against MAX_FRAME_LEN
    // before anything is read or allocated, then exactly that many bytes.
    let mut rest = data;
    while let Some((prefix, body)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > MAX_FRAME_LEN || len > body.len() {
            break;
        }
        let (frame, tail) = body.split_at(len);
        check_frame(frame);
        rest = tail;
    }
});

fn check_frame(frame: &[u8]) {
    match Message::decode(frame) {
        Ok(msg) => {
            assert_eq!(frame.first(), Some(&msg.message_type().0));
            let encoded = msg.to_frame();
            assert_eq!(encoded, frame, "decoded {msg:?} but it encodes differently");
            assert_eq!(Message::decode(&encoded), Ok(msg));
        }
        Err(err) => {
            assert!(
                matches!(err, Error::InvalidMessage(_) | Error::PeerIncompatible(_)),
                "decoding failed with a non-decoding error: {err:?}"
            );
            let _ = err.close_code();
            assert!(!err.to_string().is_empty());
        }
    }
}
