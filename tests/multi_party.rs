//! One `match` against several peers, over real processes: `serve` and `match` are the
//! `blindmatch` binary, the network is QUIC with mutual TLS on 127.0.0.1, and every
//! setting is made through the CLI. Three nodes at least: `acme` (the initiator) and
//! the providers `north` and `south`; the failure cases add one that is down and one
//! that refuses.
//!
//! acme holds contacts 0..80, north 0..40, south 20..60: north matches acme's records
//! r0..r39, south r20..r59; both match r20..r39; none matches r60..r79.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use blindmatch_node::config::NodeConfig;
use support::audit_kind;
use support::process::{BIN, ServeProcess};

/// acme's idle timeout: how long a session waits for a peer that is down.
const ACME_IDLE_SECS: u64 = 4;

/// How a `blindmatch` command ended.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn blindmatch(dir: &Path, args: &[&str]) -> Outcome {
    let out = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run blindmatch");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed; its stdout.
fn cli(dir: &Path, args: &[&str]) -> String {
    let out = blindmatch(dir, args);
    assert_eq!(
        out.code,
        Some(0),
        "blindmatch {args:?} failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn fingerprint(dir: &Path) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&cli(dir, &["id", "--json"])).expect("id --json");
    json["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned()
}

/// Imports emails `contact{i}@example.com` with ids `r{i}` as dataset `name`.
fn import(dir: &Path, root: &Path, name: &str, ids: std::ops::Range<usize>) {
    let node = dir.file_name().and_then(|n| n.to_str()).expect("node name");
    let csv = root.join(format!("{node}-{name}.csv"));
    let mut text = String::from("id,email\n");
    for i in ids {
        text.push_str(&format!("r{i},contact{i}@example.com\n"));
    }
    std::fs::write(&csv, text).expect("csv");
    #[rustfmt::skip]
    cli(dir, &["dataset", "import", csv.to_str().expect("utf8"), "--name", name, "--id-col", "id", "--email-col", "email"]);
}

/// A provider pinned by acme, serving (or not: then nothing listens at its address).
struct Provider {
    dir: PathBuf,
    _server: Option<ServeProcess>,
}

/// acme and its providers.
struct World {
    root: tempfile::TempDir,
    acme: PathBuf,
    providers: BTreeMap<&'static str, Provider>,
}

impl World {
    fn new() -> World {
        let root = tempfile::tempdir().expect("tempdir");
        let acme = root.path().join("acme");
        cli(&acme, &["init", "--name", "acme"]);
        import(&acme, root.path(), "crm", 0..80);
        let mut config = NodeConfig::load(&acme).expect("acme's node.toml");
        config.limits.idle_timeout = Duration::from_secs(ACME_IDLE_SECS);
        config.save(&acme).expect("save acme's node.toml");
        World {
            root,
            acme,
            providers: BTreeMap::new(),
        }
    }

    /// A provider holding contacts `ids` as `kp`, offering it to acme in `modes`,
    /// pinned by acme with `--match-modes initiator,both`; serving if `serve`.
    fn provider(
        &mut self,
        name: &'static str,
        ids: std::ops::Range<usize>,
        modes: &str,
        serve: bool,
    ) {
        let dir = self.root.path().join(name);
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let listen = addr.to_string();
        cli(&dir, &["init", "--name", name, "--listen", &listen]);
        import(&dir, self.root.path(), "kp", ids);
        let acme_fp = fingerprint(&self.acme);
        #[rustfmt::skip]
        cli(&dir, &["peer", "add", "acme", "--addr", "127.0.0.1:7447", "--fingerprint", &acme_fp, "--offer", "kp", "--modes", modes, "--max-identifiers-per-day", "none", "--max-identifiers-total", "none", "--max-sessions-per-hour", "none"]);
        let fp = fingerprint(&dir);
        #[rustfmt::skip]
        cli(&self.acme, &["peer", "add", name, "--addr", &listen, "--fingerprint", &fp, "--match-modes", "initiator,both"]);
        let server = serve.then(|| ServeProcess::start(&dir, addr));
        self.providers.insert(
            name,
            Provider {
                dir,
                _server: server,
            },
        );
    }

    fn dir(&self, name: &str) -> &Path {
        &self.providers[name].dir
    }

    /// acme runs `match` over dataset crm with `args`.
    fn run(&self, args: &[&str]) -> Outcome {
        let mut all = vec![
            "match",
            "--dataset",
            "crm",
            "--purpose",
            "coverage of three providers",
        ];
        all.extend_from_slice(args);
        blindmatch(&self.acme, &all)
    }

    fn out(&self, name: &str) -> String {
        self.root
            .path()
            .join(name)
            .to_str()
            .expect("utf8")
            .to_owned()
    }
}

/// A combined file: header, then per row the record id and the other fields.
fn read_csv(path: &str) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).expect("combined file");
    let header = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|row| {
            let row = row.expect("row");
            let mut fields = row.iter().map(str::to_owned);
            let id = fields.next().expect("id");
            (id, fields.collect())
        })
        .collect();
    (header, rows)
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    let mut ids: Vec<String> = range.map(|i| format!("r{i}")).collect();
    ids.sort();
    ids
}

