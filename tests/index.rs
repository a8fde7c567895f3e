//! Index mode end to end through the real `blindmatch` binary: a provider builds the
//! index of its dataset (`dataset import --index`, `dataset index`), serves it over
//! QUIC, and a client matches through it (`match --via-index`): the results equal the
//! plain intersection, the index is fetched once, a cut-short download resumes, a
//! revocation rotates the key (the client's copy is replaced and the revoked records no
//! longer match), a stale index is refused, and a client over its budget is refused.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use blindmatch_node::config::NodeConfig;
use support::process::ServeProcess;

const PROVIDED: usize = 3000;

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

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Writes a CSV of records `<prefix><i>` with the email of contact `i`.
fn write_csv(path: &Path, prefix: &str, ids: impl IntoIterator<Item = usize>) {
    let mut text = String::from("id,email\n");
    for i in ids {
        text.push_str(&format!("{prefix}{i},{}\n", support::email(i)));
    }
    std::fs::write(path, text).expect("csv");
}

struct Pair {
    root: tempfile::TempDir,
    provider: PathBuf,
    client: PathBuf,
    addr: SocketAddr,
}

impl Pair {
    /// A provider holding contacts `0..PROVIDED` (dataset `kp`, indexed at import) and a
    /// client holding `crm` (its records `c<i>`), pinned both ways.
    fn new(crm: impl IntoIterator<Item = usize>) -> Pair {
        let root = tempfile::tempdir().expect("tempdir");
        let provider = root.path().join("datahub");
        let client = root.path().join("acme");
        let port = free_udp_port();
        let listen = format!("127.0.0.1:{port}");
        blindmatch(
            &provider,
            &["init", "--name", "datahub", "--listen", &listen],
        );
        blindmatch(&client, &["init", "--name", "acme"]);
        let kp = root.path().join("kp.csv");
        write_csv(&kp, "k", 0..PROVIDED);
        let built = blindmatch(
            &provider,
            &[
                "dataset",
                "import",
                path(&kp),
                "--name",
                "kp",
                "--id-col",
                "id",
                "--email-col",
                "email",
                "--index",
            ],
        );
        assert!(built.contains("new epoch"), "{built}");
        let crm_csv = root.path().join("crm.csv");
        write_csv(&crm_csv, "c", crm);
        blindmatch(
            &client,
            &[
                "dataset",
                "import",
                path(&crm_csv),
                "--name",
                "crm",
                "--id-col",
                "id",
                "--email-col",
                "email",
            ],
        );
        let client_fp = fingerprint(&client);
        let provider_fp = fingerprint(&provider);
        blindmatch(
            &provider,
            &[
                "peer",
                "add",
                "acme",
                "--addr",
                "127.0.0.1:7447",
                "--fingerprint",
                &client_fp,
                "--offer",
                "kp",
                "--modes",
                "initiator",
                // The tests rebuild and re-match many times; budgets are tested apart.
                "--max-identifiers-per-day",
                "none",
                "--max-identifiers-total",
                "none",
                "--max-sessions-per-hour",
                "none",
                "--max-set-ratio",
                "none",
            ],
        );
        blindmatch(
            &client,
            &[
                "peer",
                "add",
                "datahub",
                "--addr",
                &listen,
                "--fingerprint",
                &provider_fp,
            ],
        );
        Pair {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            root,
            provider,
            client,
        }
    }

    fn serve(&self) -> ServeProcess {
        ServeProcess::start(&self.provider, self.addr)
    }

