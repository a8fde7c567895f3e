//! ident (work in progress).
