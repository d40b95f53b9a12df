//! Where membership remembers peers, regions and its last generation across restarts.

use super::keys::RegionSummary;
use super::view::PeerRecord;

/// Persistence of membership state (the node implements it over sled; tests in memory).
pub trait MembershipStore: Send + Sync + 'static {
    /// Peers remembered from earlier runs.
    fn load_peers(&self) -> Vec<PeerRecord>;
    /// Replaces the remembered peers.
    fn save_peers(&self, peers: &[PeerRecord]) -> Result<(), String>;
    /// Regions remembered from earlier runs.
    fn load_regions(&self) -> Vec<RegionSummary>;
    /// Replaces the remembered regions.
    fn save_regions(&self, regions: &[RegionSummary]) -> Result<(), String>;
    /// A generation higher than any used before (and at least `now_ms`), recorded.
    fn next_generation(&self, now_ms: u64) -> u64;
}
