//! `blindmatch bench` end to end: two node processes over real QUIC on loopback, the
//! report's figures read back and checked for sense (not for speed: timings belong to
//! the bench itself, never to tests).

use std::process::Command;

fn bench(mode: &str) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_blindmatch"))
        .args([
            "bench",
            "--n",
            "400",
            "--overlap",
            "0.25",
            "--json",
            "--mode",
            mode,
        ])
        .output()
        .expect("run blindmatch bench");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let line = stdout.lines().last().expect("one JSON line");
    serde_json::from_str(line).expect("the report is JSON")
}

fn pair(report: &serde_json::Value, key: &str) -> (f64, f64) {
    let value = &report[key];
    let get = |i: usize| {
        value[i]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}[{i}] is a number in {report}"))
    };
    (get(0), get(1))
}

#[test]
fn bench_reports_each_partys_process_and_the_checked_match_count() {
    for mode in ["both", "cardinality"] {
        let report = bench(mode);
        assert_eq!(report["mode"], mode);
        // 100 shared persons, each matching on email and on name+company.
        let (found, expected) = pair(&report, "intersection");
        assert_eq!(found, expected, "{report}");
        assert_eq!(found, 200.0, "{report}");
        let (ea, eb) = pair(&report, "elements");
        assert_eq!(
            (ea, eb),
            (800.0, 800.0),
            "two identifiers per record: {report}"
        );
        // Each party is its own process, with its own kernel-measured peak.
        let (peak_a, peak_b) = pair(&report, "peak_rss_bytes");
        assert!(peak_a > 1e6 && peak_b > 1e6, "{report}");
        // 32-byte points out, 32-byte points back (proven, whole), plus framing, one
        // proof per round and the receipt.
        let (sent_a, sent_b) = pair(&report, "wire_bytes_per_element");
        assert!((64.0..68.0).contains(&sent_a), "{report}");
        assert!((64.0..68.0).contains(&sent_b), "{report}");
        for key in ["wall_s", "floor_s", "ratio", "cpu_ratio"] {
            let v = report[key].as_f64().unwrap_or(0.0);
            assert!(v > 0.0 && v.is_finite(), "{key} in {report}");
        }
    }
}

#[test]
fn bench_refuses_nonsense_arguments_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_blindmatch"))
        .args(["bench", "--n", "10", "--overlap", "1.5"])
        .output()
        .expect("run blindmatch bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--overlap must be between 0 and 1"),
        "{stderr}"
    );
}

#[test]
fn the_index_bench_reports_the_build_against_its_floor_and_both_sessions() {
    let out = Command::new(env!("CARGO_BIN_EXE_blindmatch"))
        .args([
            "bench",
            "--via-index",
            "--provider-n",
            "3000",
            "--n",
            "200",
            "--overlap",
            "0.5",
            "--json",
        ])
        .output()
        .expect("run blindmatch bench --via-index");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("one JSON line")).expect("JSON");
    let number = |key: &str| {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is a number in {report}"))
    };
    let (found, expected) = pair(&report, "intersection");
    assert_eq!((found, expected), (100.0, 100.0), "{report}");
    assert!(number("index_build_s") > 0.0 && number("index_floor_s") > 0.0);
    let per = number("index_bytes_per_identifier");
    assert!(per > 6.0 && per < 8.0, "{report}");
    // The first session fetched the index; the second only the queries: 64 bytes per
    // identifier plus the handshake and the two receipts.
    assert!(number("first_bytes") > number("index_bytes"), "{report}");
    let online = number("online_bytes");
    assert!(
        online > 200.0 * 64.0 && online < 200.0 * 64.0 + 8000.0,
        "{report}"
    );
}

#[test]
fn the_peers_bench_runs_three_providers_at_once_and_one_after_the_other() {
    let out = Command::new(env!("CARGO_BIN_EXE_blindmatch"))
        .args([
            "bench",
            "--peers",
            "3",
            "--n",
            "300",
            "--overlap",
            "0.2",
            "--json",
        ])
        .output()
        .expect("run blindmatch bench --peers 3");
    assert!(
        out.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("one JSON line")).expect("JSON");
    assert_eq!(report["peers"], 3);
    // 180 of our persons spread over the providers, each matching on email and
    // name+company.
    let intersections = report["intersections"].as_array().expect("per provider");
    assert_eq!(intersections.len(), 3, "{report}");
    let mut total = 0;
    for pair in intersections {
        assert_eq!(pair[0], pair[1], "{report}");
        total += pair[0].as_u64().expect("a count");
    }
    assert_eq!(total, 360, "{report}");
    assert_eq!(report["elements"], 600);
    for key in [
        "run_wall_s",
        "run_cpu_s",
        "sequential_cpu_s",
        "wall_over_sequential_cpu_per_core",
        "cpu_ratio",
        "own_cpu_ratio",
    ] {
        let v = report[key].as_f64().unwrap_or(0.0);
        assert!(v > 0.0 && v.is_finite(), "{key} in {report}");
    }
}
