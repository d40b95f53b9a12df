//! Typed gossip keys and their small value codecs. Nothing outside `membership` names a key.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::identity::{from_hex, to_hex, NodeId};
use crate::region::Region;

/// Signed member card (see `card`), in both clusters.
pub const KEY_CARD: &str = "card";
/// Chain head `height:hash`, regional cluster.
pub const KEY_HEAD: &str = "head";
/// `1` while the node is ready, `0` while it is leaving.
pub const KEY_READY: &str = "ready";
/// The bridge's own region summary, bridge cluster.
pub const KEY_SUMMARY: &str = "summary";
/// Prefix of other regions' summaries copied into the regional cluster by bridges.
pub const REGION_PREFIX: &str = "region:";

/// Least time between two republications of a summary whose only change is a higher head
/// (a new block every slot would otherwise make every summary a new gossip value every
/// second, in both clusters).
pub const SUMMARY_HEAD_EVERY_MS: u64 = 5_000;

/// How much newer than its stamp a summary saying its region has no live member counts when
/// copies of one region from different sources are weighed ([`RegionSummary::precedence`]).
///
/// When a region is cut off, a cell's two bridges see it at different times (their detectors
/// wait for different timeouts; up to 1.3 s apart at 10,000 nodes). Until the second one
/// sees it, it republishes the region as live every time one more of the region's cells dies
/// there, each time with a newer stamp, and the newest copy won: members that had taken the
/// first bridge's "missing" went back to live and waited for the second bridge (1 % of them
/// 0.8 s or more behind the first; docs/adr/0012). With the lead
/// a "missing" copy stands against a live one stamped up to this much later, so a cell
/// follows its first bridge to see the loss. After a region was missing longer than this,
/// a live copy wins at once (a heal is not held back); a bridge alone seeing a region missing
/// is overridden by the other's live copies this much later than before.
pub const MISSING_LEAD_MS: u64 = 2_000;

/// Most cells a region may be split into.
pub const MAX_CELLS: u16 = crate::config::MAX_CELLS_PER_REGION;
/// Largest summary value accepted from gossip, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 4096;
/// Most bridges or bridge seeds listed in one summary (a region split into cells lists
/// bridges of every cell, see `cell`).
pub const MAX_SUMMARY_ADDRS: usize = 32;
/// Most regional gossip seeds a summary lists.
pub const SEEDS_PER_SUMMARY: usize = 8;

/// A chain head as announced in gossip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Block height.
    pub height: u64,
    /// Block hash.
    pub hash: [u8; 32],
}

impl Head {
    /// `height:hash_hex`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.height, to_hex(&self.hash))
    }

    /// Parses `height:hash_hex`; `None` for anything else.
    pub fn decode(value: &str) -> Option<Head> {
        let (height, hash) = value.split_once(':')?;
        Some(Head {
            height: height.parse().ok()?,
            hash: from_hex(hash)?.try_into().ok()?,
        })
    }
}

/// What a region looks like, published by its bridges and copied to every region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionSummary {
    /// The region.
    pub region: Region,
    /// The publishing bridge's cell (see `cell`); 0 in a region of one cell and in the
    /// combined summaries bridges copy, and then left out of the encoding.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cell: u16,
    /// How many cells the publishing bridge splits its region into (its
    /// `--cells-per-region`); 0 in a region of one cell and in combined summaries, and then
    /// left out of the encoding. A cell summary whose count differs from a node's own is
    /// ignored there (see `cell::check_cell_summary`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cells: u16,
    /// Members seen within the retention window.
    pub known: u32,
    /// Live members.
    pub live: u32,
    /// Node ids of the region's bridges.
    pub bridges: Vec<String>,
    /// Data-plane (p2p) addresses of the bridges, in the order of `bridges`.
    #[serde(default)]
    pub bridge_addrs: Vec<SocketAddr>,
    /// Regional gossip addresses of some live members, for joining the region.
    pub seeds: Vec<SocketAddr>,
    /// Bridge-cluster gossip addresses of the region's bridges.
    pub bridge_seeds: Vec<SocketAddr>,
    /// Highest chain head height in the region.
    pub head_height: Option<u64>,
    /// When the publishing bridge computed it (ms since epoch).
    pub updated_ms: u64,
}

impl RegionSummary {
    /// The order in which copies of one region (or cell) from different sources win: the
    /// stamp, plus [`MISSING_LEAD_MS`] when the summary counts no live member.
    pub fn precedence(&self) -> u64 {
        let lead = if self.live == 0 { MISSING_LEAD_MS } else { 0 };
        self.updated_ms.saturating_add(lead)
    }

