//! The path a user types: the real `blindmatch` binary, two data directories, `init`
//! twice, `peer add` both ways, `dataset import`, `serve` in the background, `match`,
//! results compared; `audit verify` on both logs.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::process::{BIN, ServeProcess};

/// Runs `blindmatch --data-dir DATA_DIR ARGS…`, which must succeed; its stdout.
fn blindmatch(data_dir: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = support::process::blindmatch(data_dir, args);
    assert!(ok, "blindmatch {args:?} failed:\n{stdout}\n{stderr}");
    stdout
}

fn fingerprint(data_dir: &Path) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&blindmatch(data_dir, &["id", "--json"])).expect("id --json");
    json["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned()
}

fn localhost(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn two_nodes_match_through_the_binary() {
    let root = tempfile::tempdir().expect("tempdir");
    let acme = root.path().join("acme");
    let datahub = root.path().join("datahub");
    let port = free_udp_port();
    blindmatch(
        &acme,
        &["init", "--name", "acme", "--listen", "127.0.0.1:7447"],
    );
    blindmatch(
        &datahub,
        &[
            "init",
            "--name",
            "datahub",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let acme_fp = fingerprint(&acme);
    let datahub_fp = fingerprint(&datahub);

    std::fs::write(
        root.path().join("crm.csv"),
        "\u{feff}crm_id,email,phone\nA1,zhang.wei@yunfan.cn,138 0013 8000\nA2,li.na@example.cn,\nA3,bad@@mail,13900001111\nA4,nobody@x.cn,15000000001\n",
    )
    .expect("write crm");
    std::fs::write(
        root.path().join("kp.csv"),
        "id,email,mobile\nK1,ZHANG.WEI@YUNFAN.CN,\nK2,,+86 139-0000-1111\nK3,other@y.cn,13700000000\n",
    )
    .expect("write kp");

    blindmatch(
        &datahub,
        &[
            "dataset",
            "import",
            root.path().join("kp.csv").to_str().expect("utf8"),
            "--name",
            "kp",
            "--id-col",
            "id",
            "--email-col",
            "email",
            "--phone-col",
            "mobile",
        ],
    );
    blindmatch(
        &acme,
        &[
            "dataset",
            "import",
            root.path().join("crm.csv").to_str().expect("utf8"),
            "--name",
            "crm",
            "--id-col",
            "crm_id",
            "--email-col",
            "email",
            "--phone-col",
            "phone",
        ],
    );
    blindmatch(
        &datahub,
        &[
            "peer",
            "add",
            "acme",
            "--addr",
            "127.0.0.1:7447",
            "--fingerprint",
            &acme_fp,
            "--offer",
            "kp",
            "--modes",
            "initiator",
        ],
    );
    blindmatch(
        &acme,
        &[
            "peer",
            "add",
            "datahub",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--fingerprint",
            &datahub_fp,
        ],
    );
    let peers = blindmatch(&acme, &["peer", "list"]);
    assert!(
        peers.contains("datahub") && peers.contains(&datahub_fp),
        "{peers}"
    );

    let server = ServeProcess::start(&datahub, localhost(port));
    let out = root.path().join("matches.csv");
    let summary = blindmatch(
        &acme,
        &[
            "match",
            "--peer",
            "datahub",
            "--dataset",
            "crm",
            "--purpose",
            "coverage check",
            "--legal-basis",
            "consent",
            "--out",
            out.to_str().expect("utf8"),
        ],
    );
    drop(server);
    assert!(
        summary.contains("matches     2 of our 4 records (50.0%), 2 identifiers"),
        "{summary}"
    );
    let results = std::fs::read_to_string(&out).expect("results");
    assert_eq!(results, "id,matched_kinds\nA1,email\nA3,phone\n");

    for dir in [&acme, &datahub] {
        let verified = blindmatch(dir, &["audit", "verify"]);
        assert!(!verified.is_empty());
    }
    imported_file_is_recorded_by_a_keyed_hash(root.path(), &acme, &datahub);
}

/// The `dataset_imported` record names the file by a hash only its importer can
/// compute: `dataset file-mac` reproduces it on that node, another node's key gives
/// another value, and the plain SHA-256 of the file appears nowhere in the log.
fn imported_file_is_recorded_by_a_keyed_hash(root: &Path, acme: &Path, datahub: &Path) {
    use sha2::Digest;
    let crm = root.join("crm.csv");
    let crm = crm.to_str().expect("utf8");
    let ours = blindmatch(acme, &["dataset", "file-mac", crm]);
    let theirs = blindmatch(datahub, &["dataset", "file-mac", crm]);
    let log = std::fs::read_to_string(acme.join("audit.jsonl")).expect("audit log");
    let imported = log
        .lines()
        .find(|line| line.contains("\"dataset_imported\""))
        .expect("a dataset_imported record");
    let record: serde_json::Value = serde_json::from_str(imported).expect("json");
    let recorded = record["fields"]["input_hmac"].as_str().expect("input_hmac");
    assert_eq!(ours.trim(), recorded);
    assert_ne!(theirs.trim(), recorded);
    let plain = hex::encode(sha2::Sha256::digest(
        std::fs::read(root.join("crm.csv")).expect("crm"),
    ));
    assert!(
        !log.contains(&plain),
        "the file's plain SHA-256 is in the log"
    );
}

#[test]
fn match_failure_exits_non_zero_with_a_clear_message_and_no_file() {
    let root = tempfile::tempdir().expect("tempdir");
    let acme = root.path().join("acme");
    blindmatch(&acme, &["init", "--name", "acme"]);
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(&acme)
        .args([
            "match",
            "--peer",
            "nobody",
            "--dataset",
            "crm",
            "--purpose",
            "x",
            "--out",
        ])
        .arg(root.path().join("m.csv"))
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no peer named `nobody`"), "{stderr}");
    assert!(!root.path().join("m.csv").exists());
}

#[test]
fn serve_stops_gracefully_on_sigterm() {
    let root = tempfile::tempdir().expect("tempdir");
    let node = root.path().join("node");
    let port = free_udp_port();
    blindmatch(
        &node,
        &[
            "init",
            "--name",
            "solo",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
    );
    let mut server = ServeProcess::start(&node, localhost(port));
    let pid = server.pid().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "serve exits 0 after SIGTERM: {status}");
    let verified = blindmatch(&node, &["audit", "verify"]);
    assert!(!verified.is_empty());
}

/// Runs the binary expecting failure; its stderr.
fn blindmatch_fails(data_dir: &Path, args: &[&str]) -> String {
    let (ok, stdout, stderr) = support::process::blindmatch(data_dir, args);
    assert!(!ok, "blindmatch {args:?} succeeded:\n{stdout}");
    stderr
}

#[test]
fn peer_add_needs_modes_and_writes_explicit_limits() {
    let root = tempfile::tempdir().expect("tempdir");
    let hub = root.path().join("hub");
    let other = root.path().join("other");
    blindmatch(&hub, &["init", "--name", "hub"]);
    blindmatch(&other, &["init", "--name", "other"]);
    let csv = root.path().join("kp.csv");
    std::fs::write(
        &csv,
        "id,email\nK1,a@x.cn\nK2,b@x.cn\nK3,c@x.cn\nK4,d@x.cn\n",
    )
    .expect("csv");
    let csv_arg = csv.to_str().expect("utf8");
    blindmatch(
        &hub,
        &[
            "dataset",
            "import",
            csv_arg,
            "--name",
            "kp",
            "--id-col",
            "id",
            "--email-col",
            "email",
        ],
    );
    let other_fp = fingerprint(&other);
    let base = [
        "peer",
        "add",
        "other",
        "--addr",
        "127.0.0.1:7447",
        "--fingerprint",
    ];

    // --offer without --modes: refused, each mode explained.
    let mut args: Vec<&str> = base.to_vec();
    args.extend([other_fp.as_str(), "--offer", "kp"]);
    let err = blindmatch_fails(&hub, &args);
    for mode in ["both", "initiator", "responder", "cardinality"] {
        assert!(err.contains(mode), "{err}");
    }
    assert!(err.contains("--modes"), "{err}");
    // A dataset that does not exist, and our own fingerprint.
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        other_fp.as_str(),
        "--offer",
        "nothing-here",
        "--modes",
        "cardinality",
    ]);
    assert!(blindmatch_fails(&hub, &args).contains("cannot offer dataset `nothing-here`"));
    let own = fingerprint(&hub);
    let mut args: Vec<&str> = base.to_vec();
    args.extend([own.as_str()]);
    assert!(blindmatch_fails(&hub, &args).contains("this node's own fingerprint"));

    // With --modes: explicit limits derived from the 4 offered identifiers.
    let mut args: Vec<&str> = base.to_vec();
    args.extend([
        other_fp.as_str(),
        "--offer",
        "kp",
        "--modes",
        "cardinality,responder",
    ]);
    blindmatch(&hub, &args);
    let toml = std::fs::read_to_string(hub.join("node.toml")).expect("node.toml");
    for line in [
        "modes = [\"cardinality\", \"responder\"]",
        "match_modes = [\"initiator\"]",
        "max_set_ratio = 2.0",
        "max_identifiers_per_day = 8",
        "max_identifiers_total = 80",
        "max_sessions_per_hour = 6",
    ] {
        assert!(toml.contains(line), "missing `{line}` in:\n{toml}");
    }
    let policy = blindmatch(&hub, &["policy", "check"]);
    assert!(
        policy.contains("8 identifiers per rolling 24 hours"),
        "{policy}"
    );
}
