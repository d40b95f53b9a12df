//! The simulated nodes: one real [`Membership`] per node (its regional chitchat cluster, and
//! the bridge cluster when elected) over the [`SimNet`], each with its own metrics, an
//! in-memory store and the shared tokio-following clock.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chitchat::transport::Transport;
use ed25519_dalek::SigningKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::network::{SimNet, SIM_PORT};
use qnet_node::clock::SharedClock;
use qnet_node::config::MembershipConfig;
use qnet_node::identity::{Identity, NodeId, NodeType};
use qnet_node::membership::{
    bridge_gossip_addr, Membership, MembershipError, MembershipParams, MembershipStore,
    MembershipView, PeerRecord, RegionSummary,
};
use qnet_node::metrics::{Metrics, CLUSTER_BRIDGE, CLUSTER_REGIONAL};
use qnet_node::region::Region;
use qnet_node::topology::{select_bridges, BridgeCandidate};

/// Chain id of the simulated network.
pub const SIM_CHAIN_ID: &str = "qnet-sim";
/// Regional seeds handed to a joining node (as a bootstrap peer would).
const REGION_SEEDS: usize = 3;

/// A membership store that remembers only the generation: simulated nodes never restart, so
/// nothing saved would be read back, and keeping it would cost memory at scale.
#[derive(Debug, Default)]
pub struct SimStore {
    generation: Mutex<u64>,
}

impl MembershipStore for SimStore {
    fn load_peers(&self) -> Vec<PeerRecord> {
        Vec::new()
    }

    fn save_peers(&self, _peers: &[PeerRecord]) -> Result<(), String> {
        Ok(())
    }

    fn load_regions(&self) -> Vec<RegionSummary> {
        Vec::new()
    }

    fn save_regions(&self, _regions: &[RegionSummary]) -> Result<(), String> {
        Ok(())
    }

    fn next_generation(&self, now_ms: u64) -> u64 {
        let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *g = (*g + 1).max(now_ms);
        *g
    }
}

/// The plan of one simulated node, before it starts.
#[derive(Debug, Clone)]
pub struct NodePlan {
    /// Identity.
    pub identity: Identity,
    /// Region index (into the latency matrix).
    pub region: usize,
    /// Region.
    pub region_name: Region,
    /// Node type.
    pub node_type: NodeType,
    /// Regional gossip address.
    pub addr: SocketAddr,
}

impl NodePlan {
    /// The node's gossip cell in its region when regions are split into `cells`.
    pub fn cell(&self, cells: u16) -> u16 {
        qnet_node::membership::cell::cell_of(self.identity.node_id().as_str(), cells)
    }
}

/// The node address of node `i` of region `r`: `10.r.hi.lo:9876`.
pub fn node_addr(region: usize, i: usize) -> SocketAddr {
    let n = i + 1;
    let ip = Ipv4Addr::new(10, region as u8, (n >> 8) as u8, (n & 0xff) as u8);
    SocketAddr::new(IpAddr::V4(ip), SIM_PORT)
}

/// Plans `nodes` nodes spread round-robin over `regions` (names given), about one in
/// `super_every` a super node (at least the first of each region), with deterministic keys.
pub fn plan_nodes(
    nodes: usize,
    regions: &[Region],
    super_every: usize,
    seed: u64,
) -> Vec<NodePlan> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut per_region = vec![0usize; regions.len().max(1)];
    (0..nodes)
        .map(|k| {
            let region = k % regions.len().max(1);
            let i = per_region[region];
            per_region[region] += 1;
            let key: [u8; 32] = rng.gen();
            NodePlan {
                identity: Identity::from_signing_key(SigningKey::from_bytes(&key)),
                region,
                region_name: regions[region].clone(),
                node_type: if i % super_every.max(1) == 0 {
                    NodeType::Super
                } else {
                    NodeType::Full
                },
                addr: node_addr(region, i),
            }
        })
        .collect()
}

/// The bridges every region will elect when all its members are live: what a bootstrap peer
/// of a running network hands out as bridge seeds.
pub fn expected_bridges(
    plans: &[NodePlan],
    regions: usize,
    per_region: usize,
    cells: u16,
) -> Vec<NodeId> {
    (0..regions)
        .flat_map(|r| (0..cells.max(1)).map(move |c| (r, c)))
        .flat_map(|(r, c)| {
            let candidates: Vec<BridgeCandidate> = plans
                .iter()
                .filter(|p| p.region == r && p.cell(cells) == c)
                .map(|p| BridgeCandidate {
                    node_id: p.identity.node_id().clone(),
                    node_type: p.node_type,
                    live: true,
                })
                .collect();
            select_bridges(&candidates, per_region)
        })
        .collect()
}

