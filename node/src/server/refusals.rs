//! `session_refused` records, coalesced per peer and reason by [`Coalescer`]: a peer
//! sending refused `Hello`s in a loop costs at most one audit record per reason per
//! interval (the first at once, then one counting the rest), never two fsynced records
//! per attempt. Refusals are decided on cheap checks first (no dataset load), so a
//! flood of them costs little CPU too.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blindmatch_protocol::audit::{AuditEvent, SessionFacts};
use blindmatch_protocol::wire::RejectReason;

use crate::audit::{Coalesced, Coalescer};
use crate::identity::Fingerprint;
use crate::node::Node;

type Key = (Fingerprint, RejectReason);
/// The latest refused session's facts and the reason text.
type Latest = (SessionFacts, String);

/// Records refused sessions, coalesced per peer and reason.
pub(super) struct RefusalLog {
    node: Arc<Node>,
    coalescer: Mutex<Coalescer<Key, Latest>>,
}

impl RefusalLog {
    /// A log allowing one record per peer and reason per `interval`.
    pub(super) fn new(node: Arc<Node>, interval: Duration) -> Self {
        Self {
            node,
            coalescer: Mutex::new(Coalescer::new(interval)),
        }
    }

    /// Notes one refusal; records it unless its peer and reason already have a record
    /// within the interval.
    pub(super) fn note(
        &self,
        peer: Fingerprint,
        reason: RejectReason,
        facts: SessionFacts,
        text: String,
    ) {
        let now = Instant::now();
        let due = self.with_coalescer(|c| c.note((peer, reason), (facts, text), now));
        if let Some(due) = due {
            self.record(due);
        }
    }

    /// Records the counts whose interval has passed.
    pub(super) fn record_due(&self, now: Instant) {
        for due in self.with_coalescer(|c| c.due(now)) {
            self.record(due);
        }
    }

    /// Records every count not yet recorded (at shutdown).
    pub(super) fn record_pending(&self) {
        for due in self.with_coalescer(Coalescer::drain) {
            self.record(due);
        }
    }

    fn with_coalescer<T>(&self, f: impl FnOnce(&mut Coalescer<Key, Latest>) -> T) -> T {
        match self.coalescer.lock() {
            Ok(mut coalescer) => f(&mut coalescer),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn record(&self, due: Coalesced<Key, Latest>) {
        let Coalesced {
            key: (_, reason),
            latest: (facts, text),
            count,
        } = due;
        self.node.record_or_warn(AuditEvent::SessionRefused {
            facts,
            reason: format!("{}: {text}", reason.name()),
            attempts: count,
        });
    }
}
