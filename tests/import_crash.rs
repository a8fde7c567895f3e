//! `blindmatch dataset import` killed with SIGKILL part-way: the dataset stored before
//! under that name stays intact and usable, nothing temporary is taken for a dataset,
//! the audit log still verifies, and importing again completes.
//!
//! The real binary imports a generated 300,000-row CSV over a 1,000-record dataset of
//! the same name. The kills land at fixed times (100 ms, 300 ms, 1 s), at 60 % of an
//! uninterrupted import's duration (measured first, under another name), right after
//! the new rejects report replaced the old one, and while the new dataset's temporary
//! file is being written (both found by watching the datasets directory).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use blindmatch_node::dataset::{self, Dataset};
use support::process::{BIN, blindmatch};
use support::*;

/// Rows of the big CSV.
const BIG: usize = 300_000;
/// Records of the dataset stored before: contacts `0..OLD`.
const OLD: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_killed_at_any_point_leaves_the_previous_dataset_intact() {
    let root = tempfile::tempdir().expect("tempdir");
    let provider = node(root.path(), "provider");
    let old_csv = write_csv(root.path(), "old.csv", 0..OLD);
    let big_csv = write_csv(root.path(), "big.csv", 0..BIG);
    import(&provider.dir, &old_csv, "kp").expect("first import");
    let mut old_bytes = std::fs::read(dataset::dataset_path(&provider.dir, "kp")).expect("kp.bmds");
    let old_sha = input_sha(&provider.dir, "kp");

    // How long an uninterrupted import of the big file takes on this machine.
    let started = Instant::now();
    import(&provider.dir, &big_csv, "calibration").expect("calibration import");
    let full = started.elapsed();
    eprintln!("importing {BIG} rows takes {full:?}");

    let mut kills: Vec<Kill> = [100, 300, 1000]
        .iter()
        .map(|ms| Kill::After(Duration::from_millis(*ms)))
        .collect();
    kills.push(Kill::After(full.mul_f64(0.6)));
    kills.push(Kill::WhenRejectsReplaced);
    kills.push(Kill::WhileWritingTheDataset);
    let mut outcomes = Vec::new();
    for after in kills {
        let status = import_killed(&provider.dir, &big_csv, after);
        let completed = status.success();
        let state = stored_state(&provider.dir, &old_bytes);
        eprintln!("killed {after:?}: exit {status}, dataset {state:?}");
        match state {
            Stored::Old => {}
            // The import got to its end (or to the rename, its commit point) first.
            Stored::New => {
                let stored = input_sha(&provider.dir, "kp");
                assert_ne!(stored, old_sha);
                // A completed import has been recorded; a killed one may have died
                // between its rename and its audit record.
                let recorded = last_import_mac(&provider.dir, "kp");
                let expected = Some(file_mac(&provider.dir, &stored));
                if completed {
                    assert_eq!(recorded, expected);
                } else if recorded != expected {
                    eprintln!("  killed after the rename, before the audit record");
                }
                // Put the old one back for the next kill.
                import(&provider.dir, &old_csv, "kp").expect("re-import the old dataset");
                old_bytes =
                    std::fs::read(dataset::dataset_path(&provider.dir, "kp")).expect("kp.bmds");
            }
            Stored::Broken(why) => panic!("killed {after:?}: the stored dataset is broken: {why}"),
        }
        outcomes.push((after, completed));
        check_listing(&provider.dir);
        if let Err(err) = audit_verify(&provider.dir) {
            panic!("killed {after:?}: {err}");
        }
    }
    assert!(
        outcomes.iter().any(|(_, completed)| !completed),
        "no kill landed while the import ran"
    );

    // The old dataset still serves the right result.
    let crm = node(root.path(), "crm");
    import_emails(&crm, "crm", OLD / 2..OLD / 2 + OLD);
    pin(&provider, "crm", crm.fingerprint, not_serving(), &["kp"]);
    let server = Server::start(&provider);
    pin(&crm, "provider", provider.fingerprint, server.addr, &[]);
    let summary = run_match(&crm, "provider", "crm", root.path().join("old.out.csv"))
        .await
        .expect("match against the old dataset");
    assert_eq!(
        summary.their_size,
        2 * OLD as u64,
        "an email and a phone per record"
    );
    assert_eq!(summary.intersection, Some((OLD / 2) as u64));

    server.stop().await;

    // Importing again completes.
    let (ok, _, stderr) = blindmatch(&provider.dir, &import_args_str(&big_csv, "kp"));
    assert!(ok, "the re-import failed: {stderr}");
    assert_eq!(stored_state(&provider.dir, &old_bytes), Stored::New);
    assert_eq!(
        last_import_mac(&provider.dir, "kp"),
        Some(file_mac(&provider.dir, &input_sha(&provider.dir, "kp")))
    );
    check_listing(&provider.dir);
    audit_verify(&provider.dir).expect("audit log");
    let leftovers = temp_files(&provider.dir);
    if !leftovers.is_empty() {
        eprintln!(
            "temporary files left by killed imports (never taken for a dataset): {leftovers:?}"
        );
    }
}

