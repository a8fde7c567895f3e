//! Budgets anchored in the signed audit log.
//!
//! Every accepted session's `session_accepted` record names what it charged the peer
//! (`charged`; records written before that field existed charged the peer's declared set
//! size when this node was the responder). The ledger is only a fast index of those
//! charges. When the ledger is opened it is reconciled with the log: a missing ledger is
//! rebuilt from the log (deleting it resets nothing), and a ledger that holds less for
//! some peer than the log does was rolled back or replaced — an error that refuses every
//! session until `blindmatch policy rebuild-ledger` rebuilds it from the log. The ledger
//! may hold more than the log: it is written first, so a crash between the two writes
//! leaves a charge without its record, which only errs on the side of the budget.

use std::collections::BTreeMap;
use std::path::Path;

use blindmatch_protocol::audit::{AuditEvent, Role, read_records};

use super::ledger::{Carried, Charge};

/// The charges the audit log of `data_dir` records, in log order (none when there is
/// no log). Records the verifier would refuse are not this function's business: the
/// node verifies its log when it opens it.
pub fn log_charges(data_dir: &Path) -> Vec<Charge> {
    let Ok(bytes) = std::fs::read(data_dir.join(crate::audit::LOG_FILE)) else {
        return Vec::new();
    };
    let (records, _) = read_records(&bytes);
    let mut charges = Vec::new();
    for record in records {
        let Ok(Some(AuditEvent::SessionAccepted(facts))) = record.event() else {
            continue;
        };
        let identifiers = match (facts.charged, facts.role) {
            (Some(charged), _) => charged,
            (None, Role::Responder) => facts.peer_set_size.unwrap_or(0),
            (None, Role::Initiator) => continue,
        };
        let mut session = [0u8; 16];
        if hex::decode_to_slice(&facts.session_id, &mut session).is_err() {
            continue;
        }
        let at = humantime::parse_rfc3339(record.ts.as_str())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        charges.push(Charge {
            at,
            peer: facts.peer_fingerprint.clone(),
            session,
            identifiers,
        });
    }
    charges
}

/// All-time totals per peer of `charges`.
pub fn totals(charges: &[Charge]) -> BTreeMap<String, Carried> {
    let mut totals: BTreeMap<String, Carried> = BTreeMap::new();
    for charge in charges {
        let entry = totals.entry(charge.peer.clone()).or_default();
        entry.identifiers = entry.identifiers.saturating_add(charge.identifiers);
        entry.sessions += 1;
    }
    totals
}
