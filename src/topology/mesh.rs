//! Bridge mesh for `global_mesh`: a bounded-degree, connected graph over the bridges of all regions.

use std::collections::{BTreeMap, BTreeSet};

use crate::identity::NodeId;
use crate::region::Region;

/// Default number of cross-region links per bridge under `global_mesh`.
pub const DEFAULT_BRIDGE_DEGREE: usize = 4;

/// Smallest degree the mesh accepts: the backbone ring needs two links per bridge.
const MIN_DEGREE: usize = 2;

/// An undirected link between two bridges of different regions, lower id first.
pub type MeshEdge = (NodeId, NodeId);

/// The cross-region links between the live bridges of all regions under `global_mesh`.
///
/// Every node computes the same mesh from the same bridge map (lists are sorted and
/// deduplicated first; an id listed under several regions counts in the first one only).
/// Built in three deterministic passes, always picking a region's least-loaded bridge
/// (ties to the lower id) that still has room:
/// 1. a ring over the regions in name order, which connects all regions;
/// 2. every bridge still without a cross-region link gets one to the nearest region ahead;
/// 3. chords between regions 2, 3, … apart on the ring while degree allows, to shorten paths.
///
/// No bridge gets more than `degree` links (a degree below 2 is treated as 2). Bridges of one
/// region reach each other through the in-region overlay, so a connected region graph means
/// a block relayed hop by hop reaches every region.
pub fn bridge_mesh(bridges: &BTreeMap<Region, Vec<NodeId>>, degree: usize) -> BTreeSet<MeshEdge> {
    let mut mesh = Builder::new(bridges, degree.max(MIN_DEGREE));
    let regions = mesh.regions.len();
    if regions < 2 {
        return BTreeSet::new();
    }
    let ring_links = if regions == 2 { 1 } else { regions };
    for r in 0..ring_links {
        mesh.link_regions(r, (r + 1) % regions);
    }
    for r in 0..regions {
        for i in 0..mesh.regions[r].len() {
            if mesh.load[r][i] == 0 {
                mesh.link_orphan(r, i);
            }
        }
    }
    for distance in 2..=regions / 2 {
        for r in 0..regions {
            let mirrored = 2 * distance == regions && r >= distance;
            if !mirrored {
                mesh.link_regions(r, (r + distance) % regions);
            }
        }
    }
    mesh.edges
}

/// The bridges of other regions that `me` links to in [`bridge_mesh`], sorted by id.
pub fn mesh_peers(
    me: &NodeId,
    bridges: &BTreeMap<Region, Vec<NodeId>>,
    degree: usize,
) -> Vec<NodeId> {
    let peers: BTreeSet<NodeId> = bridge_mesh(bridges, degree)
        .into_iter()
        .filter_map(|(a, b)| match (&a == me, &b == me) {
            (true, false) => Some(b),
            (false, true) => Some(a),
            _ => None,
        })
        .collect();
    peers.into_iter().collect()
}

/// Working state of [`bridge_mesh`]: bridges per region by index, their link counts, the edges.
struct Builder {
    regions: Vec<Vec<NodeId>>,
    load: Vec<Vec<usize>>,
    degree: usize,
    edges: BTreeSet<MeshEdge>,
}

