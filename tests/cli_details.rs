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
