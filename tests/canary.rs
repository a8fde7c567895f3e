//! Canary (issue 4): known identifiers never leave the imported dataset files.
//!
//! Two real nodes import contact lists holding distinctive canary identifiers (emails,
//! +86 phones in messy raw forms, Chinese name + company pairs, and invalid values that
//! are rejected), then run sessions in every output mode in both directions, plus a
//! refused one, over QUIC through an in-process UDP relay that records every datagram.
//! The same prepared sets are also run through the sans-IO `Initiator` and `Responder`
//! in memory, recording every plaintext frame (what the driver writes into the TLS
//! stream). Log output is captured at DEBUG level.
//!
//! Then no file of either data directory except `datasets/*.bmds`, no log output, no
//! output of the audit commands, no UDP payload and no plaintext frame may contain a
//! canary: raw, trimmed, normalised (for phones also without the `+86`), each part of a
//! name + company, or the hex, base64 or raw bytes of either form or of its SHA-256.
//! Self-checks show the scanner does find canaries where they are planted.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use blindmatch_node::admin;
use blindmatch_node::audit::{self, AuditCommand};
use blindmatch_node::dataset::{self, Dataset, ImportOptions};
use blindmatch_node::matching::{self, MatchRequest, MatchSummary};
use blindmatch_node::node::Node;
use blindmatch_protocol::ident::Normaliser;
use blindmatch_protocol::session::{
    self, Event, Initiator, InitiatorConfig, KeySigner, Outcome, Parties, PreparedSet, Responder,
    ResponderConfig, Session,
};
use blindmatch_protocol::wire::{DatasetRef, OutputMode};
use sha2::{Digest, Sha256};
use support::{Server, TestNode, node, pin_node};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// The CRM's input file. Shared with the provider: one email, one phone (in three raw
/// forms, in four records) and one name + company. crm-03 holds only invalid values (a
/// rejected row); the second crm-04 reuses an id (a dropped duplicate).
const CRM_CSV: &str = "\
id,email,phone,name,company
crm-01, <MAILTO:Ouyang.JinSiQue@Canary-Yunfan.CN> ,+86 139-5746-1823,欧阳 金丝雀,金丝雀测试科技（中国）有限公司
crm-02,Zhu.Que.7731@BeiDou-Canary.com.cn\u{200b},158 2047 3961,司马\u{3000}灰雀,灰雀数据服务股份有限公司
crm-03,canary.invalid@@nowhere-q9.cn,+86 123-4567-8901,,
crm-04,,0086 (139) 5746 1823,,
crm-04,dup.canary.row@canary-dup.cn,,,
";

/// The provider's input file; kp-04 holds only invalid values.
const KP_CSV: &str = "\
id,email,phone,name,company
kp-01,ＯＵＹＡＮＧ．ＪＩＮＳＩＱＵＥ＠ＣＡＮＡＲＹ－ＹＵＮＦＡＮ。ＣＮ,,欧阳金丝雀,金丝雀测试科技有限公司
kp-02,\tLan.Que+CRM@Canary-Mail.CN ,１８６－１１７２－５３９０,约翰・金丝雀,Canary 实验室 Group
kp-03,,手机：139 5746 1823,,
kp-04,canary..dots@x-canary.cn,tel:+86-400-CANARY,,
";

