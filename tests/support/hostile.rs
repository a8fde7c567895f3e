//! A hostile peer's end of a connection: real quinn, real mutual TLS with a pinned
//! certificate, and a real protocol session underneath, so that it can misbehave at
//! any chosen point of an otherwise valid session — or send raw bytes that are no
//! protocol at all.
//!
//! [`HostilePeer`] is a hostile initiator; `super::hostile_server` builds the same
//! [`Link`] on the accepting side for a hostile responder.
//!
//! The root test package has no direct `quinn` dependency, so the connection is never
//! named here: it is only captured by the closures of [`ConnHooks`] (built by
//! [`conn_hooks!`]) and reached through `blindmatch_node::transport` (streams are
//! wrapped in `FrameWriter`/`FrameReader`, whose field is the quinn stream).

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blindmatch_node::identity::{Fingerprint, NodeIdentity};
use blindmatch_node::transport::{self, FrameReader, FrameWriter, TransportTuning};
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::ident::{IdentKind, KindSet, Normaliser};
use blindmatch_protocol::session::{
    Event, Initiator, InitiatorConfig, KeySigner, Parties, PreparedSet, PreparedSetBuilder,
    Responder, Session,
};
use blindmatch_protocol::wire::{
    DatasetRef, Hello, MAX_FRAME_LEN, Message, OutputMode, Reblinded, RejectReason,
};
use rand::Rng;
use tokio::sync::{mpsc, watch};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
/// The two halves of a bidirectional stream, framed.
pub type Streams = (FrameWriter, FrameReader);
/// Opens another bidirectional stream on the link's connection.
pub type Opener = Box<dyn Fn() -> BoxFuture<Result<Streams, String>> + Send + Sync>;
/// Closes the link's connection with a code and a reason.
pub type Closer = Box<dyn Fn(CloseCode, &str) + Send + Sync>;

/// [`ConnHooks`] for a quinn connection `$conn` established at `$started`; works on
/// either side of the connection (hence a macro: the connection's type is unnamed).
macro_rules! conn_hooks {
    ($conn:expr, $started:expr) => {{
        let conn = $conn;
        let started: ::std::time::Instant = $started;
        let (closed_tx, closed_rx) = ::tokio::sync::watch::channel(None);
        let watched = conn.clone();
        ::tokio::spawn(async move {
            let err = watched.closed().await;
            let _ = closed_tx.send(Some($crate::support::hostile::ConnEnd {
                code: ::blindmatch_node::transport::peer_close_code(&err),
                text: err.to_string(),
                at: started.elapsed(),
            }));
        });
        let opener = conn.clone();
        let closer = conn.clone();
        $crate::support::hostile::ConnHooks::new(
            Box::new(move || {
                let conn = opener.clone();
                Box::pin(async move {
                    conn.open_bi()
                        .await
                        .map(|(s, r)| {
                            (
                                ::blindmatch_node::transport::FrameWriter(s),
                                ::blindmatch_node::transport::FrameReader(r),
                            )
                        })
                        .map_err(|e| e.to_string())
                })
                    as $crate::support::hostile::BoxFuture<
                        Result<$crate::support::hostile::Streams, String>,
                    >
            }),
            Box::new(
                move |code: ::blindmatch_protocol::error::CloseCode, reason: &str| {
                    ::blindmatch_node::transport::close(&closer, code, reason)
                },
            ),
            closed_rx,
            started,
        )
    }};
}
pub(crate) use conn_hooks;

/// The hostile peer's identity and where it attacks.
pub struct HostilePeer {
    identity: Arc<NodeIdentity>,
    target: Option<(SocketAddr, Fingerprint)>,
}

impl HostilePeer {
    /// A fresh identity (pin [`HostilePeer::fingerprint`] on the server under test).
    pub fn generate() -> Self {
        Self {
            identity: Arc::new(NodeIdentity::generate("hostile").expect("identity")),
            target: None,
        }
    }

    /// A fresh identity, pinned on `server` as peer `name` (with no address: it only
    /// initiates) offered `datasets`.
    pub fn pinned_on(server: &super::TestNode, name: &str, datasets: &[&str]) -> Self {
        let peer = Self::generate();
        super::pin(
            server,
            name,
            peer.fingerprint(),
            super::not_serving(),
            datasets,
        );
        peer
    }

    /// A hostile peer with `identity` (e.g. a real node's, loaded from its data
    /// directory, to speak as that node by hand).
    pub fn with_identity(identity: NodeIdentity) -> Self {
        Self {
            identity: Arc::new(identity),
            target: None,
        }
    }