impl Builder {
    fn new(bridges: &BTreeMap<Region, Vec<NodeId>>, degree: usize) -> Self {
        let mut seen = BTreeSet::new();
        let regions: Vec<Vec<NodeId>> = bridges
            .values()
            .map(|ids| {
                let sorted: BTreeSet<&NodeId> = ids.iter().collect();
                sorted
                    .into_iter()
                    .filter(|id| seen.insert(*id))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .filter(|ids| !ids.is_empty())
            .collect();
        let load = regions.iter().map(|ids| vec![0; ids.len()]).collect();
        Builder {
            regions,
            load,
            degree,
            edges: BTreeSet::new(),
        }
    }

    /// Index of the least-loaded bridge of region `r` that has room, lowest index on ties.
    fn pick(&self, r: usize) -> Option<usize> {
        self.load[r]
            .iter()
            .enumerate()
            .filter(|(_, load)| **load < self.degree)
            .min_by_key(|(i, load)| (**load, *i))
            .map(|(i, _)| i)
    }

    fn link_regions(&mut self, r: usize, s: usize) {
        if let (Some(i), Some(j)) = (self.pick(r), self.pick(s)) {
            self.link((r, i), (s, j));
        }
    }

    /// Links bridge `i` of region `r` to the nearest region ahead on the ring that has room.
    fn link_orphan(&mut self, r: usize, i: usize) {
        let regions = self.regions.len();
        for step in 1..regions {
            let s = (r + step) % regions;
            if let Some(j) = self.pick(s) {
                self.link((r, i), (s, j));
                return;
            }
        }
    }

    fn link(&mut self, (r, i): (usize, usize), (s, j): (usize, usize)) {
        let (a, b) = (&self.regions[r][i], &self.regions[s][j]);
        let edge = if a < b {
            (a.clone(), b.clone())
        } else {
            (b.clone(), a.clone())
        };
        if r != s && self.edges.insert(edge) {
            self.load[r][i] += 1;
            self.load[s][j] += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::parse(&format!("{n:016x}")).unwrap()
    }

    fn region(n: usize) -> Region {
        Region::new(&format!("r{n:02}")).unwrap()
    }

    /// `regions` regions, region r having `per_region(r)` bridges with distinct ids.
    fn map(regions: usize, per_region: impl Fn(usize) -> usize) -> BTreeMap<Region, Vec<NodeId>> {
        (0..regions)
            .map(|r| {
                let ids = (0..per_region(r))
                    .map(|b| id((r * 10 + b) as u64))
                    .collect();
                (region(r), ids)
            })
            .collect()
    }

    fn region_of(bridges: &BTreeMap<Region, Vec<NodeId>>, node: &NodeId) -> Region {
        bridges
            .iter()
            .find(|(_, ids)| ids.contains(node))
            .map(|(r, _)| r.clone())
            .unwrap()
    }

    /// Whether the regions, contracted to single vertices, form a connected graph.
    fn regions_connected(
        bridges: &BTreeMap<Region, Vec<NodeId>>,
        edges: &BTreeSet<MeshEdge>,
    ) -> bool {
        let all: Vec<Region> = bridges.keys().cloned().collect();
        let mut reached = BTreeSet::from([all[0].clone()]);
        loop {
            let before = reached.len();
            for (a, b) in edges {
                let (ra, rb) = (region_of(bridges, a), region_of(bridges, b));
                if reached.contains(&ra) || reached.contains(&rb) {
                    reached.insert(ra);
                    reached.insert(rb);
                }
            }
            if reached.len() == before {
                return reached.len() == all.len();
            }
        }
    }

    fn check_mesh(bridges: &BTreeMap<Region, Vec<NodeId>>, degree: usize) {
        let label = format!("{} regions, degree {degree}", bridges.len());
        let edges = bridge_mesh(bridges, degree);
        assert!(regions_connected(bridges, &edges), "{label}: not connected");
        for (a, b) in &edges {
            assert_ne!(region_of(bridges, a), region_of(bridges, b), "{label}");
        }
        for node in bridges.values().flatten() {
            let peers = mesh_peers(node, bridges, degree);
            assert!(peers.len() <= degree, "{label}: {node} has {}", peers.len());
            assert!(
                !peers.is_empty(),
                "{label}: {node} has no cross-region link"
            );
            for peer in &peers {
                assert!(
                    mesh_peers(peer, bridges, degree).contains(node),
                    "{label}: asymmetric"
                );
            }
        }
    }

    #[test]
    fn connected_bounded_symmetric_for_4_to_12_regions() {
        for regions in 4..=12 {
            for per_region in 1..=3 {
                for degree in [3, DEFAULT_BRIDGE_DEGREE, 6] {
                    check_mesh(&map(regions, |_| per_region), degree);
                }
            }
            check_mesh(&map(regions, |r| 1 + r % 3), DEFAULT_BRIDGE_DEGREE);
            check_mesh(&map(regions, |r| if r == 0 { 3 } else { 1 }), 3);
        }
    }

    #[test]
    fn connectivity_check_detects_a_split() {
        let bridges = map(4, |_| 1);
        let half: BTreeSet<MeshEdge> = [(id(0), id(10)), (id(20), id(30))].into();
        assert!(!regions_connected(&bridges, &half));
        assert!(!regions_connected(&bridges, &BTreeSet::new()));
    }

    #[test]
    fn minimum_degree_still_connects() {
        for regions in 2..=12 {
            for degree in [0, 1, 2] {
                let bridges = map(regions, |_| 1);
                let edges = bridge_mesh(&bridges, degree);
                assert!(regions_connected(&bridges, &edges), "{regions} regions");
                for node in bridges.values().flatten() {
                    assert!(mesh_peers(node, &bridges, degree).len() <= 2);
                }
            }
        }
    }

    #[test]
    fn two_regions_link_every_bridge() {
        check_mesh(&map(2, |_| 3), DEFAULT_BRIDGE_DEGREE);
    }

    #[test]
    fn fewer_than_two_regions_have_no_mesh() {
        assert!(bridge_mesh(&BTreeMap::new(), 4).is_empty());
        assert!(bridge_mesh(&map(1, |_| 3), 4).is_empty());
        let mut with_empty = map(1, |_| 3);
        with_empty.insert(region(9), Vec::new());
        assert!(bridge_mesh(&with_empty, 4).is_empty());
    }

    #[test]
    fn same_mesh_whatever_the_list_order() {
        let bridges = map(7, |r| 1 + r % 3);
        let mut shuffled = bridges.clone();
        for ids in shuffled.values_mut() {
            ids.reverse();
            if let Some(first) = ids.first().cloned() {
                ids.push(first);
            }
        }
        assert_eq!(bridge_mesh(&bridges, 4), bridge_mesh(&shuffled, 4));
    }

    #[test]
    fn id_in_two_regions_counts_once() {
        let mut bridges = map(4, |_| 1);
        let dup = bridges[&region(0)][0].clone();
        bridges.get_mut(&region(2)).unwrap().push(dup.clone());
        let edges = bridge_mesh(&bridges, 4);
        assert!(edges.iter().all(|(a, b)| a != b));
        assert!(mesh_peers(&dup, &bridges, 4).len() <= 4);
    }
}
