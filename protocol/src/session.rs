//! session (work in progress).
