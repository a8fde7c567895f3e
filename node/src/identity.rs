//! identity (work in progress).
