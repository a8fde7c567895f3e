//! `blindmatch dataset …`: the clap commands and what they print.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{
    DatasetError, ImportOptions, ImportReport, InputEncoding, RevokeReport, import, list, remove,
    revoke,
};

/// Manage the datasets (contact lists) stored on this node.
// Parsed once per process: the size of the `Import` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum DatasetCommand {
    /// Import a CSV file as a named dataset, replacing any dataset of that name.
    ///
    /// The file needs a header row. Every identifier is normalised (emails lowercased,
    /// phone numbers to E.164, full-width characters folded); invalid values and rows
    /// are skipped and listed, with row, column and reason but never the value, in
    /// `datasets/NAME.rejects.csv` in the data directory. A row whose record id was
    /// already imported is a duplicate and is dropped (the first row wins). If the
    /// import fails, the dataset stored before under that name is left untouched.
    Import(ImportArgs),
    /// List the stored datasets with their record counts.
    List {
        /// Print JSON (one array of dataset metadata) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a stored dataset, its rejects report, and its index and index key.
    Remove {
        /// The dataset's name.
        #[arg(value_name = "NAME")]
        name: String,
    },
    /// Build or update the dataset's index for index-mode matching (`match --via-index`).
    ///
    /// Evaluates a keyed OPRF (RFC 9497 VOPRF, ristretto255-SHA512) over every identifier
    /// of the records the dataset's policy keeps, on all cores, and writes a compact index
    /// signed with this node's audit key (under 7 bytes per identifier) that peers offered
    /// the dataset may download. The key stays on this node; peers have their own
    /// identifiers evaluated through it per session, within their budgets. When
    /// identifiers were only added since the last build, they go into a delta segment
    /// under the same key (peers fetch only that); otherwise a new epoch starts with a
    /// fresh key, and every copy of the old index stops matching anything.
    Index {
        /// The dataset's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Start a new epoch with a fresh key even if a delta would do.
        #[arg(long)]
        rotate: bool,
    },
    /// Remove records whose consent was withdrawn: they are left out of every future
    /// session. The dataset is rewritten atomically without them; if it has an index, a
    /// new index epoch with a fresh key is built, so no copy of the old index matches
    /// the revoked records (or anything else) any more.
    Revoke {
        /// The dataset's name.
        #[arg(value_name = "NAME")]
        name: String,
        /// Text file of record ids (as in results), one per line; blank lines, `#`
        /// comments and a first line `id` are skipped.
        #[arg(long, value_name = "FILE")]
        ids: PathBuf,
    },
    /// Print the keyed hash (`input_hmac`) the audit log records for a file imported
    /// by this node, to check which file a `dataset_imported` record was made from.
    /// Only this node can compute it: it is keyed by its audit key.
    FileMac {
        /// The file to hash (as given to `dataset import`).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

/// Arguments of `blindmatch dataset import`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("identifier_columns")
        .required(true)
        .multiple(true)
        .args(["email_cols", "phone_cols", "name_col", "custom_cols"])
))]
pub struct ImportArgs {
    /// The CSV file to import (comma-separated, with a header row).
    #[arg(value_name = "FILE.csv")]
    pub file: PathBuf,
    /// Name of the dataset: 1-64 letters, digits, `-`, `_`, `.`.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Column holding the record id reported in match results (default: the row
    /// number, 1 = first row after the header).
    #[arg(long, value_name = "COLUMN")]
    pub id_col: Option<String>,
    /// Column holding email addresses; repeat for several columns.
    #[arg(long = "email-col", value_name = "COLUMN")]
    pub email_cols: Vec<String>,
    /// Column holding phone numbers; repeat for several columns. Numbers without `+`
    /// or `00` are read in `--region`.
    #[arg(long = "phone-col", value_name = "COLUMN")]
    pub phone_cols: Vec<String>,
    /// Column holding a person's name, matched together with `--company-col`.
    #[arg(long, value_name = "COLUMN", requires = "company_col")]
    pub name_col: Option<String>,
    /// Column holding the person's company (with `--name-col`).
    #[arg(long, value_name = "COLUMN", requires = "name_col")]
    pub company_col: Option<String>,
    /// Column holding a custom identifier agreed with partners; repeat for several.
    #[arg(long = "custom-col", value_name = "COLUMN")]
    pub custom_cols: Vec<String>,
    /// Default region (ISO 3166-1 alpha-2) for phone numbers written without a
    /// country code.
    #[arg(long, value_name = "CODE", default_value = "CN")]
    pub region: String,
    /// Character encoding of the file. A byte-order mark overrides it. Excel on
    /// Chinese Windows saves "CSV" as GB18030/GBK (`gbk` and `gb2312` are accepted for
    /// `gb18030`, which decodes both).
    #[arg(long, value_enum, default_value_t = InputEncoding::Utf8)]
    pub encoding: InputEncoding,
    /// Column holding each record's legal basis for processing (stored for policies).
    #[arg(long, value_name = "COLUMN")]
    pub legal_basis_col: Option<String>,
    /// Column holding each record's consent (stored for policies).
    #[arg(long, value_name = "COLUMN")]
    pub consent_col: Option<String>,
    /// Column holding where each record came from (stored for policies).
    #[arg(long, value_name = "COLUMN")]
    pub source_col: Option<String>,
    /// After the import, build or update the dataset's index for index-mode matching
    /// (see `blindmatch dataset index`).
    #[arg(long)]
    pub index: bool,
}

