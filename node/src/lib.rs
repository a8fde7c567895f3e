//! The blindmatch node: the only crate that knows about QUIC, files and time.
//!
//! Each module owns one job; `driver` is the only glue between the sans-IO protocol
//! sessions and the network.

pub mod admin;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod driver;
pub(crate) mod files;
pub mod identity;
pub mod index;
pub mod matching;
pub mod node;
pub mod policy;
pub mod receipts;
pub mod results;
pub mod server;
pub mod synth;
pub mod transport;
