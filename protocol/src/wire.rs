//! Versioned messages and the frame codec (work in progress).

use std::fmt;

/// Why a responder refused a session. An integer newtype: unknown codes are
/// representable and shown as such; a code point is never reused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RejectReason(pub u16);

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reason {}", self.0)
    }
}
