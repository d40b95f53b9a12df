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

/// Largest summary value accepted from gossip, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 4096;
/// Most bridges or seeds listed in one summary.
pub const MAX_SUMMARY_ADDRS: usize = 8;

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
            && s.bridges.len() <= MAX_SUMMARY_ADDRS
            && s.bridges.iter().all(|b| NodeId::parse(b).is_some())
            && (s.bridge_addrs.is_empty() || s.bridge_addrs.len() == s.bridges.len())
            && s.seeds.len() <= MAX_SUMMARY_ADDRS
            && s.bridge_seeds.len() <= MAX_SUMMARY_ADDRS;
        sane.then_some(s)
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

    #[test]
    fn summary_round_trip_and_sanity() {
        let s = RegionSummary {
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
    }
}
