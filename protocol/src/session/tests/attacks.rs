//! A malicious peer, as the zero-trust issue tried it: fabricated matches, swapped,
//! suppressed and key-switched answers, forged receipts, abort after learning, and an
//! older peer. Each is caught before a single forged value is used.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::scalar::Scalar;

use super::*;
use crate::group::decode_point;
use crate::oprf::PublicKey;
use crate::oprf::dleq::generate_proof;
use crate::wire::{Accept, Reblinded, RejectReason};

fn times(s: &Scalar, points: &[[u8; 32]]) -> Vec<[u8; 32]> {
    points
        .iter()
        .map(|p| {
            (s * decode_point(p).expect("valid point"))
                .compress()
                .to_bytes()
        })
        .collect()
}

fn blinded(frame: &[u8]) -> Vec<[u8; 32]> {
    match Message::decode(frame) {
        Ok(Message::Blinded(points)) => points,
        other => panic!("not a Blinded frame: {other:?}"),
    }
}

fn reblinded(frame: &[u8]) -> Reblinded {
    match Message::decode(frame) {
        Ok(Message::Reblinded(answer)) => answer,
        other => panic!("not a Reblinded frame: {other:?}"),
    }
}

/// The fabricated-match attack: the responder sends `r·(our blinded points)` as its own
/// set and hands back our own re-blinding of them as its answers, committing (in
/// `Accept`) to the key `r·a` those answers are really under. Without proofs every
/// record of ours matched; with them the first forged answer is refused.
#[test]
fn fabricated_matches_fail_the_proof() {
    let r = Scalar::from(0x5eed_u64);
    let mut our_answers: VecDeque<Reblinded> = VecDeque::new();
    let fault: Fault<'_> = Box::new(move |dir, frame: &[u8], wire: &mut Wire| {
        let ty = message_type(frame);
        match (dir, ty) {
            (Dir::ToInitiator, MessageType::ACCEPT) => {
                let Ok(Message::Accept(mut accept)) = Message::decode(frame) else {
                    unreachable!("an Accept")
                };
                let hello = wire.messages(Dir::ToResponder, MessageType::HELLO);
                let Some(Message::Hello(hello)) = hello.first() else {
                    unreachable!("the Hello went first")
                };
                accept.key_commitment = times(&r, &[hello.key_commitment])[0];
                vec![(dir, Message::Accept(accept).to_frame())]
            }
            // The honest responder's own rounds and answers never reach us.
            (Dir::ToInitiator, MessageType::BLINDED | MessageType::REBLINDED) => vec![],
            (Dir::ToResponder, MessageType::BLINDED) => {
                let fake = Message::Blinded(times(&r, &blinded(frame))).to_frame();
                vec![(dir, frame.to_vec()), (Dir::ToInitiator, fake)]
            }
            // Our answers to the fake rounds come back to us as "its" answers.
            (Dir::ToResponder, MessageType::REBLINDED) => {
                our_answers.push_back(reblinded(frame));
                let mut out = Vec::new();
                while let Some(answer) = our_answers.pop_front() {
                    out.push((Dir::ToInitiator, Message::Reblinded(answer).to_frame()));
                }
                out
            }
            _ => vec![(dir, frame.to_vec())],
        }
    });
    let a = records("a", 0..40, false);
    let b = records("z", 0..40, false);
    let run = run(&a, &b, OutputMode::Both, 21, fault);
    assert_eq!(initiator_err(&run), PeerMisbehaved::BadProof.into());
    assert_eq!(
        run.progress.0.replies_received, 0,
        "no forged value was used"
    );
}

#[test]
fn swapped_answers_fail_the_proof() {
    let r = fault_run(
        OutputMode::Initiator,
        on_nth(Dir::ToInitiator, MessageType::REBLINDED, 1, |f, _| {
            let mut answer = reblinded(f);
            answer.points.swap(0, 1);
            vec![Message::Reblinded(answer).to_frame()]
        }),
    );
    assert_eq!(initiator_err(&r), PeerMisbehaved::BadProof.into());
    assert!(matches!(
        r.responder,
        Err(Error::PeerAborted(CloseCode::BAD_PROOF))
    ));
}

