//! A session of either role driven by a fuzzer playing its peer, with the invariants a
//! hostile peer must never break.
//!
//! The harness owns one [`Initiator`] or [`Responder`] with a fixed set, RNG seed and
//! channel binding. The fuzzer's frames are fed in with [`Harness::deliver`]; after each
//! one the harness answers every event as a node would (accept or reject a `Hello`) and
//! drains every frame the session wants to send. It checks:
//!
//! * peer bytes only ever produce peer errors (invalid message, misbehaved, incompatible,
//!   refused, aborted), never API misuse, and the session is closed after one;
//! * a closed session answers every further frame with [`PeerMisbehaved::AfterEnd`] and
//!   sends nothing for it (no second `Abort`), nor raises an event;
//! * every frame we send decodes, fits [`MAX_FRAME_LEN`], and follows the protocol: the
//!   initiator opens with `Hello`, the responder answers with `Accept`, `Reject` or
//!   `Abort`; nothing follows our `Abort` or `Reject`; only `Abort` follows our `Finish`;
//!   `Reblinded` goes only to a peer whose mode lets it learn something;
//! * a `Finish` we send carries the intersection size iff *both* sides may learn it in
//!   the session's mode (`both`, `cardinality`), never in `initiator` or `responder`
//!   mode, where the peer or we learn nothing beyond the set size; likewise for the
//!   peer's `Finish` in a session that completes;
//! * an outcome matches the mode (count and matched records only when this side may
//!   know them), stays within the set sizes, carries the transcript hash of the `Finish`
//!   we sent, and its count is the one in either `Finish` that carries one;
//! * a session never loops producing frames or events.

use std::sync::OnceLock;

use blindmatch_protocol::error::{CloseCode, Error, PeerMisbehaved};
use blindmatch_protocol::ident::{Identifier, Normaliser};
use blindmatch_protocol::session::{
    Event, Initiator, InitiatorConfig, KeySigner, Outcome, Parties, PreparedSet,
    PreparedSetBuilder, ReceiptSigner, Responder, ResponderConfig, Role, Session, learns_count,
    learns_records,
};
use blindmatch_protocol::wire::{DatasetRef, MAX_FRAME_LEN, Message, OutputMode, RejectReason};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The channel binding both sides use (a TLS exporter value in a real node).
pub const CHANNEL_BINDING: [u8; 32] = [42; 32];
/// The initiator's session id.
pub const SESSION_ID: [u8; 16] = [7; 16];
/// `max_peer_set_size` when [`Setup::tight_limit`] is set: below both fixed sets.
pub const TIGHT_LIMIT: u64 = 4;

/// The certificate fingerprints of a party in `role` and of its peer (the initiator's is
/// `a1…`, the responder's `b2…`); no audit key is pinned, so the peer's receipt is
/// checked against the key it names (what a first session does).
pub fn parties(role: Role) -> Parties {
    let (initiator, responder) = ([0xa1; 32], [0xb2; 32]);
    let (own_fingerprint, peer_fingerprint) = match role {
        Role::Initiator => (initiator, responder),
        Role::Responder => (responder, initiator),
    };
    Parties {
        own_fingerprint,
        peer_fingerprint,
        peer_audit_key: None,
    }
}

/// Our receipt signer: a fixed key.
pub fn signer() -> Box<dyn ReceiptSigner> {
    Box::new(KeySigner::from_seed(&[3; 32]))
}

/// RNG seeds: different per role, or both sides would draw the same blinding key.
const INITIATOR_SEED: u64 = 1;
const RESPONDER_SEED: u64 = 2;
/// More frames or events than this from one pump is a runaway loop.
const MAX_STEPS_PER_PUMP: usize = 10_000;

/// What the first input byte selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// Which side the harness plays (the fuzzer plays the other).
    pub role: Role,
    /// The initiator's output mode (the responder takes it from `Hello`).
    pub mode: OutputMode,
    /// The responder rejects the `Hello` instead of accepting it.
    pub reject: bool,
    /// The harness aborts the session locally after the last frame.
    pub abort_at_end: bool,
    /// `max_peer_set_size` is [`TIGHT_LIMIT`] instead of the protocol maximum.
    pub tight_limit: bool,
}

