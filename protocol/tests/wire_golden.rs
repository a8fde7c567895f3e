//! Byte-exact golden vectors of the wire format (`golden/session-*.json`): every frame
//! of fixed sessions, in order, and their transcript hash, from seeded randomness.
//!
//! A deployed node must keep talking to the next version, so an encoding change has to
//! be deliberate: any change to a message layout, a transcript input or the proof
//! encoding fails this test. After an intended change (with a protocol version bump),
//! regenerate with
//!
//! ```sh
//! BLINDMATCH_BLESS=1 cargo test --release -p blindmatch-protocol byte_exact
//! ```
//!
//! (which also regenerates the audit records' `golden/audit.jsonl`) and commit the
//! changed files with the reason.

use std::collections::VecDeque;
use std::path::PathBuf;

use blindmatch_protocol::ident::Normaliser;
use blindmatch_protocol::session::{
    Event, Initiator, InitiatorConfig, KeySigner, Outcome, Parties, PreparedSet,
    PreparedSetBuilder, ReceiptSigner, Responder, ResponderConfig, Session,
};
use blindmatch_protocol::wire::{DatasetRef, MessageType, OutputMode};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// One frame as it crossed the wire.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct Frame {
    /// `i→r` (initiator to responder) or `r→i`.
    dir: String,
    /// The message type's first byte.
    ty: u8,
    hex: String,
}

/// A golden session.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct Golden {
    mode: String,
    transcript_hash: String,
    initiator_matches: Option<Vec<u32>>,
    responder_matches: Option<Vec<u32>>,
    frames: Vec<Frame>,
}

#[test]
fn session_frames_are_byte_exact() {
    for mode in [
        OutputMode::Both,
        OutputMode::Initiator,
        OutputMode::Cardinality,
    ] {
        let golden = run(mode);
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(format!("session-{mode}.json"));
        if std::env::var_os("BLINDMATCH_BLESS").is_some() {
            let text = serde_json::to_string_pretty(&golden).expect("json");
            std::fs::write(&path, text + "\n").expect("write golden file");
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; generate it with BLINDMATCH_BLESS=1",
                path.display()
            )
        });
        let expected: Golden = serde_json::from_str(&text).expect("golden file parses");
        assert_eq!(
            golden.frames.len(),
            expected.frames.len(),
            "{mode}: number of frames"
        );
        for (i, (got, want)) in golden.frames.iter().zip(&expected.frames).enumerate() {
            assert_eq!(
                got,
                want,
                "{mode}: frame {i} ({:?}) differs from {}",
                MessageType(want.ty),
                path.display()
            );
        }
        assert_eq!(golden, expected, "{mode}");
    }
}

/// The same seed gives the same bytes: the golden files test the encoding, not luck.
#[test]
fn a_seeded_session_is_deterministic() {
    assert_eq!(run(OutputMode::Both), run(OutputMode::Both));
}

fn run(mode: OutputMode) -> Golden {
    let mut rng = StdRng::seed_from_u64(20261207);
    let initiator_signer = KeySigner::from_seed(&[1; 32]);
    let responder_signer = KeySigner::from_seed(&[2; 32]);
    let mut config = InitiatorConfig::new(
        [0x5e; 16],
        [0x42; 32],
        Parties {
            own_fingerprint: [0xa1; 32],
            peer_fingerprint: [0xb2; 32],
            peer_audit_key: Some(responder_signer.public_key()),
        },
        mode,
    );
    config.dataset = "kp-2026".into();
    config.own_dataset = DatasetRef::new("crm", [7; 16]);
    config.purpose = "golden".into();
    config.legal_basis = "consent".into();
    config.batch_size = 4; // several rounds, so the pacing is in the vectors too
    let mut initiator = Initiator::new(config, set(0..10), Box::new(initiator_signer), &mut rng)
        .expect("initiator");
    let mut responder = Responder::new(
        ResponderConfig::new(
            [0x42; 32],
            Parties {
                own_fingerprint: [0xb2; 32],
                peer_fingerprint: [0xa1; 32],
                peer_audit_key: Some(KeySigner::from_seed(&[1; 32]).public_key()),
            },
        ),
        Box::new(responder_signer),
    );
    let mut frames = Vec::new();
    let mut to_responder = VecDeque::new();
    let mut to_initiator = VecDeque::new();
    let mut done: (Option<Outcome>, Option<Outcome>) = (None, None);
    let mut responder_set = Some(set(6..14));
    for _ in 0..10_000 {
        while let Some(frame) = initiator.poll_transmit() {
            frames.push(frame_of("i→r", &frame));
            to_responder.push_back(frame);
        }
        while let Some(frame) = responder.poll_transmit() {
            frames.push(frame_of("r→i", &frame));
            to_initiator.push_back(frame);
        }
        if let Some(frame) = to_responder.pop_front() {
            responder
                .handle_frame(&frame)
                .expect("responder takes the frame");
        }
        if let Some(frame) = to_initiator.pop_front() {
            initiator
                .handle_frame(&frame)
                .expect("initiator takes the frame");
        }
        while let Some(event) = responder.poll_event() {
            match event {
                Event::HelloReceived(_) => responder
                    .accept(
                        responder_set.take().expect("one Hello"),
                        DatasetRef::new("kp-2026", [9; 16]),
                        &mut rng,
                    )
                    .expect("accept"),
                Event::Completed(outcome) => done.1 = Some(*outcome),
                other => panic!("responder: {other:?}"),
            }
        }
        while let Some(event) = initiator.poll_event() {
            match event {
                Event::Accepted(_) => initiator.confirm().expect("confirm"),
                Event::Completed(outcome) => done.0 = Some(*outcome),
                other => panic!("initiator: {other:?}"),
            }
        }
        if done.0.is_some()
            && done.1.is_some()
            && to_initiator.is_empty()
            && to_responder.is_empty()
        {
            break;
        }
    }
    let (Some(a), Some(b)) = done else {
        panic!("{mode}: the session did not complete");
    };
    assert_eq!(a.transcript_hash, b.transcript_hash);
    let records = |o: &Outcome| {
        o.matches
            .as_ref()
            .map(|m| m.iter().map(|r| r.record).collect::<Vec<_>>())
    };
    Golden {
        mode: mode.to_string(),
        transcript_hash: hex::encode(a.transcript_hash),
        initiator_matches: records(&a),
        responder_matches: records(&b),
        frames,
    }
}

fn frame_of(dir: &str, frame: &[u8]) -> Frame {
    Frame {
        dir: dir.to_owned(),
        ty: frame.first().copied().unwrap_or_default(),
        hex: hex::encode(frame),
    }
}

/// Records `range` of a synthetic list: one email and one phone each.
fn set(range: std::ops::Range<u32>) -> PreparedSet {
    let normaliser = Normaliser::default();
    let mut builder = PreparedSetBuilder::new();
    for (record, i) in range.enumerate() {
        let email = normaliser
            .email(&format!("contact{i}@example.cn"))
            .expect("valid email");
        let phone = normaliser
            .phone(&format!("1380013{i:04}"))
            .expect("valid phone");
        builder.add(record as u32, &email);
        builder.add(record as u32, &phone);
    }
    builder.build()
}
