//! group (work in progress).
