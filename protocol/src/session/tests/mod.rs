//! The in-memory pair harness: both state machines driven against each other with a
//! seeded RNG, with an adversary on the wire that may drop, replace, reorder or inject
//! frames in either direction.

mod attacks;
mod faults;
mod modes;
mod shared;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ed25519_dalek::{Signer, SigningKey};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::error::{CloseCode, PeerMisbehaved};
use crate::ident::{IdentKind, Identifier, Normaliser};
use crate::wire::{DatasetRef, LogHead, Message, MessageType, OutputMode};

/// Which way a frame travels.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    ToResponder,
    ToInitiator,
}

/// The adversary: sees each frame as it is sent and decides what is delivered, in
/// either direction.
type Fault<'a> = Box<dyn FnMut(Dir, &[u8], &mut Wire) -> Vec<(Dir, Vec<u8>)> + 'a>;

/// Everything delivered so far, for adversaries that replay, reflect or compute.
#[derive(Default)]
struct Wire {
    delivered: Vec<(Dir, Vec<u8>)>,
}

impl Wire {
    /// The decoded messages delivered in `dir` of type `ty`, in order.
    fn messages(&self, dir: Dir, ty: MessageType) -> Vec<Message> {
        self.delivered
            .iter()
            .filter(|(d, f)| *d == dir && MessageType(f[0]) == ty)
            .filter_map(|(_, f)| Message::decode(f).ok())
            .collect()
    }
}

struct Run {
    initiator: Result<Outcome, Error>,
    responder: Result<Outcome, Error>,
    /// Each side's last progress, for what it could have learned.
    progress: (Progress, Progress),
}

/// A receipt signer over a fixed key and log head.
struct TestSigner {
    key: SigningKey,
    head: LogHead,
}

impl ReceiptSigner for TestSigner {
    fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }
    fn log_head(&self) -> LogHead {
        self.head
    }
    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

const A_FP: [u8; 32] = [0xa1; 32];
const B_FP: [u8; 32] = [0xb2; 32];

fn signing_key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32])
}

fn signer(byte: u8) -> Box<dyn ReceiptSigner> {
    Box::new(TestSigner {
        key: signing_key(byte),
        head: LogHead {
            seq: u64::from(byte),
            hash: [byte; 32],
        },
    })
}

/// Pinned audit keys: the initiator signs with key 1, the responder with key 2.
fn initiator_parties() -> Parties {
    Parties {
        own_fingerprint: A_FP,
        peer_fingerprint: B_FP,
        peer_audit_key: Some(signing_key(2).verifying_key().to_bytes()),
    }
}

fn responder_parties() -> Parties {
    Parties {
        own_fingerprint: B_FP,
        peer_fingerprint: A_FP,
        peer_audit_key: Some(signing_key(1).verifying_key().to_bytes()),
    }
}

fn initiator_config(mode: OutputMode, seed: u64) -> InitiatorConfig {
    let mut config = InitiatorConfig::new([seed as u8; 16], [42; 32], initiator_parties(), mode);
    config.dataset = "kp".into();
    config.own_dataset = DatasetRef::new("crm", [7; 16]);
    config.purpose = "test".into();
    config.batch_size = 16; // many small rounds exercise the pacing
    config
}

fn responder() -> Responder {
    Responder::new(
        ResponderConfig::new([42; 32], responder_parties()),
        signer(2),
    )
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

fn clean() -> Fault<'static> {
    Box::new(|dir, frame, _| vec![(dir, frame.to_vec())])
}

fn run(
    a_records: &[Vec<Identifier>],
    b_records: &[Vec<Identifier>],
    mode: OutputMode,
    seed: u64,
    fault: Fault<'_>,
) -> Run {
    run_with(
        initiator_config(mode, seed),
        a_records,
        b_records,
        seed,
        fault,
    )
}

fn run_with(
    config: InitiatorConfig,
    a_records: &[Vec<Identifier>],
    b_records: &[Vec<Identifier>],
    seed: u64,
    fault: Fault<'_>,
) -> Run {
    run_sets(config, prepare(a_records), prepare(b_records), seed, fault)
}

