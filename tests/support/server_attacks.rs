//! The hostile server's playbook: every way `super::hostile_server` answers a real
//! initiator wrongly, for `tests/hostile_server.rs`. Each attack runs on the link of
//! the one connection the server accepted; observing the initiator's reaction is the
//! caller's job.
//!
//! The server's honest part holds contacts `20..60` ([`SERVER_SET`] of them); the
//! initiator under test is expected to hold contacts `0..30`, so an honest session finds
//! 10 matches.

use std::time::Duration;

use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::group::decode_point;
use blindmatch_protocol::ident::{IdentKind, KindSet};
use blindmatch_protocol::oprf::PublicKey;
use blindmatch_protocol::oprf::dleq::generate_proof;
use blindmatch_protocol::session::Role;
use blindmatch_protocol::wire::{
    Accept, DatasetRef, Finish, Hello, MAX_FRAME_LEN, Message, OutputMode, PROTOCOL_VERSION,
    Reblinded, Receipt, Reject, RejectReason,
};
use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::Signer;

use super::hostile::{
    Link, Step, commitment, email_set, reblinded_one_too_many, reblinded_without_reblinding,
    snake_case,
};
use super::hostile_server::responder;

/// Elements of the server's honest set: contacts `20..60`.
pub const SERVER_SET: usize = 40;
/// First contact of the server's honest set.
const SERVER_FIRST: usize = 20;
/// Longest the server waits for the initiator's next frame.
const ANSWER: Duration = Duration::from_secs(5);
/// Longest a trickle lasts.
const TRICKLE: Duration = Duration::from_secs(8);
/// A refusal text no honest node writes: terminal escapes (clear screen, green), a
/// forged success line, a bell, a NUL and a right-to-left override.
pub const GARBAGE_TEXT: &str =
    "\u{1b}[2J\u{1b}[1;32mmatch completed: 0 matches\r\n\u{7}\u{0}\u{202e}txt.exe";
/// A refusal reason and a close code no version of the protocol defines.
pub const GARBAGE_CODE: u16 = 0xBEEF;

/// One way of answering an initiator wrongly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerAttack {
    /// No attack: an honest responder (the control case).
    Honest,
    // Instead of a valid answer to Hello.
    SilentAfterHello,
    HelloOfAnotherVersion,
    AbortsIncompatible,
    AcceptWithTrailingBytes,
    AcceptWithUnknownKinds,
    AcceptSetSizeAboveU32,
    RejectWithGarbageReason,
    AbortWithUnknownCode,
    BlindedBeforeAccept,
    FinishBeforeAccept,
    UnknownMessageType,
    EmptyFrame,
    OversizedFrame,
    // A valid-looking Accept for something else than what was asked.
    AcceptForAnotherSession,
    AcceptForAnotherMode,
    AcceptOnAnotherChannel,
    // During the exchange.
    SilentAfterAccept,
    TrickledBatch,
    InvalidPointInBlinded,
    IdentityPointInBlinded,
    ReflectsPointsAsBlinded,
    ReflectsPointsAsReblinded,
    MoreReblindedThanSent,
    FewerReblindedThenFinish,
    MoreBlindedThanAccepted,
    BatchCountBeyondBody,
    ZeroLengthBatch,
    FinishWrongTranscript,
    FinishWrongCount,
    FinishWithoutCount,
    OversizedFrameMidSession,
    TruncatedFrameThenFin,
    ClosesConnectionMidBatch,
    ResetsStreamMidBatch,
    EndsStreamBeforeFinish,
    // A peer that wants a false result (zero trust).
    FabricatedMatches,
    SwappedAnswers,
    KeySwitchedAnswers,
    ForgedReceipt,
    ReceiptUnderAnotherKey,
    AbortsAfterLearning,
}

