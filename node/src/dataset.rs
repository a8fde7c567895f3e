//! dataset (work in progress).
