//! The in-memory pair harness: both state machines driven against each other with a
//! seeded RNG, with faults injected on the wire.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::error::{CloseCode, InvalidMessage, PeerMisbehaved};
use crate::ident::{IdentKind, Identifier, Normaliser};
use crate::wire::{Message, MessageType, OutputMode, RejectReason};

/// Which way a frame travels.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    ToResponder,
    ToInitiator,
}

/// What the fault injector does to one frame: returns the frames actually delivered.
type Fault<'a> = Box<dyn FnMut(Dir, &[u8], &mut Wire) -> Vec<Vec<u8>> + 'a>;

/// Everything sent so far, for faults that replay or reflect.
#[derive(Default)]
struct Wire {
    sent: Vec<(Dir, Vec<u8>)>,
}

struct Run {
    initiator: Result<Outcome, Error>,
    responder: Result<Outcome, Error>,
}

fn records(prefix: &str, range: std::ops::Range<u32>, with_phone: bool) -> Vec<Vec<Identifier>> {
    let n = Normaliser::default();
    range
        .map(|i| {
            let mut ids = vec![
                n.email(&format!("kp{i}@{prefix}corp{}.cn", i % 7))
                    .expect("valid email"),
            ];
            if with_phone {
                ids.push(n.phone(&format!("138{:08}", i)).expect("valid phone"));
            }
            ids
        })
        .collect()
}

fn prepare(records: &[Vec<Identifier>]) -> PreparedSet {
    let mut b = PreparedSetBuilder::new();
    for (r, ids) in records.iter().enumerate() {
        for id in ids {
            b.add(r as u32, id);
        }
    }
    b.build()
}

fn run(
    a_records: &[Vec<Identifier>],
    b_records: &[Vec<Identifier>],
    mode: OutputMode,
    seed: u64,
    mut fault: Fault<'_>,
) -> Run {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut config = InitiatorConfig::new([seed as u8; 16], "kp", "test", mode);
    config.batch_size = 7; // many small batches exercise the interleaving
    config.channel_binding = [42; 32];
    let mut a = Initiator::new(config, prepare(a_records), &mut rng).expect("valid config");
    let mut b = Responder::new(ResponderConfig {
        channel_binding: [42; 32],
        batch_size: 5,
        ..ResponderConfig::default()
    });
    let b_set = prepare(b_records);
    let mut wire = Wire::default();
    let mut a_result: Option<Result<Outcome, Error>> = None;
    let mut b_result: Option<Result<Outcome, Error>> = None;
    for _ in 0..100_000 {
        let mut moved = false;
        while let Some(frame) = a.poll_transmit() {
            moved = true;
            for delivered in fault(Dir::ToResponder, &frame, &mut wire) {
                wire.sent.push((Dir::ToResponder, delivered.clone()));
                if let Err(e) = b.handle_frame(&delivered) {
                    b_result.get_or_insert(Err(e));
                }
            }
        }
        while let Some(event) = b.poll_event() {
            match event {
                Event::HelloReceived(_) => {
                    b.accept(b_set.clone(), &mut rng).expect("pending hello")
                }
                Event::Completed(o) => {
                    b_result.get_or_insert(Ok(o));
                }
                Event::Failed(e) => {
                    b_result.get_or_insert(Err(e));
                }
                Event::Accepted { .. } => unreachable!("responder never sees Accepted"),
            }
        }
        while let Some(frame) = b.poll_transmit() {
            moved = true;
            for delivered in fault(Dir::ToInitiator, &frame, &mut wire) {
                wire.sent.push((Dir::ToInitiator, delivered.clone()));
                if let Err(e) = a.handle_frame(&delivered) {
                    a_result.get_or_insert(Err(e));
                }
            }
        }
        while let Some(event) = a.poll_event() {
            match event {
                Event::Completed(o) => {
                    a_result.get_or_insert(Ok(o));
                }
                Event::Failed(e) => {
                    a_result.get_or_insert(Err(e));
                }
                Event::Accepted { .. } => {}
                Event::HelloReceived(_) => unreachable!("initiator never sees Hello"),
            }
        }
        if !moved {
            break;
        }
    }
    Run {
        initiator: a_result.unwrap_or(Err(Error::ApiMisuse("initiator stalled"))),
        responder: b_result.unwrap_or(Err(Error::ApiMisuse("responder stalled"))),
    }
}

fn clean() -> Fault<'static> {
    Box::new(|_, frame, _| vec![frame.to_vec()])
}

