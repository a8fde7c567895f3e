//! The hostile peer's playbook: every way [`super::hostile::Link`] is made to speak
//! the protocol wrongly, for `tests/hostile.rs`. Each attack opens its misbehaviour on
//! an already connected link; observing the server's reaction is the caller's job.

use std::time::Duration;

use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::ident::{IdentKind, KindSet, NORMALISATION_VERSION};
use blindmatch_protocol::session::{Role, Session};
use blindmatch_protocol::wire::{
    Accept, DatasetRef, Finish, Hello, MAX_BATCH_POINTS, MAX_FRAME_LEN, MAX_TEXT_LEN, Message,
    OutputMode, PROTOCOL_VERSION, Reblinded, Receipt, Reject, RejectReason,
};

use super::hostile::{
    HostilePeer, Link, Reading, Step, commitment, email_set, reblinded_one_too_many,
    reblinded_without_reblinding, snake_case,
};

/// Elements in the honest part of the hostile peer's set: contacts 100..120.
pub const HOSTILE_SET: usize = 20;
/// Longest an attack waits for the server to answer.
const ANSWER: Duration = Duration::from_secs(5);
/// Longest a trickle lasts.
const TRICKLE: Duration = Duration::from_secs(9);

/// One way of speaking the protocol wrongly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attack {
    // Before a valid Hello.
    WrongProtocolVersion,
    NormalisationVersionMismatch,
    OversizedFrame,
    TruncatedHelloThenFin,
    UnknownMessageType,
    EmptyFrame,
    BlindedBeforeHello,
    FinishFirst,
    AcceptFromInitiator,
    GarbageBytes,
    InvalidUtf8Purpose,
    OverlongPurpose,
    SetSizeAboveU32,
    UnknownOutputMode,
    InvalidKinds,
    HelloTrailingBytes,
    AbortBeforeHello,
    SilenceBeforeHello,
    TrickledHello,
    FinWithoutHello,
    // After a valid Hello.
    DuplicateHello,
    SilenceAfterHello,
    TrickledBatch,
    MorePointsThanDeclared,
    FewerPointsThenFinish,
    InvalidPointEncoding,
    IdentityPoint,
    ZeroLengthBatch,
    BatchCountBeyondBody,
    BatchCountAboveLimit,
    RejectFromInitiator,
    AbortMidStream,
    ReflectedPoints,
    PointsNotReblinded,
    TooManyReblinded,
    ReblindedWhenResponderLearnsNothing,
    FinishWrongTranscript,
    FinishWrongCount,
    TruncatedBatchThenFin,
    OversizedFrameMidSession,
    CloseConnectionMidBatch,
    ResetStreamMidBatch,
    ManyStreams,
    StopsReading,
    NeverReads,
    DatasetNotOfferedThenKeepsSending,
    ReplayedSessionId,
}