impl Setup {
    /// Decodes the setup byte: bit 0 role (1 = initiator), bits 1–2 mode, bit 3 reject,
    /// bit 4 abort at end, bit 5 tight limit; bits 6–7 are ignored.
    pub fn from_byte(b: u8) -> Setup {
        Setup {
            role: if b & 1 == 0 {
                Role::Responder
            } else {
                Role::Initiator
            },
            mode: OutputMode::ALL[usize::from((b >> 1) & 3)],
            reject: b & 8 != 0,
            abort_at_end: b & 16 != 0,
            tight_limit: b & 32 != 0,
        }
    }

    /// The byte [`Setup::from_byte`] reads back as `self`.
    pub fn to_byte(self) -> u8 {
        let mode = OutputMode::ALL
            .iter()
            .position(|m| *m == self.mode)
            .unwrap_or(0) as u8;
        u8::from(self.role == Role::Initiator)
            | mode << 1
            | u8::from(self.reject) << 3
            | u8::from(self.abort_at_end) << 4
            | u8::from(self.tight_limit) << 5
    }
}

/// The responder's fixed set: 6 records, 9 identifiers, 8 unique.
pub fn responder_set() -> &'static PreparedSet {
    static SET: OnceLock<PreparedSet> = OnceLock::new();
    SET.get_or_init(|| {
        let n = Normaliser::default();
        let mut records: Vec<Vec<Identifier>> = (0..6)
            .map(|i| vec![email(&n, &format!("kp{i}@datahub.cn"))])
            .collect();
        for (i, record) in records.iter_mut().enumerate().take(3) {
            record.push(phone(&n, &format!("13800138{i:03}")));
        }
        records[5].push(email(&n, "kp4@datahub.cn"));
        prepare(&records)
    })
}

/// The initiator's fixed set: 5 records, 7 unique identifiers, 4 shared with the
/// responder's.
pub fn initiator_set() -> &'static PreparedSet {
    static SET: OnceLock<PreparedSet> = OnceLock::new();
    SET.get_or_init(|| {
        let n = Normaliser::default();
        let mut records: Vec<Vec<Identifier>> = (3..8)
            .map(|i| vec![email(&n, &format!("KP{i}@DataHub.cn"))])
            .collect();
        records[0].push(phone(&n, "+86 138 0013 8001"));
        records[1].push(n.custom("crm-0001").expect("valid custom id"));
        prepare(&records)
    })
}

/// One session under test; see the module documentation.
pub struct Harness {
    setup: Setup,
    party: Party,
    rng: StdRng,
    own_set: &'static PreparedSet,
    /// Known from the start (initiator) or from `Hello` (responder).
    mode: Option<OutputMode>,
    session_id: Option<[u8; 16]>,
    peer_declared: Option<u64>,
    /// Frames we sent that the caller has not taken yet.
    outbox: Vec<Vec<u8>>,
    frames_sent: usize,
    /// We sent `Abort` or `Reject`.
    ended: bool,
    /// The transcript hash and count of the `Finish` we sent.
    our_finish: Option<([u8; 32], Option<u64>)>,
    /// The count field of the last `Finish` the peer sent while the session was open.
    peer_finish: Option<Option<u64>>,
    outcome: Option<Outcome>,
    /// The first error that closed the session: from `handle_frame` or `Failed`.
    error: Option<Error>,
}

enum Party {
    Initiator(Initiator),
    Responder(Responder),
}

impl Party {
    fn session(&mut self) -> &mut dyn Session {
        match self {
            Party::Initiator(s) => s,
            Party::Responder(s) => s,
        }
    }
}

