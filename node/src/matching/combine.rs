//! Combining one run's per-peer matches per record of ours, and the combined result
//! file: `id`, a column per peer (the kinds of identifier that matched there, or
//! empty), `peers_matched`; one row per record matched by at least the required number
//! of peers, in our record order.
//!
//! A peer whose session failed, or whose mode tells us no records, contributes nothing:
//! its column stays empty and it is left out of the counts ([`Combination::known`]).

use std::collections::BTreeMap;
use std::path::Path;

use blindmatch_protocol::ident::KindSet;
use blindmatch_protocol::session::MatchedRecord;

use crate::files::{self, Access};

/// The record id column of the combined file.
pub const COLUMN_ID: &str = "id";
/// The column counting the peers that matched the record.
pub const COLUMN_PEERS_MATCHED: &str = "peers_matched";

/// Our records as the peers matched them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Combination {
    /// Kept records (matched by at least the threshold), in record order.
    pub rows: Vec<Row>,
    /// Peers whose matched records we know.
    pub known: usize,
    /// Records matched by at least one known peer.
    pub any: u64,
    /// Records matched by every known peer (0 when none is known).
    pub all: u64,
    /// Records matched by no known peer.
    pub none: u64,
}

/// One kept record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Our record index.
    pub record: u32,
    /// Per peer (in run order): the kinds that matched there, if any.
    pub kinds: Vec<Option<KindSet>>,
    /// Peers that matched it.
    pub peers_matched: usize,
}

/// Combines `per_peer` matches (`None`: not known for that peer) over `our_records`
/// records, keeping those matched by at least `threshold` peers.
pub fn combine(
    per_peer: &[Option<&[MatchedRecord]>],
    our_records: usize,
    threshold: usize,
) -> Combination {
    let mut by_record: BTreeMap<u32, Vec<Option<KindSet>>> = BTreeMap::new();
    for (peer, matches) in per_peer.iter().enumerate() {
        for m in matches.unwrap_or_default() {
            by_record
                .entry(m.record)
                .or_insert_with(|| vec![None; per_peer.len()])[peer] = Some(m.kinds);
        }
    }
    let known = per_peer.iter().filter(|m| m.is_some()).count();
    let count = |kinds: &[Option<KindSet>]| kinds.iter().filter(|k| k.is_some()).count();
    let any = by_record.len() as u64;
    let all = if known == 0 {
        0
    } else {
        by_record.values().filter(|k| count(k) == known).count() as u64
    };
    let rows = by_record
        .into_iter()
        .map(|(record, kinds)| Row {
            record,
            peers_matched: count(&kinds),
            kinds,
        })
        .filter(|row| row.peers_matched >= threshold)
        .collect();
    Combination {
        rows,
        known,
        any,
        all,
        none: (our_records as u64).saturating_sub(any),
    }
}

/// Writes `combination` to `path` atomically, readable by the owner only (the rows are
/// our records' ids), with a column per peer named in `peers`. `record_id` names a
/// record by its index.
pub fn write_combined(
    path: &Path,
    peers: &[&str],
    combination: &Combination,
    record_id: &dyn Fn(u32) -> Option<String>,
) -> std::io::Result<()> {
    files::create_private_dir_all(files::parent_dir(path))?;
    files::write_file_with(path, Access::OwnerOnly, |out| {
        let mut writer = csv::Writer::from_writer(out);
        let mut header = vec![COLUMN_ID];
        header.extend_from_slice(peers);
        header.push(COLUMN_PEERS_MATCHED);
        writer.write_record(&header)?;
        for row in &combination.rows {
            let id = record_id(row.record).ok_or_else(|| {
                std::io::Error::other(format!(
                    "matched record {} is not in the dataset",
                    row.record
                ))
            })?;
            let mut fields = vec![id];
            fields.extend(
                row.kinds
                    .iter()
                    .map(|k| k.map(|k| k.to_string()).unwrap_or_default()),
            );
            fields.push(row.peers_matched.to_string());
            writer.write_record(&fields)?;
        }
        writer.flush()
    })
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use blindmatch_protocol::ident::IdentKind;

    use super::*;

    fn matched(records: &[(u32, IdentKind)]) -> Vec<MatchedRecord> {
        records
            .iter()
            .map(|&(record, kind)| MatchedRecord {
                record,
                kinds: KindSet::empty().with(kind),
            })
            .collect()
    }

    #[test]
    fn counts_and_thresholds_follow_the_plain_sets() {
        let a = matched(&[
            (0, IdentKind::Email),
            (2, IdentKind::Phone),
            (5, IdentKind::Email),
        ]);
        let b = matched(&[(2, IdentKind::Email), (5, IdentKind::Email)]);
        let c = matched(&[(5, IdentKind::Phone), (7, IdentKind::Email)]);
        let per_peer = [Some(&a[..]), Some(&b[..]), Some(&c[..])];

        let any = combine(&per_peer, 10, 1);
        assert_eq!((any.any, any.all, any.none, any.known), (4, 1, 6, 3));
        let kept: Vec<u32> = any.rows.iter().map(|r| r.record).collect();
        assert_eq!(kept, [0, 2, 5, 7]);
        assert_eq!(any.rows[1].peers_matched, 2);
        assert_eq!(
            any.rows[1].kinds,
            [
                Some(KindSet::empty().with(IdentKind::Phone)),
                Some(KindSet::empty().with(IdentKind::Email)),
                None
            ]
        );

        let two: Vec<u32> = combine(&per_peer, 10, 2)
            .rows
            .iter()
            .map(|r| r.record)
            .collect();
        assert_eq!(two, [2, 5]);
        let all: Vec<u32> = combine(&per_peer, 10, 3)
            .rows
            .iter()
            .map(|r| r.record)
            .collect();
        assert_eq!(all, [5]);
    }

    #[test]
    fn an_unknown_peer_contributes_nothing_and_is_left_out_of_all() {
        let a = matched(&[(1, IdentKind::Email), (3, IdentKind::Email)]);
        let c = matched(&[(3, IdentKind::Email)]);
        let per_peer = [Some(&a[..]), None, Some(&c[..])];
        let combined = combine(&per_peer, 4, 1);
        assert_eq!(
            (combined.known, combined.any, combined.all, combined.none),
            (2, 2, 1, 2)
        );
        assert!(combined.rows.iter().all(|r| r.kinds[1].is_none()));
        // All three required: the unknown peer matched nothing we know of.
        assert!(combine(&per_peer, 4, 3).rows.is_empty());
        assert_eq!(combine(&[None, None], 4, 1).all, 0);
    }

    #[test]
    fn the_file_has_a_column_per_peer_and_rows_in_record_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run.csv");
        let a = matched(&[(2, IdentKind::Email), (0, IdentKind::Phone)]);
        let b = matched(&[(2, IdentKind::Phone)]);
        let combined = combine(&[Some(&a[..]), Some(&b[..]), None], 3, 1);
        let ids = ["r0", "r1", "r2"];
        write_combined(&path, &["a", "b", "c"], &combined, &|i| {
            ids.get(i as usize).map(|s| s.to_string())
        })
        .expect("written");
        let text = std::fs::read_to_string(&path).expect("readable");
        assert_eq!(
            text,
            "id,a,b,c,peers_matched\nr0,phone,,,1\nr2,email,phone,,2\n"
        );
        let missing = write_combined(&dir.path().join("bad.csv"), &["a"], &combined, &|_| None);
        assert!(missing.is_err());
        assert!(!dir.path().join("bad.csv").exists(), "no partial file");
    }
}
