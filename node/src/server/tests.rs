//! `serve` over real QUIC on loopback, driven by a hand-rolled peer: what the audit log
//! shows for connections that never send a valid `Hello`, for a peer that goes away
//! mid-session, and when the audit log cannot be written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use blindmatch_protocol::audit::{VerifyOptions, read_records, verify_log_bytes};
use blindmatch_protocol::ident::{IdentKind, KindSet};
use blindmatch_protocol::wire::{MAX_FRAME_LEN, Message, OutputMode};
use serde_json::{Map, Value};

use super::*;
use crate::admin;
use crate::audit::LOG_FILE;
use crate::config::{NodeConfig, PeerConfig};
use crate::dataset::ImportOptions;
use crate::identity::Fingerprint;
use crate::identity::NodeIdentity;
use crate::transport::{ClientEndpoint, PinnedPeers, TransportTuning};
use blindmatch_protocol::wire::{Hello, RejectReason};

/// The provider's idle timeout: short, so silent peers are cut off quickly.
const IDLE: Duration = Duration::from_secs(2);
/// Longest a test waits for the server to record something.
const PATIENCE: Duration = Duration::from_secs(15);
/// Bytes a hostile peer sends that must never reach the audit log.
const CANARY: &[u8] = b"CANARY-7f3e-never-in-the-log";

/// A provider node serving on loopback, and a pinned `crm` peer that connects to it.
struct Fixture {
    root: tempfile::TempDir,
    provider: PathBuf,
    crm_fp: Fingerprint,
    provider_fp: Fingerprint,
    audit_key: ed25519_dalek::VerifyingKey,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    client: ClientEndpoint,
}

impl Fixture {
    async fn start() -> Fixture {
        let root = tempfile::tempdir().unwrap();
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let provider = root.path().join("provider");
        let crm = root.path().join("crm");
        let provider_id = admin::init_node(&provider, "provider", loopback).unwrap();
        let crm_id = admin::init_node(&crm, "crm", loopback).unwrap();
        let csv = root.path().join("kp.csv");
        std::fs::write(
            &csv,
            "id,email\nk1,ann@example.com\nk2,bob@example.com\nk3,cy@example.com\n",
        )
        .unwrap();
        let mut import = ImportOptions::new(&csv, "kp");
        import.id_col = Some("id".into());
        import.email_cols = vec!["email".into()];
        import.quiet = true;
        admin::import_dataset(&provider, &import).unwrap();
        let crm_fp: Fingerprint = crm_id.fingerprint.parse().unwrap();
        admin::add_peer(
            &provider,
            PeerConfig::new("crm", "127.0.0.1:7447".parse().unwrap(), crm_fp).offering(["kp"]),
        )
        .unwrap();
        let mut config = NodeConfig::load(&provider).unwrap();
        config.limits.idle_timeout = IDLE;
        config.save(&provider).unwrap();

        let node = Node::open(&provider).unwrap();
        let audit_key = node.identity().audit_key().verifying_key();
        let endpoint = transport::server_endpoint(
            loopback,
            node.identity(),
            PinnedPeers::new(node.config().pinned_fingerprints()),
            &TransportTuning::with_idle_timeout(IDLE),
        )
        .unwrap();
        let addr = endpoint.local_addr().unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let server = tokio::spawn(run(node, endpoint, stop_rx));
        let client = transport::client_endpoint(
            &NodeIdentity::load(&crm).unwrap(),
            &TransportTuning::with_idle_timeout(IDLE),
        )
        .unwrap();
        Fixture {
            root,
            provider,
            crm_fp,
            provider_fp: provider_id.fingerprint.parse().unwrap(),
            audit_key,
            addr,
            stop,
            server,
            client,
        }
    }

    async fn connect(&self) -> quinn::Connection {
        transport::connect(&self.client, self.addr, "localhost", self.provider_fp)
            .await
            .unwrap()
    }