/// Records that match, by node; 3 distinct identifiers in common (email, phone, name).
const CRM_MATCHES: [&str; 2] = ["crm-01", "crm-04"];
const PROVIDER_MATCHES: [&str; 2] = ["kp-01", "kp-03"];
const INTERSECTION: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identifier_leaves_the_dataset_files() {
    let started = Instant::now();
    let logs = Capture::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only tracing subscriber of this test binary");

    let root = tempfile::tempdir().expect("tempdir");
    let crm = node(root.path(), "crm");
    let provider = node(root.path(), "provider");
    let inputs = root.path().join("inputs");
    std::fs::create_dir_all(&inputs).expect("inputs dir");
    let mut console = Vec::new(); // what a user would see printed
    console.extend(import(&crm, "crm", CRM_CSV, &inputs));
    console.extend(import(&provider, "kp", KP_CSV, &inputs));

    let wire = sessions_through_relays(&crm, &provider, &mut console).await;
    let frames = plaintext_frames(&crm, &provider);
    audit_commands(&crm, &provider, &mut console);

    // What was produced is real: results, rejects, frames and log lines.
    check_results(&crm, &CRM_MATCHES);
    check_results(&provider, &PROVIDER_MATCHES);
    for (n, dataset) in [(&crm, "crm"), (&provider, "kp")] {
        let rejects = std::fs::read_to_string(dataset::rejects_path(&n.dir, dataset))
            .expect("rejects report");
        assert!(rejects.lines().count() >= 3, "rejects report:\n{rejects}");
    }
    // Per session at least Hello, Accept, two Blinded or Reblinded, two Finish.
    assert!(frames.len() >= 8 * 6, "{} plaintext frames", frames.len());
    let logs = logs.take();
    let text = String::from_utf8_lossy(&logs);
    assert!(
        text.contains("session requested") && text.contains("session completed"),
        "log output captured:\n{text}"
    );

    // The scanner finds what is planted, so that a clean scan means something.
    let canaries = canaries();
    let scanner = Scanner::new(&canaries);
    self_check(&scanner, &canaries, &inputs, [&crm, &provider]);

    let mut leaks = Vec::new();
    for n in [&crm, &provider] {
        for (path, bytes) in data_dir_files(&n.dir) {
            leaks.extend(scanner.scan(&format!("{}/{path}", n.name), &bytes));
        }
    }
    leaks.extend(scanner.scan("log output", &logs));
    leaks.extend(scanner.scan("console and audit command output", &console));
    leaks.extend(scanner.scan("UDP payloads", &wire));
    leaks.extend(scanner.scan("plaintext frames", &frames.concat()));
    assert!(leaks.is_empty(), "canaries leaked:\n{}", leaks.join("\n"));
    eprintln!(
        "canary: {} canaries, {} needles; {} bytes on the wire, {} frames, {} log bytes; {:.2?}",
        canaries.len(),
        scanner.needles.len(),
        wire.len(),
        frames.len(),
        logs.len(),
        started.elapsed()
    );
}

/// Runs a session in every mode in both directions, and one refused session, each node
/// reaching the other through its own recording relay. Returns every datagram relayed.
async fn sessions_through_relays(
    crm: &TestNode,
    provider: &TestNode,
    console: &mut Vec<u8>,
) -> Vec<u8> {
    let wire = Capture::default();
    let to_provider = Relay::bind();
    let to_crm = Relay::bind();
    pin_node(crm, provider, to_provider.addr(), &["crm"], &[]);
    pin_node(provider, crm, to_crm.addr(), &["kp"], &[]);
    let provider_server = Server::start(provider);
    let crm_server = Server::start(crm);
    let relays = [
        to_provider.start(provider_server.addr, wire.clone()),
        to_crm.start(crm_server.addr, wire.clone()),
    ];

    let mut protocol_bytes = 0;
    for (initiator, peer, dataset) in [(crm, "provider", "crm"), (provider, "crm", "kp")] {
        for mode in OutputMode::ALL {
            let summary = run_match(initiator, peer, dataset, "", mode)
                .await
                .unwrap_or_else(|e| panic!("{} → {peer}, {mode}: {e}", initiator.name));
            let learns = session::learns_count(mode, session::Role::Initiator);
            assert_eq!(
                summary.intersection,
                learns.then_some(INTERSECTION),
                "{mode}"
            );
            protocol_bytes += summary.bytes_sent + summary.bytes_received;
            console.extend(format!("{summary}\n").into_bytes());
        }
    }
    let refused = run_match(crm, "provider", "crm", "not-offered", OutputMode::Both)
        .await
        .expect_err("a dataset that is not offered is refused");
    console.extend(format!("{refused}\n").into_bytes());
    provider_server.stop().await;
    crm_server.stop().await;
    relays.iter().for_each(JoinHandle::abort);

    let wire = wire.take();
    assert!(
        wire.len() as u64 > protocol_bytes,
        "the relays carried every session: {} bytes, {protocol_bytes} of protocol",
        wire.len()
    );
    wire
}

