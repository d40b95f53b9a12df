//! Gossip cells: a region too large for one chitchat cluster is split into `cells` clusters.
//!
//! Every chitchat SYN and SYN-ACK carries the digest of every member of its cluster (about
//! 18 B per member, compressed), so a node's regional gossip grows with its cluster: about
//! 98 B/s per member, 164 KB/s in a region of 1,667 members (docs/adr/0002). With
//! `cells_per_region` = C > 1 a node joins only the cluster of its cell,
//! `<chain_id>/<region>/<cell>-of-<C>`, where the cell is a hash of its node id modulo C; every
//! cell elects its own bridges, which publish the cell's summary in the bridge cluster. A
//! bridge combines the summaries of each region's cells into one region summary (the sum of
//! their members, the highest head, bridges and seeds taken from every cell in turn) and
//! copies those into its cell as before, including one for its own region's other cells, so
//! every node still sees every region, and its own region whole, with six copied keys.
//! With C = 1 (the default) the cluster id is `<chain_id>/<region>` and nothing changes.
//!
//! C is a property of the network, like the chain id: every node must use the same value.
//! A node with another C gossips in clusters of its own (C is part of the cluster id), the
//! bridges ignore its cell summaries (they carry C, see [`check_cell_summary`]) and it
//! ignores theirs, and both log a warning naming the two values.

use std::collections::BTreeMap;

pub use super::keys::MAX_CELLS;
use super::keys::{RegionSummary, MAX_SUMMARY_ADDRS, SEEDS_PER_SUMMARY};
use super::view::{HeardSummary, RegionStatus};
use crate::region::Region;

/// The cell of a node: FNV-1a of its id modulo `cells` (0 when `cells` is 0 or 1).
pub fn cell_of(node_id: &str, cells: u16) -> u16 {
    if cells <= 1 {
        return 0;
    }
    let hash = node_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (hash % u64::from(cells)) as u16
}

/// The chitchat cluster id of a cell: `<chain_id>/<region>`, or
/// `<chain_id>/<region>/<cell>-of-<cells>` when the region is split. The count is part of
/// the id so that nodes started with different counts never share a cluster (chitchat
/// answers a SYN for another cluster id with "bad cluster" and logs both ids).
pub fn cluster_id(chain_id: &str, region: &Region, cell: u16, cells: u16) -> String {
    if cells <= 1 {
        format!("{chain_id}/{region}")
    } else {
        format!("{chain_id}/{region}/{cell}-of-{cells}")
    }
}

/// Why a cell summary heard in the bridge cluster is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellMismatch {
    /// The summary is not about the publishing bridge's own region.
    Region,
    /// The publisher splits regions into another number of cells than this node: a
    /// misconfigured node (`--cells-per-region` must be the same on every node).
    Cells {
        /// The publisher's count.
        theirs: u16,
    },
    /// The summary's cell is not the publisher's cell by its node id.
    Cell,
}

/// Whether a summary published in the bridge cluster by a bridge of `publisher_region` with
/// node id `publisher_id` is one this node, splitting regions into `cells`, may combine.
pub fn check_cell_summary(
    summary: &RegionSummary,
    publisher_region: &Region,
    publisher_id: &str,
    cells: u16,
) -> Result<(), CellMismatch> {
    if summary.region != *publisher_region {
        return Err(CellMismatch::Region);
    }
    if summary.cells.max(1) != cells.max(1) {
        return Err(CellMismatch::Cells {
            theirs: summary.cells.max(1),
        });
    }
    if summary.cell != cell_of(publisher_id, cells) {
        return Err(CellMismatch::Cell);
    }
    Ok(())
}

/// Combines cell summaries heard in the bridge cluster (or a cell's bridges' copies) into
/// one summary per region.
///
/// Per (region, cell) the newest summary from a live source wins (the newest from any
/// source when none is live; a summary counting no live member leads by
/// [`super::keys::MISSING_LEAD_MS`], see [`RegionSummary::precedence`]); a region's
/// combined summary is live when one of its cells was heard from a live source. Cells heard
/// only from dead sources add their members as known, not live. A region with one cell
/// comes out as its cell's summary, unchanged.
pub fn combine(heard: &[HeardSummary]) -> Vec<HeardSummary> {
    let mut cells: BTreeMap<(&Region, u16), &HeardSummary> = BTreeMap::new();
    for h in heard {
        let key = (&h.summary.region, h.summary.cell);
        let better = cells.get(&key).is_none_or(|b| {
            (h.source_live, h.summary.precedence()) > (b.source_live, b.summary.precedence())
        });
        if better {
            cells.insert(key, h);
        }
    }
    let mut regions: BTreeMap<&Region, Vec<&HeardSummary>> = BTreeMap::new();
    for ((region, _), h) in cells {
        regions.entry(region).or_default().push(h);
    }
    regions
        .into_iter()
        .map(|(region, list)| match list.as_slice() {
            [one] => (*one).clone(),
            _ => combine_region(region, &list),
        })
        .collect()
}

