use proptest::prelude::*;

use super::*;
use crate::error::PeerIncompatible;
use crate::ident::{IdentKind, KindSet};
use crate::transcript::Role;

fn sample_hello() -> Hello {
    let mut kinds = KindSet::empty();
    kinds.insert(IdentKind::Email);
    kinds.insert(IdentKind::Phone);
    let mut hello = Hello::new([7; 16], OutputMode::Both, 12345, [5; 32]);
    hello.dataset = "kp-2026".into();
    hello.purpose = "ABM campaign 精准营销".into();
    hello.legal_basis = "consent".into();
    hello.kinds = kinds;
    hello.own_dataset = DatasetRef::new("crm 客户", [3; 16]);
    hello
}

fn sample_receipt(intersection: Option<u64>) -> Receipt {
    let mut receipt = Receipt::unsigned(
        [1; 32],
        [7; 16],
        [9; 32],
        Role::Responder,
        [[2; 32], [3; 32]],
        [
            DatasetRef::new("crm", [4; 16]),
            DatasetRef::new("kp-2026", [5; 16]),
        ],
        OutputMode::Both,
        (12345, 99),
        intersection,
    );
    receipt.log_head = LogHead {
        seq: 41,
        hash: [6; 32],
    };
    receipt.signature = [8; 64];
    receipt
}

fn samples() -> Vec<Message> {
    let mut accept = Accept::new(99, [4; 32]);
    accept.kinds = sample_hello().kinds;
    accept.dataset = DatasetRef::new("kp-2026", [5; 16]);
    vec![
        Message::Hello(sample_hello()),
        Message::Accept(accept),
        Message::Reject(Reject {
            reason: RejectReason::BUSY,
            text: "too many sessions".into(),
        }),
        Message::Blinded(vec![[1; 32], [2; 32]]),
        Message::Reblinded(Reblinded {
            points: vec![[3; 32]],
            proof: [4; 64],
        }),
        Message::Shuffled(vec![[5; 32], [6; 32], [7; 32]]),
        Message::SumProof([8; 64]),
        Message::Finish(Box::new(Finish::new(
            [9; 32],
            Some(5),
            sample_receipt(Some(5)),
        ))),
        Message::Finish(Box::new(Finish::new([9; 32], None, sample_receipt(None)))),
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
    hello.version = 1;
    let frame = Message::Hello(hello).to_frame();
    assert_eq!(
        Message::decode(&frame),
        Err(PeerIncompatible::UnsupportedVersion { got: 1, ours: 2 }.into())
    );
    // A version-3 Hello with a body we cannot parse still reports the version first.
    assert_eq!(
        Message::decode(&[1, 0, 3, 0xff]),
        Err(PeerIncompatible::UnsupportedVersion { got: 3, ours: 2 }.into())
    );
}

#[test]
fn receipts_round_trip_and_sign_every_field() {
    let receipt = sample_receipt(Some(3));
    assert_eq!(
        Receipt::from_bytes(&receipt.to_bytes()),
        Ok(receipt.clone())
    );
    let signed = receipt.signed_bytes();
    assert!(signed.starts_with(RECEIPT_LABEL));
    let mut other = receipt.clone();
    other.log_head.seq += 1;
    assert_ne!(other.signed_bytes(), signed);
    let mut other = receipt.clone();
    other.signature = [0; 64];
    assert_eq!(other.signed_bytes(), signed, "the signature is not signed");
    assert!(!receipt.signature_valid());
}

#[test]
fn put_text_never_splits_a_character() {
    let text = "é".repeat(MAX_TEXT_LEN); // 2 bytes each: twice the limit
    let mut out = Vec::new();
    codec::put_text(&mut out, &text);
    let mut r = codec::Reader::new(&out);
    let back = r.text().expect("valid UTF-8 within the limit");
    assert_eq!(back.len(), MAX_TEXT_LEN);
    assert!(back.chars().all(|c| c == 'é'));
}

#[test]
fn batch_limits_are_checked_before_allocating() {
    // Announce 2^32-1 points with no body: must fail on the count, not try to read.
    let frame = [MessageType::BLINDED.0, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(
        Message::decode(&frame),
        Err(Error::InvalidMessage(InvalidMessage::BadBatchLength { .. }))
    ));
    let empty = [MessageType::BLINDED.0, 0, 0, 0, 0];
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
    let mut hello = sample_hello();
    hello.dataset = "d".repeat(MAX_TEXT_LEN);
    hello.purpose = "p".repeat(MAX_TEXT_LEN);
    hello.legal_basis = "l".repeat(MAX_TEXT_LEN);
    hello.own_dataset.name = "o".repeat(MAX_TEXT_LEN);
    let longest = Message::Hello(hello);
    let frame = longest.to_frame();
    assert_eq!(frame.len(), MAX_HELLO_LEN);
    assert_eq!(Message::decode(&frame), Ok(longest));
}

#[test]
fn unknown_mode_and_kinds_are_rejected() {
    let mut hello = sample_hello();
    hello.own_dataset = DatasetRef::default();
    let mut frame = Message::Hello(hello).to_frame();
    // Mode, set size (8), round size (4), bundle width, commitment (32), dataset (2 + 16).
    let mode_at = frame.len() - (1 + 8 + 4 + 1 + 32 + 2 + 16);
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
    fn decoding_mutated_frames_never_panics(idx in 0usize..10, pos in any::<usize>(), byte in any::<u8>()) {
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