fn json(out: &Outcome) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
}

#[test]
fn a_run_against_two_providers_gives_every_pairwise_result_and_the_n_way_one() {
    let mut world = World::new();
    world.provider("north", 0..40, "initiator,both", true);
    world.provider("south", 20..60, "initiator,both", true);

    // Every record matched by at least one peer, a column per peer.
    let any = world.out("any.csv");
    let done = world.run(&["--peer", "north", "--peer", "south", "--out", &any]);
    assert_eq!(done.code, Some(0), "{}\n{}", done.stdout, done.stderr);
    assert!(
        done.stdout
            .contains("any 60 (75.0%), all 20 (25.0%), none 20 (25.0%)"),
        "{}",
        done.stdout
    );
    let (header, rows) = read_csv(&any);
    assert_eq!(header, ["id", "north", "south", "peers_matched"]);
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), ids(0..60));
    assert_eq!(rows["r5"], ["email", "", "1"]);
    assert_eq!(rows["r25"], ["email", "email", "2"]);
    assert_eq!(rows["r45"], ["", "email", "1"]);

    // The N-way result: only the records both hold.
    let all = world.out("all.csv");
    let done = world.run(&["--peers", "north,south", "--require", "all", "--out", &all]);
    assert_eq!(done.code, Some(0), "{}\n{}", done.stdout, done.stderr);
    let (_, rows) = read_csv(&all);
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), ids(20..40));
    assert!(rows.values().all(|r| r == &["email", "email", "2"]));

    // JSON, with north in `both` mode (it learns its matched records too).
    let two = world.out("two.csv");
    let done = world.run(&[
        "--peers",
        "north:both,south",
        "--require",
        "2",
        "--json",
        "--out",
        &two,
    ]);
    assert_eq!(done.code, Some(0), "{}\n{}", done.stdout, done.stderr);
    let summary = json(&done);
    assert_eq!(summary["status"], "completed");
    assert_eq!(summary["our_records"], 80);
    assert_eq!(summary["require"], "2");
    let peers = summary["peers"].as_array().expect("peers");
    assert_eq!(peers.len(), 2);
    for (peer, name, mode) in [
        (&peers[0], "north", "both"),
        (&peers[1], "south", "initiator"),
    ] {
        assert_eq!(peer["peer"], name);
        assert_eq!(peer["mode"], mode);
        assert_eq!(peer["status"], "completed");
        assert_eq!(peer["matched_records"], 40);
        assert_eq!(peer["share"], 0.5);
        assert_eq!(peer["identifiers"], 40);
        // Each session keeps its own pairwise result file.
        let own = peer["out"].as_str().expect("session result file");
        assert_eq!(read_csv(own).1.len(), 40, "{own}");
    }
    let combined = &summary["combined"];
    assert_eq!(
        (
            combined["any"].as_u64(),
            combined["all"].as_u64(),
            combined["none"].as_u64()
        ),
        (Some(60), Some(20), Some(20))
    );
    assert_eq!(combined["kept"], 20);
    assert_eq!(combined["out"], two.as_str());
    assert_eq!(read_csv(&two).1.len(), 20);
    let north_results = std::fs::read_dir(world.dir("north").join("results"))
        .expect("north's results")
        .count();
    assert_eq!(
        north_results, 1,
        "in `both` mode north learned its matched records"
    );
    assert!(
        !world.dir("south").join("results").exists(),
        "in initiator mode south learned nothing"
    );

    // Our log links the run's sessions; each provider's log agrees with ours.
    let run_id = summary["run_id"].as_str().expect("run id").to_owned();
    let in_run: Vec<_> = audit_kind(&world.acme, "session_completed")
        .into_iter()
        .filter(|r| r.fields["run_id"] == run_id.as_str())
        .collect();
    assert_eq!(in_run.len(), 2);
    let shown = cli(&world.acme, &["audit", "show", "--run", &run_id[..8]]);
    assert!(
        shown.contains(&format!("run {run_id}: 2 sessions")),
        "{shown}"
    );
    for peer in peers {
        let session = peer["session_id"].as_str().expect("session id");
        let line = shown
            .lines()
            .find(|l| l.starts_with(&format!("  {}", &session[..16])))
            .unwrap_or_else(|| panic!("session {session} not in\n{shown}"));
        assert!(
            line.contains(peer["peer"].as_str().expect("name")) && line.contains("completed"),
            "{line}"
        );
    }
    let shown: serde_json::Value = serde_json::from_str(&cli(
        &world.acme,
        &["audit", "show", "--run", &run_id, "--json"],
    ))
    .expect("json");
    let records = shown.as_array().expect("records");
    assert_eq!(
        records.len(),
        6,
        "requested, accepted, completed per session"
    );
    assert!(
        records
            .iter()
            .all(|r| r["fields"]["run_id"] == run_id.as_str())
    );
    let missing = blindmatch(&world.acme, &["audit", "show", "--run", "ffffffffffffffff"]);
    assert_ne!(missing.code, Some(0));
    assert!(
        missing.stderr.contains("no run ffffffffffffffff"),
        "{}",
        missing.stderr
    );
    for name in ["north", "south"] {
        let theirs = world.dir(name).join("audit.jsonl");
        let ours = world.acme.join("audit.jsonl");
        let crossed = blindmatch(
            &world.acme,
            &[
                "audit",
                "cross-check",
                ours.to_str().expect("utf8"),
                theirs.to_str().expect("utf8"),
            ],
        );
        assert_eq!(
            crossed.code,
            Some(0),
            "acme and {name}:\n{}",
            crossed.stdout
        );
    }
}

