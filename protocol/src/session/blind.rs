//! Blinding our own rounds: each slot of the send plan becomes `k·H(x)` for its element,
//! or a random point for padding (`cardinality` bundles), in plan order.
//!
//! `H(x)` comes from the points the set kept when it was hashed once for several
//! sessions ([`PreparedSet::hash_to_group`]); otherwise it is computed here.

use curve25519_dalek::ristretto::RistrettoPoint;

use super::PreparedSet;
use super::plan::SendPlan;
use super::proof::NonceSeed;
use crate::group::BlindingKey;
use crate::wire::PointBytes;

/// What a round is blinded from.
pub(super) struct Sources<'a> {
    pub set: &'a PreparedSet,
    pub plan: &'a SendPlan,
    pub key: &'a BlindingKey,
    pub seed: &'a NonceSeed,
}

/// Our blinded points for `slots` of the plan (padding as random points), and with
/// `keep` the points themselves, which checking the peer's answers needs.
pub(super) fn slots(
    from: Sources<'_>,
    slots: std::ops::Range<usize>,
    keep: bool,
) -> (Vec<PointBytes>, Vec<RistrettoPoint>) {
    let (blinded, halves) = elements(&from, slots.clone(), keep);
    if blinded.len() == slots.len() && !keep {
        return (blinded, Vec::new());
    }
    let mut encodings = Vec::with_capacity(slots.len());
    let mut points = Vec::with_capacity(if keep { slots.len() } else { 0 });
    let mut next = 0;
    let mut padding = from.seed.stream(&slots.start.to_be_bytes());
    for position in slots {
        if from.plan.element(position).is_some() {
            encodings.push(blinded[next]);
            if keep {
                points.push(halves[next] + halves[next]);
            }
            next += 1;
        } else {
            let mut uniform = [0u8; 64];
            for chunk in uniform.chunks_mut(8) {
                chunk.copy_from_slice(&padding.next_u64().to_le_bytes());
            }
            let point = RistrettoPoint::from_uniform_bytes(&uniform);
            encodings.push(point.compress().to_bytes());
            if keep {
                points.push(point);
            }
        }
    }
    (encodings, points)
}

/// Blinds the elements (not the padding) in `slots` of the plan; with `keep`, also
/// returns the points `k/2 · H(x)`.
fn elements(
    from: &Sources<'_>,
    slots: std::ops::Range<usize>,
    keep: bool,
) -> (Vec<PointBytes>, Vec<RistrettoPoint>) {
    let elements = slots.filter_map(|p| from.plan.element(p));
    if from.set.is_hashed() {
        let points: Vec<RistrettoPoint> = elements
            .filter_map(|e| from.set.hashed_point(e).copied())
            .collect();
        return if keep {
            from.key.blind_hashed_keeping(&points)
        } else {
            (from.key.blind_hashed(&points), Vec::new())
        };
    }
    let items: Vec<(u8, &[u8])> = elements.map(|e| from.set.element(e)).collect();
    if keep {
        from.key.blind_identifiers_keeping(&items)
    } else {
        (from.key.blind_identifiers(&items), Vec::new())
    }
}
