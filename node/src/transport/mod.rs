//! QUIC endpoints with mutual TLS pinned by certificate fingerprint, and framed streams.
//!
//! Both sides present their self-signed certificate and accept exactly the pinned
//! fingerprints ([`verifier`]); an unknown peer is refused inside the TLS handshake,
//! before any protocol message. TLS 1.3 only, ALPN `blindmatch/1`, ring provider
//! passed explicitly (no process-wide default is installed or relied on). Session
//! resumption is disabled so that every connection re-checks the pinned set.
//!
//! A session runs over one bidirectional stream of length-prefixed frames
//! ([`FrameWriter`], [`FrameReader`]). [`channel_binding`] gives both sides the same
//! 32 bytes tied to this TLS session, for the protocol transcript.
//!
//! All endpoint constructors must be called inside a tokio runtime.

mod framing;
mod verifier;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::wire::MAX_HELLO_LEN;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::NoServerSessionStorage;
use rustls::sign::SingleCertAndKey;

use crate::identity::{Fingerprint, NodeIdentity};

pub use framing::{FrameReader, FrameWriter};
pub use verifier::PinnedPeers;
use verifier::{PinnedClientVerifier, PinnedServerVerifier};

/// The ALPN protocol name; a peer that does not offer it is refused.
pub const ALPN: &[u8] = b"blindmatch/1";
/// TLS exporter label for [`channel_binding`].
pub const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-blindmatch-channel-binding-v1";
/// Server name sent when the caller's hint is not a valid DNS name or IP address.
/// Certificates are pinned, so the name is never checked.
const FALLBACK_SERVER_NAME: &str = "blindmatch.invalid";

/// TLS alerts a peer sends when it refuses our certificate.
const REFUSAL_ALERTS: [u8; 5] = [
    42,  // bad_certificate
    46,  // certificate_unknown
    48,  // unknown_ca
    49,  // access_denied
    116, // certificate_required
];
const ALERT_ACCESS_DENIED: u8 = 49;
const ALERT_NO_APPLICATION_PROTOCOL: u8 = 120;

/// Everything that can go wrong on the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The TLS configuration could not be built (a bug, or an unusable identity).
    #[error("building the TLS configuration failed: {0}; check the identity with `blindmatch id`")]
    Tls(#[from] rustls::Error),
    /// The QUIC configuration could not be built.
    #[error("building the QUIC configuration failed: {0}")]
    QuicConfig(String),
    /// A [`TransportTuning`] value is out of range.
    #[error("invalid transport tuning: {0}")]
    InvalidTuning(&'static str),
    /// The UDP socket could not be bound.
    #[error(
        "could not bind UDP {addr}: {source}; is another process using it? Change `listen` in node.toml"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The connection attempt could not start.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The peer's address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: quinn::ConnectError,
    },
    /// The server presented a certificate other than the pinned one.
    #[error(
        "the node at {addr} presented certificate {got}, but {expected} is pinned for it; \
         if the peer re-created its identity, confirm the new fingerprint with its operator \
         and update the peer in node.toml"
    )]
    UnexpectedServerFingerprint {
        /// The peer's address.
        addr: SocketAddr,
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The fingerprint presented.
        got: Fingerprint,
    },
    /// The peer refused our certificate during the handshake.
    #[error(
        "the peer{} refused our certificate; ask its operator to pin our fingerprint \
         (shown by `blindmatch id`) with `blindmatch peer add`",
        at(.addr)
    )]
    RefusedByPeer {
        /// The peer's address, when known.
        addr: Option<SocketAddr>,
    },
    /// (Server) a client presented a certificate that is not pinned.
    #[error(
        "refused a connection from {addr}: its certificate is not pinned (its fingerprint is in \
         the log); add it with `blindmatch peer add` if it is a partner"
    )]
    ClientNotPinned {
        /// The client's address.
        addr: SocketAddr,
    },
    /// The peer does not speak our application protocol.
    #[error("the peer{} does not speak {}; is it a blindmatch node of a compatible version?", at(.addr), String::from_utf8_lossy(ALPN))]
    IncompatiblePeer {
        /// The peer's address, when known.
        addr: Option<SocketAddr>,
    },
    /// The peer did not complete the handshake within the connect timeout.
    #[error(
        "no answer from {addr} within {}: check that the peer's node is running (`blindmatch \
         serve` there), that {addr} is its address (`blindmatch peer list`), and that no \
         firewall blocks UDP port {}; --connect-timeout waits longer",
        humantime::format_duration(*.after),
        .addr.port()
    )]
    ConnectTimedOut {
        /// The peer's address.
        addr: SocketAddr,
        /// How long we waited.
        after: Duration,
    },
    /// Nothing was heard from the peer within the idle timeout.
    #[error(
        "no response from the peer{} within the idle timeout; check that it is running and that \
         its UDP port is reachable",
        at(.addr)
    )]
    TimedOut {
        /// The peer's address, when known.
        addr: Option<SocketAddr>,
    },
    /// The peer closed the connection with an application close code.
    #[error("the peer closed the connection: {code}{}", reason_suffix(.reason))]
    PeerClosed {
        /// The peer's close code.
        code: CloseCode,
        /// The peer's reason text (untrusted, shown escaped).
        reason: String,
    },
    /// Any other connection failure.
    #[error("connection{} failed: {source}", at(.addr))]
    Connection {
        /// The peer's address, when known.
        addr: Option<SocketAddr>,
        /// The QUIC error.
        #[source]
        source: quinn::ConnectionError,
    },
    /// The connection carries no peer certificate (the handshake is not complete).
    #[error("the connection has no peer certificate")]
    NoPeerCertificate,
    /// The TLS exporter failed (the handshake is not complete).
    #[error("could not derive the channel binding from the TLS session")]
    Exporter,
    /// The peer announced a frame above our limit.
    #[error("the peer announced a frame of {len} bytes, above the limit of {max}")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Our limit.
        max: usize,
    },
    /// We were asked to send a frame longer than a `u32` length can describe.
    #[error("a frame of {len} bytes is too large to send (limit 4 GiB)")]
    FrameTooLargeToSend {
        /// The frame's length.
        len: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("the stream ended in the middle of a frame ({got} of {expected} bytes)")]
    TruncatedFrame {
        /// Bytes the frame (with its length prefix) needed.
        expected: usize,
        /// Bytes received.
        got: usize,
    },
    /// The peer reset its sending side of the stream.
    #[error("the peer abandoned the stream (reset code {code})")]
    StreamReset {
        /// The peer's code.
        code: u64,
    },
    /// The peer stopped reading the stream.
    #[error("the peer stopped reading the stream (code {code})")]
    StreamStopped {
        /// The peer's code.
        code: u64,
    },
    /// The stream was already finished or reset by us (a bug in the caller).
    #[error("the stream is already closed")]
    StreamClosed,
}