/// Performs `attack` on `link` (the observation happens afterwards).
pub async fn attack(peer: &HostilePeer, link: &mut Link, attack: Attack) {
    use Attack::*;
    let short = ANSWER;
    let hello = |link: &Link, size: u64| RawHello::valid(size).frame(link.session_id);
    match attack {
        WrongProtocolVersion => {
            let raw = RawHello {
                version: PROTOCOL_VERSION + 1,
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
        }
        NormalisationVersionMismatch => {
            let raw = RawHello {
                normalisation: NORMALISATION_VERSION + 1,
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
        }
        OversizedFrame => {
            let mut bytes = (MAX_FRAME_LEN as u32 + 1).to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0u8; 4096]);
            link.send_raw(&bytes).await;
        }
        TruncatedHelloThenFin => {
            let frame = hello(link, 20);
            let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&frame[..frame.len() / 2]);
            link.send_raw(&bytes).await;
            link.finish();
        }
        UnknownMessageType => link.send_frame(&[0x2a, 1, 2, 3]).await,
        EmptyFrame => link.send_frame(&[]).await,
        BlindedBeforeHello => link.send(&Message::Blinded(vec![[7u8; 32]; 4])).await,
        FinishFirst => link.send(&finish_of_nothing()).await,
        AcceptFromInitiator => {
            let mut accept = Accept::new(20, commitment());
            accept.kinds = email_kinds();
            link.send(&Message::Accept(accept)).await
        }
        GarbageBytes => {
            link.send_raw(b"GET / HTTP/1.1\r\nHost: blindmatch\r\n\r\n")
                .await
        }
        InvalidUtf8Purpose => {
            let raw = RawHello {
                purpose: vec![0xff, 0xfe, b'x'],
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
        }
        OverlongPurpose => {
            let raw = RawHello {
                purpose: vec![b'p'; MAX_TEXT_LEN + 1],
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
        }
        SetSizeAboveU32 => {
            let raw = RawHello::valid(u64::from(u32::MAX) + 1);
            link.send_frame(&raw.frame(link.session_id)).await;
        }
        UnknownOutputMode => {
            let raw = RawHello {
                mode: 9,
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
        }
        InvalidKinds => {
            let raw = RawHello {
                kinds: 0x80,
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
        }
        HelloTrailingBytes => {
            let raw = RawHello {
                trailing: vec![0; 3],
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
        }
        AbortBeforeHello => link.send(&Message::Abort(CloseCode::CANCELLED)).await,
        SilenceBeforeHello => {}
        TrickledHello => {
            let frame = hello(link, 20);
            let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&frame);
            link.trickle(&bytes, Duration::from_millis(400), TRICKLE)
                .await;
        }
        FinWithoutHello => link.finish(),
        DuplicateHello => {
            let frame = hello(link, 20);
            link.send_frame(&frame).await;
            link.send_frame(&frame).await;
        }
        SilenceAfterHello => link.send_frame(&hello(link, 20)).await,
        TrickledBatch => {
            link.send_frame(&hello(link, 20)).await;
            link.wait_for(is_accept, short).await;
            let frame = Message::Blinded(vec![[9u8; 32]; 20]).to_frame();
            let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&frame);
            link.trickle(&bytes, Duration::from_millis(300), TRICKLE)
                .await;
        }
        MorePointsThanDeclared => {
            honest(link, OutputMode::Both, |msg| match msg {
                Message::Hello(h) => Step::Replace(vec![
                    Message::Hello(declaring(h, HOSTILE_SET as u64 / 2)).to_frame(),
                ]),
                _ => Step::Pass,
            })
            .await;
        }
        FewerPointsThenFinish => {
            honest(link, OutputMode::Both, |msg| match msg {
                Message::Hello(h) => Step::Replace(vec![
                    Message::Hello(declaring(h, HOSTILE_SET as u64 + 10)).to_frame(),
                ]),
                _ => Step::Pass,
            })
            .await;
        }
        InvalidPointEncoding => tamper_first_point(link, [0xff; 32]).await,
        IdentityPoint => tamper_first_point(link, [0; 32]).await,
        ZeroLengthBatch => {
            link.send_frame(&hello(link, 20)).await;
            link.send_frame(&[4, 0, 0, 0, 0]).await;
        }
        BatchCountBeyondBody => {
            link.send_frame(&hello(link, 20)).await;
            let mut frame = vec![4, 0, 0, 0, 10];
            frame.extend_from_slice(&[9u8; 32]);
            link.send_frame(&frame).await;
        }
        BatchCountAboveLimit => {
            link.send_frame(&hello(link, 20)).await;
            let mut frame = vec![4];
            frame.extend_from_slice(&(MAX_BATCH_POINTS as u32 + 1).to_be_bytes());
            frame.extend_from_slice(&[9u8; 32]);
            link.send_frame(&frame).await;
        }
        RejectFromInitiator => {
            link.send_frame(&hello(link, 20)).await;
            link.send(&Message::Reject(Reject {
                reason: RejectReason::BUSY,
                text: "no".into(),
            }))
            .await;
        }
        AbortMidStream => {
            honest(link, OutputMode::Both, |msg| match msg {
                Message::Blinded(_) => {
                    Step::Stop(vec![Message::Abort(CloseCode::CANCELLED).to_frame()])
                }
                _ => Step::Pass,
            })
            .await;
        }
        ReflectedPoints => {
            link.send_frame(&hello(link, 1000)).await;
            link.answer_next_blinded(short, Message::Blinded).await;
        }
        PointsNotReblinded => {
            link.send_frame(&hello(link, 1000)).await;
            link.answer_next_blinded(short, reblinded_without_reblinding)
                .await;
        }
        TooManyReblinded => {
            link.send_frame(&hello(link, 1000)).await;
            link.answer_next_blinded(short, reblinded_one_too_many)
                .await;
        }
        ReblindedWhenResponderLearnsNothing => {
            let raw = RawHello {
                mode: OutputMode::Initiator.code(),
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
            link.wait_for(is_accept, short).await;
            link.send(&Message::Reblinded(Reblinded {
                points: vec![commitment()],
                proof: [0; 64],
            }))
            .await;
        }
        FinishWrongTranscript => {
            honest(link, OutputMode::Both, |msg| match msg {
                Message::Finish(f) => {
                    let mut f = f.clone();
                    f.transcript[0] ^= 1;
                    Step::Replace(vec![Message::Finish(f).to_frame()])
                }
                _ => Step::Pass,
            })
            .await;
        }
        FinishWrongCount => {
            honest(link, OutputMode::Both, |msg| match msg {
                Message::Finish(f) => {
                    let mut f = f.clone();
                    f.intersection = f.intersection.map(|n| n + 1);
                    Step::Replace(vec![Message::Finish(f).to_frame()])
                }
                _ => Step::Pass,
            })
            .await;
        }
        TruncatedBatchThenFin => {
            link.send_frame(&hello(link, 20)).await;
            link.wait_for(is_accept, short).await;
            link.send_half_a_batch(20).await;
            link.finish();
        }
        OversizedFrameMidSession => {
            link.send_frame(&hello(link, 20)).await;
            link.wait_for(is_accept, short).await;
            let mut bytes = (MAX_FRAME_LEN as u32 + 1).to_be_bytes().to_vec();
            bytes.extend_from_slice(&[4u8; 4096]);
            link.send_raw(&bytes).await;
        }
        CloseConnectionMidBatch => {
            link.send_frame(&hello(link, 20)).await;
            link.wait_for(is_accept, short).await;
            link.send_half_a_batch(20).await;
            link.close(CloseCode::CANCELLED);
        }
        ResetStreamMidBatch => {
            link.send_frame(&hello(link, 20)).await;
            link.wait_for(is_accept, short).await;
            link.send_half_a_batch(20).await;
            link.reset(CloseCode::CANCELLED);
        }
        ManyStreams => {
            // The server lets a connection open one stream, the session's: a second
            // (to carry another session's Hello) must stay blocked by the stream limit.
            let mut initiator = link.initiator(email_set(100, HOSTILE_SET), OutputMode::Both);
            let hello = initiator.poll_transmit().expect("Hello");
            link.send_frame(&hello).await;
            match link.open_stream(Duration::from_millis(300)).await {
                None => {
                    link.drive(&mut initiator, |_| Step::Pass, short).await;
                    link.finish();
                }
                Some((mut writer, _reader)) => {
                    let _ = writer
                        .write_frame(&RawHello::valid(20).frame([1; 16]))
                        .await;
                    // Leave the session unfinished: the check then fails with a message.
                    link.close(CloseCode::CANCELLED);
                }
            }
        }
        StopsReading => {
            link.send_frame(&hello(link, 20)).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            link.stop_reading(CloseCode::CANCELLED);
        }
        NeverReads => link.send_frame(&hello(link, 20)).await,
        DatasetNotOfferedThenKeepsSending => {
            let raw = RawHello {
                dataset: b"customers-secret".to_vec(),
                ..RawHello::valid(20)
            };
            link.send_frame(&raw.frame(link.session_id)).await;
            link.send(&Message::Blinded(vec![[9u8; 32]; 20])).await;
        }
        ReplayedSessionId => {
            // A complete session first, then its Hello again on a new connection.
            let Ok(mut first) = peer.connect().await else {
                return;
            };
            let id = first.session_id;
            let mut initiator = first.initiator(email_set(100, HOSTILE_SET), OutputMode::Both);
            let driven = first.drive(&mut initiator, |_| Step::Pass, short).await;
            first.finish();
            let _ = first.observe(false, short).await;
            if driven.completed {
                link.session_id = id;
                link.send_frame(&RawHello::valid(HOSTILE_SET as u64).frame(id))
                    .await;
            }
        }
    }
}

/// How the attack's connection reads the server's stream.
pub fn reading(attack: Attack) -> Reading {
    match attack {
        // A window smaller than the server's first batch, so its writes block.
        Attack::StopsReading | Attack::NeverReads => Reading::NeverReads { window: 1024 },
        _ => Reading::Reads,
    }
}

/// A `Hello` encoded field by field, so that any field can be wrong.
struct RawHello {
    version: u16,
    normalisation: u16,
    dataset: Vec<u8>,
    purpose: Vec<u8>,
    kinds: u8,
    mode: u8,
    set_size: u64,
    commitment: [u8; 32],
    trailing: Vec<u8>,
}

impl RawHello {
    /// A valid `Hello` (mode `both`, emails) declaring `set_size`.
    fn valid(set_size: u64) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            normalisation: NORMALISATION_VERSION,
            dataset: Vec::new(),
            purpose: b"hostile test".to_vec(),
            kinds: email_kinds().bits(),
            mode: OutputMode::Both.code(),
            set_size,
            commitment: commitment(),
            trailing: Vec::new(),
        }
    }

    fn frame(&self, session_id: [u8; 16]) -> Vec<u8> {
        let text = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        let mut out = vec![1];
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.normalisation.to_be_bytes());
        out.extend_from_slice(&session_id);
        text(&mut out, &self.dataset);
        text(&mut out, &self.purpose);
        text(&mut out, b"consent");
        out.push(self.kinds);
        out.push(self.mode);
        out.extend_from_slice(&self.set_size.to_be_bytes());
        out.extend_from_slice(&4096u32.to_be_bytes()); // round size
        out.push(1); // bundle width
        out.extend_from_slice(&self.commitment);
        text(&mut out, b"hostile"); // our own dataset, and its version tag
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&self.trailing);
        out
    }
}

