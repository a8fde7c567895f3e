//! Honest runs: every mode gives exactly the plain intersection, counts are of records,
//! replies are released in lockstep, and nothing moves before each side decided.

use proptest::prelude::*;

use super::*;
use crate::wire::RejectReason;

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
fn very_different_sizes_complete_in_every_mode() {
    let small = records("a", 0..3, true);
    let large = records("a", 0..400, true);
    for mode in OutputMode::ALL {
        check_mode(&small, &large, mode, 5);
        check_mode(&large, &small, mode, 6);
    }
}

#[test]
fn cardinality_counts_records_not_identifiers() {
    // Twenty shared persons with two identifiers each: 40 identifiers, 20 contacts.
    let a = records("a", 0..30, true);
    let b = records("a", 10..60, true);
    let run = run(&a, &b, OutputMode::Cardinality, 7, clean());
    let (ra, rb) = (
        run.initiator.expect("completes"),
        run.responder.expect("completes"),
    );
    assert_eq!(ra.intersection_size, Some(40));
    assert_eq!(ra.matched_record_count, Some(20));
    assert_eq!(rb.matched_record_count, Some(20));
    assert_eq!(ra.matches, None, "which records matched stays unknown");
    // Three records of ours share one person's identifiers: three contacts match.
    let mut a = records("a", 0..5, true);
    a.push(a[2].clone());
    a.push(vec![a[2][0].clone()]);
    let run = run_small(&a, &records("a", 2..3, true));
    assert_eq!(run.0, Some(3));
    assert_eq!(run.1, Some(2), "two distinct identifiers");
}

/// Record and identifier counts the initiator learns in `cardinality`.
fn run_small(a: &[Vec<Identifier>], b: &[Vec<Identifier>]) -> (Option<u64>, Option<u64>) {
    let outcome = run(a, b, OutputMode::Cardinality, 8, clean())
        .initiator
        .expect("completes");
    (outcome.matched_record_count, outcome.intersection_size)
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
        let mut b = responder();
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
                    finishes.borrow_mut().push((
                        dir,
                        finish.intersection,
                        finish.receipt.intersection,
                    ));
                }
                vec![(dir, frame.to_vec())]
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
        for (dir, count, receipt_count) in finishes {
            assert_eq!(count.is_some(), both_learn, "{mode:?}: Finish {dir:?}");
            assert_eq!(
                count, receipt_count,
                "{mode:?}: the receipt signs the same count"
            );
        }
    }
}

/// Points each side has answered and been answered, in rounds of the schedule, checked
/// after every delivered answer: the two never differ by more than one round.
#[test]
fn answers_are_released_in_lockstep_when_both_sides_learn() {
    for mode in [OutputMode::Both, OutputMode::Cardinality] {
        let answered = std::cell::RefCell::new([0usize; 2]);
        let widest = std::cell::RefCell::new(0usize);
        let fault: Fault<'_> = Box::new(|dir, frame: &[u8], _: &mut Wire| {
            if matches!(
                message_type(frame),
                MessageType::REBLINDED | MessageType::SHUFFLED
            ) {
                let mut counts = answered.borrow_mut();
                counts[dir as usize] += 1;
                let gap = counts[0].abs_diff(counts[1]);
                let mut widest = widest.borrow_mut();
                *widest = (*widest).max(gap);
            }
            vec![(dir, frame.to_vec())]
        });
        let a = records("a", 0..300, true);
        let b = records("a", 100..400, true);
        let r = run(&a, &b, mode, 11, fault);
        assert!(r.initiator.is_ok() && r.responder.is_ok(), "{mode}");
        let counts = answered.into_inner();
        assert!(counts[0] > 10, "{mode}: many rounds ({counts:?})");
        assert!(widest.into_inner() <= 1, "{mode}: one side ran ahead");
    }
}