/// Every mode in both directions again, in memory with the same prepared sets; returns
/// every frame either side emitted: what the driver writes into the TLS stream.
fn plaintext_frames(crm: &TestNode, provider: &TestNode) -> Vec<Vec<u8>> {
    let crm_data = Dataset::load(&crm.dir, "crm").expect("crm dataset");
    let kp_data = Dataset::load(&provider.dir, "kp").expect("kp dataset");
    let crm_side = (&crm_data, CRM_MATCHES);
    let kp_side = (&kp_data, PROVIDER_MATCHES);
    let mut frames = Vec::new();
    for mode in OutputMode::ALL {
        for (a, b) in [(crm_side, kp_side), (kp_side, crm_side)] {
            let (init, resp) =
                in_memory_session(a.0.prepared_set(), b.0.prepared_set(), mode, |f| {
                    frames.push(f.to_vec())
                });
            for (outcome, (data, expected)) in [(init, a), (resp, b)] {
                let learns = session::learns_count(mode, outcome.role);
                assert_eq!(outcome.intersection_size, learns.then_some(INTERSECTION));
                if let Some(matches) = outcome.matches {
                    let ids: BTreeSet<&str> = matches
                        .iter()
                        .map(|m| data.record_id(m.record as usize))
                        .collect();
                    assert_eq!(ids, BTreeSet::from(expected), "{mode}, in memory");
                }
            }
        }
    }
    frames
}

/// The audit commands as an auditor runs them, with both published keys; both logs
/// verify and agree on all 9 sessions. Their output goes to `console`.
fn audit_commands(crm: &TestNode, provider: &TestNode, console: &mut Vec<u8>) {
    let nodes = [crm, provider];
    let keys = nodes.map(|n| admin::node_id(&n.dir).expect("id").audit_key);
    for (n, key) in nodes.into_iter().zip(&keys) {
        let out = audit_command(n, verify(Some(key.clone())));
        assert!(out.contains("VERIFIED: yes"), "{out}");
        console.extend(out.into_bytes());
        let checkpoint = AuditCommand::Checkpoint {
            out: Some(n.dir.join("checkpoint.json")),
        };
        for cmd in [show(false), show(true), checkpoint] {
            console.extend(audit_command(n, cmd).into_bytes());
        }
        let completed = support::audit_lines(n)
            .iter()
            .filter(|l| l.contains("\"session_completed\""))
            .count();
        assert_eq!(completed, 8, "{}: every session recorded", n.name);
    }
    let [log_a, log_b] = nodes.map(|n| n.dir.join(audit::LOG_FILE));
    let [key_a, key_b] = keys.map(Some);
    let cross = audit_command(
        crm,
        AuditCommand::CrossCheck {
            log_a,
            log_b,
            key_a,
            key_b,
        },
    );
    assert!(
        cross.contains("sessions in both logs: 9 (9 agree, 0 disagree)")
            && cross.contains("RESULT: yes"),
        "cross-check of the two real logs:\n{cross}"
    );
    console.extend(cross.into_bytes());
}

/// Writes `csv` as `<inputs>/<dataset>.csv` (outside every data directory) and imports
/// it with every identifier column; returns the import summary a user would see.
fn import(n: &TestNode, dataset: &str, csv: &str, inputs: &Path) -> Vec<u8> {
    let path = inputs.join(format!("{dataset}.csv"));
    std::fs::write(&path, csv).expect("input file");
    let mut options = ImportOptions::new(&path, dataset);
    options.id_col = Some("id".into());
    options.email_cols = vec!["email".into()];
    options.phone_cols = vec!["phone".into()];
    options.name_col = Some("name".into());
    options.company_col = Some("company".into());
    options.quiet = true;
    let report = admin::import_dataset(&n.dir, &options).expect("import");
    assert_eq!((report.accepted, report.rejected_rows), (3, 1), "{report}");
    format!("{report}\n").into_bytes()
}

async fn run_match(
    n: &TestNode,
    peer: &str,
    dataset: &str,
    remote_dataset: &str,
    mode: OutputMode,
) -> Result<MatchSummary, blindmatch_node::node::NodeError> {
    let request = MatchRequest {
        peer: peer.into(),
        dataset: dataset.into(),
        remote_dataset: remote_dataset.into(),
        purpose: "canary audit test".into(),
        legal_basis: "legitimate interest".into(),
        mode,
        out: None,
    };
    matching::run(Node::open(&n.dir).expect("open"), request, None).await
}

/// Every result file of a node (4: two sessions as initiator, two as responder, in the
/// modes that let it learn) holds exactly the expected record ids.
fn check_results(n: &TestNode, expected: &[&str]) {
    let files = support::responder_results(n);
    assert_eq!(files.len(), 4, "{}: {files:?}", n.name);
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    for file in files {
        assert_eq!(support::result_ids(&file), expected, "{}", file.display());
    }
}

