//! `blindmatch match --via-index`: one index session as client. Fetches or refreshes the
//! peer's index into the cache (resuming a partial download), has our identifiers
//! evaluated in batches, verifies every proof, looks the results up in the cached copy and
//! writes the same result CSV and summary as a PSI match. The peer learns how many
//! identifiers we queried and nothing else.

use std::sync::Arc;
use std::time::Instant;

use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::index::{IndexClient, IndexClientConfig, IndexFacts};
use blindmatch_protocol::session::{Progress, Role};
use blindmatch_protocol::wire::{Hello, IndexHello, OutputMode};
use rand::Rng;

use super::{FileIndexStore, cache_path};
use crate::driver::{Driver, DriverOptions};
use crate::matching::{self, MatchRequest, MatchSummary, Prepared};
use crate::node::{FactsBuilder, Node, NodeError};
use crate::policy;
use crate::receipts::{self, NodeSigner};
use crate::results::{result_file_name, write_results};
use crate::transport::{self, FrameReader, FrameWriter};

/// What a match through an index reports: the usual summary and the index's facts.
#[derive(Clone, Debug)]
pub struct IndexMatchSummary {
    /// As for any match.
    pub summary: MatchSummary,
    /// The index matched against, and what of it was fetched.
    pub index: IndexFacts,
}

impl std::fmt::Display for IndexMatchSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{}", self.summary)?;
        let fetched = match (self.index.bytes, self.index.sent_from) {
            (0, _) => "the cached copy was current".to_owned(),
            (bytes, 0) => format!("fetched {:.1} MB", bytes as f64 / 1e6),
            (bytes, from) => format!(
                "fetched the last {:.1} MB (resumed at {:.1} MB)",
                bytes as f64 / 1e6,
                from as f64 / 1e6
            ),
        };
        write!(
            f,
            "index       epoch {}, {} identifiers, {:.1} MB; {fetched}",
            hex::encode(&self.index.epoch[..8]),
            self.index.elements,
            self.index.file_len as f64 / 1e6,
        )
    }
}

/// The policy-relevant facts of an `IndexHello`, as a `Hello` in `initiator` mode: an
/// index session is, for policy and the audit log, a session whose initiator learns its
/// matched records and whose responder learns nothing, with the queried identifiers as
/// the initiator's set. Every rule (offered dataset, modes, purpose, legal basis, size,
/// ratio, budgets, rate limits, replay) then applies to it unchanged.
pub fn policy_view(hello: &IndexHello) -> Hello {
    let mut view = Hello::new(
        hello.session_id,
        OutputMode::Initiator,
        hello.query_count,
        [0; 32],
    );
    view.dataset = hello.dataset.clone();
    view.purpose = hello.purpose.clone();
    view.legal_basis = hello.legal_basis.clone();
    view.kinds = hello.kinds;
    view.own_dataset = hello.own_dataset.clone();
    view
}

