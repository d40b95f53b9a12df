//! Link plan: which peers a node pushes blocks and transactions to, in and across regions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::mesh::{mesh_peers, DEFAULT_BRIDGE_DEGREE};
use super::overlay::{region_peers, DEFAULT_FANOUT};
use super::strategy::Strategy;
use crate::identity::NodeId;
use crate::region::Region;

/// A gossiping member of the node's own region as seen by the membership view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionMember {
    /// The member's id.
    pub node_id: NodeId,
    /// Whether the member is live now; dead members get no pushes.
    pub live: bool,
}

/// Degree limits of the link plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkLimits {
    /// Most in-region overlay peers per node (own bridges come on top).
    pub fanout: usize,
    /// Most cross-region links per bridge under `global_mesh`.
    pub bridge_degree: usize,
}

impl Default for LinkLimits {
    fn default() -> Self {
        LinkLimits {
            fanout: DEFAULT_FANOUT,
            bridge_degree: DEFAULT_BRIDGE_DEGREE,
        }
    }
}

/// What the link plan is computed from: one node's view of its region and of all bridges.
#[derive(Clone, Copy, Debug)]
pub struct LinkView<'a> {
    /// The planning node.
    pub self_id: &'a NodeId,
    /// The planning node's region.
    pub self_region: &'a Region,
    /// The strategy in use.
    pub strategy: Strategy,
    /// Whether conservative failover is active.
    pub failover_active: bool,
    /// Gossiping (super and full) members of the own region.
    pub region_members: &'a [RegionMember],
    /// The live bridges of every region, the own region included.
    pub bridges: &'a BTreeMap<Region, Vec<NodeId>>,
    /// Degree limits.
    pub limits: LinkLimits,
}

/// Why a peer is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A peer of the own region: overlay neighbour or own bridge.
    InRegion,
    /// A bridge of another region; only bridges have these.
    CrossRegion,
}

impl LinkKind {
    /// Every kind; for metric labels.
    pub const ALL: &'static [LinkKind] = &[LinkKind::InRegion, LinkKind::CrossRegion];

    /// The snake_case name used in the API and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkKind::InRegion => "in_region",
            LinkKind::CrossRegion => "cross_region",
        }
    }
}

impl fmt::Display for LinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One peer in use, as listed by the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The peer.
    pub peer: NodeId,
    /// Why it is linked.
    pub kind: LinkKind,
}

/// The peers a node pushes to; both lists sorted by id, disjoint, never holding the node itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    /// Own-region peers.
    pub in_region: Vec<NodeId>,
    /// Bridges of other regions (empty unless the node is a bridge).
    pub cross_region: Vec<NodeId>,
}

impl Links {
    /// Every link with its kind, in-region first.
    pub fn list(&self) -> Vec<Link> {
        let tag = |kind| {
            move |peer: &NodeId| Link {
                peer: peer.clone(),
                kind,
            }
        };
        self.in_region
            .iter()
            .map(tag(LinkKind::InRegion))
            .chain(self.cross_region.iter().map(tag(LinkKind::CrossRegion)))
            .collect()
    }

    /// Number of links.
    pub fn len(&self) -> usize {
        self.in_region.len() + self.cross_region.len()
    }

