//! Sans-IO core of blindmatch.
//!
//! Pure and deterministic: no tokio, no sockets, no files, no clocks. Randomness is
//! injected by the caller.

pub mod audit;
pub mod error;
pub mod group;
pub mod ident;
pub mod index;
pub mod oprf;
pub mod session;
pub mod transcript;
pub mod wire;

pub use error::Error;
