//! Bridge choice: which members of a region join the bridge cluster and carry cross-region traffic.

use std::collections::BTreeSet;

use crate::identity::{NodeId, NodeType};

/// Default number of bridges per region (B in DESIGN §3).
pub const DEFAULT_BRIDGES_PER_REGION: usize = 3;

/// A member of one region as seen by the membership view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeCandidate {
    /// The member's id.
    pub node_id: NodeId,
    /// The member's type; light nodes never bridge.
    pub node_type: NodeType,
    /// Whether the member is live now.
    pub live: bool,
}

/// Chooses up to `max` bridges of one region (DESIGN §3): live super nodes; live full nodes
/// only when the region has no live super node; never light nodes; ties go to the lower id.
///
/// The result depends only on the set of candidates, not their order, so every node that
/// sees the same region picks the same bridges. A node listed twice counts once, with its
/// best-ranked entry. The returned ids are in rank order (by id).
pub fn select_bridges(candidates: &[BridgeCandidate], max: usize) -> Vec<NodeId> {
    let mut ranked: Vec<(u8, &NodeId)> = candidates
        .iter()
        .filter(|c| c.live)
        .filter_map(|c| rank(c.node_type).map(|r| (r, &c.node_id)))
        .collect();
    ranked.sort_unstable();
    if let Some(&(best, _)) = ranked.first() {
        ranked.retain(|(r, _)| *r == best);
    }
    let mut seen = BTreeSet::new();
    ranked
        .into_iter()
        .filter(|(_, id)| seen.insert(*id))
        .take(max)
        .map(|(_, id)| id.clone())
        .collect()
}

/// Preference of a node type as bridge, lower first; `None` when it may not bridge.
fn rank(node_type: NodeType) -> Option<u8> {
    match node_type {
        NodeType::Super => Some(0),
        NodeType::Full => Some(1),
        NodeType::Light => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> NodeId {
        NodeId::parse(&format!("{n:016x}")).unwrap()
    }

    fn cand(n: u64, node_type: NodeType, live: bool) -> BridgeCandidate {
        BridgeCandidate {
            node_id: id(n),
            node_type,
            live,
        }
    }

    #[test]
    fn full_nodes_only_when_no_live_super() {
        let c = vec![
            cand(9, NodeType::Full, true),
            cand(5, NodeType::Super, true),
            cand(1, NodeType::Full, true),
            cand(7, NodeType::Super, true),
        ];
        assert_eq!(select_bridges(&c, 3), vec![id(5), id(7)]);
        assert_eq!(select_bridges(&c, 1), vec![id(5)]);
        let no_live_super = vec![
            cand(9, NodeType::Full, true),
            cand(5, NodeType::Super, false),
            cand(1, NodeType::Full, true),
        ];
        assert_eq!(select_bridges(&no_live_super, 3), vec![id(1), id(9)]);
    }

    #[test]
    fn full_nodes_not_used_when_enough_super() {
        let c = vec![
            cand(1, NodeType::Full, true),
            cand(2, NodeType::Super, true),
            cand(3, NodeType::Super, true),
            cand(4, NodeType::Super, true),
            cand(5, NodeType::Super, true),
        ];
        assert_eq!(select_bridges(&c, 3), vec![id(2), id(3), id(4)]);
    }

    #[test]
    fn dead_and_light_never_chosen() {
        let c = vec![
            cand(1, NodeType::Super, false),
            cand(2, NodeType::Light, true),
            cand(3, NodeType::Full, false),
            cand(4, NodeType::Full, true),
        ];
        assert_eq!(select_bridges(&c, 3), vec![id(4)]);
        let only_light = vec![cand(2, NodeType::Light, true)];
        assert!(select_bridges(&only_light, 3).is_empty());
        assert!(select_bridges(&[], 3).is_empty());
    }

    #[test]
    fn max_zero_selects_nothing() {
        let c = vec![cand(1, NodeType::Super, true)];
        assert!(select_bridges(&c, 0).is_empty());
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let mut c: Vec<_> = (0..12)
            .map(|n| {
                let t = match n % 3 {
                    0 => NodeType::Super,
                    1 => NodeType::Full,
                    _ => NodeType::Light,
                };
                cand(n * 7 % 13, t, n % 5 != 0)
            })
            .collect();
        let expected = select_bridges(&c, DEFAULT_BRIDGES_PER_REGION);
        assert_eq!(expected.len(), DEFAULT_BRIDGES_PER_REGION);
        c.reverse();
        assert_eq!(select_bridges(&c, DEFAULT_BRIDGES_PER_REGION), expected);
        c.rotate_left(5);
        assert_eq!(select_bridges(&c, DEFAULT_BRIDGES_PER_REGION), expected);
    }

    #[test]
    fn duplicate_entry_counts_once_with_best_rank() {
        let c = vec![
            cand(3, NodeType::Full, true),
            cand(3, NodeType::Super, true),
            cand(2, NodeType::Full, true),
        ];
        assert_eq!(
            select_bridges(&c, 3),
            vec![id(3)],
            "3 counts as a live super node"
        );
    }
}
