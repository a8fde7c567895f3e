//! `dataset revoke`: consent withdrawn for some records — remove them from a stored
//! dataset, so no future session matches them.
//!
//! The ids file lists record ids (as reported in results), one per line; blank lines,
//! lines starting with `#` and a first line that is exactly `id` (a one-column CSV
//! header) are skipped, and surrounding spaces are trimmed. The dataset is rewritten
//! atomically without those records (temporary file, fsync, rename): a crash leaves
//! either the old or the new dataset, and a running server uses the new one from its
//! next session, since it loads the dataset per session.
//!
//! The metadata's record, identifier, kind and provenance counts are updated; the
//! import counts of the original CSV (`rows`, `rejected_rows`, `duplicates`) are kept,
//! so `rows - accepted - rejected_rows - duplicates` is the number of records revoked
//! since the import. Revoking every record is refused: remove the dataset instead.
//!
//! The report carries what the `dataset_revoked` audit record holds: the dataset's name,
//! its new version tag (random, see `DatasetMeta::version`) and the counts. Neither the
//! revoked ids nor a hash of the ids file is recorded: a file listing one id would make
//! that hash a plain hash of the id.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::Path;

use super::codec::encode_record;
use super::guard::DatasetsLock;
use super::store::{Dataset, write};
use super::{DatasetError, ProvenanceCounts, dataset_path};

/// What a revocation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeReport {
    /// The dataset.
    pub name: String,
    /// Records removed.
    pub removed: u64,
    /// Records left.
    pub remaining: u64,
    /// Ids in the file that matched no record (already revoked, or never imported).
    pub not_found: u64,
    /// The dataset's new version tag (see `DatasetMeta::version`), after the
    /// revocation; `None` when nothing was removed and the dataset was left as it was.
    pub version: Option<String>,
}

/// Removes the records whose ids are listed in `ids_file` from dataset `name`.
pub fn revoke(data_dir: &Path, name: &str, ids_file: &Path) -> Result<RevokeReport, DatasetError> {
    let bytes = std::fs::read(ids_file).map_err(|source| DatasetError::ReadInput {
        path: ids_file.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| {
        DatasetError::InvalidOptions(format!(
            "{} is not UTF-8 text; list one record id per line",
            ids_file.display()
        ))
    })?;
    let ids = parse_ids(&text);
    // Held from load to write, so an import landing in between is not overwritten.
    let _lock = DatasetsLock::acquire(data_dir, name)?;
    let dataset = Dataset::load(data_dir, name)?;
    let (mut meta, records) = dataset.into_parts();
    let before = records.len() as u64;
    let mut found: HashSet<&str> = HashSet::new();
    let kept: Vec<_> = records
        .iter()
        .filter(|record| {
            if ids.contains(record.id.as_str()) {
                found.insert(record.id.as_str());
                false
            } else {
                true
            }
        })
        .collect();
    let mut report = RevokeReport {
        name: name.to_owned(),
        removed: before - kept.len() as u64,
        remaining: kept.len() as u64,
        not_found: (ids.len() - found.len()) as u64,
        version: None,
    };
    if report.removed == 0 {
        return Ok(report);
    }
    if kept.is_empty() {
        return Err(DatasetError::InvalidOptions(format!(
            "{} lists every record of dataset `{name}`; remove the dataset instead with `blindmatch dataset remove {name}`",
            ids_file.display()
        )));
    }
    let mut encoded = Vec::new();
    let mut kinds = BTreeSet::new();
    let mut provenance = ProvenanceCounts::default();
    let mut identifiers = 0u64;
    for record in &kept {
        encode_record(&mut encoded, record);
        identifiers += record.identifiers.len() as u64;
        kinds.extend(record.identifiers.iter().map(|(kind, _)| *kind));
        provenance.legal_basis += u64::from(record.legal_basis.is_some());
        provenance.consent += u64::from(record.consent.is_some());
        provenance.source += u64::from(record.source.is_some());
    }
    meta.counts.accepted = report.remaining;
    meta.counts.identifiers = identifiers;
    meta.kinds = kinds.into_iter().collect();
    meta.provenance = provenance;
    meta.version = super::new_version_tag();
    let version = meta.version.clone();
    write(&dataset_path(data_dir, name), &meta, encoded)?;
    report.version = Some(version);
    Ok(report)
}

/// The ids listed in a revocation file.
fn parse_ids(text: &str) -> HashSet<&str> {
    text.lines()
        .map(str::trim)
        .enumerate()
        .filter(|(index, line)| {
            let header = *index == 0 && *line == "id";
            !(line.is_empty() || line.starts_with('#') || header)
        })
        .map(|(_, line)| line)
        .collect()
}

impl fmt::Display for RevokeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dataset `{}`: {} record{} revoked, {} left",
            self.name,
            self.removed,
            if self.removed == 1 { "" } else { "s" },
            self.remaining
        )?;
        if self.not_found > 0 {
            write!(
                f,
                "; {} listed id{} matched no record (already revoked, or never imported)",
                self.not_found,
                if self.not_found == 1 { "" } else { "s" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_file_forms() {
        let ids = parse_ids("id\n a1 \n\n# withdrawn 2025-06-01\r\na2\r\nid\n");
        let expected: HashSet<&str> = ["a1", "a2", "id"].into_iter().collect();
        assert_eq!(ids, expected);
    }
}