    /// Compact JSON for gossip.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a gossiped summary, rejecting oversized or inconsistent values.
    pub fn decode(value: &str) -> Option<RegionSummary> {
        if value.len() > MAX_SUMMARY_BYTES {
            return None;
        }
        let s: RegionSummary = serde_json::from_str(value).ok()?;
        // bridge ids must be node ids: free-form strings could make the summary's own
        // encoding exceed MAX_SUMMARY_BYTES, so a copied summary would no longer decode
        let sane = s.live <= s.known
            && s.cells <= MAX_CELLS
            && s.cell < s.cells.max(1)
            && s.bridges.len() <= MAX_SUMMARY_ADDRS
            && s.bridges.iter().all(|b| NodeId::parse(b).is_some())
            && (s.bridge_addrs.is_empty() || s.bridge_addrs.len() == s.bridges.len())
            && s.seeds.len() <= SEEDS_PER_SUMMARY
            && s.bridge_seeds.len() <= MAX_SUMMARY_ADDRS;
        sane.then_some(s)
    }
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// The summary to publish, given the one published before: `prev` unchanged when `next`
/// says the same (all fields but `updated_ms`), or differs only by a head that moved forward
/// less than `head_every_ms` after `prev` was stamped; otherwise `next` stamped `now_ms`.
/// Republishing an unchanged summary with a new time made it a new gossip value every round.
pub fn restamp(
    prev: Option<&RegionSummary>,
    next: RegionSummary,
    now_ms: u64,
    head_every_ms: u64,
) -> RegionSummary {
    let stamped = RegionSummary {
        updated_ms: now_ms,
        ..next
    };
    let Some(prev) = prev else {
        return stamped;
    };
    let same_but_head = RegionSummary {
        head_height: prev.head_height,
        updated_ms: prev.updated_ms,
        ..stamped.clone()
    };
    if same_but_head != *prev {
        return stamped;
    }
    let head_only_up = match (prev.head_height, stamped.head_height) {
        (a, b) if a == b => return prev.clone(),
        (Some(a), Some(b)) => b > a,
        _ => false,
    };
    if head_only_up && now_ms < prev.updated_ms.saturating_add(head_every_ms) {
        prev.clone()
    } else {
        stamped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_round_trip_and_rejects_junk() {
        let head = Head {
            height: 42,
            hash: [7; 32],
        };
        assert_eq!(Head::decode(&head.encode()), Some(head));
        for junk in ["", "42", "x:00", "42:abc", "42:zz"] {
            assert_eq!(Head::decode(junk), None, "{junk:?}");
        }
    }

    fn sample(head: Option<u64>, updated_ms: u64) -> RegionSummary {
        RegionSummary {
            cell: 0,
            cells: 0,
            region: Region::new("eu").unwrap(),
            known: 3,
            live: 2,
            bridges: vec![],
            bridge_addrs: vec![],
            seeds: vec![],
            bridge_seeds: vec![],
            head_height: head,
            updated_ms,
        }
    }

    #[test]
    fn restamp_keeps_an_unchanged_summary() {
        let prev = sample(Some(5), 1_000);
        assert_eq!(
            restamp(None, sample(Some(5), 0), 9_000, 5_000),
            sample(Some(5), 9_000)
        );
        assert_eq!(restamp(Some(&prev), sample(Some(5), 0), 9_000, 5_000), prev);
    }

    #[test]
    fn restamp_publishes_material_changes_at_once() {
        let prev = sample(Some(5), 1_000);
        let mut next = sample(Some(5), 0);
        next.live = 3;
        next.known = 3;
        assert_eq!(
            restamp(Some(&prev), next.clone(), 1_001, 5_000).updated_ms,
            1_001
        );
        let mut next = sample(Some(5), 0);
        next.seeds = vec!["127.0.0.1:9000".parse().unwrap()];
        assert_eq!(restamp(Some(&prev), next, 1_001, 5_000).updated_ms, 1_001);
        for (before, after) in [(Some(5), None), (None, Some(5)), (Some(5), Some(4))] {
            let prev = sample(before, 1_000);
            let got = restamp(Some(&prev), sample(after, 0), 1_001, 5_000);
            assert_eq!(
                (got.head_height, got.updated_ms),
                (after, 1_001),
                "{before:?} -> {after:?}"
            );
        }
    }

    #[test]
    fn restamp_rate_limits_a_rising_head() {
        let prev = sample(Some(5), 1_000);
        assert_eq!(restamp(Some(&prev), sample(Some(6), 0), 5_999, 5_000), prev);
        assert_eq!(
            restamp(Some(&prev), sample(Some(9), 0), 6_000, 5_000),
            sample(Some(9), 6_000),
            "edge: exactly head_every_ms later"
        );
    }

    #[test]
    fn summary_round_trip_and_sanity() {
        let s = RegionSummary {
            cell: 0,
            cells: 0,
            region: Region::new("eu").unwrap(),
            known: 3,
            live: 2,
            bridges: vec!["00112233aabbccdd".into()],
            bridge_addrs: vec!["127.0.0.1:9000".parse().unwrap()],
            seeds: vec!["127.0.0.1:9000".parse().unwrap()],
            bridge_seeds: vec!["127.0.0.1:9001".parse().unwrap()],
            head_height: Some(5),
            updated_ms: 1000,
        };
        assert_eq!(RegionSummary::decode(&s.encode()), Some(s.clone()));
        let mut bad = s.clone();
        bad.live = 4;
        assert_eq!(RegionSummary::decode(&bad.encode()), None);
        assert_eq!(
            RegionSummary::decode(&"x".repeat(MAX_SUMMARY_BYTES + 1)),
            None
        );
        assert_eq!(RegionSummary::decode("{\"region\":\"EU\"}"), None);
        let mut bad = s.clone();
        bad.bridges = vec!["not a node id".into()];
        assert_eq!(RegionSummary::decode(&bad.encode()), None);
        let mut bad = s.clone();
        bad.bridges = vec!["00112233AABBCCDD".into()];
        assert_eq!(RegionSummary::decode(&bad.encode()), None, "upper-case hex");
        let split = RegionSummary {
            cell: 15,
            cells: 16,
            ..s.clone()
        };
        assert!(split.encode().contains("\"cells\":16"));
        assert_eq!(RegionSummary::decode(&split.encode()), Some(split.clone()));
        for (cell, cells) in [(16, 16), (1, 0), (1, 1), (0, 65)] {
            let bad = RegionSummary {
                cell,
                cells,
                ..s.clone()
            };
            assert_eq!(
                RegionSummary::decode(&bad.encode()),
                None,
                "cell {cell} of {cells}"
            );
        }
    }
}