/// The plain intersection: records of `mine` holding any identifier of `theirs`,
/// with the kinds that matched.
fn expected(mine: &[Vec<Identifier>], theirs: &[Vec<Identifier>]) -> Vec<MatchedRecord> {
    let theirs: BTreeSet<&Identifier> = theirs.iter().flatten().collect();
    let mut out = BTreeMap::new();
    for (r, ids) in mine.iter().enumerate() {
        for id in ids.iter().filter(|id| theirs.contains(id)) {
            out.entry(r as u32)
                .or_insert_with(KindSet::empty)
                .insert(id.kind());
        }
    }
    out.into_iter()
        .map(|(record, kinds)| MatchedRecord { record, kinds })
        .collect()
}

fn unique_count(mine: &[Vec<Identifier>], theirs: &[Vec<Identifier>]) -> u64 {
    let a: BTreeSet<&Identifier> = mine.iter().flatten().collect();
    let b: BTreeSet<&Identifier> = theirs.iter().flatten().collect();
    a.intersection(&b).count() as u64
}

fn check_mode(a: &[Vec<Identifier>], b: &[Vec<Identifier>], mode: OutputMode, seed: u64) {
    let run = run(a, b, mode, seed, clean());
    let ra = run.initiator.expect("initiator completes");
    let rb = run.responder.expect("responder completes");
    assert_eq!(ra.transcript_hash, rb.transcript_hash);
    let count = unique_count(a, b);
    let (a_learns, b_learns) = match mode {
        OutputMode::Both => (true, true),
        OutputMode::Initiator => (true, false),
        OutputMode::Responder => (false, true),
        OutputMode::Cardinality => (false, false),
    };
    assert_eq!(
        ra.matches,
        a_learns.then(|| expected(a, b)),
        "initiator, {mode}"
    );
    assert_eq!(
        rb.matches,
        b_learns.then(|| expected(b, a)),
        "responder, {mode}"
    );
    let a_count = a_learns || mode == OutputMode::Cardinality;
    let b_count = b_learns || mode == OutputMode::Cardinality;
    assert_eq!(ra.intersection_size, a_count.then_some(count));
    assert_eq!(rb.intersection_size, b_count.then_some(count));
    assert_eq!(ra.peer_set_size, rb.own_set_size);
    assert_eq!(rb.peer_set_size, ra.own_set_size);
}

#[test]
fn every_mode_yields_exactly_the_plain_intersection() {
    let mut a = records("a", 0..60, true);
    let mut b = records("a", 40..130, false);
    // Duplicates across records and an identifier shared by two records.
    a.push(a[45].clone());
    b.push(vec![a[50][1].clone()]);
    for mode in OutputMode::ALL {
        check_mode(&a, &b, mode, 1);
    }
}

#[test]
fn empty_sets_complete_with_no_matches() {
    let a = records("a", 0..10, false);
    for mode in OutputMode::ALL {
        check_mode(&a, &[], mode, 2);
        check_mode(&[], &a, mode, 3);
        check_mode(&[], &[], mode, 4);
    }
}

#[test]
fn nothing_is_sent_before_accept_and_refusal_reaches_the_initiator() {
    let mut rng = StdRng::seed_from_u64(5);
    let config = InitiatorConfig::new([1; 16], "kp", "test", OutputMode::Both);
    let mut a =
        Initiator::new(config, prepare(&records("a", 0..20, false)), &mut rng).expect("valid");
    let hello = a.poll_transmit().expect("hello");
    assert_eq!(a.poll_transmit(), None, "no points before Accept");
    let mut b = Responder::new(ResponderConfig::default());
    b.handle_frame(&hello).expect("valid hello");
    assert!(matches!(b.poll_event(), Some(Event::HelloReceived(h)) if h.set_size == 20));
    b.reject(
        RejectReason::PURPOSE_NOT_ALLOWED,
        "purpose 'test' is not allowed",
    )
    .expect("pending hello");
    let reject = b.poll_transmit().expect("reject frame");
    assert!(b.is_closed());
    let err = a.handle_frame(&reject).expect_err("refused");
    assert_eq!(
        err,
        Error::Refused {
            reason: RejectReason::PURPOSE_NOT_ALLOWED,
            text: "purpose 'test' is not allowed".into()
        }
    );
    assert_eq!(a.poll_transmit(), None, "no abort answers a refusal");
}

fn message_type(frame: &[u8]) -> MessageType {
    MessageType(frame[0])
}

