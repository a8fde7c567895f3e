//! The index sessions driven against each other in memory, with faults and a malicious
//! provider: the client (audit key 1) against the provider (audit key 2), each pinning
//! the other's key.

use std::collections::BTreeSet;

use super::*;
use crate::error::CloseCode;
use crate::ident::IdentKind;
use crate::session::{
    Event, KeySigner, Outcome, Parties, PreparedSet, PreparedSetBuilder, ResponderConfig, Session,
};
use crate::wire::{HeldIndex, IndexHello, Message, MessageType, Reblinded, RejectReason};

const CLIENT_FP: [u8; 32] = [0xc1; 32];
const PROVIDER_FP: [u8; 32] = [0xd2; 32];
const PROVIDED: u32 = 2000;

/// Which way a frame travels.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    ToProvider,
    ToClient,
}

struct Provided {
    /// The OPRF key is `oprf_key(seed)` (keys are not `Clone`).
    seed: u8,
    bytes: Vec<u8>,
    summary: IndexSummary,
}

/// The provider's index over `inputs(0, PROVIDED)`, signed with audit key `signer`.
fn provided(seed: u8, signer: u8) -> Provided {
    provided_in(EPOCH, seed, signer)
}

fn provided_in(epoch: EpochId, seed: u8, signer: u8) -> Provided {
    let key = oprf_key(seed);
    let mut header = template(&key);
    header.epoch = epoch;
    let (_, bytes) = build_segment(
        header,
        0,
        &prefixes(&key, &inputs(0, PROVIDED)),
        &audit_key(signer),
    )
    .unwrap();
    let summary = MemoryIndexStore::holding(bytes.clone()).open(None).unwrap();
    Provided {
        seed,
        bytes,
        summary,
    }
}

fn client_parties() -> Parties {
    Parties {
        own_fingerprint: CLIENT_FP,
        peer_fingerprint: PROVIDER_FP,
        peer_audit_key: Some(audit_key(2).verifying_key().to_bytes()),
    }
}

fn provider_parties() -> Parties {
    Parties {
        own_fingerprint: PROVIDER_FP,
        peer_fingerprint: CLIENT_FP,
        peer_audit_key: Some(audit_key(1).verifying_key().to_bytes()),
    }
}

/// Records `from..to`, each with the provider-style email and a client-only email:
/// record `r` matches exactly when `from + r < PROVIDED`.
fn client_set(from: u32, to: u32) -> PreparedSet {
    let mut builder = PreparedSetBuilder::new();
    for (record, i) in (from..to).enumerate() {
        let record = record as u32;
        builder.add_normalised(
            record,
            IdentKind::Email,
            format!("kp{i}@provider.cn").as_bytes(),
        );
        builder.add_normalised(
            record,
            IdentKind::Email,
            format!("own{i}@crm.cn").as_bytes(),
        );
    }
    builder.build()
}

fn client(set: PreparedSet, store: MemoryIndexStore) -> IndexClient {
    let mut config = IndexClientConfig::new([3; 16], [42; 32], client_parties());
    config.purpose = "test".into();
    config.own_dataset = DatasetRef::new("crm", [7; 16]);
    config.batch_size = 100; // several batches in flight
    let mut rng = StdRng::seed_from_u64(1);
    IndexClient::new(
        config,
        set,
        Box::new(store),
        Box::new(KeySigner::from_seed(&[1; 32])),
        &mut rng,
    )
    .unwrap()
}

fn provider() -> IndexProvider {
    IndexProvider::new(
        ResponderConfig::new([42; 32], provider_parties()),
        Box::new(KeySigner::from_seed(&[2; 32])),
    )
}

struct Run {
    client: Result<Outcome, Error>,
    provider: Result<Outcome, Error>,
    /// The frames delivered, in order.
    delivered: Vec<(Dir, Vec<u8>)>,
}

impl Run {
    fn types(&self, dir: Dir) -> Vec<MessageType> {
        self.delivered
            .iter()
            .filter(|(d, _)| *d == dir)
            .map(|(_, f)| MessageType(f[0]))
            .collect()
    }
}

type Decide<'a> = Box<dyn FnMut(&mut IndexProvider, &IndexHello) + 'a>;
type Fault<'a> = Box<dyn FnMut(Dir, Vec<u8>) -> Vec<Vec<u8>> + 'a>;