fn combine_region(region: &Region, cells: &[&HeardSummary]) -> HeardSummary {
    let live_cells: Vec<&RegionSummary> = cells
        .iter()
        .filter(|h| h.source_live)
        .map(|h| &h.summary)
        .collect();
    let all: Vec<&RegionSummary> = cells.iter().map(|h| &h.summary).collect();
    let known: u32 = all.iter().map(|s| s.known).sum();
    let bridge_pairs = take_in_turn(
        all.iter().map(|s| {
            s.bridges
                .iter()
                .cloned()
                .zip(
                    s.bridge_addrs
                        .iter()
                        .copied()
                        .map(Some)
                        .chain(std::iter::repeat(None)),
                )
                .collect::<Vec<_>>()
        }),
        MAX_SUMMARY_ADDRS,
    );
    let with_addrs = bridge_pairs.iter().all(|(_, a)| a.is_some());
    HeardSummary {
        summary: RegionSummary {
            region: region.clone(),
            cell: 0,
            cells: 0,
            known,
            live: live_cells.iter().map(|s| s.live).sum::<u32>().min(known),
            bridges: bridge_pairs.iter().map(|(b, _)| b.clone()).collect(),
            bridge_addrs: if with_addrs {
                bridge_pairs.iter().filter_map(|(_, a)| *a).collect()
            } else {
                Vec::new()
            },
            seeds: take_in_turn(
                live_cells.iter().map(|s| s.seeds.clone()),
                SEEDS_PER_SUMMARY,
            ),
            bridge_seeds: take_in_turn(
                live_cells.iter().map(|s| s.bridge_seeds.clone()),
                MAX_SUMMARY_ADDRS,
            ),
            head_height: live_cells.iter().filter_map(|s| s.head_height).max(),
            updated_ms: all.iter().map(|s| s.updated_ms).max().unwrap_or(0),
        },
        source_live: !live_cells.is_empty(),
    }
}