fn verify(key: Option<String>) -> AuditCommand {
    AuditCommand::Verify {
        log: None,
        key,
        checkpoint: None,
    }
}

fn show(json: bool) -> AuditCommand {
    AuditCommand::Show {
        session: None,
        run: None,
        json,
        log: None,
    }
}

/// Runs an audit command on `n`'s data directory; it must succeed.
fn audit_command(n: &TestNode, cmd: AuditCommand) -> String {
    let mut out = Vec::new();
    let code = audit::run_with_output(cmd, &n.dir, &mut out).expect("audit command");
    let out = String::from_utf8(out).expect("utf-8 output");
    assert_eq!(code, ExitCode::SUCCESS, "{out}");
    out
}

/// Drives a session between an initiator with `a` and a responder with `b` in memory,
/// passing every frame either side emits to `record`.
fn in_memory_session(
    a: PreparedSet,
    b: PreparedSet,
    mode: OutputMode,
    mut record: impl FnMut(&[u8]),
) -> (Outcome, Outcome) {
    let mut rng = rand::rng();
    let parties = |own: u8, peer: u8| Parties {
        own_fingerprint: [own; 32],
        peer_fingerprint: [peer; 32],
        peer_audit_key: None,
    };
    let mut config = InitiatorConfig::new([7; 16], [0; 32], parties(1, 2), mode);
    config.dataset = "kp".into();
    config.purpose = "canary audit test".into();
    config.legal_basis = "legitimate interest".into();
    let signer = Box::new(KeySigner::from_seed(&[1; 32]));
    let mut init = Initiator::new(config, a, signer, &mut rng).expect("initiator");
    let mut resp = Responder::new(
        ResponderConfig::new([0; 32], parties(2, 1)),
        Box::new(KeySigner::from_seed(&[2; 32])),
    );
    let mut b = Some(b);
    let (mut init_out, mut resp_out) = (None, None);
    loop {
        let mut moved = false;
        while let Some(frame) = init.poll_transmit() {
            record(&frame);
            resp.handle_frame(&frame)
                .expect("responder accepts the frame");
            moved = true;
        }
        while let Some(event) = resp.poll_event() {
            match event {
                Event::HelloReceived(_) => {
                    let set = b.take().expect("one Hello");
                    resp.accept(set, DatasetRef::new("kp", [0; 16]), &mut rng)
                        .expect("accept");
                }
                Event::Completed(outcome) => resp_out = Some(*outcome),
                Event::Failed(e) => panic!("responder failed: {e}"),
                _ => {}
            }
        }
        while let Some(frame) = resp.poll_transmit() {
            record(&frame);
            init.handle_frame(&frame)
                .expect("initiator accepts the frame");
            moved = true;
        }
        while let Some(event) = init.poll_event() {
            match event {
                Event::Accepted(_) => init.confirm().expect("confirm"),
                Event::Completed(outcome) => init_out = Some(*outcome),
                Event::Failed(e) => panic!("initiator failed: {e}"),
                _ => {}
            }
        }
        if !moved {
            break;
        }
    }
    (
        init_out.expect("initiator completed"),
        resp_out.expect("responder completed"),
    )
}