/// Accepts with `provided`'s key and index.
fn accept(provided: &Provided) -> Decide<'_> {
    Box::new(move |provider, _| {
        provider
            .accept(
                oprf_key(provided.seed),
                provided.summary.clone(),
                Box::new(MemoryIndexSource::new(provided.bytes.clone())),
                &mut StdRng::seed_from_u64(2),
            )
            .unwrap();
    })
}

fn no_fault<'a>() -> Fault<'a> {
    Box::new(|_, frame| vec![frame])
}

fn drive(
    mut client: IndexClient,
    mut provider: IndexProvider,
    mut decide: Decide<'_>,
    mut fault: Fault<'_>,
) -> Run {
    let mut run = Run {
        client: Err(Error::ApiMisuse("no outcome")),
        provider: Err(Error::ApiMisuse("no outcome")),
        delivered: Vec::new(),
    };
    let (mut client_err, mut provider_err) = (None, None);
    let (mut client_out, mut provider_out) = (None, None);
    for _ in 0..100_000 {
        let mut progressed = false;
        while let Some(frame) = client.poll_transmit() {
            progressed = true;
            for frame in fault(Dir::ToProvider, frame) {
                run.delivered.push((Dir::ToProvider, frame.clone()));
                if let Err(err) = provider.handle_frame(&frame) {
                    provider_err.get_or_insert(err);
                }
            }
        }
        while let Some(event) = provider.poll_event() {
            progressed = true;
            match event {
                Event::IndexRequested(hello) => decide(&mut provider, &hello),
                Event::Completed(outcome) => provider_out = Some(*outcome),
                Event::Failed(err) => {
                    provider_err.get_or_insert(err);
                }
                _ => {}
            }
        }
        while let Some(frame) = provider.poll_transmit() {
            progressed = true;
            for frame in fault(Dir::ToClient, frame) {
                run.delivered.push((Dir::ToClient, frame.clone()));
                if let Err(err) = client.handle_frame(&frame) {
                    client_err.get_or_insert(err);
                }
            }
        }
        while let Some(event) = client.poll_event() {
            progressed = true;
            match event {
                Event::Completed(outcome) => client_out = Some(*outcome),
                Event::Failed(err) => {
                    client_err.get_or_insert(err);
                }
                _ => {}
            }
        }
        if !progressed {
            break;
        }
    }
    run.client = match (client_out, client_err) {
        (Some(outcome), None) => Ok(outcome),
        (_, Some(err)) => Err(err),
        (None, None) => Err(Error::ApiMisuse("client did not finish")),
    };
    run.provider = match (provider_out, provider_err) {
        (Some(outcome), None) => Ok(outcome),
        (_, Some(err)) => Err(err),
        (None, None) => Err(Error::ApiMisuse("provider did not finish")),
    };
    run
}

fn matched_records(outcome: &Outcome) -> BTreeSet<u32> {
    outcome
        .matches
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.record)
        .collect()
}

#[test]
fn a_match_via_the_index_equals_the_plain_intersection() {
    let provided = provided(1, 2);
    let run = drive(
        client(client_set(1500, 2600), MemoryIndexStore::new()),
        provider(),
        accept(&provided),
        no_fault(),
    );
    let ours = run.client.unwrap();
    let theirs = run.provider.unwrap();
    let expected: BTreeSet<u32> = (0..500).collect();
    assert_eq!(matched_records(&ours), expected);
    assert_eq!(ours.intersection_size, Some(500));
    assert_eq!(ours.matched_record_count, Some(500));
    assert_eq!(ours.own_set_size, 2 * 1100);
    assert_eq!(ours.peer_set_size, u64::from(PROVIDED));
    // The provider learns the number of identifiers queried and nothing else.
    assert_eq!(theirs.peer_set_size, 2 * 1100);
    assert_eq!(theirs.intersection_size, None);
    assert_eq!(theirs.matches, None);
    assert_eq!(ours.transcript_hash, theirs.transcript_hash);
    assert_eq!(ours.peer_receipt, theirs.own_receipt);
    assert_eq!(ours.own_receipt, theirs.peer_receipt);
    assert_eq!(ours.peer_receipt.intersection, None);
    let facts = ours.index.unwrap();
    assert_eq!(
        (facts.sent_from, facts.bytes),
        (0, provided.bytes.len() as u64)
    );
    assert_eq!(facts.epoch, EPOCH);
}