impl ImportArgs {
    /// The import options these arguments ask for.
    pub fn to_options(&self, quiet: bool) -> ImportOptions {
        ImportOptions {
            input: self.file.clone(),
            name: self.name.clone(),
            id_col: self.id_col.clone(),
            email_cols: self.email_cols.clone(),
            phone_cols: self.phone_cols.clone(),
            name_col: self.name_col.clone(),
            company_col: self.company_col.clone(),
            custom_cols: self.custom_cols.clone(),
            region: self.region.clone(),
            encoding: self.encoding,
            legal_basis_col: self.legal_basis_col.clone(),
            consent_col: self.consent_col.clone(),
            source_col: self.source_col.clone(),
            quiet,
        }
    }
}

/// What a dataset command did, for the caller to record (e.g. in the audit log).
#[derive(Debug)]
pub enum DatasetOutcome {
    /// A dataset was imported.
    Imported(ImportReport),
    /// Datasets were listed.
    Listed,
    /// A dataset was removed.
    Removed {
        /// Its name.
        name: String,
    },
    /// Records were revoked.
    Revoked(RevokeReport),
    /// An index build was asked for: the caller runs it (it needs the node's audit key).
    IndexAsked {
        /// The dataset.
        name: String,
        /// Start a new epoch even if a delta would do.
        rotate: bool,
    },
    /// Nothing changed (a command that only reads).
    Unchanged,
}

/// Runs a dataset command against `data_dir`, printing its result on stdout.
pub fn run(cmd: DatasetCommand, data_dir: &Path, quiet: bool) -> anyhow::Result<DatasetOutcome> {
    // stdout is locked only to print, never while working.
    match cmd {
        DatasetCommand::Import(args) => {
            let report = import_with_progress_bar(data_dir, &args.to_options(quiet))?;
            if !quiet {
                writeln!(std::io::stdout().lock(), "{report}")?;
            }
            Ok(DatasetOutcome::Imported(report))
        }
        DatasetCommand::List { json } => {
            let entries = list(data_dir)?;
            let mut stdout = std::io::stdout().lock();
            if json {
                let metas: Vec<_> = entries
                    .iter()
                    .filter_map(|entry| entry.meta.as_ref().ok())
                    .collect();
                serde_json::to_writer_pretty(&mut stdout, &metas)?;
                writeln!(stdout)?;
            } else if entries.is_empty() {
                writeln!(
                    stdout,
                    "no datasets; import one with `blindmatch dataset import`"
                )?;
            } else {
                writeln!(
                    stdout,
                    "{:<24} {:>10} {:>12} {:>9} {:<26} {:<20} INPUT",
                    "NAME", "RECORDS", "IDENTIFIERS", "REJECTED", "KINDS", "IMPORTED"
                )?;
                for entry in &entries {
                    match &entry.meta {
                        Ok(meta) => {
                            let kinds: Vec<&str> = meta.kinds.iter().map(|k| k.name()).collect();
                            writeln!(
                                stdout,
                                "{:<24} {:>10} {:>12} {:>9} {:<26} {:<20} {}",
                                meta.name,
                                meta.counts.accepted,
                                meta.counts.identifiers,
                                meta.counts.rejected_rows + meta.counts.duplicates,
                                kinds.join(","),
                                meta.imported_at,
                                meta.input_file
                            )?;
                        }
                        Err(err) => writeln!(stdout, "{:<24} unreadable: {err}", entry.name)?,
                    }
                }
            }
            if !json && !entries.is_empty() {
                writeln!(
                    stdout,
                    "\nIDENTIFIERS adds up each record's identifiers. A session sends each distinct\nidentifier once, and only those of records the dataset's policy keeps, so the set\nsize a session reports can be smaller. REJECTED counts rejected and duplicate rows."
                )?;
            }
            // A corrupt dataset is shown above; the command still fails so scripts notice.
            if let Some(entry) = entries.iter().find(|entry| entry.meta.is_err()) {
                anyhow::bail!("dataset `{}` cannot be read", entry.name);
            }
            Ok(DatasetOutcome::Listed)
        }
        DatasetCommand::Remove { name } => {
            remove(data_dir, &name)?;
            writeln!(std::io::stdout().lock(), "removed dataset `{name}`")?;
            Ok(DatasetOutcome::Removed { name })
        }
        DatasetCommand::Index { name, rotate } => Ok(DatasetOutcome::IndexAsked { name, rotate }),
        DatasetCommand::Revoke { name, ids } => {
            let report = revoke(data_dir, &name, &ids)?;
            writeln!(std::io::stdout().lock(), "{report}")?;
            Ok(DatasetOutcome::Revoked(report))
        }
        DatasetCommand::FileMac { .. } => {
            anyhow::bail!("`dataset file-mac` needs the node identity: run it through the CLI")
        }
    }
}

/// [`import`] with a progress bar on stderr, shown only when stderr is a terminal and
/// `opts.quiet` is false.
pub fn import_with_progress_bar(
    data_dir: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, DatasetError> {
    if opts.quiet || !std::io::stderr().is_terminal() {
        return import(data_dir, opts, &|_| {});
    }
    let total = std::fs::metadata(&opts.input).map(|m| m.len()).ok();
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} importing {prefix} [{wide_bar}] {bytes}/{total_bytes}, {msg}",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(opts.name.clone());
    bar.enable_steady_tick(Duration::from_millis(120));
    let result = import(data_dir, opts, &|progress| {
        bar.set_length(progress.total_bytes);
        bar.set_position(progress.bytes_read);
        bar.set_message(format!("{} rows", progress.rows));
    });
    bar.finish_and_clear();
    result
}
