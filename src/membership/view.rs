//! The membership view: what this node knows of its region's members and of every other
//! region, built by pure functions from gossip observations, the peer store and the
//! remembered region summaries. The rest of the node reads only this.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::keys::{Head, RegionSummary, SEEDS_PER_SUMMARY};
use crate::identity::{NodeId, NodeType};
use crate::region::Region;
use crate::topology::bridges::{select_bridges, BridgeCandidate};

/// One member of a gossip cluster whose card verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Node id.
    pub node_id: NodeId,
    /// Chitchat generation (incarnation).
    pub generation: u64,
    /// Regional gossip address (also the data-plane address).
    pub gossip_addr: SocketAddr,
    /// Region.
    pub region: Region,
    /// Node type.
    pub node_type: NodeType,
    /// Alive according to the failure detector.
    pub live: bool,
    /// Announced ready (not leaving).
    pub ready: bool,
    /// Announced chain head.
    pub head: Option<Head>,
    /// Last time this node saw it live (ms since epoch).
    pub last_seen_ms: u64,
    /// Whether it is one of its region's bridges.
    pub bridge: bool,
}

/// A member remembered in the peer store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Node id.
    pub node_id: NodeId,
    /// Region.
    pub region: Region,
    /// Node type.
    pub node_type: NodeType,
    /// Regional gossip address.
    pub gossip_addr: SocketAddr,
    /// Last time seen live (ms since epoch).
    pub last_seen_ms: u64,
}

/// The state of one region as this node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionStatus {
    /// Region.
    pub region: Region,
    /// Members seen within the retention window.
    pub known: u32,
    /// Live members.
    pub live: u32,
    /// Known but without a live member.
    pub missing: bool,
    /// Bridge node ids.
    pub bridges: Vec<NodeId>,
    /// Data-plane addresses of the bridges, in the order of `bridges` (may be empty when
    /// a summary did not carry them).
    pub bridge_addrs: Vec<SocketAddr>,
    /// Regional gossip addresses of live members.
    pub seeds: Vec<SocketAddr>,
    /// Bridge-cluster gossip addresses of its bridges.
    pub bridge_seeds: Vec<SocketAddr>,
    /// Highest announced head height.
    pub head_height: Option<u64>,
    /// Last time a live member of the region was seen (ms since epoch).
    pub last_live_ms: u64,
}

#[cfg(test)]
impl RegionStatus {
    /// A region with only its member counts set (`missing` when none is live), for tests.
    pub(crate) fn counted(region: Region, known: u32, live: u32) -> RegionStatus {
        RegionStatus {
            region,
            known,
            live,
            missing: live == 0,
            bridges: vec![],
            bridge_addrs: vec![],
            seeds: vec![],
            bridge_seeds: vec![],
            head_height: None,
            last_live_ms: 0,
        }
    }
}

impl RegionStatus {
    /// Health of the region: live / known (1.0 when nothing is known).
    pub fn health(&self) -> f64 {
        if self.known == 0 {
            1.0
        } else {
            f64::from(self.live) / f64::from(self.known)
        }
    }

    /// The summary a bridge publishes for this region.
    pub fn to_summary(&self, updated_ms: u64) -> RegionSummary {
        RegionSummary {
            cell: 0,
            cells: 0,
            region: self.region.clone(),
            known: self.known,
            live: self.live,
            bridges: self.bridges.iter().map(|b| b.to_string()).collect(),
            bridge_addrs: self.bridge_addrs.clone(),
            seeds: self.seeds.clone(),
            bridge_seeds: self.bridge_seeds.clone(),
            head_height: self.head_height,
            updated_ms,
        }
    }
}

/// Everything this node knows about the network's membership.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipView {
    /// This node.
    pub self_id: NodeId,
    /// This node's region.
    pub self_region: Region,
    /// Members of this node's region (including itself), by node id; dead ones included.
    pub members: Vec<Member>,
    /// Every region known, including this node's own.
    pub regions: BTreeMap<Region, RegionStatus>,
    /// Whether this node is a bridge.
    pub is_bridge: bool,
    /// When the view was built (ms since epoch).
    pub at_ms: u64,
}

