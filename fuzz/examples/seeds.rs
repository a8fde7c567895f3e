//! Writes the seed corpora to `fuzz/corpus/<target>/seed-*`, replacing older seeds.
//!
//! ```sh
//! cd fuzz && cargo run --example seeds
//! ```
//!
//! Session seeds are complete sessions recorded between a real initiator and responder
//! with the harness's fixed sets and RNG seeds, so the `responder_session` target
//! replays them to completion; this program checks that it does.

use std::fs;
use std::path::{Path, PathBuf};

use blindmatch_fuzz::audit::fixture;
use blindmatch_fuzz::chunks;
use blindmatch_fuzz::session::{Harness, Setup, record};
use blindmatch_protocol::error::CloseCode;
use blindmatch_protocol::session::Role;
use blindmatch_protocol::wire::{Message, OutputMode, Reject, RejectReason};

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    session_seeds(&mut Seeds::new(&corpus, "responder_session")?)?;
    frame_seeds(&mut Seeds::new(&corpus, "frame_decode")?)?;
    normalise_seeds(&mut Seeds::new(&corpus, "normalise")?)?;
    audit_seeds(
        &mut Seeds::new(&corpus, "audit_verify")?,
        &mut Seeds::new(&corpus, "audit_tamper")?,
    )?;
    Ok(())
}

/// One target's seed directory.
struct Seeds {
    dir: PathBuf,
}

impl Seeds {
    fn new(corpus: &Path, target: &str) -> std::io::Result<Seeds> {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let is_seed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            if is_seed {
                fs::remove_file(path)?;
            }
        }
        Ok(Seeds { dir })
    }

    fn write(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        fs::write(self.dir.join(format!("seed-{name}")), bytes)
    }
}

fn session_seeds(seeds: &mut Seeds) -> std::io::Result<()> {
    for mode in OutputMode::ALL {
        let run = record(mode, false);
        let (a, b) = (
            run.initiator.expect("initiator completes"),
            run.responder.expect("responder completes"),
        );
        assert_eq!(a.transcript_hash, b.transcript_hash);
        for (role, frames) in [
            (Role::Responder, &run.to_responder),
            (Role::Initiator, &run.to_initiator),
        ] {
            let setup = Setup {
                role,
                mode,
                reject: false,
                abort_at_end: false,
                tight_limit: false,
            };
            let mut input = vec![setup.to_byte()];
            input.extend(chunks::join(frames));
            assert!(
                replays_to_completion(&input),
                "{role:?} {mode} seed replays"
            );
            seeds.write(&format!("{}-{mode}", role.name()), &input)?;
        }
    }
    let refused = record(OutputMode::Both, true);
    let reject = Setup {
        role: Role::Responder,
        mode: OutputMode::Both,
        reject: true,
        abort_at_end: true,
        tight_limit: false,
    };
    let mut input = vec![reject.to_byte()];
    input.extend(chunks::join(&refused.to_responder));
    seeds.write("responder-rejects", &input)?;
    let refused_initiator = Setup {
        role: Role::Initiator,
        ..reject
    };
    let mut input = vec![refused_initiator.to_byte()];
    input.extend(chunks::join(&refused.to_initiator));
    seeds.write("initiator-refused", &input)?;
    Ok(())
}

fn replays_to_completion(input: &[u8]) -> bool {
    let mut harness = Harness::new(Setup::from_byte(input[0]));
    for frame in chunks::split(&input[1..]) {
        harness.deliver(frame);
    }
    harness.finish().is_some()
}

fn frame_seeds(seeds: &mut Seeds) -> std::io::Result<()> {
    let run = record(OutputMode::Both, false);
    let initiator_only = record(OutputMode::Initiator, false);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for frame in run
        .to_responder
        .iter()
        .chain(&run.to_initiator)
        .chain(&initiator_only.to_initiator)
    {
        let msg = Message::decode(frame).expect("recorded frames decode");
        let name = match &msg {
            Message::Finish(f) if f.intersection.is_none() => "finish-none".to_owned(),
            other => other.message_type().name().to_lowercase(),
        };
        if !frames.iter().any(|f| f[0] == frame[0]) || name == "finish-none" {
            seeds.write(&name, frame)?;
            frames.push(frame.clone());
        }
    }
    let reject = Message::Reject(Reject {
        reason: RejectReason::BUSY,
        text: "too many sessions, try again in a minute · 请稍后再试".into(),
    });
    let abort = Message::Abort(CloseCode::TIMEOUT);
    for (name, msg) in [("reject", reject), ("abort", abort)] {
        let frame = msg.to_frame();
        seeds.write(name, &frame)?;
        frames.push(frame);
    }
    let mut stream = Vec::new();
    for frame in &frames {
        stream.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        stream.extend_from_slice(frame);
    }
    seeds.write("stream", &stream)
}

fn normalise_seeds(seeds: &mut Seeds) -> std::io::Result<()> {
    let inputs: [(&str, &str); 14] = [
        ("email", "CN<Mailto:Zhang.San+CRM@Example.COM>"),
        ("email-fullwidth", "CNＺＨＡＮＧ＠ＥＸＡＭＰＬＥ．ＣＮ"),
        ("email-idn", "CN王伟@例子。中国"),
        ("phone-cn", "CN+86 (0)10 1234 5678"),
        ("phone-mobile", "CN138-0013-8000 转8001"),
        ("phone-tel", "CNtel:+1-212-555-0100;ext=42"),
        ("phone-us", "US011 44 20 7946 0958"),
        ("phone-gb", "GB020 7946 0958 x12"),
        ("phone-zero", "CN0086 138 0013 8000"),
        ("name", "CN张 三\u{1f}西门子（中国）有限公司"),
        (
            "name-latin",
            "CN  John  SMITH \u{1f}Huawei Technologies Co., Ltd.",
        ),
        (
            "name-interpunct",
            "CN约翰・史密斯\u{1f}阿里巴巴集团控股有限公司",
        ),
        ("custom", "CNcrm-000123\u{200b}\u{feff}"),
        ("mixed", "CN\u{3000}İSTANBUL\u{fe0f}ß\u{ad}ﬁ"),
    ];
    for (name, input) in inputs {
        seeds.write(name, input.as_bytes())?;
    }
    Ok(())
}

fn audit_seeds(verify: &mut Seeds, tamper: &mut Seeds) -> std::io::Result<()> {
    let fx = fixture();
    verify.write("log", &fx.log)?;
    let mut torn = fx.log.clone();
    torn.extend_from_slice(br#"{"seq":15,"ts":"2026-11-29T13:00:00Z","prev":"#);
    verify.write("log-torn", &torn)?;
    let first_line = fx
        .log
        .split_inclusive(|&b| b == b'\n')
        .next()
        .unwrap_or(&[]);
    verify.write("first-record", first_line)?;
    verify.write("checkpoint", fx.checkpoint.to_json().as_bytes())?;
    // Edits: [op, position (u16 BE), value]; see fuzz_targets/audit_tamper.rs.
    let edits: [(&str, &[u8]); 6] = [
        ("none", &[]),
        ("overwrite", &[0, 0x01, 0x00, b'x']),
        ("flip", &[3, 0x02, 0x10, 5]),
        ("swap-lines", &[5, 0, 3, 4]),
        ("drop-line", &[6, 0, 7, 0]),
        ("duplicate-line", &[7, 0, 2, 3]),
    ];
    for (name, script) in edits {
        tamper.write(name, script)?;
    }
    Ok(())
}
