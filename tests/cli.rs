//! The path a user types: the real `blindmatch` binary, two data directories, `init`
//! twice, `peer add` both ways, `dataset import`, `serve` in the background, `match`,
//! results compared; `audit verify` on both logs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_blindmatch");

fn blindmatch(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .output()
        .expect("run blindmatch");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "blindmatch {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data_dir: &Path) -> Serving {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("serve")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve");
    // Wait until it says it is serving.
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "serve did not start");
        match lines.next() {
            Some(Ok(line)) if line.contains("serving") => break,
            Some(Ok(_)) => continue,
            _ => panic!("serve exited before serving"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Serving(child)
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

    let server = serve(&datahub);
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
        summary.contains("matches     2 identifiers, 2 of our records"),
        "{summary}"
    );
    let results = std::fs::read_to_string(&out).expect("results");
    assert_eq!(results, "id,matched_kinds\nA1,email\nA3,phone\n");

    for dir in [&acme, &datahub] {
        let verified = blindmatch(dir, &["audit", "verify"]);
        assert!(!verified.is_empty());
    }
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
    let mut server = serve(&node);
    let pid = server.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
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
