//! transcript (work in progress).