    /// Stops the server (which records pending coalesced counts) and waits for it;
    /// returns the data directories (deleted when the first is dropped) and the
    /// provider's.
    async fn stop(self) -> (tempfile::TempDir, PathBuf) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(PATIENCE + SHUTDOWN_GRACE, self.server)
            .await
            .unwrap()
            .unwrap();
        (self.root, self.provider)
    }

    fn log_bytes(&self) -> Vec<u8> {
        std::fs::read(self.provider.join(LOG_FILE)).unwrap()
    }

    /// Fields of the provider's records of type `kind`.
    fn records(&self, kind: &str) -> Vec<Map<String, Value>> {
        records_in(&self.provider, kind)
    }

    /// Waits until at least `n` records of type `kind` are in the provider's log.
    async fn wait_for(&self, kind: &str, n: usize) -> Vec<Map<String, Value>> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self.records(kind);
            if found.len() >= n {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} {kind} records, found {found:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn assert_log_verifies(&self) {
        let options = VerifyOptions {
            key: Some(self.audit_key),
            ..VerifyOptions::default()
        };
        let report = verify_log_bytes(&self.log_bytes(), &options).unwrap();
        assert_eq!(report.unknown_types, 0);
    }
}

fn records_in(data_dir: &Path, kind: &str) -> Vec<Map<String, Value>> {
    let bytes = std::fs::read(data_dir.join(LOG_FILE)).unwrap();
    read_records(&bytes)
        .0
        .into_iter()
        .filter(|r| r.record_type == kind)
        .map(|r| r.fields)
        .collect()
}

/// A valid `Hello` for the provider's `kp` dataset, with a fresh session id.
fn hello_frame(set_size: u64) -> Vec<u8> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut session_id = [0x5e; 16];
    session_id[8..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    hello_with_id(session_id, set_size)
}

fn hello_with_id(session_id: [u8; 16], set_size: u64) -> Vec<u8> {
    // Any valid point other than the generator will do as a key commitment here.
    let commitment = blindmatch_protocol::group::hash_to_group(b"test key", b"test")
        .compress()
        .to_bytes();
    let mut hello = Hello::new(session_id, OutputMode::Cardinality, set_size, commitment);
    hello.dataset = "kp".into();
    hello.purpose = "coverage check".into();
    hello.kinds = KindSet::empty().with(IdentKind::Email);
    Message::Hello(hello).to_frame()
}

async fn open(conn: &quinn::Connection) -> (quinn::SendStream, FrameReader) {
    let (send, recv) = conn.open_bi().await.unwrap();
    (send, FrameReader(recv))
}

async fn read_message(reader: &mut FrameReader) -> Option<Message> {
    let frame = tokio::time::timeout(PATIENCE, reader.read_frame(MAX_FRAME_LEN))
        .await
        .unwrap()
        .unwrap()?;
    Some(Message::decode(&frame).unwrap())
}

/// Waits until the server ends the connection (it does once it is done with it).
async fn until_closed(conn: quinn::Connection) {
    tokio::time::timeout(PATIENCE, conn.closed()).await.unwrap();
}

fn field<'a>(record: &'a Map<String, Value>, name: &str) -> &'a Value {
    record.get(name).unwrap_or(&Value::Null)
}

/// One peer that never sends a valid `Hello`, in the ways a connection can end.
#[derive(Clone, Copy, Debug)]
enum BadStart {
    /// An HTTP request: its first four bytes read as a 1.2 GB length prefix.
    Garbage,
    /// A well-framed message of an unknown type, with the canary as its body.
    UnknownMessage,
    /// Ends the stream without a frame.
    FinAtOnce,
    /// Opens no stream at all.
    NoStream,
    /// Sends half a length prefix, then nothing.
    Trickle,
}