#[test]
fn suppressed_answers_are_caught() {
    let r = fault_run(
        OutputMode::Initiator,
        on_nth(Dir::ToInitiator, MessageType::REBLINDED, 0, |f, _| {
            let mut answer = reblinded(f);
            answer.points.pop();
            vec![Message::Reblinded(answer).to_frame()]
        }),
    );
    assert!(matches!(
        initiator_err(&r),
        Error::PeerMisbehaved(PeerMisbehaved::WrongRoundSize { .. })
    ));
    // A whole answer left out: the next arrives where it was due, or `Finish` comes
    // before every answer did.
    let r = fault_run(
        OutputMode::Initiator,
        on_nth(Dir::ToInitiator, MessageType::REBLINDED, 1, |_, _| vec![]),
    );
    assert!(matches!(
        initiator_err(&r),
        Error::PeerMisbehaved(
            PeerMisbehaved::WrongRoundSize { .. }
                | PeerMisbehaved::BadProof
                | PeerMisbehaved::TooFewPoints { .. }
        )
    ));
}

/// Answers under another key, with a valid proof for that key, or one element under its
/// own key: both fail against the key the responder committed to.
#[test]
fn switched_and_per_element_keys_fail_the_proof() {
    let s = Scalar::from(77u64);
    let r = fault_run(
        OutputMode::Initiator,
        on_nth(Dir::ToInitiator, MessageType::REBLINDED, 1, move |f, _| {
            let answer = reblinded(f);
            let switched = times(&s, &answer.points);
            let c: Vec<_> = answer
                .points
                .iter()
                .map(|p| decode_point(p).expect("valid"))
                .collect();
            let pk = PublicKey::from_point(s * RISTRETTO_BASEPOINT_POINT).expect("key");
            let proof = generate_proof(
                crate::session::proof::REBLIND_CONTEXT,
                &s,
                &pk,
                &c,
                &answer.points,
                &switched,
                &Scalar::from(5u64),
            )
            .expect("a valid proof for the switched key");
            vec![
                Message::Reblinded(Reblinded {
                    points: switched,
                    proof: proof.to_bytes(),
                })
                .to_frame(),
            ]
        }),
    );
    assert_eq!(initiator_err(&r), PeerMisbehaved::BadProof.into());

    let r = fault_run(
        OutputMode::Initiator,
        on_nth(Dir::ToInitiator, MessageType::REBLINDED, 0, move |f, _| {
            let mut answer = reblinded(f);
            answer.points[3] = times(&s, &answer.points[3..4])[0];
            vec![Message::Reblinded(answer).to_frame()]
        }),
    );
    assert_eq!(initiator_err(&r), PeerMisbehaved::BadProof.into());
}

#[test]
fn a_count_only_reply_under_another_key_fails_the_sum_proof() {
    let s = Scalar::from(3u64);
    let r = fault_run(
        OutputMode::Cardinality,
        on_nth(Dir::ToInitiator, MessageType::SHUFFLED, 0, move |f, _| {
            let Ok(Message::Shuffled(points)) = Message::decode(f) else {
                unreachable!("a Shuffled frame")
            };
            vec![Message::Shuffled(times(&s, &points)).to_frame()]
        }),
    );
    assert_eq!(initiator_err(&r), PeerMisbehaved::BadProof.into());
}

/// A peer that stops answering after its first answer: we answer at most one round
/// more than we were answered, so it learned about one round beyond what we did.
#[test]
fn abort_after_learning_gains_at_most_one_round() {
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToInitiator, MessageType::REBLINDED, 1, |_, _| {
            vec![Message::Abort(CloseCode::CANCELLED).to_frame()]
        }),
    );
    assert_eq!(initiator_err(&r), Error::PeerAborted(CloseCode::CANCELLED));
    let (ours, _) = r.progress;
    let round = ours.own_total.div_ceil(ours.own_total.div_ceil(16));
    assert!(ours.replies_received > 0);
    assert!(
        ours.replies_sent <= ours.replies_received + round + 1,
        "we answered {} while answered {}",
        ours.replies_sent,
        ours.replies_received
    );
}

fn finish_receipt(f: &[u8], edit: impl FnOnce(&mut Receipt)) -> Vec<Vec<u8>> {
    let Ok(Message::Finish(mut finish)) = Message::decode(f) else {
        unreachable!("a Finish frame")
    };
    edit(&mut finish.receipt);
    vec![Message::Finish(finish).to_frame()]
}