/// Bidirectional streams a client may have open on a server connection at once: the
/// session's. A server never opens one, so a client allows none.
pub const SESSION_STREAMS: u32 = 1;

/// QUIC settings shared by both endpoints.
///
/// Defaults are sized so that a 1M-element session (about 32 MiB each way) is bound by
/// computation, not flow control: a 16 MiB stream window keeps 1 Gbit/s flowing at up
/// to ~130 ms RTT, and the 32 MiB connection windows leave room for the one session
/// stream plus control traffic.
///
/// The cost is memory, so a server grants the full window only to sessions it admits:
/// a new connection may send `admission_window` bytes (enough for a `Hello`), raised to
/// `receive_window` by [`admit`] once the session holds one of the server's
/// `max_concurrent_sessions` slots. What peers can make a server buffer is thus
/// `max_concurrent_sessions × receive_window` plus `admission_window` per connection
/// still waiting for a decision, however many connections they open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportTuning {
    /// Close a connection after this long without traffic (default 30 s).
    pub idle_timeout: Duration,
    /// Give up a client's handshake after this long (default 10 s): a node that is down
    /// never answers, and a loopback or intercontinental handshake takes well under a
    /// second.
    pub connect_timeout: Duration,
    /// Send a keep-alive after this long without traffic, so that a slow computation
    /// on one side does not trip the other's idle timeout (default 5 s; zero disables).
    pub keep_alive: Duration,
    /// Bytes a peer may send on one stream ahead of our reading (default 16 MiB).
    pub stream_receive_window: u32,
    /// Bytes a peer may send on all streams ahead of our reading (default 32 MiB); on
    /// a server, once the session is admitted.
    pub receive_window: u32,
    /// Bytes a client may send on a server connection ahead of the server's reading
    /// before its session is admitted (default 64 KiB).
    pub admission_window: u32,
    /// Bytes we buffer for sending across all streams (default 32 MiB).
    pub send_window: u64,
}

impl Default for TransportTuning {
    fn default() -> Self {
        const KIB: u32 = 1 << 10;
        const MIB: u32 = 1 << 20;
        Self {
            idle_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(5),
            stream_receive_window: 16 * MIB,
            receive_window: 32 * MIB,
            admission_window: 64 * KIB,
            send_window: 32 * u64::from(MIB),
        }
    }
}