#[test]
fn a_current_copy_is_not_sent_again_and_a_partial_one_resumes() {
    let provided = provided(1, 2);
    let full = provided.bytes.len() as u64;
    for held in [full, full / 3, 1] {
        let store = MemoryIndexStore::holding(provided.bytes[..held as usize].to_vec());
        let run = drive(
            client(client_set(1990, 2010), store),
            provider(),
            accept(&provided),
            no_fault(),
        );
        let ours = run.client.unwrap();
        assert_eq!(matched_records(&ours).len(), 10);
        let facts = ours.index.unwrap();
        if held >= 14 {
            assert_eq!(
                (facts.sent_from, facts.bytes),
                (held, full - held),
                "held {held}"
            );
        } else {
            // Too short to name its epoch: fetched whole.
            assert_eq!((facts.sent_from, facts.bytes), (0, full));
        }
    }
}

#[test]
fn a_copy_of_another_epoch_is_replaced() {
    let old = provided_in([0x01; 16], 3, 2);
    let provided = provided(1, 2);
    let mut held = Vec::new();
    let run = drive(
        client(
            client_set(0, 10),
            MemoryIndexStore::holding(old.bytes.clone()),
        ),
        provider(),
        {
            let mut inner = accept(&provided);
            Box::new(move |p: &mut IndexProvider, h: &IndexHello| {
                held.push(h.held);
                assert_eq!(h.held.map(|held: HeldIndex| held.epoch), Some([0x01; 16]));
                inner(p, h);
            })
        },
        no_fault(),
    );
    let ours = run.client.unwrap();
    assert_eq!(matched_records(&ours).len(), 10);
    let facts = ours.index.unwrap();
    assert_eq!((facts.sent_from, facts.epoch), (0, EPOCH));
}

#[test]
fn an_index_only_fetch_queries_nothing() {
    let provided = provided(1, 2);
    let run = drive(
        client(PreparedSet::default(), MemoryIndexStore::new()),
        provider(),
        accept(&provided),
        no_fault(),
    );
    let ours = run.client.as_ref().unwrap();
    assert_eq!(ours.own_set_size, 0);
    assert_eq!(run.provider.as_ref().unwrap().peer_set_size, 0);
    assert!(!run.types(Dir::ToProvider).contains(&MessageType::EVALUATE));
}

#[test]
fn a_refusal_reaches_the_client() {
    let run = drive(
        client(client_set(0, 10), MemoryIndexStore::new()),
        provider(),
        Box::new(|p, _| {
            p.reject(RejectReason::BUDGET_EXHAUSTED, "over budget")
                .unwrap()
        }),
        no_fault(),
    );
    assert!(
        matches!(run.client, Err(Error::Refused { reason, .. }) if reason == RejectReason::BUDGET_EXHAUSTED)
    );
}

#[test]
fn tampered_evaluations_fail_the_proof_before_any_is_used() {
    let provided = provided(1, 2);
    let run = drive(
        client(client_set(1500, 2600), MemoryIndexStore::new()),
        provider(),
        accept(&provided),
        Box::new(|dir, frame| {
            if dir == Dir::ToClient && MessageType(frame[0]) == MessageType::EVALUATED {
                let Ok(Message::Evaluated(mut answer)) = Message::decode(&frame) else {
                    return vec![frame];
                };
                answer.points.swap(0, 1);
                return vec![Message::Evaluated(answer).to_frame()];
            }
            vec![frame]
        }),
    );
    assert_eq!(run.client.unwrap_err().close_code(), CloseCode::BAD_PROOF);
    assert!(matches!(
        run.provider,
        Err(Error::PeerAborted(CloseCode::BAD_PROOF))
    ));
}

#[test]
fn evaluations_under_another_key_than_the_index_fail_the_proof() {
    let provided = provided(1, 2);
    let other = oprf_key(9);
    let mut rng = StdRng::seed_from_u64(5);
    let mut asked: std::collections::VecDeque<Vec<[u8; 32]>> = Default::default();
    let run = drive(
        client(client_set(1500, 2600), MemoryIndexStore::new()),
        provider(),
        accept(&provided),
        Box::new(move |dir, frame| {
            match (dir, Message::decode(&frame)) {
                (Dir::ToProvider, Ok(Message::Evaluate(points))) => asked.push_back(points),
                // A provider answering under another key, with a valid proof for that key.
                (Dir::ToClient, Ok(Message::Evaluated(_))) => {
                    let points = asked.pop_front().unwrap();
                    let (points, proof) = other.evaluate_batch(&points, &mut rng).unwrap();
                    let forged = Message::Evaluated(Reblinded {
                        points,
                        proof: proof.unwrap().to_bytes(),
                    });
                    return vec![forged.to_frame()];
                }
                _ => {}
            }
            vec![frame]
        }),
    );
    assert_eq!(run.client.unwrap_err().close_code(), CloseCode::BAD_PROOF);
}

