//! The server's steps of the policy sequence (`policy::admission`): the cheap checks on
//! `Hello` (no dataset load), then the dataset, the ratio and the charge.

use std::sync::Arc;

use blindmatch_protocol::session::{PreparedSet, Role};
use blindmatch_protocol::wire::{DatasetRef, Hello, RejectReason};
use tracing::{info, warn};

use super::Limiters;
use crate::config::{PeerConfig, PeerPolicy};
use crate::dataset::{Dataset, RecordIds};
use crate::identity::Fingerprint;
use crate::node::Node;
use crate::policy::{self, ActiveSession, Refusal};

/// An accepted session: what it holds until it ends, and the set it matches.
pub(super) struct Accepted {
    pub(super) permit: tokio::sync::OwnedSemaphorePermit,
    pub(super) active: ActiveSession,
    pub(super) record_ids: Arc<RecordIds>,
    pub(super) set: PreparedSet,
    pub(super) dataset: DatasetRef,
    pub(super) policy: PeerPolicy,
    pub(super) charged: u64,
}

/// A session past the cheap checks, holding its places until admitted or refused.
pub(super) struct Screened {
    pub(super) peer: PeerConfig,
    pub(super) dataset: String,
    pub(super) permit: tokio::sync::OwnedSemaphorePermit,
    pub(super) active: ActiveSession,
}

/// Steps 1–2 of the policy sequence (see `policy::admission`), plus the node-wide cap and
/// a ratio check against an upper bound of our set read from the dataset's header: no
/// dataset is loaded for a session refused here.
pub(super) fn screen(
    node: &Arc<Node>,
    peer_fp: &Fingerprint,
    hello: &Hello,
    limiters: &Limiters,
) -> Result<Screened, Refusal> {
    let config = node.config();
    let Some(peer) = config.peer_by_fingerprint(peer_fp).cloned() else {
        return Err(Refusal::new(
            RejectReason::UNKNOWN_PEER,
            "this node no longer knows you".into(),
        ));
    };
    let dataset = policy::decide(&peer, hello)?;
    let request = request(&peer, hello);
    let active = limiters.guard.screen(&request)?;
    let permit = Arc::clone(&limiters.permits)
        .try_acquire_owned()
        .map_err(|_| {
            Refusal::new(
                RejectReason::BUSY,
                "the node is serving its maximum number of sessions; try again shortly".into(),
            )
        })?;
    if let Ok(meta) = Dataset::read_meta(node.data_dir(), &dataset) {
        // The eligible set is at most every stored identifier.
        policy::check_ratio(
            &peer.policy,
            Role::Responder,
            hello.set_size,
            meta.counts.identifiers,
        )?;
    }
    Ok(Screened {
        peer,
        dataset,
        permit,
        active,
    })
}

/// Steps 3–4: loads the dataset and prepares the records its policy keeps, then checks
/// the ratio against it and charges the session. A refusal carries a reason the peer
/// sees.
pub(super) async fn admit(
    node: &Arc<Node>,
    screened: Screened,
    hello: &Hello,
    limiters: &Limiters,
) -> Result<Accepted, Refusal> {
    let Screened {
        peer,
        dataset: name,
        permit,
        active,
    } = screened;
    let data_dir = node.data_dir().to_path_buf();
    let dataset_policy = node.config().dataset_policy(&name);
    let loaded = tokio::task::spawn_blocking(move || {
        Dataset::load(&data_dir, &name).map(|dataset| {
            let (set, eligibility) = policy::eligible_set(&dataset, &dataset_policy);
            let reference = DatasetRef::new(&name, dataset.meta().version_bytes());
            // Only the record ids are needed from here on (to name matched records).
            (dataset.into_record_ids(), set, eligibility, reference)
        })
    })
    .await;
    let (record_ids, set, eligibility, dataset) = match loaded {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(err)) => {
            warn!(error = %err, "offered dataset cannot be loaded");
            return Err(Refusal::new(
                RejectReason::INTERNAL,
                "the offered dataset is not available on this node; ask its operator".into(),
            ));
        }
        Err(_) => {
            return Err(Refusal::new(
                RejectReason::INTERNAL,
                "internal error".into(),
            ));
        }
    };
    if let Some(summary) = eligibility.summary() {
        info!(kept = eligibility.kept, "dataset policy: {summary}");
    }
    let request = request(&peer, hello);
    limiters.guard.admit(&request, set.len() as u64)?;
    Ok(Accepted {
        permit,
        active,
        record_ids: Arc::new(record_ids),
        set,
        dataset,
        charged: request.charge(),
        policy: peer.policy,
    })
}

/// The policy's view of the session `hello` asks for.
pub(super) fn request<'a>(peer: &'a PeerConfig, hello: &Hello) -> policy::Request<'a> {
    policy::Request {
        role: Role::Responder,
        peer,
        mode: hello.mode,
        session_id: hello.session_id,
        peer_set_size: hello.set_size,
    }
}