/// Which end of a connection a transport configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

impl TransportTuning {
    /// The defaults with another idle timeout (from `[limits] idle_timeout_secs`); the
    /// keep-alive is shortened to a third of it when needed, so that two lost
    /// keep-alives in a row still do not close the connection.
    pub fn with_idle_timeout(idle_timeout: Duration) -> Self {
        let defaults = Self::default();
        Self {
            idle_timeout,
            keep_alive: defaults.keep_alive.min(idle_timeout / 3),
            ..defaults
        }
    }

    fn transport_config(&self, side: Side) -> Result<Arc<quinn::TransportConfig>, TransportError> {
        if self.idle_timeout.is_zero() {
            return Err(TransportError::InvalidTuning(
                "idle_timeout must be positive",
            ));
        }
        if self.keep_alive >= self.idle_timeout {
            return Err(TransportError::InvalidTuning(
                "keep_alive must be shorter than idle_timeout",
            ));
        }
        if self.stream_receive_window == 0 || self.receive_window < self.stream_receive_window {
            return Err(TransportError::InvalidTuning(
                "receive_window must be at least stream_receive_window, which must be positive",
            ));
        }
        if self.admission_window < MIN_ADMISSION_WINDOW
            || self.admission_window > self.receive_window
        {
            return Err(TransportError::InvalidTuning(
                "admission_window must hold a first frame (16 KiB + 4) and be at most receive_window",
            ));
        }
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| TransportError::InvalidTuning("idle_timeout is too long"))?;
        let (receive_window, incoming_streams) = match side {
            Side::Server => (self.admission_window, SESSION_STREAMS),
            Side::Client => (self.receive_window, 0),
        };
        let mut config = quinn::TransportConfig::default();
        config
            .max_idle_timeout(Some(idle))
            .keep_alive_interval((!self.keep_alive.is_zero()).then_some(self.keep_alive))
            .stream_receive_window(quinn::VarInt::from_u32(self.stream_receive_window))
            .receive_window(quinn::VarInt::from_u32(receive_window))
            .send_window(self.send_window)
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(incoming_streams))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
            .datagram_receive_buffer_size(None);
        Ok(Arc::new(config))
    }
}

/// Largest first frame a server reads on a new connection. A `Hello` of this protocol
/// version is at most [`MAX_HELLO_LEN`] (4,188 bytes); the headroom lets a later
/// version's longer `Hello` still be read and answered as an incompatible version
/// rather than as a frame too large. Until a session is admitted, this (not
/// [`MAX_FRAME_LEN`](blindmatch_protocol::wire::MAX_FRAME_LEN)) bounds what a connection
/// makes the server assemble.
pub const FIRST_FRAME_LIMIT: usize = 16 << 10;
const _: () = assert!(MAX_HELLO_LEN <= FIRST_FRAME_LIMIT);

/// Smallest `admission_window`: a first frame at its limit with its length prefix.
const MIN_ADMISSION_WINDOW: u32 = FIRST_FRAME_LIMIT as u32 + 4;

/// Stops the peer from opening any further stream on `conn` (a server calls this once
/// it has the session's stream; QUIC would otherwise let the peer open a new one as soon
/// as that one closes).
pub fn refuse_more_streams(conn: &quinn::Connection) {
    conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(0));
}

/// Grants an admitted session's connection the full `tuning.receive_window` (a server
/// connection starts with `admission_window`; see [`TransportTuning`]). Call once the
/// session holds its slot, before reading past its `Hello`.
pub fn admit(conn: &quinn::Connection, tuning: &TransportTuning) {
    conn.set_receive_window(quinn::VarInt::from_u32(tuning.receive_window));
}

/// A client endpoint together with what it needs to open pinned connections.
///
/// Bound to an ephemeral UDP port on `[::]` (dual-stack, reaching IPv4 and IPv6
/// peers), or on `0.0.0.0` where the machine has no IPv6.
pub struct ClientEndpoint {
    endpoint: quinn::Endpoint,
    certified_key: Arc<rustls::sign::CertifiedKey>,
    transport: Arc<quinn::TransportConfig>,
    connect_timeout: Duration,
}

impl ClientEndpoint {
    /// The underlying quinn endpoint.
    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// Closes all connections and waits (up to the idle timeout) for the peers to be told.
    pub async fn shutdown(&self) {
        self.endpoint
            .close(quinn::VarInt::from_u32(u32::from(CloseCode::OK.0)), b"");
        self.endpoint.wait_idle().await;
    }
}