    /// The certificate fingerprint to pin.
    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint()
    }

    /// Aims at the server at `addr` with certificate `fingerprint`.
    pub fn aim(&mut self, addr: SocketAddr, fingerprint: Fingerprint) {
        self.target = Some((addr, fingerprint));
    }

    /// Opens a pinned connection and one bidirectional stream (the server sees the
    /// stream only once something is written on it), reading what the server sends.
    pub async fn connect(&self) -> Result<Link, String> {
        self.connect_with(Reading::Reads).await
    }

    /// [`HostilePeer::connect`], choosing whether the server's frames are read.
    pub async fn connect_with(&self, reading: Reading) -> Result<Link, String> {
        let (addr, fingerprint) = self.target.expect("aim first");
        // Our own idle timeout is long: the server's (shorter) one is under test.
        let mut tuning = TransportTuning::with_idle_timeout(Duration::from_secs(30));
        if let Reading::NeverReads { window } = reading {
            tuning.stream_receive_window = window;
        }
        let client =
            transport::client_endpoint(&self.identity, &tuning).map_err(|e| e.to_string())?;
        let conn = transport::connect(&client, addr, "localhost", fingerprint)
            .await
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let binding = transport::channel_binding(&conn).map_err(|e| e.to_string())?;
        let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let hooks = conn_hooks!(conn, started);
        let parties = Parties {
            own_fingerprint: self.identity.fingerprint().0,
            peer_fingerprint: fingerprint.0,
            peer_audit_key: None,
        };
        let mut link = Link::assemble(
            binding,
            (FrameWriter(send), FrameReader(recv)),
            reading,
            hooks,
            Box::new(client),
            parties,
        );
        rand::rng().fill_bytes(&mut link.session_id);
        Ok(link)
    }
}

/// What a [`Link`] needs from its QUIC connection, built by [`conn_hooks!`]: the root
/// test package has no `quinn` dependency, so the connection's type is never named and
/// the connection is only captured by these closures.
pub struct ConnHooks {
    open_bi: Opener,
    close: Closer,
    closed: watch::Receiver<Option<ConnEnd>>,
    started: Instant,
}

impl ConnHooks {
    /// Used by [`conn_hooks!`] only.
    pub fn new(
        open_bi: Opener,
        close: Closer,
        closed: watch::Receiver<Option<ConnEnd>>,
        started: Instant,
    ) -> Self {
        Self {
            open_bi,
            close,
            closed,
            started,
        }
    }
}

/// Whether the hostile peer reads what the server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// Read every frame (and record it).
    Reads,
    /// Never read the session stream, and allow the server only `window` bytes of
    /// it in flight: the server's writes then block.
    NeverReads {
        /// Our stream receive window, in bytes.
        window: u32,
    },
}

/// What arrives on the session stream from the server.
enum Incoming {
    Frame(Vec<u8>),
    End,
    Failed(String),
}

/// How the server's side of the connection ended.
#[derive(Clone, Debug)]
pub struct ConnEnd {
    /// The application close code the server sent, if it closed the connection.
    pub code: Option<CloseCode>,
    /// quinn's description.
    pub text: String,
    /// Time since the connection was established.
    pub at: Duration,
}

/// One connection of a hostile peer (client or server) and its session stream.
pub struct Link {
    /// The session id our `Hello`s carry (on the server side: the initiator's, once
    /// its `Hello` is read).
    pub session_id: [u8; 16],
    /// The TLS exporter value of this connection.
    pub binding: [u8; 32],
    /// Both ends' fingerprints, as the TLS handshake showed them.
    pub parties: Parties,
    /// Our sending side of the session stream.
    pub writer: FrameWriter,
    /// The receiving side, when we never read it.
    unread: Option<FrameReader>,
    frames: mpsc::UnboundedReceiver<Incoming>,
    received: Vec<Message>,
    stream_end: Option<String>,
    open_bi: Opener,
    close: Closer,
    closed: watch::Receiver<Option<ConnEnd>>,
    /// The endpoint, kept alive as long as the link.
    _endpoint: Box<dyn Any + Send + Sync>,
    started: Instant,
}

/// What a hostile step does with a frame the honest session wants to send.
pub enum Step {
    /// Send it unchanged.
    Pass,
    /// Send these frames instead (none: drop it).
    Replace(Vec<Vec<u8>>),
    /// Send these frames instead, then stop driving the session.
    Stop(Vec<Vec<u8>>),
}

/// How driving the honest session ended.
#[derive(Debug, Default)]
pub struct Driven {
    /// Both sides confirmed the result.
    pub completed: bool,
    /// The tamper function asked to stop.
    pub stopped: bool,
    /// The initiator's own error (e.g. the server's `Abort`).
    pub error: Option<String>,
}

