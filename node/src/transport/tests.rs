//! Real quinn endpoints on 127.0.0.1 with real certificates.

use super::*;

use std::time::Instant;

const MAX_FRAME: usize = 64 << 20;

fn identity(name: &str) -> NodeIdentity {
    NodeIdentity::generate(name).unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn server(identity: &NodeIdentity, pinned: PinnedPeers) -> (quinn::Endpoint, SocketAddr) {
    let endpoint =
        server_endpoint(loopback(), identity, pinned, &TransportTuning::default()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    (endpoint, addr)
}

fn client(identity: &NodeIdentity) -> ClientEndpoint {
    client_endpoint(identity, &TransportTuning::default()).unwrap()
}

/// Accepts one connection on `server` and returns the handshake's outcome.
async fn accept_one(
    server: &quinn::Endpoint,
) -> Result<(quinn::Connection, Fingerprint), TransportError> {
    let incoming = server.accept().await.unwrap();
    accept(incoming).await
}

/// Connects, sends one frame and waits for one frame back: surfaces refusals that
/// arrive after the client's side of the handshake.
async fn round_trip(
    client: &ClientEndpoint,
    addr: SocketAddr,
    expected: Fingerprint,
) -> Result<Option<Vec<u8>>, TransportError> {
    let conn = connect(client, addr, "localhost", expected).await?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|err| classify_connection_error(err, None))?;
    let mut writer = FrameWriter(send);
    let mut reader = FrameReader(recv);
    writer.write_frame(b"hello").await?;
    reader.read_frame(MAX_FRAME).await
}

/// Serves one echo exchange: reads a frame, sends it back, finishes.
async fn echo_once(server: &quinn::Endpoint) -> Result<quinn::Connection, TransportError> {
    let (conn, _) = accept_one(server).await?;
    let (send, recv) = conn
        .accept_bi()
        .await
        .map_err(|err| classify_connection_error(err, None))?;
    let mut writer = FrameWriter(send);
    let mut reader = FrameReader(recv);
    if let Some(frame) = reader.read_frame(MAX_FRAME).await? {
        writer.write_frame(&frame).await?;
    }
    writer.finish().await?;
    Ok(conn)
}

#[tokio::test]
async fn pinned_peers_exchange_frames_both_ways() {
    let server_id = identity("server");
    let client_id = identity("client");
    let (endpoint, addr) = server(&server_id, PinnedPeers::new([client_id.fingerprint()]));
    let client_fp = client_id.fingerprint();
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    let big_for_server = big.clone();

    let server_task = tokio::spawn(async move {
        let (conn, fingerprint) = accept_one(&endpoint).await.unwrap();
        assert_eq!(fingerprint, client_fp);
        assert_eq!(peer_fingerprint(&conn).unwrap(), client_fp);
        let (send, recv) = conn.accept_bi().await.unwrap();
        let (mut writer, mut reader) = (FrameWriter(send), FrameReader(recv));
        assert_eq!(
            reader.read_frame(MAX_FRAME).await.unwrap().unwrap(),
            b"hello"
        );
        assert_eq!(reader.read_frame(MAX_FRAME).await.unwrap().unwrap(), b"");
        assert_eq!(
            reader.read_frame(MAX_FRAME).await.unwrap().unwrap(),
            big_for_server
        );
        assert_eq!(reader.read_frame(MAX_FRAME).await.unwrap(), None);
        writer.write_frame(b"welcome").await.unwrap();
        writer.write_frame(&big_for_server).await.unwrap();
        writer.finish().await.unwrap();
        let binding = channel_binding(&conn).unwrap();
        conn.closed().await;
        binding
    });

    let client_ep = client(&client_id);
    let conn = connect(&client_ep, addr, "server.example", server_id.fingerprint())
        .await
        .unwrap();
    assert_eq!(peer_fingerprint(&conn).unwrap(), server_id.fingerprint());
    let (send, recv) = conn.open_bi().await.unwrap();
    let (mut writer, mut reader) = (FrameWriter(send), FrameReader(recv));
    writer.write_frame(b"hello").await.unwrap();
    writer.write_frame(b"").await.unwrap();
    writer.write_frame(&big).await.unwrap();
    writer.finish().await.unwrap();
    assert_eq!(
        reader.read_frame(MAX_FRAME).await.unwrap().unwrap(),
        b"welcome"
    );
    assert_eq!(reader.read_frame(MAX_FRAME).await.unwrap().unwrap(), big);
    assert_eq!(reader.read_frame(MAX_FRAME).await.unwrap(), None);
    let client_binding = channel_binding(&conn).unwrap();
    close(&conn, CloseCode::OK, "done");

    let server_binding = server_task.await.unwrap();
    assert_eq!(client_binding, server_binding);
    assert_ne!(client_binding, [0u8; 32]);
}

#[tokio::test]
async fn channel_bindings_differ_between_connections() {
    let server_id = identity("server");
    let client_id = identity("client");
    let (endpoint, addr) = server(&server_id, PinnedPeers::new([client_id.fingerprint()]));
    let server_task = tokio::spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..2 {
            conns.push(accept_one(&endpoint).await.unwrap().0);
        }
        conns
    });
    let client_ep = client(&client_id);
    let a = connect(&client_ep, addr, "x", server_id.fingerprint())
        .await
        .unwrap();
    let b = connect(&client_ep, addr, "x", server_id.fingerprint())
        .await
        .unwrap();
    assert_ne!(channel_binding(&a).unwrap(), channel_binding(&b).unwrap());
    drop(server_task.await.unwrap());
}