/// Bytes written by the tracing subscriber, or carried by a relay.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn append(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
    }

    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A UDP relay on loopback: the client side is bound first (its address is pinned as the
/// peer's), the server side starts once the server's address is known.
struct Relay(std::net::UdpSocket);

impl Relay {
    fn bind() -> Relay {
        let socket = std::net::UdpSocket::bind(support::loopback()).expect("relay socket");
        socket.set_nonblocking(true).expect("non-blocking");
        Relay(socket)
    }

    fn addr(&self) -> SocketAddr {
        self.0.local_addr().expect("relay address")
    }

    /// Forwards datagrams both ways between the latest client and `server`, appending
    /// every payload to `wire`.
    fn start(self, server: SocketAddr, wire: Capture) -> JoinHandle<()> {
        tokio::spawn(async move {
            let front = UdpSocket::from_std(self.0).expect("tokio socket");
            let back = UdpSocket::bind(support::loopback()).await.expect("socket");
            back.connect(server).await.expect("connect");
            let (mut up, mut down) = (vec![0u8; 65536], vec![0u8; 65536]);
            let mut client = None;
            // Receive errors (an ICMP "port unreachable" once a server stopped) and send
            // errors only lose a datagram, which QUIC recovers from.
            loop {
                tokio::select! {
                    r = front.recv_from(&mut up) => if let Ok((n, from)) = r {
                        client = Some(from);
                        wire.append(&up[..n]);
                        let _ = back.send(&up[..n]).await;
                    },
                    r = back.recv(&mut down) => if let Ok(n) = r {
                        wire.append(&down[..n]);
                        if let Some(client) = client {
                            let _ = front.send_to(&down[..n], client).await;
                        }
                    },
                }
            }
        })
    }
}

/// A known identifier: its raw forms (as in the input files, and trimmed) and, if it is
/// valid, its normalised forms.
struct Canary {
    label: String,
    raw: Vec<String>,
    normalised: Vec<String>,
}

/// One canary per identifier cell (or name + company pair) of both input files.
fn canaries() -> Vec<Canary> {
    let n = Normaliser::default();
    let mut out = Vec::new();
    let rows = [CRM_CSV, KP_CSV].into_iter().flat_map(|text| {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        rows
    });
    for row in rows {
        let [id, email, phone, name, company] = [0, 1, 2, 3, 4].map(|i| &row[i]);
        let mut add = |what: &str, raw: Vec<&str>, normalised: Option<Vec<String>>| {
            let mut forms: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
            forms.extend(raw.iter().map(|s| s.trim().to_string()));
            forms.retain(|s| !s.is_empty());
            out.push(Canary {
                label: format!("{id} {what}"),
                raw: forms,
                normalised: normalised.unwrap_or_default(),
            });
        };
        if !email.is_empty() {
            let norm = n.email(email).ok().map(|i| vec![i.value().to_owned()]);
            add("email", vec![email], norm);
        }
        if !phone.is_empty() {
            let norm = n.phone(phone).ok().map(|i| {
                let v = i.value().to_owned();
                let national = v.strip_prefix("+86").unwrap_or(&v).to_owned();
                vec![v, national]
            });
            add("phone", vec![phone], norm);
        }
        if !name.is_empty() {
            let norm = n.name_company(name, company).ok().map(|i| {
                let (a, b) = i.name_company_parts().expect("two parts");
                vec![i.value().to_owned(), a.to_owned(), b.to_owned()]
            });
            add("name+company", vec![name, company], norm);
        }
    }
    // As designed: 18 cells, of which 4 are invalid (crm-03 and kp-04).
    let valid = out.iter().filter(|c| !c.normalised.is_empty()).count();
    assert_eq!((out.len(), valid), (18, 14), "canary table");
    out
}

/// A byte string whose presence means a leak.
struct Needle {
    canary: usize,
    what: String,
    /// ASCII-lowercased when `ignore_case`.
    bytes: Vec<u8>,
    ignore_case: bool,
}

struct Scanner<'a> {
    canaries: &'a [Canary],
    needles: Vec<Needle>,
}

