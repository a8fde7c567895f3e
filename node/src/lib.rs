//! The blindmatch node: the only crate that knows about QUIC, files and time.
//!
//! Each module owns one job; `driver` is the only glue between the sans-IO protocol
//! sessions and the network.

pub mod audit;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod driver;
pub mod identity;
pub mod transport;
