use proptest::prelude::*;

use super::*;
use crate::ident::IdentKind;

fn sample_hello() -> Hello {
    let mut kinds = KindSet::empty();
    kinds.insert(IdentKind::Email);
    kinds.insert(IdentKind::Phone);
    Hello {
        version: PROTOCOL_VERSION,
        normalisation_version: NORMALISATION_VERSION,
        session_id: [7; 16],
        dataset: "kp-2026".into(),
        purpose: "ABM campaign 精准营销".into(),
        legal_basis: "consent".into(),
        kinds,
        mode: OutputMode::Both,
        set_size: 12345,
    }
}

fn samples() -> Vec<Message> {
    vec![
        Message::Hello(sample_hello()),
        Message::Accept(Accept {
            set_size: 99,
            kinds: sample_hello().kinds,
        }),
        Message::Reject(Reject {
            reason: RejectReason::BUSY,
            text: "too many sessions".into(),
        }),
        Message::Blinded(vec![[1; 32], [2; 32]]),
        Message::Reblinded(vec![[3; 16]]),
        Message::Finish(Finish {
            transcript: [9; 32],
            intersection: Some(5),
        }),
        Message::Finish(Finish {
            transcript: [9; 32],
            intersection: None,
        }),
        Message::Abort(CloseCode::TIMEOUT),
    ]
}

#[test]
fn every_message_round_trips() {
    for msg in samples() {
        let frame = msg.to_frame();
        assert_eq!(Message::decode(&frame), Ok(msg));
    }
}

#[test]
fn every_truncation_is_an_error_and_never_a_panic() {
    for msg in samples() {
        let frame = msg.to_frame();
        for cut in 0..frame.len() {
            assert!(
                Message::decode(&frame[..cut]).is_err(),
                "{msg:?} cut at {cut}"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    for msg in samples() {
        let mut frame = msg.to_frame();
        frame.push(0);
        assert_eq!(
            Message::decode(&frame),
            Err(InvalidMessage::TrailingBytes(1).into())
        );
    }
}

#[test]
fn unknown_type_is_explicit() {
    assert_eq!(
        Message::decode(&[0x42, 0, 0]),
        Err(InvalidMessage::UnknownMessageType(0x42).into())
    );
    assert_eq!(Message::decode(&[]), Err(InvalidMessage::EmptyFrame.into()));
}

#[test]
fn other_version_is_its_own_error() {
    let mut hello = sample_hello();
    hello.version = 2;
    let frame = Message::Hello(hello).to_frame();
    assert_eq!(
        Message::decode(&frame),
        Err(PeerIncompatible::UnsupportedVersion { got: 2, ours: 1 }.into())
    );
    // A version-2 Hello with a body we cannot parse still reports the version first.
    assert_eq!(
        Message::decode(&[1, 0, 2, 0xff]),
        Err(PeerIncompatible::UnsupportedVersion { got: 2, ours: 1 }.into())
    );
}

#[test]
fn batch_limits_are_checked_before_allocating() {
    // Announce 2^32-1 points with no body: must fail on the count, not try to read.
    let frame = [MessageType::BLINDED.0, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(
        Message::decode(&frame),
        Err(Error::InvalidMessage(InvalidMessage::BadBatchLength { .. }))
    ));
    let empty = [MessageType::REBLINDED.0, 0, 0, 0, 0];
    assert!(matches!(
        Message::decode(&empty),
        Err(Error::InvalidMessage(InvalidMessage::BadBatchLength {
            len: 0,
            ..
        }))
    ));
    let too_big = vec![0u8; MAX_FRAME_LEN + 1];
    assert!(matches!(
        Message::decode(&too_big),
        Err(Error::InvalidMessage(InvalidMessage::FrameTooLarge { .. }))
    ));
}

#[test]
fn text_limits_and_utf8() {
    let mut frame = vec![MessageType::REJECT.0, 0, 1];
    frame.extend_from_slice(&((MAX_TEXT_LEN + 1) as u16).to_be_bytes());
    frame.extend(std::iter::repeat_n(b'a', MAX_TEXT_LEN + 1));
    assert!(matches!(
        Message::decode(&frame),
        Err(Error::InvalidMessage(InvalidMessage::TextTooLong { .. }))
    ));
    let bad_utf8 = [MessageType::REJECT.0, 0, 1, 0, 2, 0xff, 0xfe];
    assert_eq!(
        Message::decode(&bad_utf8),
        Err(InvalidMessage::InvalidUtf8.into())
    );
}

#[test]
fn the_longest_hello_is_max_hello_len_and_decodes() {
    let longest = Message::Hello(Hello {
        dataset: "d".repeat(MAX_TEXT_LEN),
        purpose: "p".repeat(MAX_TEXT_LEN),
        legal_basis: "l".repeat(MAX_TEXT_LEN),
        ..sample_hello()
    });
    let frame = longest.to_frame();
    assert_eq!(frame.len(), MAX_HELLO_LEN);
    assert_eq!(Message::decode(&frame), Ok(longest));
}

#[test]
fn unknown_mode_and_kinds_are_rejected() {
    let mut frame = Message::Hello(sample_hello()).to_frame();
    let mode_at = frame.len() - 9;
    frame[mode_at] = 9;
    assert_eq!(
        Message::decode(&frame),
        Err(InvalidMessage::UnknownOutputMode(9).into())
    );
    frame[mode_at] = 1;
    frame[mode_at - 1] = 0x80;
    assert_eq!(
        Message::decode(&frame),
        Err(InvalidMessage::InvalidKinds(0x80).into())
    );
}

#[test]
fn unknown_codes_stay_representable() {
    let frame = Message::Abort(CloseCode(999)).to_frame();
    assert_eq!(Message::decode(&frame), Ok(Message::Abort(CloseCode(999))));
    assert_eq!(CloseCode(999).name(), "unknown");
    assert_eq!(RejectReason(999).name(), "unknown-reason");
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decoding_mutated_frames_never_panics(idx in 0usize..8, pos in any::<usize>(), byte in any::<u8>()) {
        let mut frame = samples()[idx].to_frame();
        let at = pos % frame.len();
        frame[at] = byte;
        let _ = Message::decode(&frame);
    }

    #[test]
    fn batches_round_trip(points in proptest::collection::vec(any::<[u8; 32]>(), 1..64)) {
        let msg = Message::Blinded(points);
        prop_assert_eq!(Message::decode(&msg.to_frame()), Ok(msg));
    }
}

#[test]
fn printable_escapes_control_and_bidi_characters_only() {
    let hostile = "ok\u{1b}[2J\r\nforged\u{7}\u{0}\u{202e}txt 拒绝";
    let shown = printable(hostile);
    assert!(
        !shown
            .chars()
            .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
        "{shown:?}"
    );
    assert_eq!(
        shown,
        "ok\\u{1b}[2J\\u{d}\\u{a}forged\\u{7}\\u{0}\\u{202e}txt 拒绝"
    );
    assert_eq!(
        printable("policy: dataset not offered"),
        "policy: dataset not offered"
    );
}
