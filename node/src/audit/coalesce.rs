//! [`Coalescer`]: at most one audit record per key per interval, so that a peer repeating
//! a failure (a flood of connections that never send a valid `Hello`) cannot grow the
//! audit log without bound, while every occurrence is still counted.
//!
//! The rule, per key (in `serve`: peer fingerprint and reason):
//!
//! * the first occurrence is recorded at once, and opens an interval (one minute in
//!   `serve`);
//! * further occurrences within the interval are only counted;
//! * once the interval has passed, the count is recorded in one record — by the next
//!   occurrence (which it then includes), or by [`Coalescer::due`], which the server polls —
//!   and that record opens the next interval. A key whose interval passed with nothing
//!   counted is forgotten;
//! * at shutdown, [`Coalescer::drain`] hands over every count not yet recorded.
//!
//! So the `attempts` of a key's records add up to all its occurrences, and a key gets at
//! most one record per interval (plus one at shutdown). A crash loses at most one
//! interval's count, which the trace log still shows. Memory is one entry per key seen in
//! the last interval; the caller keeps keys bounded (the server's keys are authenticated
//! peers times a fixed set of reasons).
//!
//! Pure code: the caller passes the time in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// A count to record now, with the details of the latest occurrence it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Coalesced<K, V> {
    /// What the occurrences share.
    pub key: K,
    /// Details of the latest occurrence (e.g. the close code it ended with).
    pub latest: V,
    /// Occurrences this record accounts for (at least 1).
    pub count: u64,
}

/// Counts occurrences per key and says when one record is due; see the module docs.
#[derive(Debug)]
pub struct Coalescer<K, V> {
    window: Duration,
    open: HashMap<K, Interval<V>>,
}

#[derive(Debug)]
struct Interval<V> {
    started: Instant,
    /// Occurrences since the last record, and the latest one's details.
    pending: Option<(u64, V)>,
}

impl<K: Eq + Hash + Clone, V> Coalescer<K, V> {
    /// A coalescer allowing one record per key per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            open: HashMap::new(),
        }
    }

    /// Notes one occurrence of `key` at `now`. Returns the record to write now (this
    /// occurrence plus any counted and not yet recorded), or `None` when the key already
    /// had a record within the interval and the occurrence is only counted.
    pub fn note(&mut self, key: K, latest: V, now: Instant) -> Option<Coalesced<K, V>> {
        let window = self.window;
        match self.open.get_mut(&key) {
            Some(interval) if now.saturating_duration_since(interval.started) < window => {
                let count = interval.pending.as_ref().map_or(0, |(n, _)| *n);
                interval.pending = Some((count + 1, latest));
                None
            }
            Some(interval) => {
                let earlier = interval.pending.take().map_or(0, |(n, _)| n);
                interval.started = now;
                Some(Coalesced {
                    key,
                    latest,
                    count: earlier + 1,
                })
            }
            None => {
                self.open.insert(
                    key.clone(),
                    Interval {
                        started: now,
                        pending: None,
                    },
                );
                Some(Coalesced {
                    key,
                    latest,
                    count: 1,
                })
            }
        }
    }

    /// The counts whose interval has passed by `now`, to record now; each opens a new
    /// interval for its key. Keys whose interval passed with nothing counted are
    /// forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<Coalesced<K, V>> {
        let window = self.window;
        let mut due = Vec::new();
        self.open.retain(|key, interval| {
            if now.saturating_duration_since(interval.started) < window {
                return true;
            }
            match interval.pending.take() {
                Some((count, latest)) => {
                    interval.started = now;
                    due.push(Coalesced {
                        key: key.clone(),
                        latest,
                        count,
                    });
                    true
                }
                None => false,
            }
        });
        due
    }

    /// Every count not yet recorded (at shutdown); forgets every key.
    pub fn drain(&mut self) -> Vec<Coalesced<K, V>> {
        self.open
            .drain()
            .filter_map(|(key, interval)| {
                let (count, latest) = interval.pending?;
                Some(Coalesced { key, latest, count })
            })
            .collect()
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn a_flood_gives_one_record_per_key_per_interval_and_loses_no_count() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(MINUTE);
        let first = c.note("a", 1, t0).unwrap();
        assert_eq!((first.count, first.latest), (1, 1));
        // 1000 more within the minute: counted, not recorded.
        for i in 0..1000u64 {
            assert_eq!(c.note("a", 2, at(t0, i % 59)), None);
        }
        // Another key is independent.
        assert_eq!(c.note("b", 9, at(t0, 10)).unwrap().count, 1);
        assert_eq!(c.len(), 2);
        // The next occurrence after the minute carries the count.
        let next = c.note("a", 3, at(t0, 61)).unwrap();
        assert_eq!((next.count, next.latest), (1001, 3));
        // ... and opens a new interval.
        assert_eq!(c.note("a", 4, at(t0, 62)), None);
        assert_eq!(c.drain().len(), 1, "only a has a pending count");
        assert!(c.is_empty());
    }

    #[test]
    fn due_records_a_count_once_its_interval_passed() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(MINUTE);
        c.note("a", 0, t0).unwrap();
        c.note("b", 0, t0).unwrap();
        for _ in 0..5 {
            assert!(c.note("a", 7, at(t0, 30)).is_none());
        }
        assert!(c.due(at(t0, 59)).is_empty(), "not before the interval ends");
        let due = c.due(at(t0, 60));
        assert_eq!(
            due,
            vec![Coalesced {
                key: "a",
                latest: 7,
                count: 5
            }]
        );
        // b had nothing counted: forgotten. a opened a new interval at 60.
        assert_eq!(c.len(), 1);
        assert!(c.note("a", 8, at(t0, 100)).is_none());
        assert!(c.due(at(t0, 119)).is_empty());
        assert_eq!(c.due(at(t0, 120))[0].count, 1);
        assert!(c.due(at(t0, 300)).is_empty());
        assert!(c.is_empty(), "a quiet key is forgotten");
        // Forgotten keys are recorded at once again.
        assert_eq!(c.note("a", 9, at(t0, 301)).unwrap().count, 1);
    }

    #[test]
    fn drain_hands_over_pending_counts_at_shutdown() {
        let t0 = Instant::now();
        let mut c = Coalescer::new(MINUTE);
        c.note(("p", 1), "x", t0).unwrap();
        c.note(("p", 1), "y", at(t0, 1));
        c.note(("p", 1), "z", at(t0, 2));
        c.note(("q", 1), "w", t0).unwrap();
        let drained = c.drain();
        assert_eq!(
            drained,
            vec![Coalesced {
                key: ("p", 1),
                latest: "z",
                count: 2
            }]
        );
        assert!(c.is_empty());
    }
}