#[test]
fn nothing_moves_before_each_side_decided_and_refusal_reaches_the_initiator() {
    let mut rng = StdRng::seed_from_u64(5);
    let set = prepare(&records("a", 0..20, false));
    let mut a = Initiator::new(
        initiator_config(OutputMode::Both, 1),
        set,
        signer(1),
        &mut rng,
    )
    .expect("valid");
    let hello = a.poll_transmit().expect("hello");
    assert_eq!(a.poll_transmit(), None, "no points before Accept");
    let mut b = responder();
    b.handle_frame(&hello).expect("valid hello");
    assert!(matches!(b.poll_event(), Some(Event::HelloReceived(h)) if h.set_size == 20));
    assert!(b.awaits_decision());
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

#[test]
fn the_initiator_blinds_nothing_until_it_confirms_and_can_refuse() {
    let mut rng = StdRng::seed_from_u64(6);
    let mut a = Initiator::new(
        initiator_config(OutputMode::Initiator, 2),
        prepare(&records("a", 0..20, false)),
        signer(1),
        &mut rng,
    )
    .expect("valid");
    let mut b = responder();
    b.handle_frame(&a.poll_transmit().expect("hello"))
        .expect("hello");
    let _ = b.poll_event();
    b.accept(
        prepare(&records("a", 0..30, false)),
        DatasetRef::default(),
        &mut rng,
    )
    .expect("accept");
    let mut from_b = Vec::new();
    while let Some(f) = b.poll_transmit() {
        from_b.push(f);
    }
    for f in &from_b {
        a.handle_frame(f).expect("accept and early rounds are held");
    }
    assert!(matches!(a.poll_event(), Some(Event::Accepted(info)) if info.peer_set_size == 30));
    assert!(a.awaits_decision());
    assert_eq!(a.poll_transmit(), None, "nothing blinded before confirm");
    let abort = a.abort(CloseCode::REFUSED).expect("an Abort");
    assert_eq!(
        Message::decode(&abort),
        Ok(Message::Abort(CloseCode::REFUSED))
    );
    assert!(a.is_closed());
    assert_eq!(
        a.confirm(),
        Err(Error::ApiMisuse("confirm called without a pending Accept"))
    );
}

#[test]
fn accept_at_the_wrong_time_leaves_the_session_as_it_was() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut b = responder();
    assert_eq!(
        b.accept(PreparedSet::default(), DatasetRef::default(), &mut rng),
        Err(Error::ApiMisuse("accept called without a pending Hello"))
    );
    assert!(!b.is_closed(), "still waiting for a Hello");
    let mut a = Initiator::new(
        initiator_config(OutputMode::Both, 3),
        prepare(&records("a", 0..5, false)),
        signer(1),
        &mut rng,
    )
    .expect("valid");
    b.handle_frame(&a.poll_transmit().expect("hello"))
        .expect("hello");
    b.accept(
        prepare(&records("a", 0..5, false)),
        DatasetRef::default(),
        &mut rng,
    )
    .expect("first accept");
    assert!(matches!(
        b.accept(PreparedSet::default(), DatasetRef::default(), &mut rng),
        Err(Error::ApiMisuse(_))
    ));
    assert!(
        !b.is_closed(),
        "a second accept does not destroy the running session"
    );
    assert!(b.poll_transmit().is_some(), "the Accept is still queued");
}

#[test]
fn different_channel_bindings_never_agree() {
    let mut config = initiator_config(OutputMode::Both, 3);
    config.channel_binding = [1; 32];
    let r = run_with(
        config,
        &records("a", 0..5, false),
        &records("a", 0..5, false),
        11,
        clean(),
    );
    assert!(
        [r.initiator.err(), r.responder.err()]
            .contains(&Some(PeerMisbehaved::TranscriptMismatch.into())),
    );
}

#[test]
fn each_direction_carries_at_most_64_bytes_per_element() {
    let bytes = std::cell::RefCell::new([0usize; 2]);
    let fault: Fault<'_> = Box::new(|dir, frame: &[u8], _: &mut Wire| {
        bytes.borrow_mut()[dir as usize] += frame.len() + 4;
        vec![(dir, frame.to_vec())]
    });
    let a = records("a", 0..2000, false);
    let b = records("a", 1000..3000, false);
    let mut config = initiator_config(OutputMode::Both, 4);
    config.batch_size = DEFAULT_BATCH_SIZE;
    let r = run_with(config, &a, &b, 4, fault);
    assert!(r.initiator.is_ok() && r.responder.is_ok());
    for sent in bytes.into_inner() {
        let per_element = sent as f64 / 2000.0;
        assert!(per_element <= 64.5, "{per_element} bytes per element");
        assert!(per_element >= 64.0, "whole points both ways: {per_element}");
    }
}