/// A killed import's temporary file holds normalised identifiers (personal data). Once
/// the import is run again, or the dataset removed, none of it may stay behind (B5).
#[test]
fn temporary_file_of_a_killed_import_does_not_outlive_the_dataset() {
    let root = tempfile::tempdir().expect("tempdir");
    let provider = node(root.path(), "provider");
    let big_csv = write_csv(root.path(), "big.csv", 0..BIG);
    let status = import_killed(&provider.dir, &big_csv, Kill::WhileWritingTheDataset);
    assert!(
        !status.success(),
        "the import finished before it could be killed"
    );
    let left = temp_files(&provider.dir);
    assert!(!left.is_empty(), "no temporary file to clean up");
    import(&provider.dir, &big_csv, "kp").expect("import again");
    let left = temp_files(&provider.dir);
    assert!(
        left.is_empty(),
        "left behind after the next import: {left:?}"
    );
    let status = import_killed(&provider.dir, &big_csv, Kill::WhileWritingTheDataset);
    assert!(
        !status.success(),
        "the second import finished before it could be killed"
    );
    assert!(
        !temp_files(&provider.dir).is_empty(),
        "no temporary file to clean up"
    );
    let (ok, _, stderr) = blindmatch(&provider.dir, &["dataset", "remove", "kp"]);
    assert!(ok, "{stderr}");
    // Only the (empty) lock file may stay.
    let left: Vec<_> = files_ending(&dataset::datasets_dir(&provider.dir), "")
        .into_iter()
        .filter(|p| !p.ends_with(dataset::LOCK_FILE))
        .collect();
    assert!(
        left.is_empty(),
        "left behind after `dataset remove kp`: {left:?}"
    );
}

/// When to kill an import.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// This long after it started.
    After(Duration),
    /// As soon as it has replaced the rejects report (the step before the dataset).
    WhenRejectsReplaced,
    /// As soon as its temporary dataset file appears (the file is being written,
    /// before the rename that commits it).
    WhileWritingTheDataset,
}