impl Harness {
    /// A session of `setup.role`; an initiator has queued its `Hello` in the outbox.
    pub fn new(setup: Setup) -> Harness {
        let max_peer_set_size = if setup.tight_limit {
            TIGHT_LIMIT
        } else {
            blindmatch_protocol::wire::MAX_SET_SIZE
        };
        let (party, rng, own_set, mode, session_id) = match setup.role {
            Role::Initiator => {
                let mut rng = StdRng::seed_from_u64(INITIATOR_SEED);
                let mut config = InitiatorConfig::new(
                    SESSION_ID,
                    CHANNEL_BINDING,
                    parties(Role::Initiator),
                    setup.mode,
                );
                config.dataset = "kp-2026".into();
                config.purpose = "fuzz".into();
                config.batch_size = 3;
                config.max_peer_set_size = max_peer_set_size;
                let set = initiator_set();
                let initiator = Initiator::new(config, set.clone(), signer(), &mut rng)
                    .expect("the fixed config is valid");
                let party = Party::Initiator(initiator);
                (party, rng, set, Some(setup.mode), Some(SESSION_ID))
            }
            Role::Responder => {
                let mut config = ResponderConfig::new(CHANNEL_BINDING, parties(Role::Responder));
                config.max_peer_set_size = max_peer_set_size;
                config.batch_size = 3;
                let responder = Responder::new(config, signer());
                let rng = StdRng::seed_from_u64(RESPONDER_SEED);
                (
                    Party::Responder(responder),
                    rng,
                    responder_set(),
                    None,
                    None,
                )
            }
        };
        let mut harness = Harness {
            setup,
            party,
            rng,
            own_set,
            mode,
            session_id,
            peer_declared: None,
            outbox: Vec::new(),
            frames_sent: 0,
            ended: false,
            our_finish: None,
            peer_finish: None,
            outcome: None,
            error: None,
        };
        harness.pump();
        harness
    }

    /// Feeds one frame from the peer, then answers events and drains our frames.
    pub fn deliver(&mut self, frame: &[u8]) {
        let session = self.party.session();
        if session.is_closed() {
            // F2 (fixed in d834947): the peer was told once; a further frame gets an
            // error and nothing on the wire.
            let result = session.handle_frame(frame);
            assert_eq!(
                result,
                Err(Error::PeerMisbehaved(PeerMisbehaved::AfterEnd)),
                "a closed session answered a further frame"
            );
            if let Some(extra) = session.poll_transmit() {
                panic!(
                    "a closed session sent {:?} for a further frame",
                    Message::decode(&extra)
                );
            }
            assert!(
                session.poll_event().is_none(),
                "a closed session raised an event"
            );
            return;
        }
        if let Ok(Message::Finish(finish)) = Message::decode(frame) {
            self.peer_finish = Some(finish.intersection);
        }
        match session.handle_frame(frame) {
            Ok(()) => {}
            Err(err) => {
                check_peer_error(&err, self.setup.role);
                assert!(
                    self.party.session().is_closed(),
                    "session still open after the error {err:?}"
                );
                self.error.get_or_insert(err);
            }
        }
        self.pump();
    }

