//! `blindmatch dataset index`: evaluates the OPRF over every eligible identifier of a
//! dataset and writes the signed index, streaming and in parallel with bounded memory.
//!
//! Identifiers are taken from the records the dataset's `[datasets.NAME]` policy keeps,
//! [`RUN_LEN`] at a time: each chunk is evaluated on all cores (RFC 9497 `Evaluate`:
//! hash to group, one scalar multiplication, the finalize hash), cut to 128-bit tag
//! prefixes, sorted and kept as a run ([`super::runs`]); the runs are merged into the
//! segment's coded body, written to a temporary file in the build directory, and the
//! final file (earlier segments, the signed header, the body) replaces the old one
//! atomically. The dataset is read record by record from one open file (two passes:
//! counting, then evaluating), never whole, so memory is one chunk and the merge's
//! buffers (~100 MiB), whatever the number of identifiers.
//!
//! A delta is tried when the index is current but for the dataset version: the new
//! identifiers are evaluated under the current key and merged against the index's tags;
//! if every indexed tag is still there, only the new ones go into a delta segment.
//! Otherwise (or with `--rotate`, or when deltas would outgrow the base) a new epoch
//! starts, and the old key is destroyed before anything is evaluated under the new one.

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use blindmatch_protocol::ident::{IdentKind, KindSet};
use blindmatch_protocol::index::{
    SegmentBuilder, SegmentHeader, coding_params, oprf_input_into, tag_bits, tag_of, tag_prefix,
};
use blindmatch_protocol::oprf::OprfKey;
use blindmatch_protocol::wire::DatasetRef;
use ed25519_dalek::SigningKey;

use super::delta::{compare, verify_own};
use super::runs::{RUN_LEN, Runs};
use super::{
    EpochKey, INDEX_DIR, INDEX_FILE, IndexError, IndexState, KEY_FILE, STATE_FILE,
    dataset_index_dir, policy_text, read_state, write_state,
};
use crate::config::DatasetPolicy;
use crate::dataset::DatasetReader;
use crate::files::{Access, create_private_dir_all, write_file_with};
use crate::policy::keeps;

/// Most segments in one epoch before a build starts a new one.
const MAX_SEGMENTS: u32 = 64;

/// What `dataset index` was asked for.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildOptions {
    /// Start a new epoch (fresh key) even when a delta would do.
    pub rotate: bool,
    /// Why a new epoch is asked for, for the audit record (e.g. a revocation).
    pub reason: Option<&'static str>,
}

/// How far a build is.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildProgress {
    /// Identifiers evaluated.
    pub done: u64,
    /// Identifiers to evaluate.
    pub total: u64,
}

/// What a build did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildKind {
    /// A new epoch: fresh key, base segment.
    NewEpoch,
    /// A delta segment under the current key.
    Delta,
    /// Nothing: the index already describes the dataset.
    UpToDate,
}

/// The outcome of a build, as the audit log records it.
#[derive(Clone, Debug)]
pub struct BuildReport {
    /// The dataset.
    pub dataset: String,
    /// Its version tag (hex).
    pub dataset_version: String,
    /// The epoch (hex).
    pub epoch: String,
    /// The epoch whose key this build destroyed, if it started a new one.
    pub previous_epoch: Option<String>,
    /// What happened.
    pub kind: BuildKind,
    /// Why.
    pub reason: String,
    /// The segment written (0 for a base).
    pub segment: u32,
    /// Tags in that segment.
    pub added: u64,
    /// Tags in the whole index.
    pub elements: u64,
    /// Records the dataset policy kept.
    pub records: u64,
    /// Identifiers of those records (before removing repeats).
    pub identifiers: u64,
    /// Bytes of the index file.
    pub file_len: u64,
    /// Wall time of the build.
    pub duration: Duration,
}

impl std::fmt::Display for BuildReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            BuildKind::NewEpoch => "new epoch (fresh key)",
            BuildKind::Delta => "delta segment (same key)",
            BuildKind::UpToDate => "already up to date",
        };
        writeln!(f, "index of `{}`: {what}; {}", self.dataset, self.reason)?;
        writeln!(f, "epoch       {}", self.epoch)?;
        writeln!(
            f,
            "identifiers {} in the index ({} added in segment {}), from {} records",
            self.elements, self.added, self.segment, self.records
        )?;
        let per = if self.elements == 0 {
            0.0
        } else {
            self.file_len as f64 / self.elements as f64
        };
        write!(
            f,
            "file        {:.1} MB ({per:.2} bytes per identifier); {:.1} s",
            self.file_len as f64 / 1e6,
            self.duration.as_secs_f64()
        )
    }
}