/// When the `k`-th of `nodes` nodes starts, after the first: the starts spread evenly over
/// one gossip interval at any size. Every node's gossip and membership ticks keep the phase
/// of its start on the simulated clock, so nodes started within a few milliseconds of each
/// other gossip in lockstep for the whole run: a member's heartbeat then reaches each
/// observer in one burst per round, which no deployment with independent clocks shows.
pub fn start_offset(k: usize, nodes: usize, gossip_interval: Duration) -> Duration {
    let nodes = nodes.max(1) as u128;
    let nanos = gossip_interval
        .as_nanos()
        .saturating_mul((k as u128).min(nodes))
        / nodes;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).min(gossip_interval)
}

/// A running simulated node.
pub struct SimNode {
    /// Its plan.
    pub plan: NodePlan,
    /// Its membership.
    pub membership: Membership,
    /// Its metrics (gossip traffic counters).
    pub metrics: Metrics,
    /// Whether the scenario crashed it.
    pub crashed: bool,
}

impl SimNode {
    /// The current membership view.
    pub fn view(&self) -> Arc<MembershipView> {
        self.membership.view()
    }

    /// Gossip bytes of `cluster` (`regional` or `bridge`) in `direction` (`sent`, ...).
    pub fn gossip_bytes(&self, cluster: &str, direction: &str) -> u64 {
        self.metrics
            .gossip_bytes
            .with_label_values(&[cluster, direction])
            .get()
    }

    /// Gossip datagrams of `cluster` in `direction`.
    pub fn gossip_messages(&self, cluster: &str, direction: &str) -> u64 {
        self.metrics
            .gossip_messages
            .with_label_values(&[cluster, direction])
            .get()
    }

    /// Sent (bytes, messages) per cluster: `[regional, bridge]`.
    pub fn sent(&self) -> [(u64, u64); 2] {
        [CLUSTER_REGIONAL, CLUSTER_BRIDGE].map(|c| {
            (
                self.gossip_bytes(c, "sent"),
                self.gossip_messages(c, "sent"),
            )
        })
    }
}

/// All simulated nodes on one network, with the fault primitives scenarios are built from:
/// [`Fleet::cut`] and [`Fleet::heal`] a region, [`Fleet::crash`] a node, [`Fleet::set_loss`],
/// [`Fleet::deafen`] and [`Fleet::undeafen`] a socket.
pub struct Fleet {
    /// The network.
    pub net: SimNet,
    /// Nodes, in plan order.
    pub nodes: Vec<SimNode>,
    /// Node index by id.
    pub by_id: HashMap<NodeId, usize>,
    /// Region names, by index.
    pub regions: Vec<Region>,
    /// How many bridges the regions elect when every node is live.
    pub expected_bridges: usize,
    /// Gossip cells per region.
    pub cells: u16,
}

