//! Who may match which dataset, in which mode, with how large a set: decided on
//! `Hello`, before any blinding happens.

use blindmatch_protocol::wire::{Hello, OutputMode, RejectReason};

use crate::config::{AllowedMode, PeerConfig};

/// A refusal the initiator sees: a reason code and a sentence it can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// What the initiator's user can do about it.
    pub text: String,
}

impl Refusal {
    fn new(reason: RejectReason, text: String) -> Self {
        Self { reason, text }
    }
}

/// The config's name for a wire output mode.
pub fn allowed_mode(mode: OutputMode) -> AllowedMode {
    match mode {
        OutputMode::Both => AllowedMode::Both,
        OutputMode::Initiator => AllowedMode::Initiator,
        OutputMode::Responder => AllowedMode::Responder,
        OutputMode::Cardinality => AllowedMode::Cardinality,
    }
}

/// Decides a session request from `peer`. On success returns the dataset to match.
pub fn decide(peer: &PeerConfig, hello: &Hello) -> Result<String, Refusal> {
    let dataset = if hello.dataset.is_empty() {
        match peer.offers.as_slice() {
            [only] => only.clone(),
            [] => {
                return Err(Refusal::new(
                    RejectReason::DATASET_NOT_OFFERED,
                    "this node offers you no dataset; ask its operator to run `blindmatch peer add ... --offer DATASET`".into(),
                ));
            }
            many => {
                return Err(Refusal::new(
                    RejectReason::DATASET_NOT_OFFERED,
                    format!(
                        "name the dataset to match (--remote-dataset); offered to you: {}",
                        many.join(", ")
                    ),
                ));
            }
        }
    } else if peer.offers(&hello.dataset) {
        hello.dataset.clone()
    } else {
        return Err(Refusal::new(
            RejectReason::DATASET_NOT_OFFERED,
            format!(
                "dataset `{}` is not offered to you; offered: {}",
                hello.dataset,
                if peer.offers.is_empty() {
                    "none".to_owned()
                } else {
                    peer.offers.join(", ")
                }
            ),
        ));
    };
    if !peer.allows_mode(allowed_mode(hello.mode)) {
        let allowed: Vec<&str> = peer.modes.iter().map(|m| m.as_str()).collect();
        return Err(Refusal::new(
            RejectReason::MODE_NOT_ALLOWED,
            format!(
                "output mode `{}` is not allowed for you; allowed: {}",
                hello.mode,
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            ),
        ));
    }
    if let Some(max) = peer.max_peer_set_size
        && hello.set_size > max
    {
        return Err(Refusal::new(
            RejectReason::SET_TOO_LARGE,
            format!(
                "your set of {} identifiers exceeds the limit of {max} for you",
                hello.set_size
            ),
        ));
    }
    Ok(dataset)
}
