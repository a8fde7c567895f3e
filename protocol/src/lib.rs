//! Sans-IO core of blindmatch: private set intersection of contact lists over
//! ristretto255 (RFC 9496/9380), RFC 9497 OPRF/VOPRF with DLEQ proofs, the session state
//! machines, the wire format and the audit-log format.
//!
//! Pure and deterministic: no tokio, no sockets, no files, no clocks. Randomness is
//! injected by the caller. Each party of a session is a state machine
//! ([`session::Initiator`], [`session::Responder`]) that the caller feeds frames and
//! drains frames from; `examples/two_party_in_memory.rs` runs a whole session in memory.
//!
//! # Example: a verifiable OPRF evaluation (RFC 9497, mode 1)
//!
//! A client learns the keyed PRF of a normalised identifier without the server seeing
//! the identifier, and checks the server's proof that it used the key it published:
//!
//! ```
//! use blindmatch_protocol::ident::Normaliser;
//! use blindmatch_protocol::oprf;
//!
//! const VOPRF: u8 = 1;
//! // Server: a key pair (in practice from a random seed, kept secret).
//! let (secret, public) = oprf::derive_key_pair(VOPRF, &[7; 32], b"epoch 1")?;
//!
//! // Client: normalise the identifier (case, +86 formats, full-width digits) and blind it.
//! let phone = Normaliser::default().phone("+86 138-0013-8000").expect("a valid number");
//! let input = phone.as_bytes();
//! let blind = [3u8; 32]; // a random non-zero scalar in practice
//! let blinded = oprf::blind(VOPRF, input, &blind)?;
//!
//! // Server: evaluates the blinded element it cannot read, with a batched DLEQ proof.
//! let (evaluated, proof) = oprf::blind_evaluate(VOPRF, &secret, &[blinded], &[5; 32])?;
//!
//! // Client: verifies the proof against the public key, unblinds and hashes.
//! let outputs = oprf::finalize(
//!     VOPRF,
//!     Some(&public),
//!     &[input],
//!     &[blind],
//!     &[blinded],
//!     &evaluated,
//!     proof.as_ref(),
//! )?;
//! assert_eq!(outputs.len(), 1);
//!
//! // A server that evaluates under another key is caught.
//! let (other, _) = oprf::derive_key_pair(VOPRF, &[8; 32], b"epoch 1")?;
//! let (forged, forged_proof) = oprf::blind_evaluate(VOPRF, &other, &[blinded], &[5; 32])?;
//! let checked = oprf::finalize(
//!     VOPRF,
//!     Some(&public),
//!     &[input],
//!     &[blind],
//!     &[blinded],
//!     &forged,
//!     forged_proof.as_ref(),
//! );
//! assert!(checked.is_err());
//! # Ok::<(), blindmatch_protocol::Error>(())
//! ```

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
