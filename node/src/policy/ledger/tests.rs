//! The ledger on its own: reopening, expiry, torn lines, compaction.

use super::*;

const T0: u64 = 1_750_000_000;

fn charge(at: u64, peer: &str, id: u8, identifiers: u64) -> Charge {
    Charge {
        at,
        peer: peer.to_owned(),
        session: [id; 16],
        identifiers,
    }
}

#[test]
fn survives_reopen_and_remembers_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), 30, T0).unwrap();
    ledger.record(charge(T0, "aa", 1, 100), T0).unwrap();
    ledger.record(charge(T0 + 5, "bb", 2, 7), T0 + 5).unwrap();
    drop(ledger);
    let ledger = Ledger::open(dir.path(), 30, T0 + 10).unwrap();
    assert!(ledger.seen(&[1; 16]) && ledger.seen(&[2; 16]) && !ledger.seen(&[3; 16]));
    assert_eq!(ledger.totals_of("aa").identifiers, 100);
    assert_eq!(ledger.charges_of("bb").count(), 1);
}

#[test]
fn expired_sessions_fold_into_totals_and_ids_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), 1, T0).unwrap();
    ledger.record(charge(T0, "aa", 1, 100), T0).unwrap();
    drop(ledger);
    let later = T0 + 2 * DAY_SECS;
    let mut ledger = Ledger::open(dir.path(), 1, later).unwrap();
    assert!(!ledger.seen(&[1; 16]));
    assert_eq!(ledger.charges_of("aa").count(), 0);
    assert_eq!(
        ledger.totals_of("aa"),
        Carried {
            identifiers: 100,
            sessions: 1
        }
    );
    ledger.record(charge(later, "aa", 2, 5), later).unwrap();
    drop(ledger);
    let ledger = Ledger::read_only(dir.path(), 1, later).unwrap();
    assert_eq!(ledger.totals_of("aa").identifiers, 105);
    let text = std::fs::read_to_string(Ledger::path(dir.path())).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
}

#[test]
fn a_torn_last_line_is_dropped_but_damage_elsewhere_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), 30, T0).unwrap();
    ledger.record(charge(T0, "aa", 1, 100), T0).unwrap();
    drop(ledger);
    let path = Ledger::path(dir.path());
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"type\":\"sess");
    std::fs::write(&path, &text).unwrap();
    let ledger = Ledger::open(dir.path(), 30, T0).unwrap();
    assert_eq!(ledger.totals_of("aa").identifiers, 100);
    drop(ledger);
    assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'));

    let damaged = std::fs::read_to_string(&path)
        .unwrap()
        .replace("aa", "a\"a");
    std::fs::write(&path, damaged).unwrap();
    let err = Ledger::open(dir.path(), 30, T0).unwrap_err();
    assert!(matches!(err, LedgerError::Corrupt { line: 2, .. }), "{err}");
}

#[test]
fn growth_is_bounded_by_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), 1, T0).unwrap();
    ledger.compaction_slack = 16;
    let mut at = T0;
    for i in 0..300u32 {
        at += 3600;
        let mut session = [0u8; 16];
        session[..4].copy_from_slice(&i.to_le_bytes());
        ledger
            .record(
                Charge {
                    at,
                    peer: "aa".into(),
                    session,
                    identifiers: 1,
                },
                at,
            )
            .unwrap();
    }
    let lines = std::fs::read_to_string(Ledger::path(dir.path()))
        .unwrap()
        .lines()
        .count();
    // One day of hourly sessions is 25 lines with the header and carried line;
    // the file never holds more than twice that plus the slack.
    assert!(lines <= 2 * 27 + 16, "{lines} lines");
    assert_eq!(ledger.totals_of("aa").identifiers, 300);
    assert_eq!(ledger.totals_of("aa").sessions, 300);
}
