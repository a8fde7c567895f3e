//! Cross-checking two nodes' logs: do they tell the same story about their sessions?
//!
//! Each session is identified by the id the initiator chose, recorded by both sides. For
//! every id in both logs, the last final record (completed, aborted or refused) of each
//! side — or its last record, if the session never finished there — is compared: the two
//! parties (A's own fingerprint is B's peer fingerprint and vice versa, opposite roles),
//! dataset, purpose, legal basis, mode, protocol and normalisation versions, both set
//! sizes (A's own is B's peer size and vice versa, where known), intersection size (where
//! both know it), transcript hash (where both have one, and required when both completed)
//! and the outcome (one side completed while the other did not).
//!
//! Sessions that one log records with the other node as peer but the other log lacks are
//! listed too: a node that drops a session from its log shows up there.
//!
//! **Receipts.** A completed session's record holds the receipt the peer signed
//! ([`super::receipts`]). Each is checked against the other log: signed by that node's
//! audit key (from its `node_initialised` record), over the transcript that node recorded,
//! and naming a log head that the other log still holds, with the same hash. A node that
//! rewrote or truncated its log after signing is caught from its peer's log, even when
//! the session itself is gone from its own.
//!
//! Cross-checking reads records as they are: verify both logs first.

use std::collections::{BTreeMap, HashMap};

use super::event::{AuditEvent, SessionFacts};
use super::receipts;
use super::record::{Record, RecordHash, Timestamp};

/// Compares the sessions of two logs; see the module documentation.
pub fn cross_check(log_a: &[Record], log_b: &[Record]) -> CrossCheckReport {
    let (node_a, sessions_a) = index(log_a);
    let (node_b, sessions_b) = index(log_b);
    let hashes = |log: &[Record]| -> HashMap<u64, RecordHash> {
        log.iter().map(|r| (r.seq, r.hash)).collect()
    };
    let (side_a, side_b) = (
        Side {
            name: "A",
            node: node_a.as_ref(),
            hashes: hashes(log_a),
        },
        Side {
            name: "B",
            node: node_b.as_ref(),
            hashes: hashes(log_b),
        },
    );
    let mut report = CrossCheckReport {
        node_a: node_a.clone(),
        node_b: node_b.clone(),
        compared: Vec::new(),
        only_in_a: Vec::new(),
        only_in_b: Vec::new(),
        other_peers_a: 0,
        other_peers_b: 0,
        receipts_checked: 0,
    };
    for (id, a) in &sessions_a {
        match sessions_b.get(id) {
            Some(b) => {
                let mut disagreements = compare(a, b);
                for (holder, signer, facts) in [(a, &side_b, &b.facts), (b, &side_a, &a.facts)] {
                    if let Some(found) = check_receipt(holder, signer, Some(facts)) {
                        disagreements.extend(found);
                        report.receipts_checked += 1;
                    }
                }
                report.compared.push(SessionComparison {
                    session_id: id.clone(),
                    outcome_a: a.outcome.clone(),
                    outcome_b: b.outcome.clone(),
                    disagreements,
                });
            }
            None if involves(a, node_b.as_ref()) => {
                report
                    .only_in_a
                    .push(summary(id, a, &side_b, &mut report.receipts_checked));
            }
            None => report.other_peers_a += 1,
        }
    }
    for (id, b) in &sessions_b {
        if sessions_a.contains_key(id) {
            continue;
        }
        if involves(b, node_a.as_ref()) {
            report
                .only_in_b
                .push(summary(id, b, &side_a, &mut report.receipts_checked));
        } else {
            report.other_peers_b += 1;
        }
    }
    report
}

/// One log, as the other's receipts are checked against it.
struct Side<'a> {
    name: &'static str,
    node: Option<&'a NodeIdentity>,
    hashes: HashMap<u64, RecordHash>,
}

/// A session one log lacks, with what the other log's receipt says about it.
fn summary(id: &str, entry: &Entry, signer: &Side<'_>, checked: &mut u64) -> SessionSummary {
    let mut summary = entry.summary(id);
    if let Some(found) = check_receipt(entry, signer, None) {
        *checked += 1;
        summary.signed_by_peer = true;
        summary.receipt_problems = found
            .into_iter()
            .map(|d| format!("{}: {}", d.field, d.b))
            .collect();
    }
    summary
}