/// Applies `f` to the `nth` frame of `ty` travelling in `dir`.
fn on_nth<'a>(
    dir: Dir,
    ty: MessageType,
    nth: usize,
    mut f: impl FnMut(&[u8], &mut Wire) -> Vec<Vec<u8>> + 'a,
) -> Fault<'a> {
    let mut seen = 0;
    Box::new(move |d, frame, wire| {
        if d == dir && message_type(frame) == ty {
            seen += 1;
            if seen == nth + 1 {
                return f(frame, wire);
            }
        }
        vec![frame.to_vec()]
    })
}

fn fault_run(mode: OutputMode, fault: Fault<'_>) -> Run {
    run(
        &records("a", 0..40, true),
        &records("a", 20..70, true),
        mode,
        9,
        fault,
    )
}

fn responder_err(run: &Run) -> Error {
    run.responder.clone().expect_err("responder must fail")
}

fn initiator_err(run: &Run) -> Error {
    run.initiator.clone().expect_err("initiator must fail")
}

#[test]
fn dropped_batch_is_too_few_points() {
    // In `responder` mode the initiator finishes without waiting for replies, so the
    // responder sees its Finish while points are missing.
    let r = fault_run(
        OutputMode::Responder,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 2, |_, _| vec![]),
    );
    assert!(matches!(
        responder_err(&r),
        Error::PeerMisbehaved(PeerMisbehaved::TooFewPoints { .. })
    ));
    assert!(matches!(
        initiator_err(&r),
        Error::PeerAborted(CloseCode::PROTOCOL_VIOLATION)
    ));
}

#[test]
fn dropped_batch_never_releases_a_result() {
    // In `both` mode each side waits for replies that never come: neither side may
    // release a result (the driver's idle timeout ends the session).
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 2, |_, _| vec![]),
    );
    assert_eq!(r.initiator, Err(Error::ApiMisuse("initiator stalled")));
    assert_eq!(r.responder, Err(Error::ApiMisuse("responder stalled")));
}

#[test]
fn duplicated_batch_is_too_many_points() {
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 0, |f, _| {
            vec![f.to_vec(); 30]
        }),
    );
    assert!(matches!(
        responder_err(&r),
        Error::PeerMisbehaved(PeerMisbehaved::TooManyPoints { .. })
    ));
    assert!(matches!(
        initiator_err(&r),
        Error::PeerAborted(CloseCode::LIMIT_EXCEEDED)
    ));
}

#[test]
fn reordered_batches_break_the_transcript() {
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
                return vec![frame.to_vec(), held.take().expect("held")];
            }
        }
        vec![frame.to_vec()]
    });
    let r = fault_run(OutputMode::Both, fault);
    let errs = [r.initiator.clone().err(), r.responder.clone().err()];
    assert!(
        errs.contains(&Some(Error::PeerMisbehaved(
            PeerMisbehaved::TranscriptMismatch
        ))),
        "{errs:?}"
    );
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

    // A valid but different point: nobody can tell until the transcripts disagree.
    let other = crate::group::hash_identifier(IdentKind::Custom.code(), b"x")
        .compress()
        .to_bytes();
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 1, move |f, _| {
            replace_point(f, other)
        }),
    );
    let errs = [r.initiator.clone().err(), r.responder.clone().err()];
    assert!(
        errs.contains(&Some(PeerMisbehaved::TranscriptMismatch.into())),
        "{errs:?}"
    );
}

#[test]
fn reflected_points_are_caught() {
    // The initiator's first batch is replaced by the responder's own first batch.
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToResponder, MessageType::BLINDED, 0, |_, wire| {
            let theirs = wire
                .sent
                .iter()
                .find(|(d, f)| *d == Dir::ToInitiator && message_type(f) == MessageType::BLINDED)
                .map(|(_, f)| f.clone())
                .expect("responder sent a batch right after Accept");
            vec![theirs]
        }),
    );
    assert_eq!(responder_err(&r), PeerMisbehaved::ReflectedPoints.into());
    assert!(matches!(
        initiator_err(&r),
        Error::PeerAborted(CloseCode::BAD_POINTS)
    ));
}

#[test]
fn values_returned_without_reblinding_are_caught() {
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToInitiator, MessageType::REBLINDED, 0, |f, wire| {
            let ours = wire
                .sent
                .iter()
                .find(|(d, f)| *d == Dir::ToResponder && message_type(f) == MessageType::BLINDED)
                .map(|(_, f)| f.clone())
                .expect("initiator sent a batch");
            let Ok(Message::Blinded(points)) = Message::decode(&ours) else {
                unreachable!("a Blinded frame")
            };
            let Ok(Message::Reblinded(values)) = Message::decode(f) else {
                unreachable!("a Reblinded frame")
            };
            let echoed = points[..values.len()]
                .iter()
                .map(|p| {
                    let mut v = [0u8; 16];
                    v.copy_from_slice(&p[..16]);
                    v
                })
                .collect();
            vec![Message::Reblinded(echoed).to_frame()]
        }),
    );
    assert_eq!(initiator_err(&r), PeerMisbehaved::NotReblinded.into());
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
    // The responder's Accept is altered to announce one more element than it sends.
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
    assert!(matches!(
        initiator_err(&r),
        Error::PeerMisbehaved(PeerMisbehaved::TooFewPoints { .. })
    ));
}

