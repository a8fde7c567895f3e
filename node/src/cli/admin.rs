//! `init`, `id`, `peer` and the `dataset` glue.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::admin;
use crate::config::{AllowedMode, PeerAddr, PeerConfig};
use crate::identity::Fingerprint;

/// `blindmatch init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// This node's name, shown to operators (letters, digits, `.`, `_`, `-`).
    #[arg(long)]
    pub name: String,
    /// UDP address `serve` listens on.
    #[arg(long, default_value = admin::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
}

/// `blindmatch id`.
#[derive(Args, Debug)]
pub struct IdArgs {
    /// Print as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `blindmatch peer ...`.
#[derive(Subcommand, Debug)]
pub enum PeerCommand {
    /// Pin a partner node by its certificate fingerprint (from its `blindmatch id`).
    Add {
        /// Local name for the peer.
        name: String,
        /// Where its `serve` listens: HOST:PORT.
        #[arg(long)]
        addr: PeerAddr,
        /// Its certificate fingerprint: 64 hex digits (from `blindmatch id` on its node).
        #[arg(long)]
        fingerprint: Fingerprint,
        /// One of our datasets this peer may match against (repeat for several).
        #[arg(long = "offer", value_name = "DATASET")]
        offers: Vec<String>,
        /// Output modes this peer may ask for (repeat; default: all four).
        #[arg(long = "mode", value_name = "MODE")]
        modes: Vec<AllowedMode>,
        /// Largest set this peer may send in one session.
        #[arg(long)]
        max_peer_set_size: Option<u64>,
    },
    /// List pinned peers: name, address, fingerprint, offered datasets, modes.
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Unpin a peer: it can no longer connect or be matched with.
    Remove {
        /// The peer's local name.
        name: String,
    },
}

pub fn init(data_dir: &Path, args: InitArgs) -> anyhow::Result<ExitCode> {
    let id = admin::init_node(data_dir, &args.name, args.listen)?;
    println!("initialised node `{}` in {}", args.name, data_dir.display());
    println!("fingerprint  {}", id.fingerprint);
    println!("audit key    {}", id.audit_key);
    println!();
    println!("Give the fingerprint to your partners so they can pin this node:");
    println!(
        "  blindmatch peer add <YOUR-NAME> --addr <THIS-HOST>:{} --fingerprint {}",
        args.listen.port(),
        id.fingerprint
    );
    Ok(ExitCode::SUCCESS)
}

pub fn id(data_dir: &Path, args: IdArgs) -> anyhow::Result<ExitCode> {
    let id = admin::node_id(data_dir)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&id)?);
    } else {
        println!("name         {}", id.name);
        println!("listen       {}", id.listen);
        println!("fingerprint  {}", id.fingerprint);
        println!("audit key    {}", id.audit_key);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn peer(data_dir: &Path, cmd: PeerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PeerCommand::Add {
            name,
            addr,
            fingerprint,
            offers,
            modes,
            max_peer_set_size,
        } => {
            let peer = admin::add_peer(
                data_dir,
                PeerConfig::new(&name, addr, fingerprint)
                    .offering(offers)
                    .with_modes(modes)
                    .with_max_peer_set_size(max_peer_set_size),
            )?;
            println!(
                "pinned peer `{}` at {} ({})",
                peer.name, peer.addr, peer.fingerprint
            );
            if peer.offers.is_empty() {
                println!(
                    "it may match against none of our datasets (add --offer DATASET to allow)"
                );
            } else {
                println!("it may match against: {}", peer.offers.join(", "));
            }
        }
        PeerCommand::List { json } => {
            let config = crate::config::NodeConfig::load(data_dir)?;
            if json {
                let peers: Vec<serde_json::Value> = config
                    .peers()
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "name": p.name,
                            "addr": p.addr.to_string(),
                            "fingerprint": p.fingerprint.to_string(),
                            "offers": p.offers,
                            "modes": p.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                            "max_peer_set_size": p.max_peer_set_size,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&peers)?);
            } else if config.peers().is_empty() {
                println!(
                    "no peers; add one with `blindmatch peer add NAME --addr HOST:PORT --fingerprint FP`"
                );
            } else {
                for p in config.peers() {
                    let modes: Vec<&str> = p.modes.iter().map(|m| m.as_str()).collect();
                    println!(
                        "{}\n  addr         {}\n  fingerprint  {}\n  offers       {}\n  modes        {}",
                        p.name,
                        p.addr,
                        p.fingerprint,
                        if p.offers.is_empty() {
                            "-".to_owned()
                        } else {
                            p.offers.join(", ")
                        },
                        if modes.is_empty() {
                            "-".to_owned()
                        } else {
                            modes.join(", ")
                        }
                    );
                }
            }
        }
        PeerCommand::Remove { name } => {
            let removed = admin::remove_peer(data_dir, &name)?;
            println!("removed peer `{}` ({})", removed.name, removed.fingerprint);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn dataset(
    data_dir: &Path,
    cmd: crate::dataset::DatasetCommand,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    admin::dataset_command(data_dir, cmd, quiet).context("dataset command failed")?;
    Ok(ExitCode::SUCCESS)
}