/// What the hostile peer saw of the server's reaction.
#[derive(Debug)]
pub struct Observed {
    /// Messages the server sent on the session stream, in order.
    pub received: Vec<&'static str>,
    /// The code of the server's `Abort`, if it sent one.
    pub abort: Option<CloseCode>,
    /// The reason of the server's `Reject`, if it sent one.
    pub reject: Option<RejectReason>,
    /// How the server's side of the stream ended (`finished`, or the error).
    pub stream_end: String,
    /// Time from the connection being up to the end of the server's stream.
    pub stream_end_at: Duration,
    /// How the connection ended, when waited for.
    pub conn: Option<ConnEnd>,
}

impl Link {
    /// A link over the session stream `streams` of the connection behind `hooks`;
    /// `endpoint` is kept alive with it.
    pub fn assemble(
        binding: [u8; 32],
        streams: Streams,
        reading: Reading,
        hooks: ConnHooks,
        endpoint: Box<dyn Any + Send + Sync>,
        parties: Parties,
    ) -> Link {
        let (writer, reader) = streams;
        let (frames_tx, frames_rx) = mpsc::unbounded_channel();
        let unread = match reading {
            Reading::Reads => {
                tokio::spawn(read_frames(reader, frames_tx));
                None
            }
            // Kept (not dropped, which would tell the peer to stop sending).
            Reading::NeverReads { .. } => Some(reader),
        };
        Link {
            session_id: [0; 16],
            binding,
            parties,
            writer,
            unread,
            frames: frames_rx,
            received: Vec::new(),
            stream_end: None,
            open_bi: hooks.open_bi,
            close: hooks.close,
            closed: hooks.closed,
            _endpoint: endpoint,
            started: hooks.started,
        }
    }

    /// A valid `Hello` for this link declaring `set_size` email identifiers.
    pub fn hello(&self, set_size: u64) -> Hello {
        let mut hello = Hello::new(self.session_id, OutputMode::Both, set_size, commitment());
        hello.purpose = "hostile test".into();
        hello.legal_basis = "consent".into();
        hello.kinds = KindSet::empty().with(IdentKind::Email);
        hello.own_dataset = DatasetRef::new("hostile", [0; 16]);
        hello
    }

    /// An honest initiator for this link (its session id, channel binding and parties),
    /// signing its receipts with the hostile peer's key ([`signer`]).
    pub fn initiator(&self, set: PreparedSet, mode: OutputMode) -> Initiator {
        let mut config = InitiatorConfig::new(self.session_id, self.binding, self.parties, mode);
        config.purpose = "hostile test".into();
        config.legal_basis = "consent".into();
        config.own_dataset = DatasetRef::new("hostile", [0; 16]);
        Initiator::new(config, set, signer(), &mut rand::rng()).expect("initiator")
    }

    /// Sends one message as a frame.
    pub async fn send(&mut self, msg: &Message) {
        self.send_frame(&msg.to_frame()).await;
    }

    /// Sends `frame` with its length prefix (errors ignored: the server may be gone).
    pub async fn send_frame(&mut self, frame: &[u8]) {
        let _ = self.writer.write_frame(frame).await;
    }

