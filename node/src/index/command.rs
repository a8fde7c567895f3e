//! `dataset index` as the CLI runs it: the build with a progress bar on a terminal, and
//! the audit record of what it did.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use blindmatch_protocol::audit::AuditEvent;
use ed25519_dalek::SigningKey;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{BuildKind, BuildOptions, BuildReport, IndexError, build};
use crate::config::DatasetPolicy;

/// [`build`] with a progress bar on stderr, shown only on a terminal and when not
/// `quiet`.
pub fn build_with_progress_bar(
    data_dir: &Path,
    signing_key: &SigningKey,
    name: &str,
    policy: &DatasetPolicy,
    options: BuildOptions,
    quiet: bool,
) -> Result<BuildReport, IndexError> {
    if quiet || !std::io::stderr().is_terminal() {
        return build(data_dir, signing_key, name, policy, options, &|_| {});
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} indexing {prefix} [{wide_bar}] {pos}/{len} identifiers ({per_sec}, eta {eta})",
    )
    .map(|style| style.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(name.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    let result = build(data_dir, signing_key, name, policy, options, &|progress| {
        bar.set_length(progress.total);
        bar.set_position(progress.done);
    });
    bar.finish_and_clear();
    result
}

/// The `index_built` record of a build that changed something (none when the index was
/// already up to date).
pub fn built_event(report: &BuildReport) -> Option<AuditEvent> {
    if report.kind == BuildKind::UpToDate {
        return None;
    }
    Some(AuditEvent::IndexBuilt {
        name: report.dataset.clone(),
        version: report.dataset_version.clone(),
        epoch: report.epoch.clone(),
        previous_epoch: report.previous_epoch.clone(),
        segment: report.segment,
        added: report.added,
        elements: report.elements,
        records: report.records,
        bytes: report.file_len,
        reason: report.reason.clone(),
        duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
    })
}