fn email_kinds() -> KindSet {
    KindSet::empty().with(IdentKind::Email)
}

fn declaring(hello: &Hello, set_size: u64) -> Hello {
    let mut hello = hello.clone();
    hello.set_size = set_size;
    hello
}

/// A `Finish` with an unsigned receipt of nothing.
fn finish_of_nothing() -> Message {
    let receipt = Receipt::unsigned(
        [0; 32],
        [0; 16],
        [0; 32],
        Role::Initiator,
        [[0; 32], [0; 32]],
        [DatasetRef::default(), DatasetRef::default()],
        OutputMode::Both,
        (0, 0),
        None,
    );
    Message::Finish(Box::new(Finish::new([0; 32], None, receipt)))
}

fn is_accept(msg: &Message) -> bool {
    matches!(msg, Message::Accept(_))
}

/// Runs an honest initiator (set of [`HOSTILE_SET`] contacts) with `tamper` applied.
async fn honest(link: &mut Link, mode: OutputMode, tamper: impl FnMut(&Message) -> Step) {
    let mut initiator = link.initiator(email_set(100, HOSTILE_SET), mode);
    link.drive(&mut initiator, tamper, Duration::from_secs(5))
        .await;
}

/// An honest session whose first blinded point is replaced by `point`.
async fn tamper_first_point(link: &mut Link, point: [u8; 32]) {
    honest(link, OutputMode::Both, |msg| match msg {
        Message::Blinded(points) => {
            let mut points = points.clone();
            points[0] = point;
            Step::Stop(vec![Message::Blinded(points).to_frame()])
        }
        _ => Step::Pass,
    })
    .await;
}

/// The attack's name in snake case, as `HOSTILE_CASE` takes it.
pub fn name(attack: Attack) -> String {
    snake_case(attack)
}