    /// Writes raw bytes on the session stream.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.writer.0.write_all(bytes).await;
    }

    /// Sends the length prefix and first half of a `Blinded` frame of `points` points,
    /// then nothing more of it.
    pub async fn send_half_a_batch(&mut self, points: usize) {
        let frame = Message::Blinded(vec![[9u8; 32]; points]).to_frame();
        let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&frame[..frame.len() / 2]);
        self.send_raw(&bytes).await;
    }

    /// Waits up to `wait` for the peer's next `Blinded` batch and answers it with
    /// `reply(points)` (nothing when no batch comes).
    pub async fn answer_next_blinded(
        &mut self,
        wait: Duration,
        reply: impl FnOnce(Vec<[u8; 32]>) -> Message,
    ) {
        let blinded = self
            .wait_for(|msg| matches!(msg, Message::Blinded(_)), wait)
            .await;
        if let Some(Message::Blinded(points)) = blinded {
            self.send(&reply(points)).await;
        }
    }

    /// Ends our side of the session stream (FIN).
    pub fn finish(&mut self) {
        let _ = self.writer.0.finish();
    }

    /// Abandons our side of the session stream (RESET_STREAM with `code`).
    pub fn reset(&mut self, code: CloseCode) {
        let _ = self.writer.0.reset(transport::close_code_to_varint(code));
    }

    /// Tells the server to stop sending on the session stream (STOP_SENDING), when
    /// connected with [`Reading::NeverReads`].
    pub fn stop_reading(&mut self, code: CloseCode) {
        if let Some(reader) = &mut self.unread {
            let _ = reader.0.stop(transport::close_code_to_varint(code));
        }
    }

    /// Closes the whole connection with `code`.
    pub fn close(&self, code: CloseCode) {
        (self.close)(code, "hostile close");
    }

    /// Opens another bidirectional stream, if the server's stream limit allows it
    /// within `wait`.
    pub async fn open_stream(&self, wait: Duration) -> Option<Streams> {
        match tokio::time::timeout(wait, (self.open_bi)()).await {
            Ok(Ok(streams)) => Some(streams),
            _ => None,
        }
    }

    /// The next message from the server within `wait`; `None` on stream end or timeout.
    pub async fn next_message(&mut self, wait: Duration) -> Option<Message> {
        if self.stream_end.is_some() {
            return None;
        }
        match tokio::time::timeout(wait, self.frames.recv()).await {
            Ok(Some(Incoming::Frame(frame))) => match Message::decode(&frame) {
                Ok(msg) => {
                    self.received.push(msg.clone());
                    Some(msg)
                }
                Err(err) => {
                    self.end_stream(format!("undecodable frame from the server: {err}"));
                    None
                }
            },
            Ok(Some(Incoming::End)) | Ok(None) => {
                self.end_stream("finished".into());
                None
            }
            Ok(Some(Incoming::Failed(err))) => {
                self.end_stream(err);
                None
            }
            Err(_) => None,
        }
    }

    /// Reads server messages until one satisfies `want`, within `wait` overall.
    pub async fn wait_for(
        &mut self,
        want: impl Fn(&Message) -> bool,
        wait: Duration,
    ) -> Option<Message> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = self.next_message(left).await?;
            if want(&msg) {
                return Some(msg);
            }
        }
    }

    /// Whether the server has ended its side of the stream (reads what is pending).
    pub async fn server_done(&mut self) -> bool {
        while self.stream_end.is_none() && self.next_message(Duration::ZERO).await.is_some() {}
        self.stream_end.is_some()
    }

    /// Writes `bytes` one at a time, `every` apart, until all are sent, the server
    /// ends the stream or `limit` has passed.
    pub async fn trickle(&mut self, bytes: &[u8], every: Duration, limit: Duration) {
        let deadline = Instant::now() + limit;
        for byte in bytes {
            if Instant::now() > deadline || self.server_done().await {
                return;
            }
            self.send_raw(&[*byte]).await;
            tokio::time::sleep(every).await;
        }
    }

    /// Runs the honest `session` (an initiator, or a responder that has accepted) over
    /// this link, passing every frame it wants to send through `tamper`. Waits at most
    /// `wait` for each frame of the other side.
    pub async fn drive<S: Decides>(
        &mut self,
        initiator: &mut S,
        mut tamper: impl FnMut(&Message) -> Step,
        wait: Duration,
    ) -> Driven {
        let mut driven = Driven::default();
        loop {
            while let Some(frame) = initiator.poll_transmit() {
                let msg = Message::decode(&frame).expect("our own frame decodes");
                match tamper(&msg) {
                    Step::Pass => self.send_frame(&frame).await,
                    Step::Replace(frames) => {
                        for frame in frames {
                            self.send_frame(&frame).await;
                        }
                    }
                    Step::Stop(frames) => {
                        for frame in frames {
                            self.send_frame(&frame).await;
                        }
                        driven.stopped = true;
                        return driven;
                    }
                }
            }
            while let Some(event) = initiator.poll_event() {
                match event {
                    Event::Completed(_) => driven.completed = true,
                    Event::Failed(err) => driven.error = Some(err.to_string()),
                    other => {
                        if let Err(err) = initiator.decide(&other) {
                            driven.error = Some(err.to_string());
                        }
                    }
                }
            }
            if initiator.is_closed() || driven.error.is_some() {
                return driven;
            }
            let Some(msg) = self.next_message(wait).await else {
                return driven;
            };
            if let Err(err) = initiator.handle_frame(&msg.to_frame()) {
                driven.error = Some(err.to_string());
            }
        }
    }

    /// Collects what the server does until it ends the stream (at most `limit`), then,
    /// when `wait_close`, until it closes the connection. Closes the connection
    /// ourselves afterwards, so the server is not kept waiting.
    pub async fn observe(mut self, wait_close: bool, limit: Duration) -> Observed {
        let deadline = Instant::now() + limit;
        // Unread, the stream tells nothing: wait for the connection instead.
        let wait_close = wait_close || self.unread.is_some();
        while self.unread.is_none() && self.stream_end.is_none() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.next_message(left).await.is_none() && self.stream_end.is_none() {
                break;
            }
        }
        let stream_end_at = self.started.elapsed();
        let conn = if wait_close {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut closed = self.closed.clone();
            match tokio::time::timeout(left, closed.wait_for(|c| c.is_some())).await {
                Ok(Ok(end)) => (*end).clone(),
                _ => None,
            }
        } else {
            self.closed.borrow().clone()
        };
        self.close(CloseCode::OK);
        let abort = self.received.iter().find_map(|m| match m {
            Message::Abort(code) => Some(*code),
            _ => None,
        });
        let reject = self.received.iter().find_map(|m| match m {
            Message::Reject(r) => Some(r.reason),
            _ => None,
        });
        Observed {
            received: self
                .received
                .iter()
                .map(|m| m.message_type().name())
                .collect(),
            abort,
            reject,
            stream_end: self
                .stream_end
                .clone()
                .unwrap_or_else(|| "still open".into()),
            stream_end_at,
            conn,
        }
    }

    fn end_stream(&mut self, how: String) {
        if self.stream_end.is_none() {
            self.stream_end = Some(how);
        }
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        (self.close)(CloseCode::OK, "");
    }
}