/// Up to `max` items taken from the lists in turn (the first of each, then the second, ...),
/// so every cell is represented before any has two.
fn take_in_turn<T>(lists: impl Iterator<Item = Vec<T>>, max: usize) -> Vec<T> {
    let mut iters: Vec<std::vec::IntoIter<T>> = lists.map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for it in &mut iters {
            if out.len() >= max {
                return out;
            }
            if let Some(x) = it.next() {
                out.push(x);
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// This node's whole region: its own cell (computed from its members) plus the combined
/// summary of the region's other cells, when the region is split and they were heard. Its
/// seeds (what a joining node of the region is given) take every cell in turn, so a joiner
/// is likely to be handed a member of its own cell.
pub fn whole_region(own_cell: RegionStatus, other_cells: Option<&RegionStatus>) -> RegionStatus {
    let Some(other) = other_cells else {
        return own_cell;
    };
    let RegionStatus {
        region,
        known,
        live,
        mut bridges,
        mut bridge_addrs,
        seeds,
        mut bridge_seeds,
        head_height,
        last_live_ms,
        ..
    } = own_cell;
    let addrs_complete =
        bridge_addrs.len() == bridges.len() && other.bridge_addrs.len() == other.bridges.len();
    if addrs_complete {
        bridge_addrs.extend(other.bridge_addrs.iter().copied());
    } else {
        bridge_addrs.clear();
    }
    bridges.extend(other.bridges.iter().cloned());
    bridge_seeds.extend(other.bridge_seeds.iter().copied());
    let known = known + other.known;
    let live = live + other.live.min(other.known);
    RegionStatus {
        region,
        known,
        live,
        missing: live == 0 && known > 0,
        bridges,
        bridge_addrs,
        seeds: take_in_turn([seeds, other.seeds.clone()].into_iter(), SEEDS_PER_SUMMARY),
        bridge_seeds,
        head_height: head_height.max(other.head_height),
        last_live_ms: last_live_ms.max(other.last_live_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::NodeId;

    fn region(name: &str) -> Region {
        Region::new(name).unwrap()
    }

    fn id(n: u64) -> String {
        format!("{n:016x}")
    }

    fn addr(n: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], n))
    }

    fn cell(r: &str, cell: u16, known: u32, live: u32, bridge: u64, at: u64) -> RegionSummary {
        RegionSummary {
            region: region(r),
            cell,
            cells: 0,
            known,
            live,
            bridges: vec![id(bridge)],
            bridge_addrs: vec![addr(bridge as u16)],
            seeds: vec![addr(1000 + bridge as u16)],
            bridge_seeds: vec![addr(2000 + bridge as u16)],
            head_height: Some(at / 10),
            updated_ms: at,
        }
    }

    fn heard(summary: RegionSummary, source_live: bool) -> HeardSummary {
        HeardSummary {
            summary,
            source_live,
        }
    }

    #[test]
    fn cells_are_stable_spread_and_in_range() {
        assert_eq!(cell_of(&id(7), 1), 0);
        assert_eq!(cell_of(&id(7), 0), 0);
        let mut counts = [0usize; 9];
        for n in 0..9_000 {
            let c = cell_of(&id(n * 7919), 9);
            assert_eq!(c, cell_of(&id(n * 7919), 9));
            counts[usize::from(c)] += 1;
        }
        assert!(
            counts.iter().all(|c| (700..=1300).contains(c)),
            "uneven cells: {counts:?}"
        );
    }

    #[test]
    fn one_cell_keeps_the_region_cluster_id() {
        assert_eq!(cluster_id("qnet", &region("eu"), 0, 1), "qnet/eu");
        assert_eq!(cluster_id("qnet", &region("eu"), 3, 9), "qnet/eu/3-of-9");
        assert_ne!(
            cluster_id("qnet", &region("eu"), 3, 9),
            cluster_id("qnet", &region("eu"), 3, 12),
            "different counts never share a cluster"
        );
    }

    #[test]
    fn a_cell_summary_must_match_its_publisher_and_the_cell_count() {
        let publisher = id(42);
        let own = cell_of(&publisher, 16);
        let s = RegionSummary {
            cells: 16,
            ..cell("eu", own, 10, 9, 42, 5_000)
        };
        assert_eq!(
            check_cell_summary(&s, &region("eu"), &publisher, 16),
            Ok(())
        );
        assert_eq!(
            check_cell_summary(&s, &region("na"), &publisher, 16),
            Err(CellMismatch::Region)
        );
        assert_eq!(
            check_cell_summary(&s, &region("eu"), &publisher, 12),
            Err(CellMismatch::Cells { theirs: 16 })
        );
        let unsplit = RegionSummary {
            cells: 0,
            cell: 0,
            ..s.clone()
        };
        assert_eq!(
            check_cell_summary(&unsplit, &region("eu"), &publisher, 16),
            Err(CellMismatch::Cells { theirs: 1 })
        );
        assert_eq!(
            check_cell_summary(&unsplit, &region("eu"), &publisher, 1),
            Ok(())
        );
        let wrong_cell = RegionSummary {
            cell: (own + 1) % 16,
            ..s
        };
        assert_eq!(
            check_cell_summary(&wrong_cell, &region("eu"), &publisher, 16),
            Err(CellMismatch::Cell)
        );
    }

    #[test]
    fn a_region_of_one_cell_is_its_summary_unchanged() {
        let s = cell("eu", 0, 10, 9, 1, 5_000);
        let out = combine(&[
            heard(s.clone(), true),
            heard(cell("eu", 0, 10, 8, 2, 4_000), true),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].summary, s);
        assert!(out[0].source_live);
    }

    #[test]
    fn a_live_source_beats_a_newer_dead_one() {
        let live = cell("eu", 0, 10, 9, 1, 4_000);
        let out = combine(&[
            heard(cell("eu", 0, 10, 10, 2, 5_000), false),
            heard(live.clone(), true),
        ]);
        assert_eq!(out[0].summary, live);
    }

    #[test]
    fn a_cell_copied_missing_leads_a_newer_live_copy() {
        // the two bridges of a non-bridge's cell copy the same cell of another region
        let missing = cell("eu", 3, 10, 0, 1, 4_000);
        let lead = super::super::keys::MISSING_LEAD_MS;
        let out = combine(&[
            heard(missing.clone(), true),
            heard(cell("eu", 3, 10, 2, 2, 4_000 + lead - 1), true),
        ]);
        assert_eq!(out[0].summary, missing);
        let live = cell("eu", 3, 10, 2, 2, 4_000 + lead + 1);
        let out = combine(&[heard(missing, true), heard(live.clone(), true)]);
        assert_eq!(out[0].summary, live);
    }

    #[test]
    fn cells_add_up_and_every_cell_gets_a_bridge_first() {
        let mut a = cell("eu", 0, 100, 90, 1, 5_000);
        a.bridges.push(id(11));
        a.bridge_addrs.push(addr(11));
        let b = cell("eu", 1, 50, 50, 2, 6_000);
        let dead = cell("eu", 2, 30, 30, 3, 7_000);
        let other = cell("na", 0, 5, 5, 4, 1_000);
        let out = combine(&[
            heard(a, true),
            heard(b, true),
            heard(dead, false),
            heard(other.clone(), true),
        ]);
        assert_eq!(out.len(), 2);
        let eu = &out[0].summary;
        assert_eq!((eu.known, eu.live), (180, 140), "dead cell known, not live");
        assert_eq!(eu.bridges, vec![id(1), id(2), id(3), id(11)]);
        assert_eq!(eu.bridge_addrs, vec![addr(1), addr(2), addr(3), addr(11)]);
        assert_eq!(eu.seeds, vec![addr(1001), addr(1002)], "live cells' seeds");
        assert_eq!(eu.head_height, Some(600), "highest head of a live cell");
        assert_eq!(eu.updated_ms, 7_000);
        assert_eq!(eu.cell, 0);
        assert!(out[0].source_live);
        assert_eq!(out[1].summary, other);
    }

    #[test]
    fn a_region_whose_cells_are_all_heard_dead_is_not_live() {
        let out = combine(&[
            heard(cell("eu", 0, 10, 10, 1, 1_000), false),
            heard(cell("eu", 1, 10, 10, 2, 1_000), false),
        ]);
        assert_eq!(out[0].summary.live, 0);
        assert_eq!(out[0].summary.known, 20);
        assert!(!out[0].source_live);
    }

    #[test]
    fn combined_lists_stay_within_what_a_summary_may_carry() {
        let many: Vec<HeardSummary> = (0..40u16)
            .map(|c| {
                let mut s = cell("eu", c, 10, 10, u64::from(c) + 1, 1_000);
                s.seeds = (0..8).map(|k| addr(3000 + c * 10 + k)).collect();
                heard(s, true)
            })
            .collect();
        let eu = &combine(&many)[0].summary;
        assert_eq!(eu.bridges.len(), MAX_SUMMARY_ADDRS);
        assert_eq!(eu.seeds.len(), SEEDS_PER_SUMMARY);
        assert!(
            RegionSummary::decode(&eu.encode()).is_some(),
            "still decodes"
        );
    }

    #[test]
    fn the_whole_region_adds_the_other_cells() {
        let own = crate::membership::view::RegionStatus {
            bridges: vec![NodeId::parse(&id(1)).unwrap()],
            bridge_addrs: vec![addr(1)],
            head_height: Some(5),
            last_live_ms: 10,
            ..RegionStatus::counted(region("eu"), 10, 8)
        };
        assert_eq!(whole_region(own.clone(), None), own);
        let other = RegionStatus {
            bridges: vec![NodeId::parse(&id(2)).unwrap()],
            bridge_addrs: vec![addr(2)],
            head_height: Some(7),
            last_live_ms: 20,
            ..RegionStatus::counted(region("eu"), 30, 0)
        };
        let whole = whole_region(own, Some(&other));
        assert_eq!((whole.known, whole.live, whole.missing), (40, 8, false));
        assert_eq!(whole.bridge_addrs, vec![addr(1), addr(2)]);
        assert!(whole.seeds.is_empty());
        assert_eq!(whole.head_height, Some(7));
        let none_live = whole_region(RegionStatus::counted(region("eu"), 3, 0), Some(&other));
        assert!(none_live.missing);
    }
}