/// Runs `dataset import CSV --name kp` and kills it with SIGKILL at `when`.
fn import_killed(data_dir: &Path, csv: &Path, when: Kill) -> std::process::ExitStatus {
    let datasets = dataset::datasets_dir(data_dir);
    let rejects = datasets.join("kp.rejects.csv");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let rejects_before = modified(&rejects);
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(import_args(csv, "kp"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn import");
    let started = Instant::now();
    loop {
        let due = match when {
            Kill::After(after) => started.elapsed() >= after,
            Kill::WhenRejectsReplaced => modified(&rejects) != rejects_before,
            Kill::WhileWritingTheDataset => std::fs::read_dir(&datasets)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .any(|e| e.file_name().to_string_lossy().starts_with(".kp.bmds."))
                })
                .unwrap_or(false),
        };
        if due || child.try_wait().expect("poll").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    child.wait().expect("reap")
}

/// What is stored under `kp`.
#[derive(Debug, PartialEq, Eq)]
enum Stored {
    /// Byte for byte the dataset imported first.
    Old,
    /// A complete dataset of the big file.
    New,
    /// Anything else.
    Broken(String),
}

fn stored_state(data_dir: &Path, old_bytes: &[u8]) -> Stored {
    let path = dataset::dataset_path(data_dir, "kp");
    let Ok(bytes) = std::fs::read(&path) else {
        return Stored::Broken("kp.bmds is missing".into());
    };
    if bytes == old_bytes {
        return Stored::Old;
    }
    match Dataset::load(data_dir, "kp") {
        Ok(loaded) if loaded.len() == BIG => Stored::New,
        Ok(loaded) => Stored::Broken(format!("{} records", loaded.len())),
        Err(err) => Stored::Broken(err.to_string()),
    }
}

/// `dataset list` succeeds and shows exactly the real datasets, whatever temporary
/// files lie next to them.
fn check_listing(data_dir: &Path) {
    let (ok, stdout, stderr) = blindmatch(data_dir, &["dataset", "list", "--json"]);
    assert!(ok, "dataset list failed: {stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).expect("list --json");
    let mut names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["calibration", "kp"], "{stdout}");
    let entries = dataset::list(data_dir).expect("list");
    assert!(
        entries.iter().all(|e| e.meta.is_ok()),
        "an unreadable dataset"
    );
    for temp in temp_files(data_dir) {
        let name = temp
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with('.') && name.ends_with(".tmp"),
            "unexpected file {name} in the datasets directory"
        );
    }
}

/// Files in the datasets directory other than datasets and their rejects reports.
fn temp_files(data_dir: &Path) -> Vec<PathBuf> {
    files_ending(&dataset::datasets_dir(data_dir), "")
        .into_iter()
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name != dataset::LOCK_FILE
                && (!(name.ends_with(".bmds") || name.ends_with(".rejects.csv"))
                    || name.starts_with('.'))
        })
        .collect()
}

fn input_sha(data_dir: &Path, name: &str) -> String {
    Dataset::load(data_dir, name)
        .expect("dataset loads")
        .meta()
        .input_sha256
        .clone()
}

/// The keyed hash the node records for an input file of SHA-256 `sha256`.
fn file_mac(data_dir: &Path, sha256: &str) -> String {
    blindmatch_node::identity::NodeIdentity::load(data_dir)
        .expect("identity")
        .input_file_mac(sha256)
}

/// The keyed input hash of the last `dataset_imported` record for `name`.
fn last_import_mac(data_dir: &Path, name: &str) -> Option<String> {
    audit_kind(data_dir, "dataset_imported")
        .into_iter()
        .filter(|e| e.fields["name"] == name)
        .filter_map(|e| e.fields["input_hmac"].as_str().map(str::to_owned))
        .next_back()
}

fn write_csv(dir: &Path, file: &str, ids: std::ops::Range<usize>) -> PathBuf {
    let path = dir.join(file);
    let mut text = String::with_capacity(ids.len() * 48);
    text.push_str("id,email,phone\n");
    for i in ids {
        text.push_str(&format!("r{i},{},+86 138{:08}\n", email(i), i));
    }
    std::fs::write(&path, text).expect("csv");
    path
}

fn import_args(csv: &Path, name: &str) -> Vec<String> {
    import_args_str(csv, name)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn import_args_str<'a>(csv: &'a Path, name: &'a str) -> Vec<&'a str> {
    vec![
        "--quiet",
        "dataset",
        "import",
        csv.to_str().expect("utf-8 path"),
        "--name",
        name,
        "--id-col",
        "id",
        "--email-col",
        "email",
        "--phone-col",
        "phone",
    ]
}

/// Imports through the binary, uninterrupted.
fn import(data_dir: &Path, csv: &Path, name: &str) -> Result<(), String> {
    let (ok, _, stderr) = blindmatch(data_dir, &import_args_str(csv, name));
    if ok { Ok(()) } else { Err(stderr) }
}
