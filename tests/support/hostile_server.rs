//! A hostile responder: a test-only server with real quinn, a real certificate that the
//! initiator under test pins, and a real protocol [`Responder`] underneath, so that it
//! can misbehave at any chosen point of an otherwise valid session (see
//! `super::server_attacks` for the playbook).
//!
//! It serves exactly one connection, performs its attack over a [`Link`] (the same
//! machinery the hostile initiator uses), then watches how the initiator ends the
//! session: its `Abort` frame and the code it closes the connection with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blindmatch_node::identity::{Fingerprint, NodeIdentity};
use blindmatch_node::transport::{self, FrameReader, FrameWriter, PinnedPeers, TransportTuning};
use blindmatch_protocol::session::{
    Event, Parties, PreparedSet, Responder, ResponderConfig, Session,
};
use blindmatch_protocol::wire::{DatasetRef, Hello, Message};
use tokio::task::JoinHandle;

use super::hostile::{Link, Observed, Reading, conn_hooks, signer};
use super::server_attacks::{ServerAttack, perform};

/// Longest the server waits for the initiator to end the session after the attack.
const OBSERVE: Duration = Duration::from_secs(12);

/// A hostile server waiting for one connection from the pinned initiator.
pub struct HostileServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate fingerprint (pin it on the initiator).
    pub fingerprint: Fingerprint,
    task: JoinHandle<Result<ServerSaw, String>>,
}

/// What the hostile server saw of the initiator.
#[derive(Debug)]
pub struct ServerSaw {
    /// The session id of the initiator's `Hello`, if one arrived.
    pub session_id: Option<[u8; 16]>,
    /// The initiator's messages and how it ended the session.
    pub observed: Observed,
}

impl HostileServer {
    /// Listens on an ephemeral loopback port, accepting only `initiator`'s certificate,
    /// and performs `attack` on the first connection.
    pub fn start(initiator: Fingerprint, attack: ServerAttack) -> HostileServer {
        let identity = NodeIdentity::generate("hostile-server").expect("identity");
        let fingerprint = identity.fingerprint();
        let tuning = TransportTuning::with_idle_timeout(Duration::from_secs(30));
        let endpoint = transport::server_endpoint(
            super::loopback(),
            &identity,
            PinnedPeers::new([initiator]),
            &tuning,
        )
        .expect("server endpoint");
        let addr = endpoint.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let incoming = endpoint
                .accept()
                .await
                .ok_or("the endpoint closed before a connection")?;
            let (conn, _) = transport::accept(incoming)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let started = Instant::now();
            let binding = transport::channel_binding(&conn).map_err(|e| e.to_string())?;
            let (send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
            let hooks = conn_hooks!(conn, started);
            let parties = Parties {
                own_fingerprint: fingerprint.0,
                peer_fingerprint: initiator.0,
                peer_audit_key: None,
            };
            let mut link = Link::assemble(
                binding,
                (FrameWriter(send), FrameReader(recv)),
                Reading::Reads,
                hooks,
                Box::new((endpoint, Arc::new(identity))),
                parties,
            );
            let session_id = perform(&mut link, attack).await;
            let observed = link.observe(true, OBSERVE).await;
            Ok(ServerSaw {
                session_id,
                observed,
            })
        });
        HostileServer {
            addr,
            fingerprint,
            task,
        }
    }

    /// Waits for the attack and the initiator's reaction to end.
    pub async fn saw(self) -> Result<ServerSaw, String> {
        self.task
            .await
            .unwrap_or_else(|e| Err(format!("the server task failed: {e}")))
    }
}

/// An honest responder for the initiator's `hello` (perhaps altered by the attack),
/// bound to `binding`, between `parties`, that has accepted with `set`; it signs its
/// receipts with the hostile side's key ([`signer`]).
pub fn responder(
    hello: &Hello,
    binding: [u8; 32],
    parties: Parties,
    set: PreparedSet,
) -> Responder {
    let mut responder = Responder::new(ResponderConfig::new(binding, parties), signer());
    responder
        .handle_frame(&Message::Hello(hello.clone()).to_frame())
        .expect("the responder takes the Hello");
    assert!(
        matches!(responder.poll_event(), Some(Event::HelloReceived(_))),
        "the responder surfaces the Hello"
    );
    responder
        .accept(
            set,
            DatasetRef::new("hostile-kp", [0; 16]),
            &mut rand::rng(),
        )
        .expect("the responder accepts");
    responder
}