/// Checks the receipt `holder` stores, signed by `signer`'s node, against `signer`'s log
/// (and its record of the session, when it has one). `None` when there is no receipt.
fn check_receipt(
    holder: &Entry,
    signer: &Side<'_>,
    signer_facts: Option<&SessionFacts>,
) -> Option<Vec<Disagreement>> {
    let text = holder.facts.peer_receipt.as_ref()?;
    let field = |what: &str| format!("receipt signed by {} ({what})", signer.name);
    let mut out = Vec::new();
    let receipt = match receipts::decode(text) {
        Ok(receipt) => receipt,
        Err(err) => {
            out.push(Disagreement {
                field: field("decoding"),
                a: "stored".into(),
                b: err.to_string(),
            });
            return Some(out);
        }
    };
    let signer_key = hex::encode(receipt.signer_key);
    if let Some(node) = signer.node
        && !node.audit_key.eq_ignore_ascii_case(&signer_key)
    {
        out.push(Disagreement {
            field: field("audit key"),
            a: signer_key.clone(),
            b: format!("its log's audit key is {}", node.audit_key),
        });
    }
    if !receipt.signature_valid() {
        out.push(Disagreement {
            field: field("signature"),
            a: "stored".into(),
            b: "does not verify".into(),
        });
    }
    let head = receipt.log_head;
    match signer.hashes.get(&head.seq) {
        Some(hash) if hash.0 == head.hash => {}
        Some(hash) => out.push(Disagreement {
            field: field(&format!("log head, record {}", head.seq)),
            a: hex::encode(head.hash),
            b: format!(
                "its log holds {} there: rewritten after it signed",
                hex::encode(hash.0)
            ),
        }),
        None => out.push(Disagreement {
            field: field(&format!("log head, record {}", head.seq)),
            a: hex::encode(head.hash),
            b: "its log no longer reaches that record: truncated after it signed".into(),
        }),
    }
    if let Some(facts) = signer_facts
        && facts.transcript_hash.as_deref() != Some(hex::encode(receipt.transcript).as_str())
    {
        out.push(Disagreement {
            field: field("transcript"),
            a: hex::encode(receipt.transcript),
            b: facts
                .transcript_hash
                .clone()
                .unwrap_or_else(|| "(none)".into()),
        });
    }
    Some(out)
}

/// The outcome of [`cross_check`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CrossCheckReport {
    /// Log A's node, from its `node_initialised` record.
    pub node_a: Option<NodeIdentity>,
    /// Log B's node.
    pub node_b: Option<NodeIdentity>,
    /// Sessions present in both logs, in session id order.
    pub compared: Vec<SessionComparison>,
    /// Sessions in A with B as peer (or any peer, if B's identity is unknown) missing from B.
    pub only_in_a: Vec<SessionSummary>,
    /// Sessions in B with A as peer missing from A.
    pub only_in_b: Vec<SessionSummary>,
    /// Sessions in A with third parties (not expected in B).
    pub other_peers_a: u64,
    /// Sessions in B with third parties.
    pub other_peers_b: u64,
    /// Peers' receipts checked against the other log.
    pub receipts_checked: u64,
}

impl CrossCheckReport {
    /// True when every common session agrees and no session is missing from either log.
    pub fn agrees(&self) -> bool {
        self.only_in_a.is_empty()
            && self.only_in_b.is_empty()
            && self.compared.iter().all(|c| c.disagreements.is_empty())
    }

    /// The common sessions on which the logs disagree.
    pub fn disagreeing(&self) -> impl Iterator<Item = &SessionComparison> {
        self.compared.iter().filter(|c| !c.disagreements.is_empty())
    }
}

/// A node as named by its log's first record.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NodeIdentity {
    /// Node name.
    pub name: String,
    /// Certificate fingerprint.
    pub fingerprint: String,
    /// Audit public key (hex).
    pub audit_key: String,
}

/// One session found in both logs.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SessionComparison {
    /// The session id.
    pub session_id: String,
    /// Record type of A's last record of the session (e.g. `session_completed`).
    pub outcome_a: String,
    /// Same for B.
    pub outcome_b: String,
    /// Every field on which they differ; empty when they agree.
    pub disagreements: Vec<Disagreement>,
}

/// One field on which the two logs differ.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Disagreement {
    /// What is compared, e.g. `intersection_size` or `our_set_size (A) / peer_set_size (B)`.
    pub field: String,
    /// A's value.
    pub a: String,
    /// B's value.
    pub b: String,
}

/// A session found in one log only.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SessionSummary {
    /// The session id.
    pub session_id: String,
    /// Type of the last record of it.
    pub outcome: String,
    /// Its timestamp.
    pub ts: Timestamp,
    /// The peer's name as recorded.
    pub peer_name: String,
    /// The peer's fingerprint.
    pub peer_fingerprint: String,
    /// The log holds a receipt of it signed by the other node: proof that the other node
    /// took part, whose log lacks the session.
    pub signed_by_peer: bool,
    /// What did not check out in that receipt against the other log.
    pub receipt_problems: Vec<String>,
}

struct Entry {
    outcome: String,
    final_seen: bool,
    ts: Timestamp,
    facts: SessionFacts,
}

impl Entry {
    fn summary(&self, id: &str) -> SessionSummary {
        SessionSummary {
            session_id: id.to_owned(),
            outcome: self.outcome.clone(),
            ts: self.ts.clone(),
            peer_name: self.facts.peer_name.clone(),
            peer_fingerprint: self.facts.peer_fingerprint.clone(),
            signed_by_peer: false,
            receipt_problems: Vec::new(),
        }
    }
}