#[test]
fn forged_receipts_are_refused() {
    type Edit = Box<dyn Fn(&mut Receipt)>;
    let edits: [(&str, Edit); 4] = [
        (
            "dataset",
            Box::new(|r| r.responder_dataset.name = "other".into()),
        ),
        ("signature", Box::new(|r| r.signature[5] ^= 1)),
        ("log head", Box::new(|r| r.log_head.seq += 1)),
        (
            "another key",
            Box::new(|r| {
                let key = signing_key(3);
                r.signer_key = key.verifying_key().to_bytes();
                r.signature = key.sign(&r.signed_bytes()).to_bytes();
            }),
        ),
    ];
    for (what, edit) in edits {
        let r = fault_run(
            OutputMode::Both,
            on_nth(Dir::ToInitiator, MessageType::FINISH, 0, |f, _| {
                finish_receipt(f, &edit)
            }),
        );
        assert!(
            matches!(
                initiator_err(&r),
                Error::PeerMisbehaved(PeerMisbehaved::BadReceipt(_))
            ),
            "{what}: {:?}",
            r.initiator
        );
    }
}

#[test]
fn an_unpinned_peer_key_is_accepted_once_its_receipt_verifies() {
    let mut config = initiator_config(OutputMode::Both, 30);
    config.parties.peer_audit_key = None;
    let r = run_with(
        config,
        &records("a", 0..10, false),
        &records("a", 5..15, false),
        30,
        clean(),
    );
    let outcome = r.initiator.expect("completes");
    assert_eq!(
        outcome.peer_receipt.signer_key,
        signing_key(2).verifying_key().to_bytes()
    );
}

#[test]
fn a_version_1_hello_gets_a_reject_naming_both_versions() {
    // A version-1 Hello: type, version 1, normalisation version, session id, texts…
    let mut v1 = vec![MessageType::HELLO.0, 0, 1];
    v1.extend_from_slice(&crate::ident::NORMALISATION_VERSION.to_be_bytes());
    v1.extend_from_slice(&[9; 16]);
    for _ in 0..3 {
        v1.extend_from_slice(&[0, 0]);
    }
    v1.extend_from_slice(&[1, 1]);
    v1.extend_from_slice(&5u64.to_be_bytes());
    let mut b = responder();
    assert!(b.handle_frame(&v1).is_err());
    let Some(Ok(Message::Reject(reject))) = b.poll_transmit().map(|f| Message::decode(&f)) else {
        panic!("a Reject")
    };
    assert_eq!(reject.reason, RejectReason::UNSUPPORTED_VERSION);
    assert!(
        reject.text.contains("version 2") && reject.text.contains("version 1"),
        "{}",
        reject.text
    );
    assert!(b.poll_transmit().is_none(), "no Abort on top of the Reject");
    assert!(b.is_closed());
}

#[test]
fn an_older_responder_aborting_our_hello_is_a_version_refusal() {
    let r = fault_run(
        OutputMode::Both,
        on_nth(Dir::ToInitiator, MessageType::ACCEPT, 0, |_, _| {
            vec![Message::Abort(CloseCode::INCOMPATIBLE).to_frame()]
        }),
    );
    let err = initiator_err(&r);
    assert!(matches!(
        err,
        Error::PeerIncompatible(crate::error::PeerIncompatible::PeerRefusedVersion { ours: 2 })
    ));
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn a_commitment_to_the_generator_or_identity_is_refused() {
    for bad in [RISTRETTO_BASEPOINT_POINT.compress().to_bytes(), [0; 32]] {
        let r = fault_run(
            OutputMode::Both,
            on_nth(Dir::ToInitiator, MessageType::ACCEPT, 0, move |f, _| {
                let Ok(Message::Accept(accept)) = Message::decode(f) else {
                    unreachable!("an Accept")
                };
                let mut forged = Accept::new(accept.set_size, bad);
                forged.kinds = accept.kinds;
                forged.dataset = accept.dataset;
                vec![Message::Accept(forged).to_frame()]
            }),
        );
        assert_eq!(initiator_err(&r), PeerMisbehaved::BadCommitment.into());
    }
}