impl MembershipView {
    /// An empty view of a node that has not joined yet.
    pub fn empty(self_id: NodeId, self_region: Region) -> Self {
        MembershipView {
            self_id,
            self_region,
            members: Vec::new(),
            regions: BTreeMap::new(),
            is_bridge: false,
            at_ms: 0,
        }
    }

    /// Live members of this node's region other than itself.
    pub fn live_peers(&self) -> impl Iterator<Item = &Member> {
        self.members
            .iter()
            .filter(move |m| m.live && m.node_id != self.self_id)
    }

    /// Regions with at least one live member.
    pub fn live_regions(&self) -> Vec<Region> {
        self.regions
            .values()
            .filter(|r| r.live > 0)
            .map(|r| r.region.clone())
            .collect()
    }

    /// Regions known but without a live member.
    pub fn missing_regions(&self) -> Vec<Region> {
        self.regions
            .values()
            .filter(|r| r.missing)
            .map(|r| r.region.clone())
            .collect()
    }

    /// Data-plane address of a node this node knows: a member of its own region or a
    /// bridge of another region.
    pub fn p2p_addr_of(&self, id: &NodeId) -> Option<SocketAddr> {
        if let Some(m) = self.members.iter().find(|m| &m.node_id == id) {
            return Some(m.gossip_addr);
        }
        self.regions.values().find_map(|r| {
            let i = r.bridges.iter().position(|b| b == id)?;
            r.bridge_addrs.get(i).copied()
        })
    }

    /// Network health: live / known over all regions (1.0 when nothing is known).
    pub fn health_score(&self) -> f64 {
        let (live, known) = self.regions.values().fold((0u64, 0u64), |(l, k), r| {
            (l + u64::from(r.live), k + u64::from(r.known))
        });
        if known == 0 {
            1.0
        } else {
            live as f64 / known as f64
        }
    }
}

/// Keeps one entry per node id: the highest generation, which is the current incarnation.
pub fn latest_generations(observed: Vec<Member>) -> Vec<Member> {
    let mut by_id: BTreeMap<NodeId, Member> = BTreeMap::new();
    for m in observed {
        match by_id.get(&m.node_id) {
            Some(existing) if existing.generation >= m.generation => {}
            _ => {
                by_id.insert(m.node_id.clone(), m);
            }
        }
    }
    by_id.into_values().collect()
}

/// The bridges of a region among its members (DESIGN §3: super first, deterministic).
pub fn elect_bridges(members: &[Member], max: usize) -> Vec<NodeId> {
    let candidates: Vec<BridgeCandidate> = members
        .iter()
        .map(|m| BridgeCandidate {
            node_id: m.node_id.clone(),
            node_type: m.node_type,
            live: m.live && m.ready,
        })
        .collect();
    select_bridges(&candidates, max)
}

/// Inputs of [`own_region_status`].
pub struct OwnRegionInput<'a> {
    /// The region.
    pub region: &'a Region,
    /// Current members (latest generations), bridges already marked.
    pub members: &'a [Member],
    /// Peer store records of this region.
    pub records: &'a [PeerRecord],
    /// Now (ms since epoch).
    pub now_ms: u64,
    /// Retention window (ms).
    pub retention_ms: u64,
    /// Bridge-cluster address of each bridge, by node id.
    pub bridge_addr: &'a dyn Fn(&Member) -> SocketAddr,
}

