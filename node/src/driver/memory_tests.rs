//! The driver over in-memory streams: the same code paths as over QUIC (bounded
//! buffers, clean ends, stop signals), without a network, so backpressure, time-outs and
//! cancellation are tested quickly and exactly.

use std::time::Duration;

use blindmatch_protocol::ident::Normaliser;
use blindmatch_protocol::session::{
    Event, Initiator, InitiatorConfig, KeySigner, Parties, PreparedSet, PreparedSetBuilder,
    ReceiptSigner, Responder, ResponderConfig,
};
use blindmatch_protocol::wire::{DatasetRef, Message, OutputMode};
use tokio::sync::watch;

use super::memory::{MemorySink, MemorySource, duplex};
use super::*;

const BINDING: [u8; 32] = [42; 32];

fn set(range: std::ops::Range<u32>) -> PreparedSet {
    let normaliser = Normaliser::default();
    let mut builder = PreparedSetBuilder::new();
    for (record, i) in range.enumerate() {
        let email = normaliser
            .email(&format!("contact{i}@example.cn"))
            .expect("valid email");
        builder.add(record as u32, &email);
    }
    builder.build()
}

fn parties(own: u8, peer: u8) -> Parties {
    Parties {
        own_fingerprint: [own; 32],
        peer_fingerprint: [peer; 32],
        peer_audit_key: Some(KeySigner::from_seed(&[peer; 32]).public_key()),
    }
}

fn initiator(records: std::ops::Range<u32>) -> Initiator {
    let mut config = InitiatorConfig::new([5; 16], BINDING, parties(1, 2), OutputMode::Both);
    config.dataset = "kp".into();
    config.batch_size = 16; // many rounds, many frames
    Initiator::new(
        config,
        set(records),
        Box::new(KeySigner::from_seed(&[1; 32])),
        &mut rand::rng(),
    )
    .expect("initiator")
}

fn responder() -> Responder {
    Responder::new(
        ResponderConfig::new(BINDING, parties(2, 1)),
        Box::new(KeySigner::from_seed(&[2; 32])),
    )
}

fn options(idle: Duration) -> DriverOptions {
    DriverOptions::new(idle)
}

/// Runs the initiator's side: confirms on `Accept`.
async fn run_initiator(
    session: Initiator,
    source: MemorySource,
    sink: MemorySink,
    options: DriverOptions,
) -> RunReport {
    let mut driver = Driver::start(session, source, sink, options);
    if let Step::Decide(Event::Accepted(_)) = driver.step().await
        && let Some(Err(err)) = driver.session().map(Initiator::confirm)
    {
        return driver.abort(err.close_code(), err.into()).await;
    }
    driver.finish().await
}

/// Runs the responder's side: accepts `set` on `Hello`.
async fn run_responder(
    set: PreparedSet,
    source: MemorySource,
    sink: MemorySink,
    options: DriverOptions,
) -> RunReport {
    let mut driver = Driver::start(responder(), source, sink, options);
    if let Step::Decide(Event::HelloReceived(_)) = driver.step().await
        && let Some(responder) = driver.session()
    {
        responder
            .accept(set, DatasetRef::new("kp", [9; 16]), &mut rand::rng())
            .expect("a Hello is pending");
    }
    driver.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_completes_through_one_frame_buffers() {
    // One frame of buffering each way: every write waits for the reader (backpressure).
    let ((a_source, a_sink), (b_source, b_sink)) = duplex(1);
    let idle = Duration::from_secs(30);
    let (a, b) = tokio::join!(
        run_initiator(initiator(0..300), a_source, a_sink, options(idle)),
        run_responder(set(200..500), b_source, b_sink, options(idle)),
    );
    let a = a.result.expect("initiator completes");
    let b = b.result.expect("responder completes");
    assert_eq!(a.matched_record_count, Some(100));
    assert_eq!(b.matched_record_count, Some(100));
    assert_eq!(a.transcript_hash, b.transcript_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_times_out_with_the_timeout_code() {
    let ((_peer_source, _peer_sink), (source, sink)) = duplex(8);
    let report = run_responder(
        set(0..10),
        source,
        sink,
        options(Duration::from_millis(200)),
    )
    .await;
    let err = report.result.expect_err("nothing arrives");
    assert!(matches!(err, DriverError::Timeout(_)), "{err:?}");
    assert_eq!(err.close_code(), CloseCode::TIMEOUT);
    assert!(report.duration < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_sends_abort_cancelled_to_the_peer() {
    let ((source, sink), (mut peer_source, _peer_sink)) = duplex(8);
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let mut options = options(Duration::from_secs(30));
    options.cancel = Some(cancel_rx);
    let running = tokio::spawn(run_initiator(initiator(0..10), source, sink, options));
    // The peer sees the Hello, then we cancel instead of answering.
    let hello = peer_source
        .read_frame(1 << 20)
        .await
        .expect("read")
        .expect("a frame");
    assert!(matches!(Message::decode(&hello), Ok(Message::Hello(_))));
    cancel_tx.send(true).expect("cancel");
    // The peer reads on: the Abort, then the end of the stream, which is what lets our
    // writer finish at once (it waits until the peer has what was sent).
    let abort = peer_source
        .read_frame(1 << 20)
        .await
        .expect("read")
        .expect("a frame");
    match Message::decode(&abort) {
        Ok(Message::Abort(code)) => assert_eq!(code, CloseCode::CANCELLED),
        other => panic!("expected Abort(cancelled), got {other:?}"),
    }
    assert!(
        peer_source
            .read_frame(1 << 20)
            .await
            .expect("read")
            .is_none()
    );
    let report = running.await.expect("driver task");
    assert!(
        matches!(report.result, Err(DriverError::Cancelled)),
        "{:?}",
        report.result
    );
    assert!(report.duration < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_peer_gone() {
    let ((source, sink), (peer_source, _peer_sink)) = duplex(1);
    drop(peer_source); // the peer stops reading: its stream sends STOP
    let report = run_initiator(
        initiator(0..10),
        source,
        sink,
        options(Duration::from_secs(30)),
    )
    .await;
    let err = report.result.expect_err("nobody reads");
    assert!(
        matches!(err, DriverError::PeerGone(_) | DriverError::PeerClosedEarly),
        "{err:?}"
    );
    assert!(report.duration < Duration::from_secs(5));
}