#[test]
fn a_peer_down_and_a_peer_refusing_cost_only_their_own_sessions() {
    let mut world = World::new();
    world.provider("north", 0..40, "initiator", true);
    world.provider("east", 0..80, "initiator", false);
    // west offers only counts: acme's `initiator` session is refused.
    world.provider("west", 30..50, "cardinality", true);

    let out = world.out("partial.csv");
    let done = world.run(&["--peers", "north,east,west", "--out", &out]);
    assert_eq!(
        done.code,
        Some(3),
        "partial run:\n{}\n{}",
        done.stdout,
        done.stderr
    );
    let text = &done.stdout;
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name} in\n{text}"))
    };
    assert!(
        row("north").contains("completed") && row("north").contains("40 (50.0%)"),
        "{text}"
    );
    assert!(row("east").contains("FAILED"), "{text}");
    assert!(row("west").contains("FAILED"), "{text}");
    assert!(
        text.contains("failed      east: ") && text.contains("within the idle timeout"),
        "{text}"
    );
    assert!(
        text.contains("failed      west: ") && text.contains("mode-not-allowed"),
        "{text}"
    );
    assert!(text.contains("over 1 of 3 peers (north)"), "{text}");
    // north's results are kept, in the combined file and in its own.
    let (header, rows) = read_csv(&out);
    assert_eq!(header, ["id", "north", "east", "west", "peers_matched"]);
    assert_eq!(rows.keys().cloned().collect::<Vec<_>>(), ids(0..40));
    assert!(rows.values().all(|r| r == &["email", "", "", "1"]));

    // The same as JSON, and with everyone required: nothing can be shown to meet it.
    let done = world.run(&[
        "--peers",
        "north,east,west",
        "--require",
        "all",
        "--json",
        "--out",
        &world.out("all.csv"),
    ]);
    assert_eq!(done.code, Some(3), "{}\n{}", done.stdout, done.stderr);
    let summary = json(&done);
    assert_eq!(summary["status"], "partial");
    let peers = summary["peers"].as_array().expect("peers");
    assert_eq!(peers[0]["status"], "completed");
    assert_eq!(peers[0]["matched_records"], 40);
    for (peer, name) in [(&peers[1], "east"), (&peers[2], "west")] {
        assert_eq!(peer["peer"], name);
        assert_eq!(peer["status"], "failed");
        assert!(
            peer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{peer}"
        );
    }
    assert!(
        peers[2]["error"]
            .as_str()
            .expect("error")
            .contains("mode-not-allowed")
    );
    assert_eq!(summary["combined"]["over"], serde_json::json!(["north"]));
    assert_eq!(summary["combined"]["kept"], 0);

    // The refusal and the completed session are in our log under the same run id.
    let run_id = summary["run_id"].as_str().expect("run id");
    let in_run = |kind: &str| {
        audit_kind(&world.acme, kind)
            .into_iter()
            .filter(|r| r.fields["run_id"] == run_id)
            .map(|r| {
                r.fields["peer_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(in_run("session_completed"), ["north"]);
    // The responder's refusal ends our session: recorded as aborted, with its reason.
    assert_eq!(in_run("session_aborted"), ["west"]);
    let aborted = audit_kind(&world.acme, "session_aborted");
    let west = aborted
        .iter()
        .rfind(|r| r.fields["run_id"] == run_id)
        .expect("west's record");
    assert!(west.text().contains("mode-not-allowed"), "{}", west.text());

    // Nobody answering is a failure, not a partial run.
    let done = world.run(&["--peers", "east,west"]);
    assert_eq!(done.code, Some(1), "{}\n{}", done.stdout, done.stderr);
    assert!(
        done.stderr.contains("no session of the run completed"),
        "{}",
        done.stderr
    );
}

#[test]
fn a_single_peer_keeps_the_session_output_and_bad_runs_never_start() {
    let mut world = World::new();
    world.provider("north", 0..40, "initiator", true);
    world.provider("south", 20..60, "initiator", true);

    let out = world.out("single.csv");
    let text = cli(
        &world.acme,
        &[
            "match",
            "--peer",
            "north",
            "--dataset",
            "crm",
            "--purpose",
            "p",
            "--out",
            &out,
        ],
    );
    assert!(text.starts_with("session     "), "{text}");
    assert!(
        text.contains("matches     40 of our 80 records (50.0%), 40 identifiers"),
        "{text}"
    );
    assert!(!text.contains("run "), "{text}");
    let header = std::fs::read_to_string(&out).expect("result file");
    assert!(header.starts_with("id,matched_kinds\n"), "{header}");
    let single = json(&world.run(&["--peer", "south", "--json"]));
    assert_eq!(single["run_id"], serde_json::Value::Null);
    assert_eq!(single["peers"][0]["matched_records"], 40);
    assert!(
        audit_kind(&world.acme, "session_completed")
            .iter()
            .all(|r| r.fields["run_id"].is_null())
    );

    let sessions = audit_kind(&world.acme, "session_requested").len();
    for (args, why) in [
        (
            vec!["--peers", "north,south", "--require", "3"],
            "asks for more peers than the 2 named",
        ),
        (vec!["--peer", "north", "--peer", "north"], "named twice"),
        (
            vec!["--peers", "north,south:cardinality", "--require", "all"],
            "in which we learn no records",
        ),
        (vec!["--peers", "north,nobody"], "no peer named `nobody`"),
        (
            vec!["--peers", "north,south:sideways"],
            "unknown mode `sideways`",
        ),
        (
            vec!["--peers", "north,south", "--via-index"],
            "one peer at a time",
        ),
        (
            vec!["--peer", "north:both", "--via-index"],
            "without `:MODE`",
        ),
    ] {
        let done = world.run(&args);
        assert_eq!(done.code, Some(1), "{args:?}");
        assert!(done.stderr.contains(why), "{args:?}: {}", done.stderr);
    }
    assert_eq!(
        audit_kind(&world.acme, "session_requested").len(),
        sessions,
        "nothing started"
    );
}

#[test]
fn the_three_party_demo_checks_itself_against_the_known_answer() {
    let out = Command::new(BIN)
        .args(["demo", "--parties", "3", "--n", "600", "--quiet"])
        .stdin(Stdio::null())
        .output()
        .expect("run blindmatch demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 nodes as separate processes"), "{stdout}");
    for line in ["pair     provider-1: ", "pair     provider-2: "] {
        let found = stdout.lines().find(|l| l.starts_with(line));
        assert!(
            found.is_some_and(|l| l.ends_with("both equal the known answer")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("records held by every provider: equal to the known answer"),
        "{stdout}"
    );
    assert!(stdout.contains("3 pairs of logs cross-checked"), "{stdout}");
}