impl Fleet {
    /// Starts every planned node (cold start, spread over about one second) with the given
    /// gossip settings.
    pub async fn start(
        net: SimNet,
        plans: Vec<NodePlan>,
        regions: Vec<Region>,
        config: MembershipConfig,
        clock: SharedClock,
    ) -> Result<Fleet, MembershipError> {
        let cells = config.cells_per_region;
        let bridges = expected_bridges(&plans, regions.len(), config.bridges_per_region, cells);
        let bridge_seeds: Vec<SocketAddr> = plans
            .iter()
            .filter(|p| bridges.contains(p.identity.node_id()))
            .map(|p| bridge_gossip_addr(p.addr))
            .collect();
        // the first nodes of each cell of each region seed it
        let mut region_seeds: HashMap<(usize, u16), Vec<SocketAddr>> = HashMap::new();
        for p in &plans {
            let seeds = region_seeds.entry((p.region, p.cell(cells))).or_default();
            if seeds.len() < REGION_SEEDS {
                seeds.push(p.addr);
            }
        }
        let factory_net = net.clone();
        let transport: qnet_node::membership::transport::TransportFactory =
            Arc::new(move || Box::new(factory_net.transport()) as Box<dyn Transport>);
        let mut nodes = Vec::with_capacity(plans.len());
        let mut by_id = HashMap::with_capacity(plans.len());
        let count = plans.len();
        let first = tokio::time::Instant::now();
        for (k, plan) in plans.into_iter().enumerate() {
            tokio::time::sleep_until(first + start_offset(k, count, config.gossip_interval)).await;
            net.place(plan.addr.ip(), plan.region);
            let metrics = Metrics::new().map_err(|e| MembershipError::Bind {
                addr: plan.addr,
                reason: e.to_string(),
            })?;
            let membership = Membership::start(MembershipParams {
                identity: plan.identity.clone(),
                region: plan.region_name.clone(),
                node_type: plan.node_type,
                chain_id: SIM_CHAIN_ID.into(),
                bind_addr: plan.addr,
                advertise_addr: plan.addr,
                config: config.clone(),
                retention: std::time::Duration::from_secs(24 * 3600),
                region_seeds: region_seeds
                    .get(&(plan.region, plan.cell(cells)))
                    .map(|s| s.iter().filter(|a| **a != plan.addr).copied().collect())
                    .unwrap_or_default(),
                bridge_seeds: bridge_seeds
                    .iter()
                    .filter(|a| **a != bridge_gossip_addr(plan.addr))
                    .copied()
                    .collect(),
                expect_peers: true,
                store: Arc::new(SimStore::default()),
                metrics: metrics.clone(),
                clock: clock.clone(),
                transport: transport.clone(),
            })
            .await?;
            by_id.insert(plan.identity.node_id().clone(), nodes.len());
            nodes.push(SimNode {
                plan,
                membership,
                metrics,
                crashed: false,
            });
        }
        Ok(Fleet {
            net,
            nodes,
            by_id,
            regions,
            expected_bridges: bridges.len(),
            cells,
        })
    }

    /// Cuts region `r` off from the others (turmoil's `partition`): every datagram between
    /// it and another region is lost; inside it gossip flows.
    pub fn cut(&self, r: usize) {
        self.net.set_cut(r, true);
    }

    /// Repairs the cut of region `r` (turmoil's `repair`).
    pub fn heal(&self, r: usize) {
        self.net.set_cut(r, false);
    }

    /// Loses every datagram with probability `loss` from now on (0 for none).
    pub fn set_loss(&self, loss: f64) {
        self.net.set_loss(loss);
    }

    /// Makes the socket at `addr` deaf (turmoil's `hold`): what is sent to it is lost, what
    /// it sends still arrives.
    pub fn deafen(&self, addr: SocketAddr) {
        self.net.set_deaf(addr, true);
    }

    /// Lets the socket at `addr` hear again (turmoil's `release`).
    pub fn undeafen(&self, addr: SocketAddr) {
        self.net.set_deaf(addr, false);
    }

    /// Crashes node `i`: from now on it neither sends nor receives.
    pub fn crash(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.crashed = true;
            self.net.set_down(n.plan.addr.ip(), true);
        }
    }

    /// Number of nodes in region `r` that have not crashed.
    pub fn live_region_size(&self, r: usize) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.plan.region == r && !n.crashed)
            .count()
    }

    /// Live nodes in cell `cell` of region `r`.
    pub fn live_cell_size(&self, r: usize, cell: u16) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.plan.region == r && n.plan.cell(self.cells) == cell && !n.crashed)
            .count()
    }

    /// Indices of the nodes that are bridges by their own view.
    pub fn bridges(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].view().is_bridge)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn starts_spread_evenly_over_one_gossip_interval() {
        for nodes in [1, 100, 300, 1_000, 1_001, 10_000] {
            assert_eq!(start_offset(0, nodes, SECOND), Duration::ZERO);
            let last = start_offset(nodes - 1, nodes, SECOND);
            assert!(last < SECOND, "{nodes}: {last:?}");
            let gap = SECOND / nodes as u32 + Duration::from_nanos(1);
            assert!(SECOND - last <= gap, "{nodes}: {last:?}");
        }
        assert_eq!(start_offset(1, 100, SECOND), Duration::from_millis(10));
        assert_eq!(start_offset(3, 10_000, SECOND), Duration::from_micros(300));
    }

    #[test]
    fn odd_inputs_stay_within_the_interval() {
        assert_eq!(start_offset(0, 0, SECOND), Duration::ZERO);
        assert_eq!(start_offset(7, 3, SECOND), SECOND);
        assert_eq!(start_offset(5, 10, Duration::ZERO), Duration::ZERO);
        let huge = Duration::from_secs(u64::MAX / 2);
        assert!(start_offset(usize::MAX - 1, usize::MAX, huge) <= huge);
    }
}
