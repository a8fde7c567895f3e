//! The one policy sequence every session goes through, in either role.
//!
//! Our node decides on a session once it knows what the peer asks (as responder, on its
//! `Hello`; as initiator, on its `Accept`), before it blinds anything. The steps, in
//! order, refusing at the first that fails:
//!
//! 1. The rules of `node.toml` for this peer and role ([`super::rules`]): as responder the
//!    offered dataset, the modes it may ask for (`modes`), purpose, legal basis; as
//!    initiator the modes we may use with it (`match_modes`); in both roles the cap on
//!    its set size (`max_peer_set_size`).
//! 2. [`PolicyGuard::screen`]: replay (a session id accepted before), the peer's
//!    concurrent sessions, then its budgets and rate limit, without charging.
//! 3. (Responder) the offered dataset is loaded and prepared; the server's node-wide
//!    session cap is taken.
//! 4. [`PolicyGuard::admit`]: the ratio of the peer's set to ours (`max_set_ratio`), then,
//!    under the ledger lock every process of the node takes, replay, budgets and rate
//!    limit again and the charge, written durably.
//!
//! **What is charged** is what the peer may learn about our set: the number of its
//! elements we answer, in the modes where we answer them (`both`; `initiator` as
//! responder, `responder` as initiator; and `cardinality`, which against a malicious
//! peer leaks as much as `initiator`, see SECURITY.md). A session in which the peer
//! learns nothing is charged nothing but still counts against the rate limit. Budgets
//! (`max_identifiers_per_day`, `max_identifiers_total`) and `max_sessions_per_hour` are
//! per peer, across both directions.

use std::sync::Arc;

use blindmatch_protocol::session::{Role, learns_count};
use blindmatch_protocol::wire::OutputMode;

use super::{ActiveSession, PolicyGuard, Refusal, check_ratio};
use crate::config::PeerConfig;

/// A session as the policy sees it.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// Our role in it.
    pub role: Role,
    /// The peer, as configured.
    pub peer: &'a PeerConfig,
    /// The output mode.
    pub mode: OutputMode,
    /// The session id.
    pub session_id: [u8; 16],
    /// Elements the peer declared it sends.
    pub peer_set_size: u64,
}

impl Request<'_> {
    /// Identifiers charged: the peer's elements we answer, if it learns from them.
    pub fn charge(&self) -> u64 {
        if learns_count(self.mode, self.role.peer()) {
            self.peer_set_size
        } else {
            0
        }
    }
}

impl PolicyGuard {
    /// Step 2: replay, concurrency, budgets and rate limit, without charging. The
    /// returned guard counts the session as running until dropped.
    pub fn screen(self: &Arc<Self>, request: &Request<'_>) -> Result<ActiveSession, Refusal> {
        self.check_replay(&request.session_id)?;
        let active = self.enter(request.peer)?;
        self.precheck(request.peer, request.charge())?;
        Ok(active)
    }

    /// Step 4: the ratio against `own_set_size`, then the durable charge. As initiator
    /// the ratio applies only when the peer learns from our answers: in `initiator` mode a
    /// provider's large set costs us CPU, not data.
    pub fn admit(&self, request: &Request<'_>, own_set_size: u64) -> Result<(), Refusal> {
        if request.role == Role::Responder || request.charge() > 0 {
            check_ratio(
                &request.peer.policy,
                request.role,
                request.peer_set_size,
                own_set_size,
            )?;
        }
        self.charge(request.peer, request.session_id, request.charge())
    }
}
