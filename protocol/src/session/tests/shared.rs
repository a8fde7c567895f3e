//! One prepared set, several sessions: the set is hashed to the group once and every
//! session blinds those points under its own key, giving each peer exactly its
//! pairwise intersection.

use super::*;

#[test]
fn a_hashed_set_needs_no_identifier_bytes_and_matches_exactly() {
    let a = records("a", 0..50, true);
    let b = records("a", 30..90, true);
    let mut set = prepare(&a);
    set.hash_to_group();
    assert!(set.is_hashed());
    // Without its bytes, a session that hashed again would hash empty strings and
    // match nothing: the exact intersection shows the kept points were blinded.
    let set = set.without_values();
    for (seed, mode) in OutputMode::ALL.into_iter().enumerate() {
        let seed = seed as u64 + 20;
        let run = run_sets(
            initiator_config(mode, seed),
            set.clone(),
            prepare(&b),
            seed,
            clean(),
        );
        let ra = run.initiator.expect("initiator completes");
        let rb = run.responder.expect("responder completes");
        assert_eq!(ra.transcript_hash, rb.transcript_hash);
        assert_eq!(
            ra.matches,
            learns_records(mode, Role::Initiator).then(|| expected(&a, &b)),
            "{mode}"
        );
        assert_eq!(
            rb.matches,
            learns_records(mode, Role::Responder).then(|| expected(&b, &a)),
            "{mode}"
        );
        let count = learns_count(mode, Role::Initiator).then(|| unique_count(&a, &b));
        assert_eq!(ra.intersection_size, count, "{mode}");
    }
}

#[test]
fn one_hashed_set_against_three_peers_gives_each_its_own_intersection() {
    let ours = records("a", 0..60, true);
    let peers = [
        records("a", 0..20, false),
        records("a", 10..45, true),
        records("a", 55..100, true),
    ];
    let mut set = prepare(&ours);
    set.hash_to_group();
    for (i, theirs) in peers.iter().enumerate() {
        let seed = 40 + i as u64;
        let run = run_sets(
            initiator_config(OutputMode::Both, seed),
            set.clone(),
            prepare(theirs),
            seed,
            clean(),
        );
        let ra = run.initiator.expect("initiator completes");
        let rb = run.responder.expect("responder completes");
        assert_eq!(ra.matches, Some(expected(&ours, theirs)), "peer {i}");
        assert_eq!(rb.matches, Some(expected(theirs, &ours)), "peer {i}");
    }
    // The clones share one copy of the points and of the identifier bytes.
    let before = set.heap_bytes();
    let clones: Vec<PreparedSet> = (0..3).map(|_| set.clone()).collect();
    assert_eq!(clones[2].heap_bytes(), before);
    assert!(before >= set.len() * HASHED_POINT_BYTES);
}

#[test]
fn hashing_twice_or_after_the_values_are_gone_changes_nothing() {
    let mut set = prepare(&records("a", 0..5, true));
    set.hash_to_group();
    let bytes = set.heap_bytes();
    set.hash_to_group();
    assert_eq!(set.heap_bytes(), bytes);
    let mut bare = prepare(&records("a", 0..5, true)).without_values();
    bare.hash_to_group();
    assert!(!bare.is_hashed(), "nothing to hash without the bytes");
}
