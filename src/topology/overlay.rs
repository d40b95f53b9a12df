//! In-region overlay: a bounded-degree, symmetric, connected push graph over a region's live members.

use std::collections::BTreeSet;

use crate::identity::NodeId;

/// Default number of in-region push targets per node.
pub const DEFAULT_FANOUT: usize = 8;

/// Smallest fan-out the overlay accepts: a ring needs two neighbours.
const MIN_FANOUT: usize = 2;

/// The peers `me` pushes to among the live members of its region (`me` need not be listed).
///
/// Up to `fanout + 1` members everyone pushes to everyone. Above that the members are put on
/// a ring in id order and each links to the members at distance ±1, ±b, ±b², … ±b^(k-1),
/// with k = fanout / 2 and b the smallest base ≥ 2 with b^k ≥ n. Distance ±1 keeps the graph
/// connected, the ± pairs make it symmetric (a links b iff b links a), and every node has at
/// most `fanout` peers while any member is at most k·(b−1) hops away. A `fanout` below 2 is
/// treated as 2. The result is sorted by id and never contains `me`.
pub fn region_peers<'a>(
    me: &NodeId,
    live_members: impl IntoIterator<Item = &'a NodeId>,
    fanout: usize,
) -> Vec<NodeId> {
    let mut ring: BTreeSet<&NodeId> = live_members.into_iter().collect();
    ring.insert(me);
    let ring: Vec<&NodeId> = ring.into_iter().collect();
    let Some(position) = ring.iter().position(|id| *id == me) else {
        return Vec::new();
    };
    let neighbours: BTreeSet<&NodeId> = ring_neighbours(position, ring.len(), fanout)
        .into_iter()
        .filter_map(|i| ring.get(i).copied())
        .collect();
    neighbours.into_iter().cloned().collect()
}

/// Ring positions that position `i` of `n` links to; see [`region_peers`].
fn ring_neighbours(i: usize, n: usize, fanout: usize) -> BTreeSet<usize> {
    let fanout = fanout.max(MIN_FANOUT);
    if n <= fanout + 1 {
        return (0..n).filter(|&j| j != i).collect();
    }
    offsets(n, fanout / 2)
        .into_iter()
        .flat_map(|off| [(i + off) % n, (i + n - off) % n])
        .filter(|&j| j != i)
        .collect()
}

/// Distances 1, b, b², … b^(k-1) below `n`, with b the smallest base ≥ 2 such that b^k ≥ n.
fn offsets(n: usize, k: usize) -> Vec<usize> {
    let k = u32::try_from(k.max(1)).unwrap_or(u32::MAX);
    let mut base: usize = 2;
    while base.checked_pow(k).is_some_and(|reach| reach < n) {
        base += 1;
    }
    let mut out = Vec::new();
    let mut off: usize = 1;
    for _ in 0..k {
        if off >= n {
            break;
        }
        out.push(off);
        match off.checked_mul(base) {
            Some(next) => off = next,
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::parse(&format!("{n:016x}")).unwrap()
    }

    /// Largest BFS distance from node 0, or `None` if some node is unreachable.
    fn eccentricity(n: usize, fanout: usize) -> Option<usize> {
        let mut dist = vec![usize::MAX; n];
        dist[0] = 0;
        let mut queue = VecDeque::from([0]);
        while let Some(u) = queue.pop_front() {
            for v in ring_neighbours(u, n, fanout) {
                if dist[v] == usize::MAX {
                    dist[v] = dist[u] + 1;
                    queue.push_back(v);
                }
            }
        }
        dist.into_iter()
            .try_fold(0, |acc, d| (d != usize::MAX).then(|| acc.max(d)))
    }

    #[test]
    fn small_region_pushes_to_everyone() {
        let members: Vec<NodeId> = (0..9).map(id).collect();
        let peers = region_peers(&id(4), &members, 8);
        assert_eq!(peers.len(), 8);
        assert!(!peers.contains(&id(4)));
    }

    #[test]
    fn one_above_limit_uses_overlay() {
        let members: Vec<NodeId> = (0..10).map(id).collect();
        let peers = region_peers(&id(4), &members, 8);
        assert!(peers.len() <= 8);
        assert!(!peers.contains(&id(4)));
        assert!(peers.contains(&id(3)) && peers.contains(&id(5)));
    }

    #[test]
    fn alone_has_no_peers() {
        assert!(region_peers(&id(1), &[], 8).is_empty());
        assert!(region_peers(&id(1), &[id(1)], 8).is_empty());
    }

    #[test]
    fn self_missing_from_list_is_placed_on_ring() {
        let members: Vec<NodeId> = (0..20).filter(|n| *n != 7).map(id).collect();
        let peers = region_peers(&id(7), &members, 4);
        assert!(peers.contains(&id(6)) && peers.contains(&id(8)));
    }

    #[test]
    fn input_order_and_duplicates_do_not_matter() {
        let members: Vec<NodeId> = (0..50).map(|n| id(n * 37 % 101)).collect();
        let mut shuffled = members.clone();
        shuffled.reverse();
        shuffled.extend(members.iter().take(10).cloned());
        let me = id(37);
        assert_eq!(
            region_peers(&me, &members, 8),
            region_peers(&me, &shuffled, 8)
        );
    }

    #[test]
    fn overlay_is_symmetric_bounded_and_connected() {
        for fanout in [2, 3, 4, 8, 16] {
            for n in 1..=120 {
                for i in 0..n {
                    let peers = ring_neighbours(i, n, fanout);
                    assert!(peers.len() <= fanout.max(2), "n={n} fanout={fanout}");
                    assert!(!peers.contains(&i));
                    for &j in &peers {
                        assert!(ring_neighbours(j, n, fanout).contains(&i), "n={n} {i}->{j}");
                    }
                }
                assert!(eccentricity(n, fanout).is_some(), "n={n} fanout={fanout}");
            }
        }
    }

    #[test]
    fn diameter_stays_small_in_large_regions() {
        // Bound k·(b−1): every distance has k base-b digits, each walked forward.
        for (n, bound) in [(100, 12), (1_000, 20), (10_000, 36)] {
            let ecc = eccentricity(n, 8).unwrap();
            assert!(ecc <= bound, "n={n} eccentricity {ecc} > {bound}");
        }
    }

    #[test]
    fn offsets_cover_the_ring() {
        assert_eq!(offsets(10, 4), vec![1, 2, 4, 8]);
        assert_eq!(offsets(1_000, 4), vec![1, 6, 36, 216]);
        assert_eq!(offsets(12, 5), vec![1, 2, 4, 8]);
    }
}
