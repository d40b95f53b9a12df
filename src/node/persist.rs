//! Membership state kept in the node's sled store: peers by node id, remembered regions
//! and the last gossip generation in the meta tree.

use std::sync::Arc;

use qnet_storage::Store;

use crate::membership::{MembershipStore, PeerRecord, RegionSummary};

const META_REGIONS: &str = "membership.regions";
const META_GENERATION: &str = "membership.generation";

/// [`MembershipStore`] over the node's store.
pub struct SledMembershipStore {
    store: Arc<Store>,
}

impl SledMembershipStore {
    /// Wraps the node's store.
    pub fn new(store: Arc<Store>) -> Self {
        SledMembershipStore { store }
    }
}

impl MembershipStore for SledMembershipStore {
    fn load_peers(&self) -> Vec<PeerRecord> {
        self.store
            .peers()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok())
            .collect()
    }

    fn save_peers(&self, peers: &[PeerRecord]) -> Result<(), String> {
        let keep: std::collections::HashSet<&str> =
            peers.iter().map(|p| p.node_id.as_str()).collect();
        for (id, _) in self.store.peers().map_err(|e| e.to_string())? {
            if !keep.contains(id.as_str()) {
                self.store.remove_peer(&id).map_err(|e| e.to_string())?;
            }
        }
        for p in peers {
            let bytes = serde_json::to_vec(p).map_err(|e| e.to_string())?;
            self.store
                .put_peer(p.node_id.as_str(), &bytes)
                .map_err(|e| e.to_string())?;
        }
        // a rejoin after kill -9 depends on these records: make them durable now
        self.store.flush().map_err(|e| e.to_string())
    }

    fn load_regions(&self) -> Vec<RegionSummary> {
        self.store
            .get_meta(META_REGIONS)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn save_regions(&self, regions: &[RegionSummary]) -> Result<(), String> {
        let bytes = serde_json::to_vec(regions).map_err(|e| e.to_string())?;
        self.store
            .put_meta(META_REGIONS, &bytes)
            .map_err(|e| e.to_string())
    }

    fn next_generation(&self, now_ms: u64) -> u64 {
        let last = self
            .store
            .get_meta(META_GENERATION)
            .ok()
            .flatten()
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let next = now_ms.max(last + 1);
        let _ = self.store.put_meta(META_GENERATION, &next.to_be_bytes());
        let _ = self.store.flush();
        next
    }
}