/// A set of `n` email identifiers (contacts `first..first + n`).
pub fn email_set(first: usize, n: usize) -> PreparedSet {
    let normaliser = Normaliser::default();
    let mut builder = PreparedSetBuilder::new();
    for (record, i) in (first..first + n).enumerate() {
        let id = normaliser.email(&super::email(i)).expect("valid email");
        builder.add(record as u32, &id);
    }
    builder.build()
}

async fn read_frames(mut reader: FrameReader, tx: mpsc::UnboundedSender<Incoming>) {
    loop {
        let item = match reader.read_frame(MAX_FRAME_LEN).await {
            Ok(Some(frame)) => Incoming::Frame(frame),
            Ok(None) => Incoming::End,
            Err(err) => Incoming::Failed(err.to_string()),
        };
        let last = !matches!(item, Incoming::Frame(_));
        if tx.send(item).is_err() || last {
            return;
        }
    }
}

/// A `Reblinded` answer to `points` that skips re-blinding: the points as received,
/// with a proof that cannot verify (nobody can prove a key of 1 against a commitment).
pub fn reblinded_without_reblinding(points: Vec<[u8; 32]>) -> Message {
    Message::Reblinded(Reblinded {
        points,
        proof: [0; 64],
    })
}

/// A `Reblinded` answer to `points` with one point more than there were.
pub fn reblinded_one_too_many(mut points: Vec<[u8; 32]>) -> Message {
    points.push(commitment());
    Message::Reblinded(Reblinded {
        points,
        proof: [0; 64],
    })
}

/// A valid point that is no key commitment anyone can prove anything for: what hostile
/// `Hello`s and `Accept`s announce as their key.
pub fn commitment() -> [u8; 32] {
    blindmatch_protocol::group::hash_to_group(b"hostile key", b"hostile test")
        .compress()
        .to_bytes()
}

/// The hostile side's receipt signer: a fixed key, so that a test can pin it.
pub fn signer() -> Box<dyn blindmatch_protocol::session::ReceiptSigner> {
    Box::new(KeySigner::from_seed(&SIGNER_SEED))
}

/// The secret seed of [`signer`]'s key.
pub const SIGNER_SEED: [u8; 32] = [0x4b; 32];

/// A session the hostile side drives, with the decision it takes on an event that asks
/// for one: an initiator always confirms; a responder has accepted before driving.
pub trait Decides: Session {
    /// Takes the decision `event` asks for.
    fn decide(&mut self, event: &Event) -> Result<(), blindmatch_protocol::Error>;
}

impl Decides for Initiator {
    fn decide(&mut self, event: &Event) -> Result<(), blindmatch_protocol::Error> {
        match event {
            Event::Accepted(_) => self.confirm(),
            _ => Ok(()),
        }
    }
}

impl Decides for Responder {
    fn decide(&mut self, _event: &Event) -> Result<(), blindmatch_protocol::Error> {
        Ok(())
    }
}

/// An attack's name in snake case (`ManyStreams` → `many_streams`), as the
/// `HOSTILE_CASE` and `HOSTILE_SERVER_CASE` variables take it.
pub fn snake_case(attack: impl std::fmt::Debug) -> String {
    let camel = format!("{attack:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
