//! The blindmatch node: the only crate that knows about QUIC, files and time.

pub mod cli;