/// [`run_with`] from prepared sets.
fn run_sets(
    config: InitiatorConfig,
    a_set: PreparedSet,
    b_set: PreparedSet,
    seed: u64,
    mut fault: Fault<'_>,
) -> Run {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut a = Initiator::new(config, a_set, signer(1), &mut rng).expect("valid");
    let mut b = responder();
    let mut wire = Wire::default();
    let mut in_flight: VecDeque<(Dir, Vec<u8>)> = VecDeque::new();
    let mut a_result: Option<Result<Outcome, Error>> = None;
    let mut b_result: Option<Result<Outcome, Error>> = None;
    for _ in 0..1_000_000 {
        let mut moved = false;
        while let Some(frame) = a.poll_transmit() {
            moved = true;
            in_flight.extend(fault(Dir::ToResponder, &frame, &mut wire));
        }
        while let Some(frame) = b.poll_transmit() {
            moved = true;
            in_flight.extend(fault(Dir::ToInitiator, &frame, &mut wire));
        }
        // Deliver one frame at a time, reacting to events in between, as a driver does.
        if let Some((dir, frame)) = in_flight.pop_front() {
            moved = true;
            wire.delivered.push((dir, frame.clone()));
            let (session, result): (&mut dyn Session, _) = match dir {
                Dir::ToResponder => (&mut b, &mut b_result),
                Dir::ToInitiator => (&mut a, &mut a_result),
            };
            if let Err(e) = session.handle_frame(&frame) {
                result.get_or_insert(Err(e));
            }
        }
        while let Some(event) = b.poll_event() {
            match event {
                Event::HelloReceived(_) => b
                    .accept(b_set.clone(), DatasetRef::new("kp", [9; 16]), &mut rng)
                    .expect("pending hello"),
                Event::Completed(o) => {
                    b_result.get_or_insert(Ok(*o));
                }
                Event::Failed(e) => {
                    b_result.get_or_insert(Err(e));
                }
                other => panic!("responder event {other:?}"),
            }
        }
        while let Some(event) = a.poll_event() {
            match event {
                Event::Accepted(_) => {
                    if let Err(e) = a.confirm() {
                        a_result.get_or_insert(Err(e));
                    }
                }
                Event::Completed(o) => {
                    a_result.get_or_insert(Ok(*o));
                }
                Event::Failed(e) => {
                    a_result.get_or_insert(Err(e));
                }
                other => panic!("initiator event {other:?}"),
            }
        }
        if !moved {
            break;
        }
    }
    Run {
        progress: (a.progress(), b.progress()),
        initiator: a_result.unwrap_or(Err(Error::ApiMisuse("initiator stalled"))),
        responder: b_result.unwrap_or(Err(Error::ApiMisuse("responder stalled"))),
    }
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

/// Runs `mode` cleanly and checks both outcomes against the plain intersection, the
/// counts each side may know, and the receipts each side holds.
fn check_mode(a: &[Vec<Identifier>], b: &[Vec<Identifier>], mode: OutputMode, seed: u64) {
    let run = run(a, b, mode, seed, clean());
    let ra = run.initiator.expect("initiator completes");
    let rb = run.responder.expect("responder completes");
    assert_eq!(ra.transcript_hash, rb.transcript_hash);
    let count = unique_count(a, b);
    let (a_learns, b_learns) = (
        learns_records(mode, Role::Initiator),
        learns_records(mode, Role::Responder),
    );
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
    let a_count = learns_count(mode, Role::Initiator);
    let b_count = learns_count(mode, Role::Responder);
    assert_eq!(ra.intersection_size, a_count.then_some(count), "{mode}");
    assert_eq!(rb.intersection_size, b_count.then_some(count), "{mode}");
    assert_eq!(
        ra.matched_record_count,
        a_count.then(|| expected(a, b).len() as u64),
        "initiator record count, {mode}"
    );
    assert_eq!(
        rb.matched_record_count,
        b_count.then(|| expected(b, a).len() as u64),
        "responder record count, {mode}"
    );
    assert_eq!(ra.peer_set_size, rb.own_set_size);
    assert_eq!(rb.peer_set_size, ra.own_set_size);
    assert_eq!(ra.own_receipt, rb.peer_receipt);
    assert_eq!(rb.own_receipt, ra.peer_receipt);
    assert!(ra.peer_receipt.signature_valid() && rb.peer_receipt.signature_valid());
    assert_eq!(ra.peer_dataset, DatasetRef::new("kp", [9; 16]));
    assert_eq!(rb.peer_dataset, DatasetRef::new("crm", [7; 16]));
}

fn message_type(frame: &[u8]) -> MessageType {
    MessageType(frame[0])
}

/// Applies `f` to the `nth` frame of `ty` travelling in `dir`; the rest pass.
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
                return f(frame, wire).into_iter().map(|f| (d, f)).collect();
            }
        }
        vec![(d, frame.to_vec())]
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
    let err = run.responder.clone().expect_err("responder must fail");
    eprintln!(
        "responder: {err:?}; initiator: {:?}",
        run.initiator.as_ref().err()
    );
    err
}

fn initiator_err(run: &Run) -> Error {
    let err = run.initiator.clone().expect_err("initiator must fail");
    eprintln!(
        "initiator: {err:?}; responder: {:?}",
        run.responder.as_ref().err()
    );
    err
}
