//! driver (work in progress).
