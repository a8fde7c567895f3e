//! Checks that the findings in README.md stay fixed (F1 and F2, fixed in `d834947`),
//! printing what it sees; a regression panics.
//!
//! ```sh
//! cd fuzz && cargo run --release --example findings
//! ```
//!
//! The reproducers in `artifacts-found/` are replayed through the same harness as the
//! `responder_session` target, so its invariants are checked on them too.

use std::path::Path;

use blindmatch_fuzz::chunks;
use blindmatch_fuzz::session::{Harness, Setup, both_learn_count, parties, record, signer};
use blindmatch_protocol::error::{Error, PeerMisbehaved};
use blindmatch_protocol::session::{Responder, ResponderConfig, Role, Session, learns_count};
use blindmatch_protocol::wire::{Message, OutputMode};

fn main() {
    finish_carries_count_only_when_both_learn_it();
    closed_session_stays_quiet();
}

/// F1: a `Finish` carries the intersection size only in modes where both sides learn it,
/// so the side meant to learn nothing never receives it; a peer's `Finish` that carries
/// it anyway is refused.
fn finish_carries_count_only_when_both_learn_it() {
    println!("F1: mode         Finish sent to  carries count  receiver may learn it");
    for mode in OutputMode::ALL {
        let run = record(mode, false);
        let (a, b) = (
            run.initiator.expect("initiator completes"),
            run.responder.expect("responder completes"),
        );
        assert_eq!(
            a.intersection_size.is_some(),
            learns_count(mode, Role::Initiator)
        );
        assert_eq!(
            b.intersection_size.is_some(),
            learns_count(mode, Role::Responder)
        );
        for (receiver, frames) in [
            (Role::Responder, &run.to_responder),
            (Role::Initiator, &run.to_initiator),
        ] {
            let count = frames.iter().find_map(|f| match Message::decode(f) {
                Ok(Message::Finish(finish)) => Some(finish.intersection),
                _ => None,
            });
            let count = count.expect("a completed session has a Finish");
            let allowed = learns_count(mode, receiver);
            println!(
                "    {:<12} {:<15} {:<14} {allowed}",
                mode.name(),
                receiver.name(),
                format!("{count:?}"),
            );
            assert!(
                count.is_none() || allowed,
                "F1 is back: {mode} leaks the count"
            );
            assert_eq!(count.is_some(), both_learn_count(mode));
        }
    }

    // The reproducer: a mode-`initiator` session recorded before the fix, whose last
    // frame is the initiator's `Finish` with the count. It was recorded in protocol
    // version 1, so a version-2 responder refuses it already at its `Hello`; the table
    // above checks the same property on version-2 sessions.
    let input = artifact("responder_session-count-leak-initiator-mode");
    let (harness, sent) = replay(&input);
    let err = harness.error().cloned();
    println!("    old mode-initiator session, as the responder: error {err:?}");
    println!("    the responder sent: {}", names(&sent));
    assert!(
        matches!(
            err,
            Some(Error::PeerMisbehaved(
                PeerMisbehaved::UnexpectedMessage { .. }
            )) | Some(Error::PeerIncompatible(_))
        ),
        "a Finish with a count in mode initiator was not refused"
    );
    assert!(matches!(
        sent.last(),
        Some(Message::Abort(_) | Message::Reject(_))
    ));
    assert!(harness.finish().is_none(), "completed on a leaking Finish");
}

/// F2: a closed session answers each further frame with `AfterEnd` and sends nothing.
fn closed_session_stays_quiet() {
    println!("F2: a responder fed three empty frames");
    let mut responder = Responder::new(
        ResponderConfig::new(
            blindmatch_fuzz::session::CHANNEL_BINDING,
            parties(Role::Responder),
        ),
        signer(),
    );
    for i in 1..=3 {
        let result = responder.handle_frame(&[]);
        let sent: Vec<_> = std::iter::from_fn(|| responder.poll_transmit())
            .map(|f| Message::decode(&f))
            .collect();
        println!(
            "    frame {i}: closed={} result={result:?} sent={sent:?}",
            responder.is_closed()
        );
        assert_eq!(sent.len(), usize::from(i == 1), "F2 is back: frame {i}");
        if i > 1 {
            assert_eq!(result, Err(PeerMisbehaved::AfterEnd.into()));
        }
    }

    // The reproducer: a responder, then two empty frames (the harness panics on a second
    // `Abort`).
    let input = artifact("responder_session-abort-after-abort");
    let (harness, sent) = replay(&input);
    println!(
        "    {} frames replayed: error {:?}, sent {}",
        chunks::split(&input[1..]).count(),
        harness.error(),
        names(&sent)
    );
    assert_eq!(sent.len(), 1, "one Abort in all");
    harness.finish();
}

fn artifact(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts-found")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Replays a `responder_session` input; returns the harness and what it sent.
fn replay(input: &[u8]) -> (Harness, Vec<Message>) {
    let (&setup, frames) = input.split_first().expect("a setup byte");
    let mut harness = Harness::new(Setup::from_byte(setup));
    let mut sent = harness.take_outbox();
    for frame in chunks::split(frames).take(64) {
        harness.deliver(frame);
        sent.extend(harness.take_outbox());
    }
    let sent = sent
        .iter()
        .map(|f| Message::decode(f).expect("our frames decode"))
        .collect();
    (harness, sent)
}

fn names(msgs: &[Message]) -> String {
    let names: Vec<_> = msgs.iter().map(|m| m.message_type().name()).collect();
    names.join(", ")
}