/// Every encoding searched for, of a form or of its SHA-256.
type Encoding = (&'static str, bool, fn(&[u8]) -> Vec<u8>);
const ENCODINGS: [Encoding; 7] = [
    ("as is", true, |b| b.to_vec()),
    ("hex (any case)", true, |b| hex::encode(b).into_bytes()),
    ("base64", false, |b| STANDARD.encode(b).into_bytes()),
    ("base64 unpadded", false, |b| {
        STANDARD_NO_PAD.encode(b).into_bytes()
    }),
    ("base64url", false, |b| URL_SAFE.encode(b).into_bytes()),
    ("base64url unpadded", false, |b| {
        URL_SAFE_NO_PAD.encode(b).into_bytes()
    }),
    ("debug bytes", false, |b| format!("{b:?}").into_bytes()),
];

impl<'a> Scanner<'a> {
    fn new(canaries: &'a [Canary]) -> Scanner<'a> {
        let mut needles = Vec::new();
        for (i, c) in canaries.iter().enumerate() {
            let forms = c.raw.iter().map(|f| ("raw", f));
            let forms = forms.chain(c.normalised.iter().map(|f| ("normalised", f)));
            for (kind, form) in forms {
                let digest = Sha256::digest(form.as_bytes());
                for (name, ignore_case, encode) in ENCODINGS {
                    for (of, bytes) in [("", form.as_bytes()), ("SHA-256 of ", &digest[..])] {
                        let mut bytes = encode(bytes);
                        if ignore_case {
                            bytes.make_ascii_lowercase();
                        }
                        needles.push(Needle {
                            canary: i,
                            what: format!("{of}{kind} form {form:?}, {name}"),
                            bytes,
                            ignore_case,
                        });
                    }
                }
            }
        }
        Scanner { canaries, needles }
    }

    /// Every needle found in `haystack`, described with `place`.
    fn scan(&self, place: &str, haystack: &[u8]) -> Vec<String> {
        self.hits(haystack)
            .map(|n| format!("{place}: {} ({})", self.canaries[n.canary].label, n.what))
            .collect()
    }

    fn hits<'s>(&'s self, haystack: &'s [u8]) -> impl Iterator<Item = &'s Needle> {
        let lower = haystack.to_ascii_lowercase();
        self.needles.iter().filter(move |n| {
            let hay = if n.ignore_case { &lower[..] } else { haystack };
            contains(hay, &n.bytes)
        })
    }

    /// Which canaries (by index) `haystack` contains.
    fn found(&self, haystack: &[u8]) -> BTreeSet<usize> {
        self.hits(haystack).map(|n| n.canary).collect()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The test must be able to fail: every canary is found in the raw input files, every
/// stored one in normalised form in the `.bmds` files, and each encoding of a hash when
/// planted in noise.
fn self_check(scanner: &Scanner, canaries: &[Canary], inputs: &Path, nodes: [&TestNode; 2]) {
    let csv: Vec<u8> = ["crm.csv", "kp.csv"]
        .iter()
        .flat_map(|f| std::fs::read(inputs.join(f)).expect("input file"))
        .collect();
    assert_eq!(
        scanner.found(&csv),
        (0..canaries.len()).collect(),
        "every canary is found raw in the input files"
    );

    let normalised_only: Vec<Canary> = canaries
        .iter()
        .map(|c| Canary {
            label: c.label.clone(),
            raw: Vec::new(),
            normalised: c.normalised.clone(),
        })
        .collect();
    let by_normalised = Scanner::new(&normalised_only);
    let bmds: Vec<u8> = nodes
        .iter()
        .zip(["crm", "kp"])
        .flat_map(|(n, d)| std::fs::read(dataset::dataset_path(&n.dir, d)).expect("bmds"))
        .collect();
    let stored = by_normalised.found(&bmds);
    // All valid ones but the row dropped as a duplicate id.
    assert_eq!(
        stored.len(),
        13,
        "normalised canaries found in the .bmds files"
    );
    assert!(stored.iter().all(|&i| !canaries[i].normalised.is_empty()));

    // Known-answer check of the encoders, then each encoding planted in noise.
    let abc = Sha256::digest(b"abc");
    assert_eq!(
        ENCODINGS.map(|(_, _, encode)| String::from_utf8_lossy(&encode(&abc)).into_owned())[1..6],
        [
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0",
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0=",
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0",
        ]
    );
    let target = canaries
        .iter()
        .position(|c| c.label == "kp-02 name+company")
        .expect("canary");
    for form in canaries[target]
        .raw
        .iter()
        .chain(&canaries[target].normalised)
    {
        let digest = Sha256::digest(form.as_bytes());
        let mut planted: Vec<Vec<u8>> = ENCODINGS.iter().map(|(_, _, e)| e(&digest)).collect();
        planted.push(hex::encode_upper(digest).into_bytes());
        planted.push(form.to_uppercase().into_bytes());
        for p in planted {
            let haystack = [b"{\"noise\":\"".as_slice(), &p, b"\"}"].concat();
            assert_eq!(
                scanner.found(&haystack),
                BTreeSet::from([target]),
                "planted {:?}",
                String::from_utf8_lossy(&p)
            );
        }
    }
}

/// Every file under a data directory except `datasets/*.bmds`, with its relative path;
/// the path itself is scanned too.
fn data_dir_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path: PathBuf = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let rel = path.strip_prefix(dir).expect("inside").to_string_lossy();
            let is_dataset = path.parent() == Some(&dataset::datasets_dir(dir))
                && path.extension().is_some_and(|e| e == "bmds");
            if !is_dataset {
                let mut bytes = std::fs::read(&path).expect("read file");
                bytes.extend_from_slice(rel.as_bytes());
                out.push((rel.into_owned(), bytes));
            }
        }
    }
    let names: Vec<&str> = out.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.len() >= 6,
        "files scanned in {}: {names:?}",
        dir.display()
    );
    out
}