    /// `match --via-index`; (succeeded, stdout, stderr, result ids).
    fn match_via_index(&self) -> (bool, String, String, BTreeSet<String>) {
        let out = self.root.path().join("matches.csv");
        let _ = std::fs::remove_file(&out);
        let (ok, stdout, stderr) = support::process::blindmatch(
            &self.client,
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
                "--via-index",
                "--out",
                path(&out),
            ],
        );
        let ids = if ok {
            support::result_ids(&out)
        } else {
            BTreeSet::new()
        };
        (ok, stdout, stderr, ids)
    }

    /// The client's cached copy of the provider's index.
    fn cache_file(&self) -> PathBuf {
        let dir = self.client.join("index-cache");
        let peer = std::fs::read_dir(&dir)
            .expect("cache dir")
            .next()
            .expect("one peer")
            .expect("entry")
            .path();
        peer.join("offered.bmix")
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf8 path")
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn a_match_via_the_index_equals_the_plain_intersection_and_fetches_once() {
    let pair = Pair::new(2500..3500);
    let _server = pair.serve();
    let (ok, stdout, stderr, found) = pair.match_via_index();
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(found, ids("c", 2500..3000));
    assert!(
        stdout.contains("matches     500 of our 1000 records (50.0%), 500 identifiers"),
        "{stdout}"
    );
    assert!(stdout.contains("fetched"), "{stdout}");
    let cached = std::fs::metadata(pair.cache_file())
        .expect("cached index")
        .len();
    assert!(
        cached < 8 * PROVIDED as u64 + 2048,
        "{cached} bytes for {PROVIDED} identifiers"
    );

    // The copy is current: nothing fetched, same result.
    let (ok, stdout, _, again) = pair.match_via_index();
    assert!(ok);
    assert_eq!(again, found);
    assert!(stdout.contains("the cached copy was current"), "{stdout}");

    // A download cut short resumes from what reached the disk.
    let file = pair.cache_file();
    let bytes = std::fs::read(&file).expect("cache");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    let (ok, stdout, _, resumed) = pair.match_via_index();
    assert!(ok);
    assert_eq!(resumed, found);
    assert!(stdout.contains("resumed at"), "{stdout}");
    assert_eq!(std::fs::read(&file).expect("cache"), bytes);

    // Both logs verify; the provider's records say how many identifiers were queried
    // and never how many matched.
    for dir in [&pair.client, &pair.provider] {
        blindmatch(dir, &["audit", "verify"]);
    }
    let served = support::audit_records(
        &support::TestNode {
            name: "datahub".into(),
            dir: pair.provider.clone(),
            fingerprint: fingerprint(&pair.provider).parse().expect("fp"),
        },
        "session_completed",
    );
    assert_eq!(served.len(), 3);
    for fields in served {
        assert_eq!(fields["peer_set_size"], 1000);
        assert!(fields["intersection_size"].is_null(), "{fields}");
        assert!(fields["matched_records"].is_null(), "{fields}");
        assert!(
            fields["index_epoch"]
                .as_str()
                .is_some_and(|e| e.len() == 32)
        );
    }
}

#[test]
fn a_revocation_rotates_the_key_and_the_client_follows() {
    let pair = Pair::new(2500..3500);
    {
        let _server = pair.serve();
        let (ok, _, stderr, found) = pair.match_via_index();
        assert!(ok, "{stderr}");
        assert_eq!(found, ids("c", 2500..3000));
    }
    let epoch_before = std::fs::read(pair.provider.join("index/kp/state.json")).expect("state");
    let revoked = pair.root.path().join("revoked.txt");
    let lines: Vec<String> = (2600..2700).map(|i| format!("k{i}")).collect();
    std::fs::write(&revoked, lines.join("\n")).expect("ids");
    let out = blindmatch(
        &pair.provider,
        &["dataset", "revoke", "kp", "--ids", path(&revoked)],
    );
    assert!(out.contains("new epoch"), "{out}");
    assert_ne!(
        std::fs::read(pair.provider.join("index/kp/state.json")).expect("state"),
        epoch_before
    );
    let built = support::audit_records(
        &support::TestNode {
            name: "datahub".into(),
            dir: pair.provider.clone(),
            fingerprint: fingerprint(&pair.provider).parse().expect("fp"),
        },
        "index_built",
    );
    assert_eq!(built.len(), 2);
    assert!(built[1]["previous_epoch"].is_string());

    let _server = pair.serve();
    let (ok, stdout, stderr, found) = pair.match_via_index();
    assert!(ok, "{stderr}");
    let mut expected = ids("c", 2500..3000);
    for i in 2600..2700 {
        expected.remove(&format!("c{i}"));
    }
    assert_eq!(found, expected, "revoked records no longer match");
    assert!(
        stdout.contains("fetched") && !stdout.contains("resumed"),
        "{stdout}"
    );

    // A dataset re-imported without --index is not matched through its old index.
    let kp = pair.root.path().join("kp2.csv");
    write_csv(&kp, "k", 0..10);
    blindmatch(
        &pair.provider,
        &[
            "dataset",
            "import",
            path(&kp),
            "--name",
            "kp",
            "--id-col",
            "id",
            "--email-col",
            "email",
        ],
    );
    drop(_server);
    let _server = pair.serve();
    let (ok, _, stderr, _) = pair.match_via_index();
    assert!(!ok);
    assert!(stderr.contains("index-unavailable"), "{stderr}");
}

#[test]
fn a_client_over_its_query_budget_is_refused() {
    let pair = Pair::new(2500..3500);
    let mut config = NodeConfig::load(&pair.provider).expect("config");
    config
        .peer_mut("acme")
        .expect("peer")
        .policy
        .max_identifiers_total = Some(1500);
    config.save(&pair.provider).expect("save");
    let _server = pair.serve();
    let (ok, _, stderr, _) = pair.match_via_index();
    assert!(ok, "{stderr}");
    let (ok, _, stderr, _) = pair.match_via_index();
    assert!(!ok);
    assert!(stderr.contains("budget-exhausted"), "{stderr}");
}

#[test]
fn an_index_only_grows_by_a_delta_when_identifiers_are_only_added() {
    let pair = Pair::new(2990..3010);
    {
        let _server = pair.serve();
        let (ok, _, stderr, found) = pair.match_via_index();
        assert!(ok, "{stderr}");
        assert_eq!(found.len(), 10);
    }
    let kp = pair.root.path().join("kp-more.csv");
    write_csv(&kp, "k", 0..PROVIDED + 5);
    let out = blindmatch(
        &pair.provider,
        &[
            "dataset",
            "import",
            path(&kp),
            "--name",
            "kp",
            "--id-col",
            "id",
            "--email-col",
            "email",
            "--index",
        ],
    );
    assert!(out.contains("delta segment"), "{out}");
    let before = std::fs::metadata(pair.cache_file()).expect("cache").len();
    let _server = pair.serve();
    let (ok, stdout, stderr, found) = pair.match_via_index();
    assert!(ok, "{stderr}");
    assert_eq!(found.len(), 15);
    assert!(
        stdout.contains(&format!("resumed at {:.1} MB", before as f64 / 1e6)),
        "{stdout}"
    );
}
