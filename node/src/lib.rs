//! The blindmatch node: the only crate that knows about QUIC, files and time.
//!
//! Each module owns one job; `driver` is the only glue between the sans-IO protocol
//! sessions and the network. [`admin`] holds what the `init`, `peer` and `dataset`
//! commands do, [`server`] what `serve` runs, [`matching`] what `match` runs.
//! `examples/quic_two_vendors.rs` runs two nodes over QUIC in one process.
//!
//! # Example: a node, a dataset and a peer, as `init`, `dataset import` and `peer add`
//!
//! ```
//! use blindmatch_node::admin;
//! use blindmatch_node::config::{AllowedMode, NodeConfig, PeerAddr, PeerConfig};
//! use blindmatch_node::dataset::ImportOptions;
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let data = dir.path().join("datahub");
//! // A TLS identity, an audit key, node.toml and the first audit record.
//! let id = admin::init_node(&data, "datahub", "127.0.0.1:7447".parse()?)?;
//! assert_eq!(id.fingerprint.len(), 64);
//!
//! // Normalised, deduplicated, stored; the import is audited with a keyed hash of the
//! // file, never its contents.
//! let csv = dir.path().join("kp.csv");
//! std::fs::write(&csv, "id,email,mobile\nkp-1,Zhang.Wei@Example.CN,+86 138 0013 8000\n")?;
//! let mut import = ImportOptions::new(&csv, "kp-2026");
//! import.id_col = Some("id".into());
//! import.email_cols = vec!["email".into()];
//! import.phone_cols = vec!["mobile".into()];
//! import.quiet = true;
//! let report = admin::import_dataset(&data, &import)?;
//! assert_eq!(report.accepted, 1);
//!
//! // A partner pinned by its certificate fingerprint, offered the dataset in mode
//! // `initiator` only (it learns its matched records, we learn nothing).
//! let partner = PeerConfig::new(
//!     "acme",
//!     PeerAddr::from("127.0.0.1:7448".parse::<std::net::SocketAddr>()?),
//!     "ab".repeat(32).parse()?,
//! )
//! .offering(["kp-2026"])
//! .with_modes([AllowedMode::Initiator]);
//! admin::add_peer(&data, partner)?;
//!
//! let config = NodeConfig::load(&data)?;
//! let acme = config.peer("acme").expect("pinned");
//! assert!(acme.allows_mode(AllowedMode::Initiator) && !acme.allows_mode(AllowedMode::Both));
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod audit;
#[cfg(feature = "tools")]
pub mod bench;
pub mod cli;
pub mod config;
pub mod dataset;
#[cfg(feature = "tools")]
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
#[cfg(feature = "tools")]
pub mod synth;
pub mod transport;