    /// Whether there is no link at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `node` is a bridge of `region` in the bridge map.
pub fn is_bridge(bridges: &BTreeMap<Region, Vec<NodeId>>, region: &Region, node: &NodeId) -> bool {
    bridges.get(region).is_some_and(|ids| ids.contains(node))
}

/// Plans the links of one node (DESIGN §4 table, §5 failover).
///
/// In-region: the bounded-fan-out overlay over the live region members
/// ([`region_peers`]), plus the own region's bridges whenever
/// traffic crosses regions, so any node reaches the bridges in one hop. A bridge does not link
/// to every member of its region; it spreads what it relays through the overlay.
///
/// Cross-region, only for a bridge of the own region: none under `direct`; every bridge of
/// every other region under `regional_clustering`; the [`bridge_mesh`](super::mesh::bridge_mesh)
/// neighbours under `global_mesh`. While failover is active the strategy is overridden and a
/// bridge links to every bridge of every other region in the map: the map holds live bridges
/// only, so missing regions drop out and the surviving ones are all used. Leave regions that
/// must not be routed to yet (still restoring) out of `bridges`.
pub fn plan_links(view: &LinkView<'_>) -> Links {
    let me = view.self_id;
    let live = view
        .region_members
        .iter()
        .filter(|m| m.live)
        .map(|m| &m.node_id);
    let mut in_region: BTreeSet<NodeId> = region_peers(me, live, view.limits.fanout)
        .into_iter()
        .collect();
    let crosses = view.failover_active || view.strategy != Strategy::Direct;
    let own_bridges = view.bridges.get(view.self_region);
    if crosses {
        in_region.extend(own_bridges.into_iter().flatten().cloned());
    } else if is_bridge(view.bridges, view.self_region, me) {
        // a region split into gossip cells: its other cells' bridges are not members of
        // this node's cell; every bridge links them so a block crosses cells in `direct` too
        let members: BTreeSet<&NodeId> = view.region_members.iter().map(|m| &m.node_id).collect();
        in_region.extend(
            own_bridges
                .into_iter()
                .flatten()
                .filter(|b| !members.contains(b))
                .cloned(),
        );
    }
    in_region.remove(me);

    let cross_region: BTreeSet<NodeId> = if !is_bridge(view.bridges, view.self_region, me) {
        BTreeSet::new()
    } else if view.failover_active || view.strategy == Strategy::RegionalClustering {
        view.bridges
            .iter()
            .filter(|(region, _)| *region != view.self_region)
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect()
    } else if view.strategy == Strategy::GlobalMesh {
        mesh_peers(me, view.bridges, view.limits.bridge_degree)
            .into_iter()
            .collect()
    } else {
        BTreeSet::new()
    };
    let cross_region: Vec<NodeId> = cross_region
        .into_iter()
        .filter(|id| id != me && !in_region.contains(id))
        .collect();

    Links {
        in_region: in_region.into_iter().collect(),
        cross_region,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::identity::NodeType;
    use crate::topology::bridges::{select_bridges, BridgeCandidate, DEFAULT_BRIDGES_PER_REGION};

    fn id(n: u64) -> NodeId {
        NodeId::parse(&format!("{n:016x}")).unwrap()
    }

    fn region(n: usize) -> Region {
        Region::new(&format!("r{n}")).unwrap()
    }

    /// A network of `regions` regions with `size` live members each; ids r*100+i.
    struct Net {
        members: BTreeMap<Region, Vec<RegionMember>>,
        bridges: BTreeMap<Region, Vec<NodeId>>,
    }

    fn net(regions: usize, size: u64) -> Net {
        let mut members = BTreeMap::new();
        let mut bridges = BTreeMap::new();
        for r in 0..regions {
            let list: Vec<RegionMember> = (0..size)
                .map(|i| RegionMember {
                    node_id: id(r as u64 * 100 + i),
                    live: true,
                })
                .collect();
            let candidates: Vec<BridgeCandidate> = list
                .iter()
                .enumerate()
                .map(|(i, m)| BridgeCandidate {
                    node_id: m.node_id.clone(),
                    node_type: if i % 4 == 1 {
                        NodeType::Super
                    } else {
                        NodeType::Full
                    },
                    live: m.live,
                })
                .collect();
            bridges.insert(
                region(r),
                select_bridges(&candidates, DEFAULT_BRIDGES_PER_REGION),
            );
            members.insert(region(r), list);
        }
        Net { members, bridges }
    }

    fn plan(net: &Net, me: &NodeId, strategy: Strategy, failover_active: bool) -> Links {
        let own = net
            .members
            .iter()
            .find(|(_, list)| list.iter().any(|m| &m.node_id == me))
            .map(|(r, _)| r)
            .unwrap();
        plan_links(&LinkView {
            self_id: me,
            self_region: own,
            strategy,
            failover_active,
            region_members: &net.members[own],
            bridges: &net.bridges,
            limits: LinkLimits::default(),
        })
    }

    /// Whether a push from `from` reaches every member when every node forwards to its links.
    fn reaches_all(net: &Net, from: &NodeId, strategy: Strategy, failover_active: bool) -> bool {
        let all: BTreeSet<&NodeId> = net.members.values().flatten().map(|m| &m.node_id).collect();
        let mut reached = BTreeSet::from([from.clone()]);
        let mut queue = VecDeque::from([from.clone()]);
        while let Some(node) = queue.pop_front() {
            let links = plan(net, &node, strategy, failover_active);
            for peer in links.in_region.into_iter().chain(links.cross_region) {
                if reached.insert(peer.clone()) {
                    queue.push_back(peer);
                }
            }
        }
        reached.len() == all.len()
    }

    #[test]
    fn direct_small_region_pushes_to_live_peers_only() {
        let mut n = net(1, 5);
        n.members.get_mut(&region(0)).unwrap()[3].live = false;
        let links = plan(&n, &id(0), Strategy::Direct, false);
        assert_eq!(links.in_region, vec![id(1), id(2), id(4)]);
        assert!(links.cross_region.is_empty());
    }

    #[test]
    fn direct_has_no_cross_region_even_for_bridges() {
        let n = net(3, 5);
        let bridge = n.bridges[&region(0)][0].clone();
        let links = plan(&n, &bridge, Strategy::Direct, false);
        assert!(links.cross_region.is_empty());
        assert!(links
            .in_region
            .iter()
            .all(|p| p.as_str() < "0000000000000064"));
    }

    #[test]
    fn direct_large_region_does_not_add_own_bridges() {
        let n = net(1, 40);
        let links = plan(&n, &id(20), Strategy::Direct, false);
        assert!(links.in_region.len() <= DEFAULT_FANOUT);
    }

    #[test]
    fn a_block_crosses_the_cells_of_a_split_region_in_every_strategy() {
        // one region split into two gossip cells: a node's members are its cell's; the
        // region's bridges (from the combined summary) are those of both cells
        let two = net(2, 40);
        let cells: Vec<Vec<RegionMember>> = two.members.values().cloned().collect();
        let mut bridges = BTreeMap::new();
        bridges.insert(
            region(0),
            two.bridges.values().flatten().cloned().collect::<Vec<_>>(),
        );
        let cell_of = |id: &NodeId| {
            cells
                .iter()
                .position(|c| c.iter().any(|m| &m.node_id == id))
        };
        for strategy in [
            Strategy::Direct,
            Strategy::RegionalClustering,
            Strategy::GlobalMesh,
        ] {
            let from = id(5);
            let mut reached = BTreeSet::from([from.clone()]);
            let mut queue = VecDeque::from([from]);
            while let Some(node) = queue.pop_front() {
                let Some(c) = cell_of(&node) else { continue };
                let links = plan_links(&LinkView {
                    self_id: &node,
                    self_region: &region(0),
                    strategy,
                    failover_active: false,
                    region_members: &cells[c],
                    bridges: &bridges,
                    limits: LinkLimits::default(),
                });
                for peer in links.in_region.into_iter().chain(links.cross_region) {
                    if reached.insert(peer.clone()) {
                        queue.push_back(peer);
                    }
                }
            }
            assert_eq!(reached.len(), 80, "{strategy:?}");
        }
    }

    #[test]
    fn non_bridge_reaches_own_bridges_only() {
        let n = net(3, 40);
        let me = id(20);
        assert!(!is_bridge(&n.bridges, &region(0), &me));
        let links = plan(&n, &me, Strategy::RegionalClustering, false);
        assert!(links.cross_region.is_empty());
        for b in &n.bridges[&region(0)] {
            assert!(links.in_region.contains(b));
        }
        assert!(links.in_region.len() <= DEFAULT_FANOUT + DEFAULT_BRIDGES_PER_REGION);
    }

    #[test]
    fn regional_clustering_bridges_fully_meshed() {
        let n = net(3, 10);
        let me = n.bridges[&region(1)][0].clone();
        let links = plan(&n, &me, Strategy::RegionalClustering, false);
        let expected: Vec<NodeId> = [region(0), region(2)]
            .iter()
            .flat_map(|r| n.bridges[r].clone())
            .collect();
        assert_eq!(links.cross_region, expected);
        assert!(!links.in_region.contains(&me));
        assert!(links.list().iter().any(|l| l.kind == LinkKind::CrossRegion));
        assert_eq!(links.list().len(), links.len());
    }

    #[test]
    fn global_mesh_bridge_degree_is_bounded() {
        let n = net(8, 10);
        for bridge in n.bridges.values().flatten() {
            let links = plan(&n, bridge, Strategy::GlobalMesh, false);
            assert!(links.cross_region.len() <= DEFAULT_BRIDGE_DEGREE);
            assert!(!links.cross_region.is_empty());
            assert!(!links.cross_region.contains(bridge));
        }
    }

    #[test]
    fn failover_links_every_surviving_bridge() {
        let mut n = net(8, 10);
        n.bridges.remove(&region(3));
        n.bridges.remove(&region(5));
        let me = n.bridges[&region(0)][0].clone();
        let links = plan(&n, &me, Strategy::GlobalMesh, true);
        let expected: BTreeSet<NodeId> = n
            .bridges
            .iter()
            .filter(|(r, _)| **r != region(0))
            .flat_map(|(_, ids)| ids.clone())
            .collect();
        assert_eq!(links.cross_region, expected.into_iter().collect::<Vec<_>>());
        assert!(links.cross_region.len() > DEFAULT_BRIDGE_DEGREE);
        let direct = plan(&n, &me, Strategy::Direct, true);
        assert_eq!(direct.cross_region, links.cross_region);
    }

    #[test]
    fn self_never_linked_even_if_listed_everywhere() {
        let n = net(4, 3);
        for node in n.members.values().flatten() {
            for strategy in Strategy::ALL {
                for failover in [false, true] {
                    let links = plan(&n, &node.node_id, *strategy, failover);
                    assert!(!links.in_region.contains(&node.node_id));
                    assert!(!links.cross_region.contains(&node.node_id));
                }
            }
        }
    }

    #[test]
    fn push_reaches_every_node() {
        for (regions, strategy) in [
            (1, Strategy::Direct),
            (2, Strategy::RegionalClustering),
            (3, Strategy::RegionalClustering),
            (4, Strategy::GlobalMesh),
            (7, Strategy::GlobalMesh),
        ] {
            let n = net(regions, 15);
            for failover in [false, true] {
                assert!(
                    reaches_all(&n, &id(7), strategy, failover),
                    "{regions} {strategy}"
                );
                let last = id((regions as u64 - 1) * 100 + 14);
                assert!(
                    reaches_all(&n, &last, strategy, failover),
                    "{regions} {strategy}"
                );
            }
        }
    }

    #[test]
    fn kind_names_match_serde() {
        for kind in LinkKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
