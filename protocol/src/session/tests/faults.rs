//! Faults on the wire: dropped, duplicated, reordered, truncated and tampered frames,
//! out-of-order messages. Each ends with its typed error and close code, and never with
//! a result.

use super::*;
use crate::error::InvalidMessage;

#[test]
fn dropped_round_is_caught_by_the_schedule() {
    // Each round has the size the schedule gives it, so the round after a dropped one
    // arrives where the dropped one was due.
    for mode in OutputMode::ALL {
        let r = fault_run(
            mode,
            on_nth(Dir::ToResponder, MessageType::BLINDED, 2, |_, _| vec![]),
        );
        assert!(
            matches!(
                responder_err(&r),
                Error::PeerMisbehaved(
                    PeerMisbehaved::WrongRoundSize { round: 2, .. }
                        | PeerMisbehaved::TooFewPoints { .. }
                )
            ),
            "{mode}"
        );
        assert!(
            matches!(
                initiator_err(&r),
                Error::PeerAborted(CloseCode::PROTOCOL_VIOLATION)
            ),
            "{mode}"
        );
    }
}

#[test]
fn the_last_round_dropped_never_releases_a_result() {
    // Nothing comes after the last round: each side waits for what never comes, and
    // neither may release a result (the driver's idle timeout ends the session).
    let a = records("a", 0..10, false);
    let r = run(
        &a,
        &records("a", 5..15, false),
        OutputMode::Both,
        9,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 0, |_, _| vec![]),
    );
    assert_eq!(r.initiator, Err(Error::ApiMisuse("initiator stalled")));
    assert_eq!(r.responder, Err(Error::ApiMisuse("responder stalled")));
}

#[test]
fn duplicated_round_is_caught() {
    let r = fault_run(
        OutputMode::Responder,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 0, |f, _| {
            vec![f.to_vec(); 30]
        }),
    );
    assert!(
        matches!(
            responder_err(&r),
            Error::PeerMisbehaved(
                PeerMisbehaved::TooManyPoints { .. } | PeerMisbehaved::WrongRoundSize { .. }
            )
        ),
        "{:?}",
        r.responder
    );
}

#[test]
fn a_peer_that_learns_in_order_must_keep_to_the_window() {
    // The responder learns its records in `responder` mode, so it paces its rounds by
    // our answers; rounds it sends beyond the window are refused.
    let a = records("a", 0..40, false);
    let b = records("a", 0..200, false);
    let r = run(&a, &b, OutputMode::Responder, 3, {
        let mut held: Vec<Vec<u8>> = Vec::new();
        Box::new(move |dir, frame: &[u8], _: &mut Wire| {
            // Hold our answers back, so the responder's window stays at its start, and
            // replay its first round as if it were later ones.
            if dir == Dir::ToResponder && message_type(frame) == MessageType::REBLINDED {
                held.push(frame.to_vec());
                return vec![];
            }
            if dir == Dir::ToInitiator && message_type(frame) == MessageType::BLINDED {
                return vec![(dir, frame.to_vec()); 3];
            }
            vec![(dir, frame.to_vec())]
        })
    });
    assert!(matches!(
        initiator_err(&r),
        Error::PeerMisbehaved(
            PeerMisbehaved::UnexpectedMessage { got: "Blinded", .. }
                | PeerMisbehaved::WrongRoundSize { .. }
        )
    ));
}

#[test]
fn reordered_rounds_are_caught() {
    let mut held: Option<Vec<u8>> = None;
    let mut count = 0;
    let fault: Fault<'_> = Box::new(move |d, frame, _| {
        if d == Dir::ToResponder && message_type(frame) == MessageType::BLINDED {
            count += 1;
            if count == 1 {
                held = Some(frame.to_vec());
                return vec![];
            }
            if count == 2 {
                return vec![(d, frame.to_vec()), (d, held.take().expect("held"))];
            }
        }
        vec![(d, frame.to_vec())]
    });
    let r = fault_run(OutputMode::Both, fault);
    let errs = [r.initiator.clone().err(), r.responder.clone().err()];
    assert!(
        errs.iter().flatten().any(|e| matches!(
            e,
            Error::PeerMisbehaved(
                PeerMisbehaved::TranscriptMismatch
                    | PeerMisbehaved::BadProof
                    | PeerMisbehaved::WrongRoundSize { .. }
            )
        )),
        "{errs:?}"
    );
    assert!(r.initiator.is_err() && r.responder.is_err());
}

fn replace_point(frame: &[u8], with: [u8; 32]) -> Vec<Vec<u8>> {
    let mut f = frame.to_vec();
    f[5..37].copy_from_slice(&with);
    vec![f]
}