/// Performs `attack` on `link` once the initiator's `Hello` has arrived; returns that
/// `Hello`'s session id (`None` when no `Hello` came).
pub async fn perform(link: &mut Link, attack: ServerAttack) -> Option<[u8; 16]> {
    use ServerAttack::*;
    let hello = match link.next_message(ANSWER).await? {
        Message::Hello(hello) => hello,
        _ => return None,
    };
    link.session_id = hello.session_id;
    let binding = link.binding;
    match attack {
        Honest => {
            honest(link, &hello, binding, |_| Step::Pass).await;
            link.finish();
        }
        SilentAfterHello => {}
        HelloOfAnotherVersion => {
            let mut answer = hello.clone();
            answer.version = PROTOCOL_VERSION + 1;
            link.send(&Message::Hello(answer)).await;
        }
        AbortsIncompatible => link.send(&Message::Abort(CloseCode::INCOMPATIBLE)).await,
        AcceptWithTrailingBytes => {
            let mut frame = accept(SERVER_SET as u64).to_frame();
            frame.extend_from_slice(&[0, 0, 0]);
            link.send_frame(&frame).await;
        }
        AcceptWithUnknownKinds => link.send_frame(&raw_accept(SERVER_SET as u64, 0x80)).await,
        AcceptSetSizeAboveU32 => {
            let size = u64::from(u32::MAX) + 1;
            link.send_frame(&raw_accept(size, email_kinds().bits()))
                .await
        }
        RejectWithGarbageReason => {
            link.send(&Message::Reject(Reject {
                reason: RejectReason(GARBAGE_CODE),
                text: GARBAGE_TEXT.into(),
            }))
            .await
        }
        AbortWithUnknownCode => link.send(&Message::Abort(CloseCode(GARBAGE_CODE))).await,
        BlindedBeforeAccept => link.send(&Message::Blinded(vec![[9u8; 32]; 4])).await,
        FinishBeforeAccept => link.send(&finish_of_nothing()).await,
        UnknownMessageType => link.send_frame(&[0x2a, 1, 2, 3]).await,
        EmptyFrame => link.send_frame(&[]).await,
        OversizedFrame => oversized_frame(link).await,
        AcceptForAnotherSession => {
            let mut other = hello.clone();
            other.session_id[0] ^= 1;
            honest(link, &other, binding, |_| Step::Pass).await;
        }
        AcceptForAnotherMode => {
            let mut other = hello.clone();
            other.mode = OutputMode::Cardinality;
            honest(link, &other, binding, |_| Step::Pass).await;
        }
        // A session relayed from another connection: its channel binding differs.
        AcceptOnAnotherChannel => honest(link, &hello, [0x5a; 32], |_| Step::Pass).await,
        SilentAfterAccept => link.send(&accept(SERVER_SET as u64)).await,
        TrickledBatch => {
            link.send(&accept(SERVER_SET as u64)).await;
            let frame = Message::Blinded(vec![[9u8; 32]; SERVER_SET]).to_frame();
            let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&frame);
            link.trickle(&bytes, Duration::from_millis(300), TRICKLE)
                .await;
        }
        InvalidPointInBlinded => first_point(link, &hello, [0xff; 32]).await,
        IdentityPointInBlinded => first_point(link, &hello, [0; 32]).await,
        ReflectsPointsAsBlinded => {
            // Declares the initiator's own size, so that every point of it fits.
            link.send(&accept(hello.set_size)).await;
            link.answer_next_blinded(ANSWER, Message::Blinded).await;
        }
        ReflectsPointsAsReblinded => {
            link.send(&accept(SERVER_SET as u64)).await;
            link.answer_next_blinded(ANSWER, reblinded_without_reblinding)
                .await;
        }
        MoreReblindedThanSent => {
            link.send(&accept(SERVER_SET as u64)).await;
            link.answer_next_blinded(ANSWER, reblinded_one_too_many)
                .await;
        }
        FewerReblindedThenFinish => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Reblinded(answer) => {
                    let mut answer = answer.clone();
                    answer.points.pop();
                    Step::Replace(vec![Message::Reblinded(answer).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
        MoreBlindedThanAccepted => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Accept(a) => Step::Replace(vec![accept(a.set_size - 5).to_frame()]),
                _ => Step::Pass,
            })
            .await
        }
        BatchCountBeyondBody => {
            let mut frame = vec![4, 0, 0, 0, 10];
            frame.extend_from_slice(&[9u8; 32]);
            instead_of_first_batch(link, &hello, vec![frame]).await;
        }
        ZeroLengthBatch => {
            instead_of_first_batch(link, &hello, vec![vec![4, 0, 0, 0, 0]]).await;
        }
        FinishWrongTranscript => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Finish(f) => {
                    let mut f = f.clone();
                    f.transcript[0] ^= 1;
                    Step::Replace(vec![Message::Finish(f).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
        FinishWrongCount => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Finish(f) => {
                    let mut f = f.clone();
                    f.intersection = f.intersection.map(|n| n + 1);
                    Step::Replace(vec![Message::Finish(f).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
        FinishWithoutCount => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Finish(f) => {
                    let mut f = f.clone();
                    f.intersection = None;
                    Step::Replace(vec![Message::Finish(f).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
        OversizedFrameMidSession => {
            instead_of_first_batch(link, &hello, Vec::new()).await;
            oversized_frame(link).await;
        }
        TruncatedFrameThenFin => {
            instead_of_first_batch(link, &hello, Vec::new()).await;
            link.send_half_a_batch(SERVER_SET).await;
            link.finish();
        }
        ClosesConnectionMidBatch => {
            instead_of_first_batch(link, &hello, Vec::new()).await;
            link.send_half_a_batch(SERVER_SET).await;
            link.close(CloseCode::CANCELLED);
        }
        ResetsStreamMidBatch => {
            instead_of_first_batch(link, &hello, Vec::new()).await;
            link.send_half_a_batch(SERVER_SET).await;
            link.reset(CloseCode::CANCELLED);
        }
        EndsStreamBeforeFinish => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Finish(_) => Step::Stop(Vec::new()),
                _ => Step::Pass,
            })
            .await;
            link.finish();
        }
        FabricatedMatches => fabricate_matches(link, &hello).await,
        SwappedAnswers => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Reblinded(answer) => {
                    let mut answer = answer.clone();
                    answer.points.swap(0, 1);
                    Step::Replace(vec![Message::Reblinded(answer).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
        KeySwitchedAnswers => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Reblinded(answer) => {
                    Step::Replace(vec![Message::Reblinded(switch_key(answer)).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
        ForgedReceipt => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Finish(f) => {
                    let mut f = f.clone();
                    f.receipt.responder_dataset.name = "kp-premium".into();
                    Step::Replace(vec![Message::Finish(f).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
        ReceiptUnderAnotherKey => {
            honest(link, &hello, binding, |msg| match msg {
                Message::Finish(f) => {
                    let mut f = f.clone();
                    let key = ed25519_dalek::SigningKey::from_bytes(&[0x77; 32]);
                    f.receipt.signer_key = key.verifying_key().to_bytes();
                    f.receipt.signature = key.sign(&f.receipt.signed_bytes()).to_bytes();
                    Step::Replace(vec![Message::Finish(f).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
        AbortsAfterLearning => {
            // Takes the initiator's first answer, then leaves without answering.
            honest(link, &hello, binding, |msg| match msg {
                Message::Reblinded(_) => {
                    Step::Stop(vec![Message::Abort(CloseCode::CANCELLED).to_frame()])
                }
                _ => Step::Pass,
            })
            .await
        }
    }
    Some(hello.session_id)
}

/// The fabricated-match attack: `Accept` commits to the key `r·a` (from the initiator's
/// own commitment `a·G`), each round of ours is `r·(the initiator's round)`, and our
/// answers are the initiator's own answers to those rounds. The statement each answer
/// makes is true; only a proof of it is impossible without `a`.
async fn fabricate_matches(link: &mut Link, hello: &Hello) {
    let r = Scalar::from(0x5eed_u64);
    let mut accept = Accept::new(hello.set_size, times(&r, &[hello.key_commitment])[0]);
    accept.kinds = email_kinds();
    link.send(&Message::Accept(accept)).await;
    while let Some(msg) = link.next_message(ANSWER).await {
        match msg {
            Message::Blinded(points) => link.send(&Message::Blinded(times(&r, &points))).await,
            Message::Reblinded(answer) => link.send(&Message::Reblinded(answer)).await,
            _ => return,
        }
    }
}

/// `s·P` for each point.
fn times(s: &Scalar, points: &[[u8; 32]]) -> Vec<[u8; 32]> {
    points
        .iter()
        .filter_map(|p| decode_point(p).ok())
        .map(|p| (s * p).compress().to_bytes())
        .collect()
}

/// The answer under another key `s·b`, with a valid proof for the key `s` between the
/// honest answer and it: true of some key, just not of the committed one.
fn switch_key(answer: &Reblinded) -> Reblinded {
    let s = Scalar::from(77u64);
    let switched = times(&s, &answer.points);
    let c: Vec<_> = answer
        .points
        .iter()
        .filter_map(|p| decode_point(p).ok())
        .collect();
    let proof = PublicKey::from_point(s * RISTRETTO_BASEPOINT_POINT)
        .and_then(|pk| {
            generate_proof(
                b"blindmatch-v2-reblind-ristretto255-SHA512",
                &s,
                &pk,
                &c,
                &answer.points,
                &switched,
                &Scalar::from(5u64),
            )
        })
        .map(|p| p.to_bytes())
        .unwrap_or([0; 64]);
    Reblinded {
        points: switched,
        proof,
    }
}

/// A `Finish` with an unsigned receipt of nothing.
fn finish_of_nothing() -> Message {
    let receipt = Receipt::unsigned(
        [0; 32],
        [0; 16],
        [0; 32],
        Role::Responder,
        [[0; 32], [0; 32]],
        [DatasetRef::default(), DatasetRef::default()],
        OutputMode::Both,
        (0, 0),
        Some(0),
    );
    Message::Finish(Box::new(Finish::new([0; 32], Some(0), receipt)))
}

/// The attack's name in snake case, as `HOSTILE_SERVER_CASE` takes it.
pub fn name(attack: ServerAttack) -> String {
    snake_case(attack)
}

/// Runs an honest responder for `hello` (as the attack presents it) over `link`,
/// bound to `binding`, with `tamper` applied to what it sends. It stops right after
/// sending its `Finish` (or what replaces it), so the initiator is the one to judge the
/// two `Finish`es.
async fn honest(
    link: &mut Link,
    hello: &Hello,
    binding: [u8; 32],
    mut tamper: impl FnMut(&Message) -> Step,
) {
    let parties = link.parties;
    let mut session = responder(hello, binding, parties, email_set(SERVER_FIRST, SERVER_SET));
    link.drive(
        &mut session,
        |msg| match (tamper(msg), msg) {
            (Step::Pass, Message::Finish(_)) => Step::Stop(vec![msg.to_frame()]),
            (Step::Replace(frames), Message::Finish(_)) => Step::Stop(frames),
            (step, _) => step,
        },
        ANSWER,
    )
    .await;
}

/// An honest responder that sends `frames` instead of its first `Blinded` batch, then
/// stops.
async fn instead_of_first_batch(link: &mut Link, hello: &Hello, frames: Vec<Vec<u8>>) {
    let mut frames = Some(frames);
    let binding = link.binding;
    honest(link, hello, binding, |msg| match msg {
        Message::Blinded(_) => Step::Stop(frames.take().unwrap_or_default()),
        _ => Step::Pass,
    })
    .await;
}

/// An honest responder whose first blinded point is replaced by `point`.
async fn first_point(link: &mut Link, hello: &Hello, point: [u8; 32]) {
    let binding = link.binding;
    honest(link, hello, binding, |msg| match msg {
        Message::Blinded(points) => {
            let mut points = points.clone();
            points[0] = point;
            Step::Stop(vec![Message::Blinded(points).to_frame()])
        }
        _ => Step::Pass,
    })
    .await;
}

fn accept(set_size: u64) -> Message {
    let mut accept = Accept::new(set_size, commitment());
    accept.kinds = email_kinds();
    accept.dataset = DatasetRef::new("hostile-kp", [0; 16]);
    Message::Accept(accept)
}

/// An `Accept` frame encoded by hand, so that its fields can be out of range.
fn raw_accept(set_size: u64, kinds: u8) -> Vec<u8> {
    let mut frame = vec![2];
    frame.extend_from_slice(&set_size.to_be_bytes());
    frame.push(kinds);
    frame.push(1); // bundle width
    frame.extend_from_slice(&commitment());
    frame.extend_from_slice(&[0, 0]); // dataset name: empty
    frame.extend_from_slice(&[0; 16]); // and its version tag
    frame
}

fn email_kinds() -> KindSet {
    KindSet::empty().with(IdentKind::Email)
}

/// A length prefix one byte above the limit, and some of the body.
async fn oversized_frame(link: &mut Link) {
    let mut bytes = (MAX_FRAME_LEN as u32 + 1).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[4u8; 4096]);
    link.send_raw(&bytes).await;
}