/// Builds or updates the index of dataset `name` under `policy`, signing with the
/// node's audit key.
pub fn build(
    data_dir: &Path,
    signing_key: &SigningKey,
    name: &str,
    policy: &DatasetPolicy,
    options: BuildOptions,
    progress: &dyn Fn(BuildProgress),
) -> Result<BuildReport, IndexError> {
    let started = Instant::now();
    let dir = dataset_index_dir(data_dir, name);
    create_private_dir_all(&dir).map_err(io("creating", &dir))?;
    let _lock = lock(&data_dir.join(INDEX_DIR))?;
    remove_stale_builds(&dir);
    let mut dataset = DatasetReader::open(data_dir, name)?;
    let eligible = Eligible::of(&mut dataset, policy)?;
    let version = dataset.meta().version.clone();
    let reference = DatasetRef::new(name, dataset.meta().version_bytes());
    let job = Job {
        dir: &dir,
        dataset: RefCell::new(dataset),
        version: version.clone(),
        policy,
        eligible,
        reference,
        signing_key,
        progress,
    };
    let state = read_state(&dir)?;
    let key = EpochKey::load(&dir.join(KEY_FILE))?;
    let usable = match (&state, &key) {
        (Some(state), Some(key)) if hex::encode(key.epoch()) == state.epoch => Some(state),
        _ => None,
    };
    let plan = match usable {
        _ if options.rotate => Err(options.reason.unwrap_or("a new epoch was asked for")),
        None if state.is_none() => Err("first index of this dataset"),
        None => Err("the old index has no usable key"),
        Some(state) if state.policy != policy_text(policy) => Err("the dataset policy changed"),
        Some(state) if state.dataset_version == version => Ok(None),
        Some(state) => Ok(Some(state.clone())),
    };
    let mut report = match (plan, key) {
        (Ok(None), Some(key)) => job.up_to_date(&key, usable)?,
        (Ok(Some(state)), Some(key)) => match job.delta(&key, &state)? {
            Ok(report) => report,
            Err(why) => job.new_epoch(Some(&state.epoch), why)?,
        },
        (Err(why), key) => {
            let previous = key.map(|key| hex::encode(key.epoch()));
            job.new_epoch(previous.as_deref(), why)?
        }
        (Ok(_), None) => job.new_epoch(None, "the old index has no usable key")?,
    };
    report.duration = started.elapsed();
    Ok(report)
}

/// The identifiers a dataset policy keeps.
struct Eligible {
    records: u64,
    identifiers: u64,
    kinds: KindSet,
}

impl Eligible {
    fn of(dataset: &mut DatasetReader, policy: &DatasetPolicy) -> Result<Self, IndexError> {
        let mut eligible = Self {
            records: 0,
            identifiers: 0,
            kinds: KindSet::empty(),
        };
        dataset.for_each(|record| {
            if policy.is_open() || keeps(policy, &record) {
                eligible.records += 1;
                eligible.identifiers += record.identifiers.len() as u64;
                for (kind, _) in &record.identifiers {
                    eligible.kinds.insert(*kind);
                }
            }
            Ok::<(), IndexError>(())
        })?;
        Ok(eligible)
    }
}

struct Job<'a> {
    dir: &'a Path,
    /// One open file for every pass, so all read the same version.
    dataset: RefCell<DatasetReader>,
    /// Its version tag (hex).
    version: String,
    policy: &'a DatasetPolicy,
    eligible: Eligible,
    reference: DatasetRef,
    signing_key: &'a SigningKey,
    progress: &'a dyn Fn(BuildProgress),
}