#[test]
fn tampered_points_are_typed_errors() {
    let non_canonical = [0xff; 32];
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 1, move |f, _| {
            replace_point(f, non_canonical)
        }),
    );
    assert_eq!(responder_err(&r), InvalidMessage::InvalidPoint.into());
    assert!(matches!(
        initiator_err(&r),
        Error::PeerAborted(CloseCode::BAD_POINTS)
    ));

    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToInitiator, MessageType::BLINDED, 0, |f, _| {
            replace_point(f, [0; 32])
        }),
    );
    assert_eq!(initiator_err(&r), InvalidMessage::IdentityPoint.into());

    // A valid but different point in a round: the transcripts disagree at the latest.
    let other = crate::group::hash_identifier(IdentKind::Custom.code(), b"x")
        .compress()
        .to_bytes();
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 1, move |f, _| {
            replace_point(f, other)
        }),
    );
    assert!(r.initiator.is_err() && r.responder.is_err());
}

#[test]
fn truncated_frame_is_invalid_message() {
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 0, |f, _| {
            vec![f[..f.len() - 3].to_vec()]
        }),
    );
    assert_eq!(responder_err(&r), InvalidMessage::Truncated.into());
    assert!(matches!(
        initiator_err(&r),
        Error::PeerAborted(CloseCode::INVALID_MESSAGE)
    ));
}

#[test]
fn wrong_declared_count_is_caught() {
    // The responder's Accept is altered to announce one more element than it sends:
    // the rounds no longer fit the schedule, or the transcripts differ.
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToInitiator, MessageType::ACCEPT, 0, |f, _| {
            let Ok(Message::Accept(mut accept)) = Message::decode(f) else {
                unreachable!("an Accept frame")
            };
            accept.set_size += 1;
            vec![Message::Accept(accept).to_frame()]
        }),
    );
    assert!(r.initiator.is_err() && r.responder.is_err());
}

#[test]
fn out_of_order_messages_are_rejected() {
    let mut b = responder();
    let err = b
        .handle_frame(&Message::Blinded(vec![[1; 32]]).to_frame())
        .expect_err("Blinded before Hello");
    assert!(matches!(
        err,
        Error::PeerMisbehaved(PeerMisbehaved::UnexpectedMessage {
            expected: "Hello",
            got: "Blinded"
        })
    ));
    assert_eq!(
        b.poll_transmit().map(|f| Message::decode(&f)),
        Some(Ok(Message::Abort(CloseCode::PROTOCOL_VIOLATION)))
    );

    // A second Hello in the middle of the exchange.
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 1, |f, wire| {
            let hello = wire.delivered[0].1.clone();
            vec![hello, f.to_vec()]
        }),
    );
    assert!(matches!(
        responder_err(&r),
        Error::PeerMisbehaved(PeerMisbehaved::UnexpectedMessage {
            got: "a second Hello",
            ..
        })
    ));
}

#[test]
fn tampered_finish_is_caught() {
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToInitiator, MessageType::FINISH, 0, |f, _| {
            let mut f = f.to_vec();
            f[1] ^= 1;
            vec![f]
        }),
    );
    assert_eq!(initiator_err(&r), PeerMisbehaved::TranscriptMismatch.into());

    let r = fault_run(
        OutputMode::Cardinality,
        on_nth(Dir::ToInitiator, MessageType::FINISH, 0, |f, _| {
            let Ok(Message::Finish(mut finish)) = Message::decode(f) else {
                unreachable!("a Finish frame")
            };
            finish.intersection = finish.intersection.map(|n| n + 1);
            vec![Message::Finish(finish).to_frame()]
        }),
    );
    assert!(matches!(
        initiator_err(&r),
        Error::PeerMisbehaved(PeerMisbehaved::IntersectionMismatch { .. })
    ));
}

#[test]
fn peer_abort_is_reported_with_its_code() {
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToInitiator, MessageType::BLINDED, 0, |_, _| {
            vec![Message::Abort(CloseCode::CANCELLED).to_frame()]
        }),
    );
    assert_eq!(initiator_err(&r), Error::PeerAborted(CloseCode::CANCELLED));
}

#[test]
fn a_closed_session_answers_further_frames_with_nothing() {
    let mut b = responder();
    assert!(b.handle_frame(&[]).is_err());
    assert!(b.poll_transmit().is_some(), "one Abort for the bad frame");
    assert!(b.poll_transmit().is_none());
    for _ in 0..3 {
        assert_eq!(b.handle_frame(&[]), Err(PeerMisbehaved::AfterEnd.into()));
        assert!(b.poll_transmit().is_none(), "no second Abort");
    }
}