    /// Frames sent since the last call.
    pub fn take_outbox(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbox)
    }

    /// The outcome, once the session completed.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The error that closed the session, if one did.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// Ends the run: aborts locally if the setup says so, then checks the final state.
    pub fn finish(mut self) -> Option<Outcome> {
        if self.setup.abort_at_end {
            let was_closed = self.party.session().is_closed();
            let frame = self.party.session().abort(CloseCode::CANCELLED);
            assert_eq!(frame.is_some(), !was_closed, "abort answers iff still open");
            assert!(self.party.session().is_closed(), "abort closes the session");
            if let Some(frame) = frame {
                assert_eq!(
                    Message::decode(&frame),
                    Ok(Message::Abort(CloseCode::CANCELLED))
                );
                self.on_own_frame(frame);
            }
        }
        self.pump();
        if let Some(outcome) = &self.outcome {
            assert_eq!(
                self.our_finish.map(|(transcript, _)| transcript),
                Some(outcome.transcript_hash),
                "the outcome's transcript hash is not the one in our Finish"
            );
            assert!(self.party.session().is_closed(), "completed but still open");
            let our_count = self.our_finish.and_then(|(_, count)| count);
            let peer_count = self
                .peer_finish
                .expect("completed without a Finish from the peer");
            assert_eq!(
                peer_count.is_some(),
                both_learn_count(outcome.mode),
                "completed in mode {} on a peer Finish carrying {peer_count:?}",
                outcome.mode
            );
            for count in [our_count, peer_count].into_iter().flatten() {
                assert_eq!(
                    outcome.intersection_size,
                    Some(count),
                    "the outcome's count is not the one in a Finish"
                );
            }
        }
        if self.party.session().is_closed() {
            assert!(self.party.session().poll_transmit().is_none());
            let after = self.party.session().handle_frame(&[7, 0, 0]);
            assert_eq!(after, Err(Error::PeerMisbehaved(PeerMisbehaved::AfterEnd)));
            assert!(
                self.party.session().poll_transmit().is_none(),
                "a closed session sent a frame for a further frame"
            );
        }
        self.outcome
    }

    fn pump(&mut self) {
        for _ in 0..MAX_STEPS_PER_PUMP {
            let mut moved = false;
            while let Some(event) = self.party.session().poll_event() {
                moved = true;
                self.on_event(event);
            }
            if let Some(frame) = self.party.session().poll_transmit() {
                moved = true;
                self.on_own_frame(frame);
            }
            if !moved {
                return;
            }
        }
        panic!("the session kept producing frames or events");
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::HelloReceived(hello) => {
                let Party::Responder(responder) = &mut self.party else {
                    panic!("an initiator saw HelloReceived");
                };
                assert!(self.mode.is_none(), "a second HelloReceived");
                assert!(
                    !self.setup.tight_limit || hello.set_size <= TIGHT_LIMIT,
                    "a Hello above max_peer_set_size was surfaced"
                );
                self.mode = Some(hello.mode);
                self.session_id = Some(hello.session_id);
                self.peer_declared = Some(hello.set_size);
                if self.setup.reject {
                    responder
                        .reject(RejectReason::DATASET_NOT_OFFERED, "dataset not offered")
                        .expect("a Hello is pending");
                } else {
                    responder
                        .accept(
                            self.own_set.clone(),
                            DatasetRef::new("kp-2026", [9; 16]),
                            &mut self.rng,
                        )
                        .expect("a Hello is pending");
                }
            }
            Event::Accepted(info) => {
                let peer_set_size = info.peer_set_size;
                assert_eq!(self.setup.role, Role::Initiator, "a responder saw Accepted");
                assert!(self.peer_declared.is_none(), "a second Accepted");
                assert!(!self.setup.tight_limit || peer_set_size <= TIGHT_LIMIT);
                self.peer_declared = Some(peer_set_size);
                if let Party::Initiator(initiator) = &mut self.party {
                    initiator.confirm().expect("an Accept is pending");
                }
            }
            Event::Completed(outcome) => {
                assert!(self.outcome.is_none(), "a second Completed");
                assert!(self.error.is_none(), "Completed after the session failed");
                self.check_outcome(&outcome);
                self.outcome = Some(*outcome);
            }
            Event::Failed(err) => {
                assert!(self.outcome.is_none(), "Failed after Completed");
                assert!(
                    matches!(err, Error::PeerMisbehaved(_)),
                    "Failed with a non-peer error {err:?}"
                );
                let _ = err.close_code();
                self.error.get_or_insert(err);
            }
            // PSI sessions raise no other event (index requests go to `ServerSession`).
            other => panic!("unexpected event {other:?}"),
        }
    }

    fn on_own_frame(&mut self, frame: Vec<u8>) {
        assert!(frame.len() <= MAX_FRAME_LEN, "we sent an oversized frame");
        let msg = Message::decode(&frame)
            .unwrap_or_else(|err| panic!("we sent a frame we cannot decode: {err}"));
        let name = msg.message_type().name();
        assert!(!self.ended, "we sent {name} after our Abort or Reject");
        if self.our_finish.is_some() {
            assert!(
                matches!(msg, Message::Abort(_)),
                "we sent {name} after our Finish"
            );
        }
        if self.frames_sent == 0 {
            let first_ok = match self.setup.role {
                Role::Initiator => matches!(msg, Message::Hello(_)),
                Role::Responder => matches!(
                    msg,
                    Message::Accept(_) | Message::Reject(_) | Message::Abort(_)
                ),
            };
            assert!(first_ok, "{:?} opened with {name}", self.setup.role);
        }
        match &msg {
            Message::Reblinded(_) => {
                let mode = self.mode.expect("mode known before any Reblinded");
                assert!(
                    learns_count(mode, self.setup.role.peer()),
                    "Reblinded sent to a peer that learns nothing in mode {mode}"
                );
            }
            Message::Finish(finish) => {
                let mode = self.mode.expect("mode known before our Finish");
                assert_eq!(
                    finish.intersection.is_some(),
                    both_learn_count(mode),
                    "our Finish in mode {mode} carries {:?}: a count goes only where both \
                     sides learn it",
                    finish.intersection
                );
                self.our_finish = Some((finish.transcript, finish.intersection));
            }
            Message::Abort(_) | Message::Reject(_) => self.ended = true,
            _ => {}
        }
        self.frames_sent += 1;
        self.outbox.push(frame);
    }

    fn check_outcome(&self, o: &Outcome) {
        let role = self.setup.role;
        let mode = self.mode.expect("mode known before completion");
        assert_eq!(o.role, role);
        assert_eq!(o.mode, mode);
        assert_eq!(Some(o.session_id), self.session_id);
        if mode == OutputMode::Cardinality {
            // Bundle slots: every record padded to the widest record's identifier count.
            let records = u64::from(self.own_set.record_count());
            assert!(o.own_set_size >= records && o.own_set_size % records == 0);
        } else {
            assert_eq!(o.own_set_size, self.own_set.len() as u64);
        }
        assert_eq!(Some(o.peer_set_size), self.peer_declared);
        assert_eq!(o.intersection_size.is_some(), learns_count(mode, role));
        if let Some(n) = o.intersection_size {
            assert!(
                n <= o.own_set_size.min(o.peer_set_size),
                "count {n} too large"
            );
        }
        assert_eq!(o.matches.is_some(), learns_records(mode, role));
        if let Some(matches) = &o.matches {
            for pair in matches.windows(2) {
                assert!(pair[0].record < pair[1].record, "matches not sorted");
            }
            for m in matches {
                assert!(m.record < self.own_set.record_count(), "unknown record");
                assert!(!m.kinds.is_empty(), "a match with no kind");
                assert!(m.kinds.is_subset(self.own_set.kinds()), "a kind we lack");
            }
        }
    }
}

