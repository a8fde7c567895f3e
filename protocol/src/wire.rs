//! wire (work in progress).
