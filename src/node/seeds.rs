//! Joining: gathers gossip seeds from the bootstrap peers (over the data plane) and from
//! the peer store, and answers other nodes' seed requests from the membership view.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::NodeShared;
use crate::config::NodeConfig;
use crate::membership::{bridge_gossip_addr, MembershipStore};
use crate::net::server::fetch_seeds;
use crate::net::{LocalInfo, Seeds};

/// Seeds for the regional and the bridge cluster.
pub async fn gather(
    config: &NodeConfig,
    local: &LocalInfo,
    store: &dyn MembershipStore,
    attempts: u32,
) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mut region_seeds: Vec<SocketAddr> = store
        .load_peers()
        .into_iter()
        .filter(|p| p.region == config.region && p.gossip_addr != config.advertise_addr)
        .map(|p| p.gossip_addr)
        .collect();
    let mut bridge_seeds: Vec<SocketAddr> = store
        .load_regions()
        .into_iter()
        .flat_map(|r| r.bridge_seeds)
        .collect();
    let from_store = region_seeds.len() + bridge_seeds.len();
    if !config.bootstrap_peers.is_empty() {
        let mut answered = false;
        for attempt in 0..attempts {
            for peer in &config.bootstrap_peers {
                match fetch_seeds(peer, local, config.region.as_str()).await {
                    Ok((r, b)) if !r.is_empty() || !b.is_empty() => {
                        info!(peer = %peer, region_seeds = r.len(), bridge_seeds = b.len(), "bootstrap peer answered");
                        region_seeds.extend(r);
                        bridge_seeds.extend(b);
                        answered = true;
                    }
                    Ok(_) => warn!(peer = %peer, "bootstrap peer knows no seeds yet"),
                    Err(e) => warn!(peer = %peer, error = %e, "bootstrap peer unavailable"),
                }
            }
            if answered || attempt + 1 == attempts {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500 << attempt.min(3))).await;
        }
        if !answered {
            warn!("no bootstrap peer answered; joining with remembered peers only");
        }
    } else if from_store > 0 {
        info!(
            region_seeds = region_seeds.len(),
            bridge_seeds = bridge_seeds.len(),
            "rejoining from the peer store"
        );
    }
    region_seeds.retain(|a| *a != config.advertise_addr);
    bridge_seeds.retain(|a| *a != bridge_gossip_addr(config.advertise_addr));
    region_seeds.sort();
    region_seeds.dedup();
    bridge_seeds.sort();
    bridge_seeds.dedup();
    (region_seeds, bridge_seeds)
}

/// While the node has not joined, asks its bootstrap peers again every few seconds and
/// hands what they answer to membership (a network that was down at start is joined as
/// soon as it is up).
pub async fn keep_bootstrapping(
    config: NodeConfig,
    local: LocalInfo,
    membership: Arc<crate::membership::Membership>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if config.bootstrap_peers.is_empty() {
        return;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.changed() => return,
        }
        if membership.joined() {
            return;
        }
        for peer in &config.bootstrap_peers {
            if let Ok((r, b)) = fetch_seeds(peer, &local, config.region.as_str()).await {
                if !r.is_empty() || !b.is_empty() {
                    info!(peer = %peer, region_seeds = r.len(), bridge_seeds = b.len(), "bootstrap peer answered late");
                    membership.add_seeds(&r, &b).await;
                }
            }
        }
    }
}

/// Answers seed requests from the current membership view.
pub struct ViewResponder {
    shared: Arc<NodeShared>,
}

impl ViewResponder {
    /// A responder reading `shared`'s view.
    pub fn new(shared: Arc<NodeShared>) -> Self {
        ViewResponder { shared }
    }
}

impl ViewResponder {
    /// Seeds of `region` and of the bridge cluster, once joined.
    pub fn seeds(&self, region: &str) -> Result<Seeds, String> {
        // Joined is enough: a node still syncing the chain knows the membership already.
        if !*self.shared.joined.borrow() || self.shared.stopping.load(Ordering::SeqCst) {
            return Err("not joined yet; retry".into());
        }
        let view = self.shared.view.borrow().clone();
        let mut bridge_seeds: Vec<String> = Vec::new();
        for status in view.regions.values() {
            bridge_seeds.extend(status.bridge_seeds.iter().map(|a| a.to_string()));
        }
        let region_seeds: Vec<String> = view
            .regions
            .values()
            .find(|r| r.region.as_str() == region)
            .map(|r| r.seeds.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default();
        if region_seeds.is_empty() && bridge_seeds.is_empty() {
            return Err("no seeds known yet; retry".into());
        }
        Ok(Seeds {
            region_seeds,
            bridge_seeds,
        })
    }
}