/// The status of this node's own region.
pub fn own_region_status(input: OwnRegionInput<'_>) -> RegionStatus {
    let cutoff = input.now_ms.saturating_sub(input.retention_ms);
    let mut known: std::collections::BTreeSet<&NodeId> = input
        .records
        .iter()
        .filter(|r| &r.region == input.region && r.last_seen_ms >= cutoff)
        .map(|r| &r.node_id)
        .collect();
    known.extend(
        input
            .members
            .iter()
            .filter(|m| m.live || m.last_seen_ms >= cutoff)
            .map(|m| &m.node_id),
    );
    let live: Vec<&Member> = input.members.iter().filter(|m| m.live).collect();
    let bridges: Vec<&Member> = input.members.iter().filter(|m| m.bridge).collect();
    RegionStatus {
        region: input.region.clone(),
        known: known.len() as u32,
        live: live.len() as u32,
        missing: live.is_empty() && !known.is_empty(),
        bridges: bridges.iter().map(|m| m.node_id.clone()).collect(),
        bridge_addrs: bridges.iter().map(|m| m.gossip_addr).collect(),
        seeds: live
            .iter()
            .take(SEEDS_PER_SUMMARY)
            .map(|m| m.gossip_addr)
            .collect(),
        bridge_seeds: bridges
            .iter()
            .filter(|m| m.live)
            .map(|m| (input.bridge_addr)(m))
            .collect(),
        head_height: live.iter().filter_map(|m| m.head.map(|h| h.height)).max(),
        last_live_ms: if live.is_empty() { 0 } else { input.now_ms },
    }
}

/// A summary of another region as heard from one source, and whether that source is live.
#[derive(Debug, Clone)]
pub struct HeardSummary {
    /// The summary.
    pub summary: RegionSummary,
    /// Whether the member that published it is live now.
    pub source_live: bool,
}

/// Whether summaries were heard but every source is dead: the hearer has lost its window on
/// the other regions (not learned that they are gone).
pub fn all_sources_dead(heard: &[HeardSummary]) -> bool {
    !heard.is_empty() && heard.iter().all(|h| !h.source_live)
}

/// Remembered state of other regions, kept for the retention window so a region whose
/// members all vanished still counts as known (and therefore missing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegionMemory {
    regions: BTreeMap<Region, RegionStatus>,
}

impl RegionMemory {
    /// Folds in what was heard this round: per region, the newest summary from a live
    /// source makes the region live as it says (a summary counting no live member leads by
    /// [`super::keys::MISSING_LEAD_MS`], see [`RegionSummary::precedence`]); a region heard
    /// only from dead sources, or not heard at all, is kept with no live member. Summaries
    /// of `own` are ignored (the node's own region, unless it is split into cells: then its
    /// other cells are kept).
    pub fn update(
        &mut self,
        own: Option<&Region>,
        heard: &[HeardSummary],
        now_ms: u64,
        retention_ms: u64,
    ) {
        let mut best: BTreeMap<&Region, &RegionSummary> = BTreeMap::new();
        for h in heard {
            if Some(&h.summary.region) == own || !h.source_live {
                continue;
            }
            let newer = best
                .get(&h.summary.region)
                .is_none_or(|b| h.summary.precedence() > b.precedence());
            if newer {
                best.insert(&h.summary.region, &h.summary);
            }
        }
        for (region, s) in &best {
            if !self.regions.contains_key(*region) {
                let last_live = if s.live > 0 { now_ms } else { 0 };
                self.regions
                    .insert((*region).clone(), from_summary(s, last_live));
            }
        }
        for status in self.regions.values_mut() {
            match best.get(&status.region) {
                Some(s) if s.live > 0 => *status = from_summary(s, now_ms),
                Some(s) => {
                    let last = status.last_live_ms;
                    *status = from_summary(s, last);
                }
                None => {
                    status.live = 0;
                    status.known = status.known.max(1);
                    status.missing = true;
                }
            }
        }
        let cutoff = now_ms.saturating_sub(retention_ms);
        self.regions
            .retain(|_, s| s.live > 0 || s.last_live_ms >= cutoff || s.last_live_ms == 0);
    }

    /// The remembered regions.
    pub fn regions(&self) -> impl Iterator<Item = &RegionStatus> {
        self.regions.values()
    }
}