impl std::fmt::Debug for ClientEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientEndpoint")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// A server endpoint on `bind` that accepts only clients whose fingerprint is in
/// `pinned` (checked at each handshake, so updates take effect for new connections).
pub fn server_endpoint(
    bind: SocketAddr,
    identity: &NodeIdentity,
    pinned: PinnedPeers,
    tuning: &TransportTuning,
) -> Result<quinn::Endpoint, TransportError> {
    let provider = provider();
    let verifier = PinnedClientVerifier::new(pinned, provider.signature_verification_algorithms);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(
            identity.tls_certified_key(),
        )));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.session_storage = Arc::new(NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|err| TransportError::QuicConfig(err.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(tuning.transport_config(Side::Server)?);
    quinn::Endpoint::server(config, bind)
        .map_err(|source| TransportError::Bind { addr: bind, source })
}

/// A client endpoint presenting `identity`'s certificate.
pub fn client_endpoint(
    identity: &NodeIdentity,
    tuning: &TransportTuning,
) -> Result<ClientEndpoint, TransportError> {
    let transport = tuning.transport_config(Side::Client)?;
    let dual_stack = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
    let v4_only = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let endpoint = quinn::Endpoint::client(dual_stack)
        .or_else(|_| quinn::Endpoint::client(v4_only))
        .map_err(|source| TransportError::Bind {
            addr: v4_only,
            source,
        })?;
    Ok(ClientEndpoint {
        endpoint,
        certified_key: identity.tls_certified_key(),
        transport,
        connect_timeout: tuning.connect_timeout,
    })
}

/// Connects to the node at `addr`, accepting only a server whose certificate has the
/// fingerprint `expected`.
///
/// `server_name_hint` (the peer's host name) is sent as SNI when it is a valid DNS
/// name; it is never checked. In TLS 1.3 the server checks our certificate after our
/// side of the handshake is done, so if the server refuses us this may return a
/// connection whose first stream operation fails with [`TransportError::RefusedByPeer`].
pub async fn connect(
    client: &ClientEndpoint,
    addr: SocketAddr,
    server_name_hint: &str,
    expected: Fingerprint,
) -> Result<quinn::Connection, TransportError> {
    let provider = provider();
    let verifier = Arc::new(PinnedServerVerifier::new(
        expected,
        provider.signature_verification_algorithms,
    ));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(
            &client.certified_key,
        ))));
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.resumption = Resumption::disabled();
    let crypto = QuicClientConfig::try_from(tls)
        .map_err(|err| TransportError::QuicConfig(err.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::clone(&client.transport));

    let server_name = match ServerName::try_from(server_name_hint) {
        Ok(_) => server_name_hint,
        Err(_) => FALLBACK_SERVER_NAME,
    };
    let connecting = client
        .endpoint
        .connect_with(config, addr, server_name)
        .map_err(|source| TransportError::Connect { addr, source })?;
    let connected = tokio::time::timeout(client.connect_timeout, connecting)
        .await
        .map_err(|_| TransportError::ConnectTimedOut {
            addr,
            after: client.connect_timeout,
        })?;
    let connection = match connected {
        Ok(connection) => connection,
        Err(err) => {
            return Err(match verifier.mismatch() {
                Some(got) => TransportError::UnexpectedServerFingerprint {
                    addr,
                    expected,
                    got,
                },
                None => classify_connection_error(err, Some(addr)),
            });
        }
    };
    // The verifier already enforced this; checking the result too costs nothing.
    let got = peer_fingerprint(&connection)?;
    if !got.ct_eq(&expected) {
        close(&connection, CloseCode::REFUSED, "unexpected certificate");
        return Err(TransportError::UnexpectedServerFingerprint {
            addr,
            expected,
            got,
        });
    }
    Ok(connection)
}

/// Completes the handshake of an incoming connection (from `endpoint.accept()`) and
/// returns it with the client's fingerprint.
pub async fn accept(
    incoming: quinn::Incoming,
) -> Result<(quinn::Connection, Fingerprint), TransportError> {
    let addr = incoming.remote_address();
    let connecting = incoming
        .accept()
        .map_err(|source| TransportError::Connection {
            addr: Some(addr),
            source,
        })?;
    let connection = connecting.await.map_err(|err| match &err {
        quinn::ConnectionError::TransportError(local)
            if u64::from(local.code)
                == u64::from(quinn::TransportErrorCode::crypto(ALERT_ACCESS_DENIED)) =>
        {
            TransportError::ClientNotPinned { addr }
        }
        _ => classify_connection_error(err, Some(addr)),
    })?;
    let fingerprint = peer_fingerprint(&connection)?;
    Ok((connection, fingerprint))
}