fn index(records: &[Record]) -> (Option<NodeIdentity>, BTreeMap<String, Entry>) {
    let mut node = None;
    let mut sessions: BTreeMap<String, Entry> = BTreeMap::new();
    for record in records {
        let Ok(Some(event)) = record.event() else {
            continue;
        };
        if let AuditEvent::NodeInitialised {
            name,
            fingerprint,
            audit_key,
        } = &event
        {
            node = Some(NodeIdentity {
                name: name.clone(),
                fingerprint: fingerprint.clone(),
                audit_key: audit_key.clone(),
            });
        }
        let Some(facts) = event.session() else {
            continue;
        };
        let is_final = event.is_session_final();
        let entry = Entry {
            outcome: record.record_type.clone(),
            final_seen: is_final,
            ts: record.ts.clone(),
            facts: facts.clone(),
        };
        match sessions.get_mut(&facts.session_id) {
            // A final record stays the representative unless a later final replaces it.
            Some(existing) if existing.final_seen && !is_final => {}
            Some(existing) => *existing = entry,
            None => {
                sessions.insert(facts.session_id.clone(), entry);
            }
        }
    }
    (node, sessions)
}

fn involves(entry: &Entry, other: Option<&NodeIdentity>) -> bool {
    other.is_none_or(|node| entry.facts.peer_fingerprint == node.fingerprint)
}

fn compare(a: &Entry, b: &Entry) -> Vec<Disagreement> {
    let mut out = Vec::new();
    let mut differ = |field: &str, va: String, vb: String| {
        if va != vb {
            out.push(Disagreement {
                field: field.to_owned(),
                a: va,
                b: vb,
            });
        }
    };
    let (fa, fb) = (&a.facts, &b.facts);
    let completed = |e: &Entry| e.outcome == "session_completed";
    if completed(a) != completed(b) {
        differ("outcome", a.outcome.clone(), b.outcome.clone());
    }
    if fa.role == fb.role {
        out.push(Disagreement {
            field: "role (must be opposite)".into(),
            a: fa.role.name().into(),
            b: fb.role.name().into(),
        });
    }
    let mut differ = |field: &str, va: String, vb: String| {
        if va != vb {
            out.push(Disagreement {
                field: field.to_owned(),
                a: va,
                b: vb,
            });
        }
    };
    differ(
        "our_fingerprint (A) / peer_fingerprint (B)",
        fa.our_fingerprint.clone(),
        fb.peer_fingerprint.clone(),
    );
    differ(
        "peer_fingerprint (A) / our_fingerprint (B)",
        fa.peer_fingerprint.clone(),
        fb.our_fingerprint.clone(),
    );
    differ("dataset", fa.dataset.clone(), fb.dataset.clone());
    let shown = |d: &Option<super::event::DatasetVersion>| {
        d.as_ref().map_or_else(
            || "(none)".to_owned(),
            |d| format!("{} @ {}", d.name, d.version),
        )
    };
    if fa.our_dataset.is_some() && fb.peer_dataset.is_some() {
        differ(
            "our_dataset (A) / peer_dataset (B)",
            shown(&fa.our_dataset),
            shown(&fb.peer_dataset),
        );
    }
    if fa.peer_dataset.is_some() && fb.our_dataset.is_some() {
        differ(
            "peer_dataset (A) / our_dataset (B)",
            shown(&fa.peer_dataset),
            shown(&fb.our_dataset),
        );
    }
    differ("purpose", fa.purpose.clone(), fb.purpose.clone());
    differ(
        "legal_basis",
        fa.legal_basis.clone(),
        fb.legal_basis.clone(),
    );
    differ("mode", fa.mode.clone(), fb.mode.clone());
    differ(
        "protocol_version",
        fa.protocol_version.to_string(),
        fb.protocol_version.to_string(),
    );
    differ(
        "normalisation_version",
        fa.normalisation_version.to_string(),
        fb.normalisation_version.to_string(),
    );
    if let Some(peer) = fb.peer_set_size {
        differ(
            "our_set_size (A) / peer_set_size (B)",
            fa.our_set_size.to_string(),
            peer.to_string(),
        );
    }
    if let Some(peer) = fa.peer_set_size {
        differ(
            "peer_set_size (A) / our_set_size (B)",
            peer.to_string(),
            fb.our_set_size.to_string(),
        );
    }
    if let (Some(ia), Some(ib)) = (fa.intersection_size, fb.intersection_size) {
        differ("intersection_size", ia.to_string(), ib.to_string());
    }
    match (&fa.transcript_hash, &fb.transcript_hash) {
        (Some(ta), Some(tb)) => differ("transcript_hash", ta.clone(), tb.clone()),
        (ta, tb) if completed(a) && completed(b) => differ(
            "transcript_hash (required once completed)",
            ta.clone().unwrap_or_else(|| "(none)".into()),
            tb.clone().unwrap_or_else(|| "(none)".into()),
        ),
        _ => {}
    }
    out
}