/// The status a summary describes; bridges with a malformed id are dropped with their address.
pub fn from_summary(s: &RegionSummary, last_live_ms: u64) -> RegionStatus {
    let addrs = (s.bridge_addrs.len() == s.bridges.len()).then_some(&s.bridge_addrs);
    let mut bridges = Vec::new();
    let mut bridge_addrs = Vec::new();
    for (i, b) in s.bridges.iter().enumerate() {
        if let Some(id) = NodeId::parse(b) {
            bridges.push(id);
            if let Some(addr) = addrs.and_then(|a| a.get(i)) {
                bridge_addrs.push(*addr);
            }
        }
    }
    RegionStatus {
        region: s.region.clone(),
        known: s.known.max(1),
        live: s.live,
        missing: s.live == 0,
        bridges,
        bridge_addrs,
        seeds: s.seeds.clone(),
        bridge_seeds: s.bridge_seeds.clone(),
        head_height: s.head_height,
        last_live_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;

    fn region(name: &str) -> Region {
        Region::new(name).unwrap()
    }

    fn member(id: &NodeId, generation: u64, live: bool, node_type: NodeType) -> Member {
        Member {
            node_id: id.clone(),
            generation,
            gossip_addr: "127.0.0.1:9000".parse().unwrap(),
            region: region("eu"),
            node_type,
            live,
            ready: true,
            head: None,
            last_seen_ms: if live { 1_000 } else { 500 },
            bridge: false,
        }
    }

    fn summary(name: &str, known: u32, live: u32, updated_ms: u64) -> RegionSummary {
        RegionSummary {
            cell: 0,
            cells: 0,
            region: region(name),
            known,
            live,
            bridges: vec![],
            bridge_addrs: vec![],
            seeds: vec![],
            bridge_seeds: vec![],
            head_height: None,
            updated_ms,
        }
    }

    #[test]
    fn latest_generation_wins() {
        let id = Identity::generate().node_id().clone();
        let kept = latest_generations(vec![
            member(&id, 2, true, NodeType::Full),
            member(&id, 1, false, NodeType::Full),
        ]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].generation, 2);
        assert!(kept[0].live);
    }

    #[test]
    fn own_region_counts_records_within_retention() {
        let a = Identity::generate().node_id().clone();
        let b = Identity::generate().node_id().clone();
        let c = Identity::generate().node_id().clone();
        let members = vec![member(&a, 1, true, NodeType::Super)];
        let rec = |id: &NodeId, seen| PeerRecord {
            node_id: id.clone(),
            region: region("eu"),
            node_type: NodeType::Full,
            gossip_addr: "127.0.0.1:9002".parse().unwrap(),
            last_seen_ms: seen,
        };
        let records = vec![rec(&b, 90_000), rec(&c, 10)];
        let status = own_region_status(OwnRegionInput {
            region: &region("eu"),
            members: &members,
            records: &records,
            now_ms: 100_000,
            retention_ms: 50_000,
            bridge_addr: &|m| m.gossip_addr,
        });
        assert_eq!((status.known, status.live), (2, 1), "c is past retention");
        assert!(!status.missing);
        assert_eq!(status.health(), 0.5);
    }

    #[test]
    fn region_memory_keeps_vanished_regions_as_missing() {
        let eu = region("eu");
        let mut mem = RegionMemory::default();
        let heard = vec![
            HeardSummary {
                summary: summary("na", 2, 2, 10),
                source_live: true,
            },
            HeardSummary {
                summary: summary("eu", 5, 5, 10),
                source_live: true,
            },
        ];
        mem.update(Some(&eu), &heard, 1_000, 60_000);
        let na: Vec<_> = mem.regions().collect();
        assert_eq!(na.len(), 1, "own region is not remembered here");
        assert_eq!((na[0].known, na[0].live, na[0].missing), (2, 2, false));

        mem.update(Some(&eu), &[], 2_000, 60_000);
        let na = mem.regions().next().unwrap();
        assert_eq!((na.live, na.missing), (0, true));
        assert_eq!(na.last_live_ms, 1_000);

        mem.update(Some(&eu), &[], 70_000, 60_000);
        assert_eq!(mem.regions().count(), 0, "forgotten after retention");
    }

    #[test]
    fn only_copies_all_from_dead_sources_blind_the_hearer() {
        let copy = |source_live| HeardSummary {
            summary: summary("na", 2, 2, 10),
            source_live,
        };
        assert!(!all_sources_dead(&[]), "nothing heard is not blindness");
        assert!(all_sources_dead(&[copy(false), copy(false)]));
        assert!(!all_sources_dead(&[copy(false), copy(true)]));
    }

    #[test]
    fn a_split_region_keeps_its_other_cells() {
        let mut mem = RegionMemory::default();
        let heard = vec![HeardSummary {
            summary: summary("eu", 5, 4, 10),
            source_live: true,
        }];
        mem.update(None, &heard, 1_000, 60_000);
        let eu = mem.regions().next().unwrap();
        assert_eq!((eu.region.as_str(), eu.known, eu.live), ("eu", 5, 4));
    }

    #[test]
    fn regions_are_learned_only_from_live_sources() {
        let mut mem = RegionMemory::default();
        let heard = vec![HeardSummary {
            summary: summary("na", 3, 3, 50),
            source_live: false,
        }];
        mem.update(Some(&region("eu")), &heard, 1_000, 60_000);
        assert_eq!(
            mem.regions().count(),
            0,
            "a not-yet-live bridge teaches nothing"
        );
        let live = vec![HeardSummary {
            summary: summary("na", 3, 0, 60),
            source_live: true,
        }];
        mem.update(Some(&region("eu")), &live, 2_000, 60_000);
        let na = mem.regions().next().unwrap();
        assert_eq!(
            (na.known, na.live, na.missing),
            (3, 0, true),
            "a live bridge's copy may say missing"
        );
    }

    #[test]
    fn newest_live_summary_wins() {
        let mut mem = RegionMemory::default();
        let heard = vec![
            HeardSummary {
                summary: summary("na", 3, 1, 50),
                source_live: true,
            },
            HeardSummary {
                summary: summary("na", 3, 3, 80),
                source_live: true,
            },
        ];
        mem.update(Some(&region("eu")), &heard, 1_000, 60_000);
        assert_eq!(mem.regions().next().unwrap().live, 3);
    }

    /// One bridge of the cell saw the region lost at 10 s; the other still counts fewer and
    /// fewer of it live, with newer stamps, until it sees the loss too.
    fn first_bridge_missing(other_live: u32, other_ms: u64) -> Vec<HeardSummary> {
        vec![
            HeardSummary {
                summary: summary("na", 6, 0, 10_000),
                source_live: true,
            },
            HeardSummary {
                summary: summary("na", 6, other_live, other_ms),
                source_live: true,
            },
        ]
    }

    #[test]
    fn a_missing_copy_stands_against_a_live_one_stamped_up_to_the_lead_later() {
        let mut mem = RegionMemory::default();
        let lead = super::super::keys::MISSING_LEAD_MS;
        for (other_live, other_ms) in [(3, 10_300), (1, 11_200), (1, 10_000 + lead)] {
            mem.update(
                Some(&region("eu")),
                &first_bridge_missing(other_live, other_ms),
                other_ms,
                60_000,
            );
            let na = mem.regions().next().unwrap();
            assert!(na.missing, "a live copy stamped at {other_ms} ms won");
        }
    }

    #[test]
    fn a_live_copy_stamped_more_than_the_lead_after_a_missing_one_wins() {
        // a heal seen by one bridge after the region was missing for longer than the lead,
        // or a bridge alone in seeing the region lost, overridden by the other
        let mut mem = RegionMemory::default();
        let later = 10_000 + super::super::keys::MISSING_LEAD_MS + 1;
        mem.update(
            Some(&region("eu")),
            &first_bridge_missing(6, later),
            later,
            60_000,
        );
        let na = mem.regions().next().unwrap();
        assert!(!na.missing);
        assert_eq!(na.live, 6);
    }

    #[test]
    fn view_health_and_missing() {
        let id = Identity::generate().node_id().clone();
        let mut view = MembershipView::empty(id, region("eu"));
        for (name, known, live) in [("eu", 4, 4), ("na", 2, 0), ("asia", 4, 2)] {
            view.regions.insert(
                region(name),
                RegionStatus::counted(region(name), known, live),
            );
        }
        assert_eq!(view.missing_regions(), vec![region("na")]);
        assert_eq!(view.live_regions().len(), 2);
        assert!((view.health_score() - 0.6).abs() < 1e-9);
    }
}