/// The fingerprint of the certificate the peer presented on `conn`.
pub fn peer_fingerprint(conn: &quinn::Connection) -> Result<Fingerprint, TransportError> {
    let identity = conn
        .peer_identity()
        .ok_or(TransportError::NoPeerCertificate)?;
    let chain = identity
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TransportError::NoPeerCertificate)?;
    let end_entity = chain.first().ok_or(TransportError::NoPeerCertificate)?;
    Ok(Fingerprint::of_cert_der(end_entity))
}

/// 32 bytes from the TLS exporter (label [`CHANNEL_BINDING_LABEL`], empty context):
/// equal on both ends of `conn` and unique to this TLS session, so binding them into
/// the protocol transcript detects a relayed session.
pub fn channel_binding(conn: &quinn::Connection) -> Result<[u8; 32], TransportError> {
    let mut out = [0u8; 32];
    conn.export_keying_material(&mut out, CHANNEL_BINDING_LABEL, b"")
        .map_err(|_| TransportError::Exporter)?;
    Ok(out)
}

/// Closes `conn` immediately with a protocol close code the peer will see.
///
/// Data not yet acknowledged is discarded: finish streams first
/// ([`FrameWriter::finish`]) when the last frames matter.
pub fn close(conn: &quinn::Connection, code: CloseCode, reason: &str) {
    conn.close(close_code_to_varint(code), reason.as_bytes());
}

/// The QUIC application error code for a protocol close code.
pub fn close_code_to_varint(code: CloseCode) -> quinn::VarInt {
    quinn::VarInt::from_u32(u32::from(code.0))
}

/// The protocol close code the peer sent, if it closed `conn` with one.
pub fn peer_close_code(err: &quinn::ConnectionError) -> Option<CloseCode> {
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => {
            u16::try_from(close.error_code.into_inner())
                .ok()
                .map(CloseCode)
        }
        _ => None,
    }
}

/// Whether `err` means the peer went away (it reset or stopped the stream, ended it, closed
/// the connection, or the connection was lost), rather than a failure of ours, broken
/// framing or a timeout.
pub fn is_peer_gone(err: &TransportError) -> bool {
    use quinn::ConnectionError as C;
    match err {
        TransportError::StreamReset { .. }
        | TransportError::StreamStopped { .. }
        | TransportError::PeerClosed { .. } => true,
        TransportError::Connection { source, .. } => matches!(
            source,
            C::ApplicationClosed(_) | C::ConnectionClosed(_) | C::Reset | C::TransportError(_)
        ),
        _ => false,
    }
}

/// Turns a quinn connection error into one that says what to do.
pub fn classify_connection_error(
    err: quinn::ConnectionError,
    addr: Option<SocketAddr>,
) -> TransportError {
    let crypto_alert = |code: quinn::TransportErrorCode| {
        u64::from(code)
            .checked_sub(0x100)
            .and_then(|alert| u8::try_from(alert).ok())
    };
    match &err {
        quinn::ConnectionError::ConnectionClosed(close) => match crypto_alert(close.error_code) {
            Some(alert) if REFUSAL_ALERTS.contains(&alert) => {
                TransportError::RefusedByPeer { addr }
            }
            Some(ALERT_NO_APPLICATION_PROTOCOL) => TransportError::IncompatiblePeer { addr },
            _ => TransportError::Connection { addr, source: err },
        },
        quinn::ConnectionError::TransportError(local)
            if crypto_alert(local.code) == Some(ALERT_NO_APPLICATION_PROTOCOL) =>
        {
            TransportError::IncompatiblePeer { addr }
        }
        quinn::ConnectionError::ApplicationClosed(close) => match peer_close_code(&err) {
            Some(code) => TransportError::PeerClosed {
                code,
                reason: String::from_utf8_lossy(&close.reason)
                    .escape_debug()
                    .to_string(),
            },
            None => TransportError::Connection { addr, source: err },
        },
        quinn::ConnectionError::TimedOut => TransportError::TimedOut { addr },
        _ => TransportError::Connection { addr, source: err },
    }
}

/// The ring provider, passed explicitly to every config (never a process default).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn at(addr: &Option<SocketAddr>) -> String {
    addr.map(|addr| format!(" at {addr}")).unwrap_or_default()
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" (\"{reason}\")")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