#[test]
fn an_index_of_another_epoch_than_announced_is_refused() {
    let provided = provided(1, 2);
    let mut lying = provided.summary.clone();
    lying.epoch = [0x77; 16];
    let run = drive(
        client(client_set(0, 10), MemoryIndexStore::new()),
        provider(),
        Box::new(|p, _| {
            p.accept(
                oprf_key(1),
                lying.clone(),
                Box::new(MemoryIndexSource::new(provided.bytes.clone())),
                &mut StdRng::seed_from_u64(2),
            )
            .unwrap();
        }),
        no_fault(),
    );
    assert_eq!(
        run.client.as_ref().unwrap_err().close_code(),
        CloseCode::BAD_INDEX
    );
    assert!(
        !run.types(Dir::ToProvider).contains(&MessageType::EVALUATE),
        "nothing queried"
    );
}

#[test]
fn an_index_not_signed_by_the_pinned_audit_key_is_refused_and_dropped() {
    let provided = provided(1, 3);
    let run = drive(
        client(client_set(0, 10), MemoryIndexStore::new()),
        provider(),
        accept(&provided),
        no_fault(),
    );
    assert_eq!(
        run.client.as_ref().unwrap_err().close_code(),
        CloseCode::BAD_INDEX
    );
    assert!(!run.types(Dir::ToProvider).contains(&MessageType::EVALUATE));
}

#[test]
fn a_client_sending_more_than_it_declared_is_cut_off() {
    let provided = provided(1, 2);
    let run = drive(
        client(client_set(0, 150), MemoryIndexStore::new()),
        provider(),
        accept(&provided),
        Box::new(|dir, frame| {
            if dir == Dir::ToProvider && MessageType(frame[0]) == MessageType::EVALUATE {
                return vec![frame.clone(), frame.clone(), frame];
            }
            vec![frame]
        }),
    );
    assert_eq!(
        run.provider.unwrap_err().close_code(),
        CloseCode::LIMIT_EXCEEDED
    );
    assert!(run.client.is_err());
}

#[test]
fn a_finish_before_every_declared_identifier_is_refused() {
    let provided = provided(1, 2);
    let mut batches = 0;
    let run = drive(
        client(client_set(0, 150), MemoryIndexStore::new()),
        provider(),
        accept(&provided),
        Box::new(move |dir, frame| {
            if dir == Dir::ToProvider && MessageType(frame[0]) == MessageType::EVALUATE {
                batches += 1;
                if batches == 3 {
                    // The last batch replaced by an early Finish.
                    let receipt = crate::wire::Receipt::unsigned(
                        [0; 32],
                        [3; 16],
                        [0; 32],
                        crate::transcript::Role::Initiator,
                        [CLIENT_FP, PROVIDER_FP],
                        [DatasetRef::default(), DatasetRef::default()],
                        crate::wire::OutputMode::Initiator,
                        (300, 2000),
                        None,
                    );
                    let finish = crate::wire::Finish::new([0; 32], None, receipt);
                    return vec![Message::Finish(Box::new(finish)).to_frame()];
                }
            }
            vec![frame]
        }),
    );
    assert!(matches!(
        run.provider,
        Err(Error::PeerMisbehaved(PeerMisbehaved::TooFewPoints {
            declared: 300,
            received: 200
        }))
    ));
}

#[test]
fn the_server_session_routes_by_the_first_frame() {
    use crate::index::ServerSession;
    let config = ResponderConfig::new([42; 32], provider_parties());
    let signer =
        || -> Box<dyn crate::session::ReceiptSigner> { Box::new(KeySigner::from_seed(&[2; 32])) };
    let mut server = ServerSession::new(config.clone(), signer(), signer());
    let hello = Message::IndexHello(Box::new(IndexHello::new([1; 16], 0))).to_frame();
    server.handle_frame(&hello).unwrap();
    assert!(server.provider().is_some() && server.responder().is_none());
    assert!(matches!(
        server.poll_event(),
        Some(Event::IndexRequested(_))
    ));
    assert!(server.awaits_decision());

    let mut server = ServerSession::new(config, signer(), signer());
    assert!(server.handle_frame(&[0xEE]).is_err());
    assert!(server.responder().is_some() && server.provider().is_none());
}
