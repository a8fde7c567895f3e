//! `init`, `id`, `peer` and the `dataset` glue.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::admin;

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

pub fn init(data_dir: &Path, args: InitArgs) -> anyhow::Result<ExitCode> {
    let id = admin::init_node(data_dir, &args.name, args.listen)?;
    println!("initialised node `{}` in {}", args.name, data_dir.display());
    println!("fingerprint  {}", id.fingerprint);
    println!("audit key    {}", id.audit_key);
    println!();
    println!("Give the fingerprint and audit key to your partners (out of band, e.g. by phone");
    println!("or a signed email); each pins this node with:");
    println!(
        "  blindmatch peer add {} --addr <THIS-HOST>:{} --fingerprint {} --audit-key {}",
        args.name,
        args.listen.port(),
        id.fingerprint,
        id.audit_key
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

pub fn dataset(
    data_dir: &Path,
    cmd: crate::dataset::DatasetCommand,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    admin::dataset_command(data_dir, cmd, quiet).context("dataset command failed")?;
    Ok(ExitCode::SUCCESS)
}
