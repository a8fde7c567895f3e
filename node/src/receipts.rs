//! The node's side of session receipts: signing ours with the audit key over the audit
//! log's current head, naming the session's parties as TLS authenticated them, and
//! pinning a peer's audit key from its first verified receipt (trust on first use) when
//! the operator did not pin one with `peer add --audit-key`.

use std::sync::Arc;

use blindmatch_protocol::audit::AuditEvent;
use blindmatch_protocol::session::{Parties, ReceiptSigner};
use blindmatch_protocol::wire::{LogHead, Receipt};
use ed25519_dalek::Signer;

use crate::config::PeerConfig;
use crate::identity::AuditKey;
use crate::node::{Node, NodeError};

/// Signs this node's receipts with its audit key; the head is read at signing time.
pub struct NodeSigner {
    node: Arc<Node>,
}

impl NodeSigner {
    /// A signer for `node`.
    pub fn boxed(node: Arc<Node>) -> Box<dyn ReceiptSigner> {
        Box::new(Self { node })
    }
}

impl ReceiptSigner for NodeSigner {
    fn public_key(&self) -> [u8; 32] {
        self.node.identity().audit_key().verifying_key().to_bytes()
    }

    fn log_head(&self) -> LogHead {
        let head = self.node.audit_head();
        LogHead {
            seq: head.count.saturating_sub(1),
            hash: head.head_hash.0,
        }
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.node.identity().audit_key().sign(message).to_bytes()
    }
}

/// The parties of a session with `peer`, as this node pinned it.
pub fn parties(node: &Node, peer: &PeerConfig) -> Parties {
    Parties {
        own_fingerprint: node.identity().fingerprint().0,
        peer_fingerprint: peer.fingerprint.0,
        peer_audit_key: peer.audit_key.map(|key| key.0),
    }
}

/// Pins the audit key `receipt` was signed with for peer `name`, if none is pinned yet:
/// saved in `node.toml` and recorded in the audit log. Later receipts must verify under
/// it. Returns the key when it was pinned now.
pub fn pin_on_first_use(
    node: &Node,
    name: &str,
    receipt: &Receipt,
) -> Result<Option<AuditKey>, NodeError> {
    let key = AuditKey(receipt.signer_key);
    let pinned = node.update_config(|config| {
        let peer = config.peer_mut(name)?;
        if peer.audit_key.is_some() {
            return None;
        }
        peer.audit_key = Some(key);
        Some(peer.fingerprint)
    })?;
    let Some(fingerprint) = pinned else {
        return Ok(None);
    };
    node.record(AuditEvent::PeerAuditKeyPinned {
        name: name.to_owned(),
        fingerprint: fingerprint.to_string(),
        audit_key: key.to_string(),
        source: "first-session".into(),
    })?;
    Ok(Some(key))
}