#[tokio::test]
async fn server_refuses_an_unpinned_client_during_the_handshake() {
    let server_id = identity("server");
    let partner = identity("partner");
    let stranger = identity("stranger");
    let (endpoint, addr) = server(&server_id, PinnedPeers::new([partner.fingerprint()]));
    let server_task = tokio::spawn(async move { accept_one(&endpoint).await.map(|_| ()) });

    let client_err = round_trip(&client(&stranger), addr, server_id.fingerprint())
        .await
        .unwrap_err();
    assert!(
        matches!(client_err, TransportError::RefusedByPeer { .. }),
        "{client_err:?}"
    );
    assert!(
        client_err.to_string().contains("pin our fingerprint"),
        "{client_err}"
    );

    let server_err = server_task.await.unwrap().unwrap_err();
    assert!(
        matches!(server_err, TransportError::ClientNotPinned { .. }),
        "{server_err:?}"
    );
}

#[tokio::test]
async fn client_refuses_a_server_with_another_fingerprint() {
    let server_id = identity("server");
    let impostor_expected = identity("expected");
    let client_id = identity("client");
    let (endpoint, addr) = server(&server_id, PinnedPeers::new([client_id.fingerprint()]));
    let server_task = tokio::spawn(async move { accept_one(&endpoint).await.map(|_| ()) });

    let err = connect(
        &client(&client_id),
        addr,
        "localhost",
        impostor_expected.fingerprint(),
    )
    .await
    .unwrap_err();
    match &err {
        TransportError::UnexpectedServerFingerprint { expected, got, .. } => {
            assert_eq!(*expected, impostor_expected.fingerprint());
            assert_eq!(*got, server_id.fingerprint());
        }
        other => panic!("unexpected error {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&server_id.fingerprint().to_string()),
        "{message}"
    );
    assert!(
        message.contains(&impostor_expected.fingerprint().to_string()),
        "{message}"
    );
    assert!(server_task.await.unwrap().is_err());
}

#[tokio::test]
async fn adding_a_pin_at_runtime_lets_the_peer_in() {
    let server_id = identity("server");
    let newcomer = identity("newcomer");
    let pinned = PinnedPeers::default();
    let (endpoint, addr) = server(&server_id, pinned.clone());
    let endpoint = Arc::new(endpoint);
    let client_ep = client(&newcomer);

    let refused = tokio::spawn({
        let endpoint = Arc::clone(&endpoint);
        async move { accept_one(&endpoint).await.map(|_| ()) }
    });
    assert!(
        round_trip(&client_ep, addr, server_id.fingerprint())
            .await
            .is_err()
    );
    assert!(refused.await.unwrap().is_err());

    assert!(pinned.insert(newcomer.fingerprint()));
    let served = tokio::spawn({
        let endpoint = Arc::clone(&endpoint);
        async move { echo_once(&endpoint).await }
    });
    let echoed = round_trip(&client_ep, addr, server_id.fingerprint())
        .await
        .unwrap();
    assert_eq!(echoed.as_deref(), Some(&b"hello"[..]));
    served.await.unwrap().unwrap();

    // Removing it again locks it out of new connections.
    assert!(pinned.remove(&newcomer.fingerprint()));
    let refused = tokio::spawn({
        let endpoint = Arc::clone(&endpoint);
        async move { accept_one(&endpoint).await.map(|_| ()) }
    });
    assert!(
        round_trip(&client_ep, addr, server_id.fingerprint())
            .await
            .is_err()
    );
    assert!(refused.await.unwrap().is_err());
}

/// Opens a pinned connection and returns (client connection, server connection).
async fn pair() -> (
    quinn::Connection,
    quinn::Connection,
    ClientEndpoint,
    quinn::Endpoint,
) {
    let server_id = identity("server");
    let client_id = identity("client");
    let (endpoint, addr) = server(&server_id, PinnedPeers::new([client_id.fingerprint()]));
    let client_ep = client(&client_id);
    let (client_conn, server_side) = tokio::join!(
        connect(&client_ep, addr, "localhost", server_id.fingerprint()),
        accept_one(&endpoint)
    );
    (
        client_conn.unwrap(),
        server_side.unwrap().0,
        client_ep,
        endpoint,
    )
}

/// Sends `raw` bytes on a fresh stream and reads it as frames on the other side.
async fn read_raw(
    client_conn: &quinn::Connection,
    server_conn: &quinn::Connection,
    raw: &[u8],
    max_len: usize,
) -> Result<Option<Vec<u8>>, TransportError> {
    let (mut send, _recv) = client_conn.open_bi().await.unwrap();
    send.write_all(raw).await.unwrap();
    send.finish().unwrap();
    let (_send, recv) = server_conn.accept_bi().await.unwrap();
    FrameReader(recv).read_frame(max_len).await
}

#[tokio::test]
async fn read_frame_rejects_oversize_and_truncated_frames() {
    let (client_conn, server_conn, _client_ep, _server_ep) = pair().await;

    // Announces 4 GiB - 1 but sends nothing more: refused from the header alone.
    let err = read_raw(&client_conn, &server_conn, &[0xff; 4], 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::FrameTooLarge {
                len: 0xffff_ffff,
                max: 1024
            }
        ),
        "{err:?}"
    );
    let err = read_raw(&client_conn, &server_conn, &[0, 0, 4, 1], 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::FrameTooLarge { len: 1025, .. }),
        "{err:?}"
    );

    let err = read_raw(&client_conn, &server_conn, &[0, 0, 0, 10, 1, 2, 3], 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::TruncatedFrame {
                expected: 14,
                got: 7
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("7 of 14"), "{err}");

    let err = read_raw(&client_conn, &server_conn, &[0, 0], 1024)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            TransportError::TruncatedFrame {
                expected: 4,
                got: 2
            }
        ),
        "{err:?}"
    );

    // Exactly at the limit is fine; a clean end yields None.
    let frame = read_raw(&client_conn, &server_conn, &[0, 0, 0, 2, 7, 8], 2)
        .await
        .unwrap();
    assert_eq!(frame.as_deref(), Some(&[7u8, 8][..]));
    assert_eq!(
        read_raw(&client_conn, &server_conn, &[], 2).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn close_code_reaches_the_peer() {
    let (client_conn, server_conn, _client_ep, _server_ep) = pair().await;
    let (_send, recv) = client_conn.open_bi().await.unwrap();
    close(&server_conn, CloseCode::REFUSED, "policy says no");
    let err = FrameReader(recv).read_frame(16).await.unwrap_err();
    match &err {
        TransportError::PeerClosed { code, reason } => {
            assert_eq!(*code, CloseCode::REFUSED);
            assert_eq!(reason, "policy says no");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("refused (4)"), "{err}");
    let closed = client_conn.closed().await;
    assert_eq!(peer_close_code(&closed), Some(CloseCode::REFUSED));
}

#[tokio::test]
async fn a_peer_cannot_open_many_streams() {
    let (client_conn, server_conn, _client_ep, _server_ep) = pair().await;
    let mut streams = Vec::new();
    for _ in 0..SESSION_STREAMS {
        let (mut send, recv) = client_conn.open_bi().await.unwrap();
        send.write_all(b"x").await.unwrap();
        streams.push((send, recv));
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), client_conn.open_bi()).await;
    assert!(extra.is_err(), "a stream beyond the limit was opened");
    drop(server_conn);
}

/// Runs a one-byte exchange on the connection's first stream and closes it on both
/// sides; then tries to open another. Returns whether that succeeded within 500 ms.
async fn opens_a_stream_after_the_first_closes(refuse: bool) -> bool {
    let (client_conn, server_conn, _client_ep, _server_ep) = pair().await;
    let (mut send, mut recv) = client_conn.open_bi().await.unwrap();
    send.write_all(b"x").await.unwrap();
    send.finish().unwrap();
    let (mut server_send, mut server_recv) = server_conn.accept_bi().await.unwrap();
    if refuse {
        refuse_more_streams(&server_conn);
    }
    server_recv.read_to_end(16).await.unwrap();
    server_send.write_all(b"y").await.unwrap();
    server_send.finish().unwrap();
    recv.read_to_end(16).await.unwrap();
    drop((server_send, server_recv));
    let opened = tokio::time::timeout(Duration::from_millis(500), client_conn.open_bi()).await;
    drop(server_conn);
    opened.is_ok()
}

/// QUIC lets a peer open a new stream once the old one is closed; after
/// `refuse_more_streams` it cannot (checked against the same exchange without it).
#[tokio::test]
async fn no_stream_opens_after_the_session_stream_closes() {
    assert!(
        opens_a_stream_after_the_first_closes(false).await,
        "without refuse_more_streams a new stream opens (or this test checks nothing)"
    );
    assert!(
        !opens_a_stream_after_the_first_closes(true).await,
        "a stream opened after refuse_more_streams"
    );
}

/// Bytes `send` takes before flow control stops it (nothing is read on the other side),
/// counting up to `cap`.
async fn writable_until_blocked(send: &mut quinn::SendStream, cap: usize) -> usize {
    let chunk = vec![0x5a; 4096];
    let mut written = 0;
    while written < cap {
        match tokio::time::timeout(Duration::from_millis(300), send.write(&chunk)).await {
            Ok(Ok(n)) => written += n,
            _ => break,
        }
    }
    written
}

/// A client may send only `admission_window` on a server connection until the server
/// admits its session; then the full window.
#[tokio::test]
async fn a_server_grants_the_full_window_only_on_admission() {
    let (client_conn, server_conn, _client_ep, _server_ep) = pair().await;
    let tuning = TransportTuning::default();
    let (mut send, _recv) = client_conn.open_bi().await.unwrap();
    let before = writable_until_blocked(&mut send, 8 << 20).await;
    assert!(
        before <= tuning.admission_window as usize,
        "{before} bytes taken before admission"
    );
    assert!(
        before > FIRST_FRAME_LIMIT,
        "{before} bytes: no room for a Hello"
    );
    admit(&server_conn, &tuning);
    let after = writable_until_blocked(&mut send, 4 << 20).await;
    assert!(
        after >= 4 << 20,
        "only {after} more bytes taken after admission"
    );
    drop(server_conn);
}

#[tokio::test]
async fn a_client_lets_the_server_open_no_stream() {
    let (client_conn, server_conn, _client_ep, _server_ep) = pair().await;
    let opened = tokio::time::timeout(Duration::from_millis(300), server_conn.open_bi()).await;
    assert!(opened.is_err(), "the server opened a stream to the client");
    drop(client_conn);
}

#[test]
fn tuning_is_validated() {
    assert!(
        TransportTuning::default()
            .transport_config(Side::Server)
            .is_ok()
    );
    let bad = [
        TransportTuning {
            keep_alive: Duration::from_secs(30),
            ..TransportTuning::default()
        },
        TransportTuning::with_idle_timeout(Duration::ZERO),
        TransportTuning {
            receive_window: 1,
            ..TransportTuning::default()
        },
        TransportTuning {
            admission_window: 4096,
            ..TransportTuning::default()
        },
        TransportTuning {
            admission_window: 64 << 20,
            ..TransportTuning::default()
        },
    ];
    for tuning in bad {
        assert!(
            matches!(
                tuning.transport_config(Side::Client),
                Err(TransportError::InvalidTuning(_))
            ),
            "{tuning:?}"
        );
    }
    let short = TransportTuning::with_idle_timeout(Duration::from_secs(3));
    assert_eq!(short.keep_alive, Duration::from_secs(1));
    assert!(short.transport_config(Side::Client).is_ok());
    assert_eq!(
        TransportTuning::with_idle_timeout(Duration::from_secs(60)).keep_alive,
        Duration::from_secs(5)
    );
    let no_keep_alive = TransportTuning {
        keep_alive: Duration::ZERO,
        ..TransportTuning::default()
    };
    assert!(no_keep_alive.transport_config(Side::Server).is_ok());
}

#[test]
fn close_codes_map_to_varints() {
    assert_eq!(close_code_to_varint(CloseCode(9)).into_inner(), 9);
    assert_eq!(
        close_code_to_varint(CloseCode(u16::MAX)).into_inner(),
        u64::from(u16::MAX)
    );
}

/// 32 MiB each way in 1 MiB frames: checks the windows let a full-size session flow.
/// Run with `cargo test --release -p blindmatch-node -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "throughput measurement"]
async fn throughput_32_mib_each_way() {
    let (client_conn, server_conn, _client_ep, _server_ep) = pair().await;
    const FRAMES: usize = 32;
    let frame = vec![0x5a; 1 << 20];
    let server_frame = frame.clone();
    let start = Instant::now();
    admit(&server_conn, &TransportTuning::default());
    let server_task = tokio::spawn(async move {
        let (send, recv) = server_conn.accept_bi().await.unwrap();
        let (mut writer, mut reader) = (FrameWriter(send), FrameReader(recv));
        let reading = async {
            let mut n = 0;
            while reader.read_frame(MAX_FRAME).await.unwrap().is_some() {
                n += 1;
            }
            n
        };
        let writing = async {
            for _ in 0..FRAMES {
                writer.write_frame(&server_frame).await.unwrap();
            }
            writer.finish().await.unwrap();
        };
        let (n, ()) = tokio::join!(reading, writing);
        n
    });
    let (send, recv) = client_conn.open_bi().await.unwrap();
    let (mut writer, mut reader) = (FrameWriter(send), FrameReader(recv));
    let writing = async {
        for _ in 0..FRAMES {
            writer.write_frame(&frame).await.unwrap();
        }
        writer.finish().await.unwrap();
    };
    let reading = async {
        let mut n = 0;
        while reader.read_frame(MAX_FRAME).await.unwrap().is_some() {
            n += 1;
        }
        n
    };
    let ((), received) = tokio::join!(writing, reading);
    assert_eq!(received, FRAMES);
    assert_eq!(server_task.await.unwrap(), FRAMES);
    eprintln!("64 MiB exchanged in {:?}", start.elapsed());
}