/// Runs one index session as client. On any failure no result file is left behind and
/// the aborted session is in the audit log; a partial download stays in the cache for
/// the next run to resume.
pub async fn run(
    node: Arc<Node>,
    request: MatchRequest,
    on_progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
) -> Result<IndexMatchSummary, NodeError> {
    let config = node.config();
    let peer = config
        .peer(&request.peer)
        .cloned()
        .ok_or_else(|| NodeError::UnknownPeer(request.peer.clone()))?;
    let prepared = matching::prepare(&node, &request.dataset).await?;
    let mut session_id = [0u8; 16];
    rand::rng().fill_bytes(&mut session_id);
    // Our policy, all of it known before we connect: the peer learns nothing about our
    // set (only how many identifiers we query), so nothing is charged, but the mode
    // must be one we run with this peer and the session counts towards its rate limit.
    let guard = matching::open_guard(&node)?;
    let admitted = policy::decide_as_initiator(&peer, OutputMode::Initiator, None).and_then(|_| {
        let policy_request = policy::Request {
            role: Role::Initiator,
            peer: &peer,
            mode: OutputMode::Initiator,
            session_id,
            peer_set_size: 0,
        };
        let active = guard.screen(&policy_request)?;
        guard.admit(&policy_request, prepared.set.len() as u64)?;
        Ok(active)
    });
    let _active = match admitted {
        Ok(active) => active,
        Err(refusal) => {
            let mut as_psi = request.clone();
            as_psi.mode = OutputMode::Initiator;
            return Err(matching::refused_before_connecting(
                &node, &peer, &as_psi, &prepared, session_id, None, refusal,
            ));
        }
    };
    let Prepared {
        set,
        reference: own_dataset,
        record_ids,
    } = prepared;
    let our_size = set.len() as u64;

    let addr = peer.addr.resolve(&peer.name).await?;
    let tuning = node.transport_tuning();
    let client = transport::client_endpoint(node.identity(), &tuning)?;
    let conn = transport::connect(&client, addr, peer.addr.host(), peer.fingerprint).await?;
    let binding = transport::channel_binding(&conn)?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| NodeError::Transport(transport::classify_connection_error(e, Some(addr))))?;

    let mut client_config =
        IndexClientConfig::new(session_id, binding, receipts::parties(&node, &peer));
    client_config.dataset = request.remote_dataset.clone();
    client_config.own_dataset = own_dataset.clone();
    client_config.purpose = request.purpose.clone();
    client_config.legal_basis = request.legal_basis.clone();
    let store = FileIndexStore::new(cache_path(
        node.data_dir(),
        &peer.fingerprint,
        &request.remote_dataset,
    ));
    let session = IndexClient::new(
        client_config,
        set,
        Box::new(store),
        NodeSigner::boxed(Arc::clone(&node)),
        &mut rand::rng(),
    )
    .map_err(|e| NodeError::Other(format!("cannot start the session: {e}")))?;
    let hello = session.hello().clone();
    let mut facts = FactsBuilder::new(
        Role::Initiator,
        node.identity().fingerprint(),
        peer.fingerprint,
        &peer.name,
        &policy_view(&hello),
        our_size,
    );
    facts
        .our_dataset(&own_dataset)
        .index_session(hello.held.as_ref().map(|held| &held.epoch), 0)
        .charged(0);
    node.record(AuditEvent::SessionRequested(facts.facts()))?;

    let started = Instant::now();
    let mut options = DriverOptions::new(config.limits.idle_timeout);
    options.on_progress = on_progress;
    options.cancel = Some(node.cancelled());
    let report = Driver::run(session, FrameReader(recv), FrameWriter(send), options).await;
    facts
        .traffic(report.bytes_sent, report.bytes_received, report.duration)
        .progress(&report.progress);
    let outcome = match report.result {
        Ok(outcome) => outcome,
        Err(err) => {
            transport::close(&conn, err.close_code(), "");
            facts.index_session(
                hello.held.as_ref().map(|held| &held.epoch),
                report.progress.index_bytes,
            );
            let event = AuditEvent::SessionAborted {
                facts: facts.facts(),
                close_code: u32::from(err.close_code().0),
                error: err.to_string(),
            };
            node.record_or_warn(event);
            client.shutdown().await;
            return Err(NodeError::Session(err));
        }
    };
    facts.outcome(&outcome);
    let index = outcome
        .index
        .ok_or_else(|| NodeError::Other("the index session reported no index".into()))?;
    facts.index(&index);
    transport::close(&conn, CloseCode::OK, "done");
    if let Err(err) = receipts::pin_on_first_use(&node, &peer.name, &outcome.peer_receipt) {
        tracing::warn!(error = %err, "could not pin the peer's audit key");
    }
    let matches = outcome.matches.clone().unwrap_or_default();
    let path = request.out.clone().unwrap_or_else(|| {
        node.results_dir()
            .join(result_file_name(&peer.name, &session_id))
    });
    if let Err(source) = write_results(&path, &matches, &|i| {
        record_ids.get(i as usize).map(str::to_owned)
    }) {
        node.record_or_warn(AuditEvent::SessionAborted {
            facts: facts.facts(),
            close_code: u32::from(CloseCode::INTERNAL.0),
            error: format!("results not stored: {source}"),
        });
        return Err(NodeError::Io {
            what: "writing results to",
            path,
            source,
        });
    }
    node.record(AuditEvent::SessionCompleted(facts.facts()))?;
    client.shutdown().await;
    Ok(IndexMatchSummary {
        summary: MatchSummary {
            session_id: hex::encode(session_id),
            our_size,
            our_records: record_ids.len(),
            their_size: outcome.peer_set_size,
            intersection: outcome.intersection_size,
            mode: outcome.mode,
            matched_records: outcome.matched_record_count,
            peer_audit_key: hex::encode(outcome.peer_receipt.signer_key),
            out: Some(path),
            duration: started.elapsed(),
            bytes_sent: report.bytes_sent,
            bytes_received: report.bytes_received,
            transcript_hash: hex::encode(outcome.transcript_hash),
        },
        index,
    })
}
