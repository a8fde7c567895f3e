//! The small things an operator trips over with the real binary (issue 16, item 7): a
//! read-only data directory, errors that repeat the OS error, `--encoding gbk`, `-q`,
//! what `init` and `dataset list` say.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::process::BIN;

/// Runs `blindmatch --data-dir DIR ARGS…`, which must succeed; its stdout.
fn cli(dir: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = support::process::blindmatch(dir, args);
    assert!(ok, "blindmatch {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

/// A node `solo` with dataset `crm` (3 records) in a fresh temporary directory.
fn solo() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().expect("tempdir");
    let node = root.path().join("solo");
    let init = cli(&node, &["init", "--name", "solo"]);
    assert!(
        init.contains("blindmatch peer add solo "),
        "the partner's command names this node:\n{init}"
    );
    let csv = root.path().join("crm.csv");
    std::fs::write(&csv, "id,email\nA1,a@x.cn\nA2,b@x.cn\nA3,a@x.cn\n").expect("csv");
    cli(
        &node,
        &[
            "dataset",
            "import",
            csv.to_str().expect("utf8"),
            "--name",
            "crm",
            "--id-col",
            "id",
            "--email-col",
            "email",
        ],
    );
    (root, node)
}

/// `dataset list` only reads: it works on a data directory nobody may write (as root,
/// run as user `nobody` on a copy it owns), and says why its identifier count can be
/// larger than a session's set.
#[test]
fn dataset_list_works_on_a_read_only_data_directory() {
    let (root, node) = solo();
    let listed = cli(&node, &["dataset", "list"]);
    assert!(
        listed.contains("A session sends each distinct\nidentifier once"),
        "{listed}"
    );
    let read_only = |path: &Path| {
        let status = Command::new("chmod")
            .args(["-R", "a-w,a+rX"])
            .arg(path)
            .status()
            .expect("chmod");
        assert!(status.success());
    };
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    let output = if is_root {
        // Root writes anywhere: run as `nobody`, owning the directory but unable to write.
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod root");
        let owned = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(&node)
            .status()
            .expect("chown");
        assert!(owned.success());
        read_only(&node);
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .arg("--data-dir")
            .arg(&node)
            .args(["dataset", "list"])
            .output()
            .expect("setpriv")
    } else {
        read_only(&node);
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&node)
            .args(["dataset", "list"])
            .output()
            .expect("run")
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("crm"), "{stdout}");
    // Let the temporary directory be removed.
    let _ = Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(&node)
        .status();
}