impl Job<'_> {
    fn report(&self, kind: BuildKind, reason: &str, state: &IndexState) -> BuildReport {
        BuildReport {
            dataset: state.dataset.clone(),
            dataset_version: state.dataset_version.clone(),
            epoch: state.epoch.clone(),
            previous_epoch: None,
            kind,
            reason: reason.to_owned(),
            segment: state.segments.saturating_sub(1),
            added: 0,
            elements: state.elements,
            records: self.eligible.records,
            identifiers: self.eligible.identifiers,
            file_len: state.file_len,
            duration: Duration::ZERO,
        }
    }

    fn up_to_date(
        &self,
        key: &EpochKey,
        state: Option<&IndexState>,
    ) -> Result<BuildReport, IndexError> {
        let Some(state) = state else {
            return self.new_epoch(Some(&hex::encode(key.epoch())), "no usable index");
        };
        let len = std::fs::metadata(self.dir.join(INDEX_FILE)).map(|m| m.len());
        if len.ok() != Some(state.file_len) {
            return self.new_epoch(Some(&state.epoch), "the index file is missing or damaged");
        }
        Ok(self.report(
            BuildKind::UpToDate,
            "the dataset and its policy are unchanged",
            state,
        ))
    }

    /// A fresh key, destroying the old one first, and a base segment.
    fn new_epoch(&self, previous: Option<&str>, why: &str) -> Result<BuildReport, IndexError> {
        let key = EpochKey::generate();
        // From here the old index (wherever it was copied) matches nothing: its key is
        // gone, and no state names an index to serve until the new one is complete.
        remove_if_exists(&self.dir.join(STATE_FILE))?;
        key.save(&self.dir.join(KEY_FILE))?;
        remove_if_exists(&self.dir.join(INDEX_FILE))?;
        let oprf = key.oprf_key()?;
        let work = tempdir(self.dir)?;
        let runs = self.evaluate(&oprf, work.path())?;
        let bound = runs.total();
        let mut merged = runs.merged()?;
        let mut template = SegmentHeader::new(
            key.epoch(),
            oprf.public_key().to_bytes(),
            self.reference.clone(),
        );
        template.kinds = self.eligible.kinds;
        let body = work.path().join("body");
        let signed = write_body(
            &body,
            template,
            0,
            bound,
            &mut || merged.next_prefix(),
            self.signing_key,
        )?;
        let header = signed.to_bytes();
        let path = self.dir.join(INDEX_FILE);
        write_file_with(&path, Access::OwnerOnly, |out| {
            out.write_all(&header)?;
            copy_file(&body, out)
        })
        .map_err(io("writing", &path))?;
        let state = IndexState {
            epoch: hex::encode(key.epoch()),
            dataset: self.reference.name.clone(),
            dataset_version: self.version.clone(),
            policy: policy_text(self.policy),
            segments: 1,
            elements: signed.header.total_elements,
            base_elements: signed.header.elements,
            file_len: header.len() as u64 + signed.header.body_len(),
            public_key: hex::encode(oprf.public_key().as_bytes()),
            signer_key: hex::encode(signed.header.signer_key),
            kinds: self.eligible.kinds.bits(),
            built_at: now(),
        };
        write_state(self.dir, &state)?;
        let mut report = self.report(BuildKind::NewEpoch, why, &state);
        report.previous_epoch = previous.map(str::to_owned);
        report.added = signed.header.elements;
        Ok(report)
    }

    /// A delta segment under the current key, or why a new epoch is needed instead.
    fn delta(
        &self,
        key: &EpochKey,
        state: &IndexState,
    ) -> Result<Result<BuildReport, &'static str>, IndexError> {
        if state.segments >= MAX_SEGMENTS {
            return Ok(Err("the epoch has as many delta segments as allowed"));
        }
        let path = self.dir.join(INDEX_FILE);
        let Ok(existing) = verify_own(&path) else {
            return Ok(Err("the index file is missing or damaged"));
        };
        let oprf = key.oprf_key()?;
        let work = tempdir(self.dir)?;
        let runs = self.evaluate(&oprf, &work.path().join("new"))?;
        let mut merged = runs.merged()?;
        let added_dir = work.path().join("added");
        create_private_dir_all(&added_dir).map_err(io("creating", &added_dir))?;
        let Some(added) = compare(&existing, &path, &mut merged, &added_dir)? else {
            return Ok(Err("identifiers were removed or changed"));
        };
        let count = added.total();
        if existing.total_elements() - state.base_elements + count > state.base_elements {
            return Ok(Err("the deltas would outgrow the base segment"));
        }
        let mut template = SegmentHeader::new(
            key.epoch(),
            oprf.public_key().to_bytes(),
            self.reference.clone(),
        );
        template.kinds = self.eligible.kinds;
        template.segment = state.segments;
        let last = &existing.segments()[existing.segments().len() - 1];
        template.previous = last.chain_hash();
        let mut added = added.merged()?;
        let body = work.path().join("body");
        let signed = write_body(
            &body,
            template,
            existing.total_elements(),
            count,
            &mut || added.next_prefix(),
            self.signing_key,
        )?;
        let header = signed.to_bytes();
        write_file_with(&path, Access::OwnerOnly, |out| {
            copy_file(&path, out)?;
            out.write_all(&header)?;
            copy_file(&body, out)
        })
        .map_err(io("writing", &path))?;
        let mut next = state.clone();
        next.dataset_version = self.version.clone();
        next.segments += 1;
        next.elements = signed.header.total_elements;
        next.file_len = existing.file_len() + header.len() as u64 + signed.header.body_len();
        next.kinds |= self.eligible.kinds.bits();
        next.built_at = now();
        write_state(self.dir, &next)?;
        let mut report = self.report(BuildKind::Delta, "identifiers were only added", &next);
        report.added = signed.header.elements;
        Ok(Ok(report))
    }

    /// Evaluates every eligible identifier under `key`, in chunks, into sorted runs.
    fn evaluate(&self, key: &OprfKey, dir: &Path) -> Result<Runs, IndexError> {
        create_private_dir_all(dir).map_err(io("creating", dir))?;
        let mut runs = Runs::new(dir);
        let total = self.eligible.identifiers;
        let mut done = 0u64;
        let mut buffer: Vec<u8> = Vec::new();
        let mut ends: Vec<usize> = Vec::with_capacity(RUN_LEN);
        let mut flush = |buffer: &mut Vec<u8>, ends: &mut Vec<usize>| -> Result<(), IndexError> {
            if ends.is_empty() {
                return Ok(());
            }
            let mut start = 0;
            let inputs: Vec<&[u8]> = ends
                .iter()
                .map(|&end| {
                    let input = &buffer[start..end];
                    start = end;
                    input
                })
                .collect();
            let outputs = key.evaluate_inputs(&inputs)?;
            runs.push(outputs.iter().map(tag_prefix).collect())?;
            done += ends.len() as u64;
            (self.progress)(BuildProgress { done, total });
            zeroize::Zeroize::zeroize(buffer);
            buffer.clear();
            ends.clear();
            Ok(())
        };
        self.dataset.borrow_mut().for_each(|record| {
            if !(self.policy.is_open() || keeps(self.policy, &record)) {
                return Ok(());
            }
            for (kind, value) in &record.identifiers {
                oprf_input_into(&mut buffer, IdentKind::code(*kind), value.as_bytes());
                ends.push(buffer.len());
                if ends.len() == RUN_LEN {
                    flush(&mut buffer, &mut ends)?;
                }
            }
            Ok::<(), IndexError>(())
        })?;
        flush(&mut buffer, &mut ends)?;
        Ok(runs)
    }
}