#[test]
fn out_of_order_messages_are_rejected() {
    let mut b = Responder::new(ResponderConfig::default());
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
            let hello = wire.sent[0].1.clone();
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
fn different_channel_bindings_never_agree() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut config = InitiatorConfig::new([3; 16], "kp", "test", OutputMode::Both);
    config.channel_binding = [1; 32];
    let mut a =
        Initiator::new(config, prepare(&records("a", 0..5, false)), &mut rng).expect("valid");
    let mut b = Responder::new(ResponderConfig {
        channel_binding: [2; 32],
        ..ResponderConfig::default()
    });
    let set = prepare(&records("a", 0..5, false));
    let mut errors = Vec::new();
    for _ in 0..100 {
        while let Some(f) = a.poll_transmit() {
            if let Err(e) = b.handle_frame(&f) {
                errors.push(e);
            }
        }
        if let Some(Event::HelloReceived(_)) = b.poll_event() {
            b.accept(set.clone(), &mut rng).expect("pending");
        }
        while let Some(f) = b.poll_transmit() {
            if let Err(e) = a.handle_frame(&f) {
                errors.push(e);
            }
        }
    }
    assert!(
        errors.contains(&PeerMisbehaved::TranscriptMismatch.into()),
        "{errors:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn output_equals_plain_intersection(
        a_ids in proptest::collection::vec(0u32..200, 0..40),
        b_ids in proptest::collection::vec(0u32..200, 0..40),
        mode_idx in 0usize..4,
        seed in any::<u64>(),
    ) {
        let n = Normaliser::default();
        let to_records = |ids: &[u32]| -> Vec<Vec<Identifier>> {
            ids.iter()
                .map(|i| vec![n.email(&format!("p{i}@x.cn")).expect("valid"), n.custom(&format!("c{}", i % 50)).expect("valid")])
                .collect()
        };
        check_mode(&to_records(&a_ids), &to_records(&b_ids), OutputMode::ALL[mode_idx], seed);
    }

    #[test]
    fn responder_never_panics_on_arbitrary_frames(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8)
    ) {
        let mut b = Responder::new(ResponderConfig::default());
        for f in &frames {
            let _ = b.handle_frame(f);
            while b.poll_transmit().is_some() {}
        }
    }
}

#[test]
fn finish_tells_the_count_only_to_a_side_that_may_learn_it() {
    for mode in OutputMode::ALL {
        let finishes = std::cell::RefCell::new(Vec::new());
        let r = fault_run(
            mode,
            Box::new(|dir, frame: &[u8], _: &mut Wire| {
                if let Ok(Message::Finish(finish)) = Message::decode(frame) {
                    finishes.borrow_mut().push((dir, finish.intersection));
                }
                vec![frame.to_vec()]
            }),
        );
        let (a, b) = (
            r.initiator.expect("initiator completes"),
            r.responder.expect("responder completes"),
        );
        assert_eq!(
            a.intersection_size.is_some(),
            learns_count(mode, Role::Initiator)
        );
        assert_eq!(
            b.intersection_size.is_some(),
            learns_count(mode, Role::Responder)
        );
        let both_learn = learns_count(mode, Role::Initiator) && learns_count(mode, Role::Responder);
        let finishes = finishes.into_inner();
        assert_eq!(finishes.len(), 2, "{mode:?}: one Finish each way");
        for (dir, count) in finishes {
            assert_eq!(
                count.is_some(),
                both_learn,
                "{mode:?}: Finish {dir:?} must carry a count only if both sides learn it"
            );
        }
    }
}

#[test]
fn a_closed_session_answers_further_frames_with_nothing() {
    let mut b = Responder::new(ResponderConfig::default());
    assert!(b.handle_frame(&[]).is_err());
    assert!(b.poll_transmit().is_some(), "one Abort for the bad frame");
    assert!(b.poll_transmit().is_none());
    for _ in 0..3 {
        assert_eq!(b.handle_frame(&[]), Err(PeerMisbehaved::AfterEnd.into()));
        assert!(b.poll_transmit().is_none(), "no second Abort");
    }
}