/// An error caused by the OS says the OS error once.
#[test]
fn errors_say_the_os_error_once() {
    let (root, node) = solo();
    let missing = root.path().join("missing.csv");
    let (ok, _, stderr) = support::process::blindmatch(
        &node,
        &[
            "dataset",
            "import",
            missing.to_str().expect("utf8"),
            "--name",
            "crm2",
            "--email-col",
            "email",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("missing.csv"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

/// `--encoding gbk` (and `gb2312`) name GB18030, which decodes both.
#[test]
fn encoding_gbk_is_gb18030() {
    let (root, node) = solo();
    let csv = root.path().join("gbk.csv");
    // "张三,华为" in GBK.
    let mut bytes = b"id,name,company,email\n1,".to_vec();
    bytes.extend_from_slice(&[0xd5, 0xc5, 0xc8, 0xfd, b',', 0xbb, 0xaa, 0xce, 0xaa]);
    bytes.extend_from_slice(b",zhang@huawei.com\n");
    std::fs::write(&csv, bytes).expect("csv");
    for (encoding, name) in [("gbk", "g1"), ("gb2312", "g2"), ("gb18030", "g3")] {
        let summary = cli(
            &node,
            &[
                "dataset",
                "import",
                csv.to_str().expect("utf8"),
                "--name",
                name,
                "--encoding",
                encoding,
                "--name-col",
                "name",
                "--company-col",
                "company",
                "--email-col",
                "email",
            ],
        );
        assert!(summary.contains("imported dataset"), "{summary}");
    }
}

/// `-q` leaves stdout empty for `peer add` and `dataset import`.
#[test]
fn quiet_quiets_summaries() {
    let (root, node) = solo();
    let csv = root.path().join("more.csv");
    std::fs::write(&csv, "id,email\nB1,c@x.cn\n").expect("csv");
    let imported = cli(
        &node,
        &[
            "-q",
            "dataset",
            "import",
            csv.to_str().expect("utf8"),
            "--name",
            "more",
            "--id-col",
            "id",
            "--email-col",
            "email",
        ],
    );
    assert_eq!(imported, "", "-q dataset import printed");
    let added = cli(
        &node,
        &[
            "-q",
            "peer",
            "add",
            "other",
            "--addr",
            "127.0.0.1:7447",
            "--fingerprint",
            &"ab".repeat(32),
        ],
    );
    assert_eq!(added, "", "-q peer add printed");
}

/// `results list|show` read the history from the audit log and `results/` of the nodes
/// `demo --keep` leaves behind: the responder's file with its row count, the
/// initiator's `--out` file said to be elsewhere.
#[test]
fn results_list_and_show_read_the_history() {
    let root = tempfile::tempdir().expect("tempdir");
    let kept = root.path().join("demo");
    let (ok, stdout, stderr) = support::process::blindmatch(
        root.path(),
        &[
            "-q",
            "demo",
            "--n",
            "300",
            "--keep",
            kept.to_str().expect("utf8"),
        ],
    );
    assert!(ok, "demo failed:\n{stdout}\n{stderr}");
    let provider = kept.join("provider-node");
    let crm = kept.join("crm-node");

    let json: serde_json::Value =
        serde_json::from_str(&cli(&provider, &["results", "list", "--json"])).expect("json");
    let sessions = json.as_array().expect("array");
    assert_eq!(sessions.len(), 1, "{json}");
    let session = sessions[0]["session_id"].as_str().expect("id").to_owned();
    let file = sessions[0]["file"]
        .as_str()
        .expect("a result file")
        .to_owned();
    let rows = std::fs::read_to_string(&file)
        .expect("file")
        .lines()
        .count()
        - 1;
    assert_eq!(sessions[0]["matched_records"].as_u64(), Some(rows as u64));

    let listed = cli(&provider, &["results", "list"]);
    assert!(
        listed.contains(&session[..12]) && listed.contains(&file),
        "{listed}"
    );
    let shown = cli(&provider, &["results", "show", &session[..8]]);
    assert!(
        shown.contains(&format!("results          {file} ({rows} rows)")),
        "{shown}"
    );
    assert!(shown.contains("peer             crm"), "{shown}");
    let theirs = cli(&crm, &["results", "show", &session[..8]]);
    assert!(theirs.contains("written to `match --out`"), "{theirs}");
    let none = cli(&crm, &["results", "list", "--peer", "nobody"]);
    assert!(
        none.contains("no completed sessions with `nobody`"),
        "{none}"
    );

    let (ok, _, stderr) = support::process::blindmatch(&crm, &["results", "show", "ffff"]);
    assert!(!ok);
    assert!(stderr.contains("no completed session ffff"), "{stderr}");
}

/// Shell completions and man pages come from the CLI definition itself.
#[test]
fn completions_and_man_pages_are_generated() {
    let root = tempfile::tempdir().expect("tempdir");
    let bash = cli(root.path(), &["completions", "bash"]);
    assert!(bash.contains("_blindmatch()"), "{bash}");
    assert!(
        bash.contains("--connect-timeout"),
        "match's options are completed"
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(
            !cli(root.path(), &["completions", shell]).is_empty(),
            "{shell}"
        );
    }
    let page = cli(root.path(), &["manpage"]);
    assert!(page.contains(".TH blindmatch 1"), "{page}");
    let dir = root.path().join("man");
    cli(
        root.path(),
        &["manpage", "--dir", dir.to_str().expect("utf8")],
    );
    let matching = std::fs::read_to_string(dir.join("blindmatch-match.1")).expect("page");
    assert!(matching.contains("connect\\-timeout"), "{matching}");
    assert!(dir.join("blindmatch-results-show.1").exists());
}

/// `deploy/blindmatch.service` is a valid unit (checked with `systemd-analyze verify`
/// where systemd is installed) and its `ExecStart` is a command line `blindmatch`
/// accepts.
#[test]
fn the_systemd_unit_is_valid() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/blindmatch.service"
    ))
    .expect("deploy/blindmatch.service");
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart=/usr/local/bin/blindmatch "))
        .expect("ExecStart runs /usr/local/bin/blindmatch");
    let root = tempfile::tempdir().expect("tempdir");
    let args: Vec<&str> = exec.split_whitespace().collect();
    let (ok, _, stderr) = support::process::blindmatch(&root.path().join("none"), &args);
    assert!(!ok, "serve ran without a node");
    assert!(
        stderr.contains("no identity found"),
        "the arguments parse, the missing node is the error:\n{stderr}"
    );

    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(probe.status.success());
    let path = root.path().join("blindmatch.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/blindmatch", BIN)).expect("unit");
    let verified = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
}

/// `deploy/Dockerfile` (not built here: no image registry is reachable) runs `serve` as
/// a non-root user on a data volume, with a command line `blindmatch` accepts.
#[test]
fn the_container_image_runs_serve_unprivileged() {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/Dockerfile"))
            .expect("deploy/Dockerfile");
    for line in [
        "USER blindmatch",
        "ENV BLINDMATCH_DATA_DIR=/data",
        "VOLUME [\"/data\"]",
        "EXPOSE 7447/udp",
        "ENTRYPOINT [\"blindmatch\"]",
    ] {
        assert!(dockerfile.lines().any(|l| l == line), "missing `{line}`");
    }
    let cmd = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("a CMD");
    let args: Vec<String> = serde_json::from_str(cmd).expect("CMD in exec form");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = tempfile::tempdir().expect("tempdir");
    let (ok, _, stderr) = support::process::blindmatch(&root.path().join("none"), &args);
    assert!(!ok, "serve ran without a node");
    assert!(stderr.contains("no identity found"), "{stderr}");
}