/// A real initiator and responder run against each other through two harnesses, each
/// frame recorded: the frames the responder received replay as a complete session in
/// the `responder_session` target, and likewise for the initiator.
pub struct Recorded {
    /// Frames the initiator sent, in order.
    pub to_responder: Vec<Vec<u8>>,
    /// Frames the responder sent, in order.
    pub to_initiator: Vec<Vec<u8>>,
    /// The initiator's outcome.
    pub initiator: Option<Outcome>,
    /// The responder's outcome.
    pub responder: Option<Outcome>,
}

/// Runs a clean session in `mode` (rejected by the responder if `reject`).
pub fn record(mode: OutputMode, reject: bool) -> Recorded {
    let setup = |role| Setup {
        role,
        mode,
        reject,
        abort_at_end: false,
        tight_limit: false,
    };
    let mut a = Harness::new(setup(Role::Initiator));
    let mut b = Harness::new(setup(Role::Responder));
    let (mut to_responder, mut to_initiator) = (Vec::new(), Vec::new());
    loop {
        let from_a = a.take_outbox();
        let from_b = b.take_outbox();
        if from_a.is_empty() && from_b.is_empty() {
            break;
        }
        for frame in from_a {
            b.deliver(&frame);
            to_responder.push(frame);
        }
        for frame in from_b {
            a.deliver(&frame);
            to_initiator.push(frame);
        }
    }
    Recorded {
        to_responder,
        to_initiator,
        initiator: a.finish(),
        responder: b.finish(),
    }
}

/// Whether both sides may learn the intersection size in `mode`, so `Finish` carries it.
pub fn both_learn_count(mode: OutputMode) -> bool {
    learns_count(mode, Role::Initiator) && learns_count(mode, Role::Responder)
}

fn check_peer_error(err: &Error, role: Role) {
    let peer_fault = matches!(
        err,
        Error::InvalidMessage(_)
            | Error::PeerMisbehaved(_)
            | Error::PeerIncompatible(_)
            | Error::PeerAborted(_)
    ) || (role == Role::Initiator && matches!(err, Error::Refused { .. }));
    assert!(peer_fault, "peer bytes caused a non-peer error: {err:?}");
    let _ = err.close_code();
    assert!(!err.to_string().is_empty());
}

fn email(n: &Normaliser, raw: &str) -> Identifier {
    n.email(raw).expect("fixed email is valid")
}

fn phone(n: &Normaliser, raw: &str) -> Identifier {
    n.phone(raw).expect("fixed phone is valid")
}

fn prepare(records: &[Vec<Identifier>]) -> PreparedSet {
    let mut builder = PreparedSetBuilder::new();
    for (r, ids) in records.iter().enumerate() {
        for id in ids {
            builder.add(r as u32, id);
        }
    }
    builder.build()
}