async fn bad_start(fx: &Fixture, how: BadStart) {
    let conn = fx.connect().await;
    match how {
        BadStart::NoStream => {}
        BadStart::Garbage => {
            let (mut send, _recv) = open(&conn).await;
            let mut request = b"GET / HTTP/1.1\r\nX-Canary: ".to_vec();
            request.extend_from_slice(CANARY);
            send.write_all(&request).await.unwrap();
            until_closed(conn).await;
            return;
        }
        BadStart::UnknownMessage => {
            let (send, _recv) = open(&conn).await;
            let mut frame = vec![0x47];
            frame.extend_from_slice(CANARY);
            FrameWriter(send).write_frame(&frame).await.unwrap();
            until_closed(conn).await;
            return;
        }
        BadStart::FinAtOnce => {
            let (mut send, _recv) = open(&conn).await;
            send.finish().unwrap();
            until_closed(conn).await;
            return;
        }
        BadStart::Trickle => {
            let (mut send, _recv) = open(&conn).await;
            send.write_all(&[0, 0]).await.unwrap();
            until_closed(conn).await;
            return;
        }
    }
    until_closed(conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_valid_hello_are_audited_with_peer_and_reason() {
    let fx = Fixture::start().await;
    let cases = [
        BadStart::Garbage,
        BadStart::UnknownMessage,
        BadStart::FinAtOnce,
        BadStart::NoStream,
        BadStart::Trickle,
    ];
    let fx = bad_starts(fx, &cases).await;
    let records = fx.wait_for("connection_aborted", cases.len()).await;

    let mut seen: Vec<(String, u64)> = records
        .iter()
        .map(|r| {
            assert_eq!(field(r, "peer_fingerprint"), &fx.crm_fp.to_string());
            assert_eq!(field(r, "peer_name"), "crm");
            assert_eq!(field(r, "attempts"), 1);
            (
                field(r, "reason").as_str().unwrap().to_owned(),
                field(r, "close_code").as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    let mut expected = vec![
        (NoHello::UnreadableFrame, CloseCode::INVALID_MESSAGE),
        (NoHello::Undecodable, CloseCode::INVALID_MESSAGE),
        (NoHello::ClosedBeforeHello, CloseCode::OK),
        (NoHello::NoStream, CloseCode::TIMEOUT),
        (NoHello::Timeout, CloseCode::TIMEOUT),
    ]
    .into_iter()
    .map(|(why, code)| (why.reason().to_owned(), u64::from(code.0)))
    .collect::<Vec<_>>();
    expected.sort();
    assert_eq!(seen, expected);

    // No session was invented, and nothing the peer sent was written.
    assert!(fx.records("session_requested").is_empty());
    let log = fx.log_bytes();
    assert!(!log.windows(CANARY.len()).any(|w| w == CANARY));
    assert!(!log.windows(5).any(|w| w == b"GET /"));
    fx.assert_log_verifies();
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_first_frames_is_coalesced_into_counted_records() {
    const FLOOD: u64 = 24;
    let fx = Fixture::start().await;
    let fx = bad_starts(fx, &[BadStart::Garbage; FLOOD as usize]).await;
    // Every connection has ended: one record, for the first.
    let records = fx.records("connection_aborted");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(field(&records[0], "attempts"), 1);
    assert_eq!(
        field(&records[0], "reason"),
        NoHello::UnreadableFrame.reason()
    );
    // Another reason from the same peer is recorded on its own.
    bad_start(&fx, BadStart::FinAtOnce).await;
    assert_eq!(fx.records("connection_aborted").len(), 2);

    // At shutdown the rest is recorded as one counted record: nothing is lost.
    let (_root, provider) = fx.stop().await;
    let records = records_in(&provider, "connection_aborted");
    assert_eq!(records.len(), 3, "{records:?}");
    let garbage: u64 = records
        .iter()
        .filter(|r| field(r, "reason") == NoHello::UnreadableFrame.reason())
        .map(|r| field(r, "attempts").as_u64().unwrap())
        .sum();
    assert_eq!(garbage, FLOOD);
    assert_eq!(field(&records[2], "attempts"), FLOOD - 1);
}

/// Starts a session as `crm` and reads the provider's `Accept`.
async fn accepted_session(fx: &Fixture) -> (quinn::Connection, quinn::SendStream, FrameReader) {
    let conn = fx.connect().await;
    let (mut send, mut reader) = open(&conn).await;
    let frame = hello_frame(2);
    let mut prefixed = (frame.len() as u32).to_be_bytes().to_vec();
    prefixed.extend_from_slice(&frame);
    send.write_all(&prefixed).await.unwrap();
    match read_message(&mut reader).await {
        Some(Message::Accept(_)) => {}
        other => panic!("expected Accept, got {:?}", other.map(|m| m.message_type())),
    }
    (conn, send, reader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_goes_away_mid_session_is_recorded_as_peer_gone() {
    let fx = Fixture::start().await;

    // It resets its stream.
    let (conn, mut send, _reader) = accepted_session(&fx).await;
    send.reset(quinn::VarInt::from_u32(0)).unwrap();
    let aborted = fx.wait_for("session_aborted", 1).await;
    drop(conn);
    assert_eq!(
        field(&aborted[0], "close_code"),
        u64::from(CloseCode::PEER_GONE.0)
    );
    let error = field(&aborted[0], "error").as_str().unwrap();
    assert!(
        error.starts_with("the peer closed the connection mid-session"),
        "{error}"
    );

    // It closes the connection.
    let (conn, _send, _reader) = accepted_session(&fx).await;
    conn.close(
        transport::close_code_to_varint(CloseCode::CANCELLED),
        b"operator stopped it",
    );
    let aborted = fx.wait_for("session_aborted", 2).await;
    assert_eq!(
        field(&aborted[1], "close_code"),
        u64::from(CloseCode::PEER_GONE.0)
    );
    let error = field(&aborted[1], "error").as_str().unwrap();
    assert!(
        error.starts_with("the peer closed the connection mid-session")
            && error.contains("cancelled (7)"),
        "{error}"
    );

    // It stops reading the session stream (STOP_SENDING) but keeps the connection:
    // noticed at once, even with nothing left to write, not at the idle timeout.
    let (conn, _send, mut reader) = accepted_session(&fx).await;
    reader.0.stop(quinn::VarInt::from_u32(5)).unwrap();
    let stopped_at = Instant::now();
    let aborted = fx.wait_for("session_aborted", 3).await;
    assert!(stopped_at.elapsed() < IDLE, "{:?}", stopped_at.elapsed());
    drop(conn);
    assert_eq!(
        field(&aborted[2], "close_code"),
        u64::from(CloseCode::PEER_GONE.0)
    );
    let error = field(&aborted[2], "error").as_str().unwrap();
    assert!(
        error.contains("stopped reading the session stream (code 5)"),
        "{error}"
    );
    fx.assert_log_verifies();
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_audit_log_refuses_the_session_before_anything_is_blinded() {
    let fx = Fixture::start().await;
    // A torn last line, as a crash during a write leaves: the log refuses every append
    // until `audit repair`.
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(fx.provider.join(LOG_FILE))
        .unwrap();
    std::io::Write::write_all(&mut log, b"{\"seq\":99,\"ts\":").unwrap();
    drop(log);
    let records_before = read_records(&fx.log_bytes()).0.len();

    let hello = hello_with_id([0xab; 16], 2);
    let conn = fx.connect().await;
    let (send, mut reader) = open(&conn).await;
    FrameWriter(send).write_frame(&hello).await.unwrap();
    match read_message(&mut reader).await {
        Some(Message::Reject(reject)) => {
            assert_eq!(reject.reason, RejectReason::INTERNAL);
            assert!(reject.text.contains("audit log"), "{}", reject.text);
        }
        other => panic!("expected Reject, got {:?}", other.map(|m| m.message_type())),
    }
    // Nothing follows the Reject: no Accept, no blinded point.
    assert!(read_message(&mut reader).await.is_none());
    until_closed(conn).await;
    assert_eq!(read_records(&fx.log_bytes()).0.len(), records_before);
    assert!(!fx.provider.join(crate::node::RESULTS_DIR).exists());

    // Refused before policy: once the log is repaired, the same session id is not a
    // replay, and the session is served and recorded.
    let identity = NodeIdentity::load(&fx.provider).unwrap();
    crate::audit::repair(&fx.provider, identity.audit_key()).unwrap();
    let conn = fx.connect().await;
    let (send, mut reader) = open(&conn).await;
    FrameWriter(send).write_frame(&hello).await.unwrap();
    match read_message(&mut reader).await {
        Some(Message::Accept(_)) => {}
        other => panic!(
            "expected Accept after the repair, got {:?}",
            other.map(|m| m.message_type())
        ),
    }
    drop(conn);
    let requested = fx.wait_for("session_requested", 1).await;
    assert_eq!(field(&requested[0], "session_id"), &hex::encode([0xab; 16]));
    fx.stop().await;
}

/// Runs one [`bad_start`] per entry of `how` at once, and waits for all of them.
async fn bad_starts(fx: Fixture, how: &[BadStart]) -> Fixture {
    let fx = Arc::new(fx);
    let mut peers = tokio::task::JoinSet::new();
    for &how in how {
        let fx = Arc::clone(&fx);
        peers.spawn(async move { bad_start(&fx, how).await });
    }
    while let Some(done) = peers.join_next().await {
        done.unwrap();
    }
    match Arc::try_unwrap(fx) {
        Ok(fx) => fx,
        Err(_) => panic!("a peer task still holds the fixture"),
    }
}