/// Codes the prefixes `next` yields (increasing) into a body file; returns the signed
/// header. `bound` bounds their number, which sets the coding parameters.
fn write_body(
    path: &Path,
    mut template: SegmentHeader,
    total_before: u64,
    bound: u64,
    next: &mut dyn FnMut() -> Result<Option<u128>, IndexError>,
    signing_key: &SigningKey,
) -> Result<blindmatch_protocol::index::SignedHeader, IndexError> {
    let tag_bits = tag_bits(total_before + bound);
    let (bucket_bits, rice_bits) = coding_params(bound, tag_bits);
    let mut builder = SegmentBuilder::new(tag_bits, bucket_bits, rice_bits)?;
    let file = crate::files::private_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io("writing", path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut pending = Vec::with_capacity(1 << 20);
    let mut last = None;
    while let Some(prefix) = next()? {
        let tag = tag_of(prefix, tag_bits);
        // Two identifiers whose tags agree on every bit are one entry.
        if last == Some(tag) {
            continue;
        }
        last = Some(tag);
        builder.push(tag)?;
        if builder.elements() % 65_536 == 0 {
            builder.drain(&mut pending);
            out.write_all(&pending).map_err(io("writing", path))?;
            pending.clear();
        }
    }
    builder.drain(&mut pending);
    let body = builder.finish();
    pending.extend_from_slice(&body.tail);
    out.write_all(&pending).map_err(io("writing", path))?;
    out.flush().map_err(io("writing", path))?;
    template.elements = body.elements;
    template.total_elements = total_before + body.elements;
    template.tag_bits = tag_bits;
    template.bucket_bits = bucket_bits;
    template.rice_bits = rice_bits;
    template.data_len = body.data_len;
    template.body_sha256 = body.body_sha256;
    Ok(template.sign(signing_key))
}

/// A build directory inside the index directory, deleted when dropped.
fn tempdir(dir: &Path) -> Result<tempfile::TempDir, IndexError> {
    tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(dir)
        .map_err(io("creating a build directory in", dir))
}

/// Deletes the build directories of builds that were killed.
fn remove_stale_builds(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".build-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Takes the node-wide index lock (one build at a time), waiting for it.
fn lock(dir: &Path) -> Result<File, IndexError> {
    create_private_dir_all(dir).map_err(io("creating", dir))?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io("opening", &path))?;
    if file.try_lock().is_err() {
        tracing::warn!("waiting for another index build on this node to finish");
        file.lock().map_err(io("locking", &path))?;
    }
    Ok(file)
}

fn copy_file(from: &Path, out: &mut dyn Write) -> std::io::Result<()> {
    let mut file = File::open(from)?;
    std::io::copy(&mut file, out)?;
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), IndexError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(IndexError::Io {
            action: "removing",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IndexError {
    let path = path.to_path_buf();
    move |source| IndexError::Io {
        action,
        path,
        source,
    }
}
