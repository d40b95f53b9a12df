//! Two and three nodes of the real membership worker in one process, over chitchat's
//! in-memory `ChannelTransport` on tokio's paused clock (quickwit's `create_cluster_for_test`
//! is the model): the pure step of [`super::machine`] as the worker carries it out.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chitchat::transport::{ChannelTransport, Transport};

use super::*;
use crate::clock::TokioClock;

const START_MS: u64 = 1_700_000_000_000;

#[derive(Default)]
struct MemoryStore {
    generation: Mutex<u64>,
    peers: Mutex<Vec<PeerRecord>>,
}

impl MembershipStore for MemoryStore {
    fn load_peers(&self) -> Vec<PeerRecord> {
        self.peers.lock().unwrap().clone()
    }

    fn save_peers(&self, peers: &[PeerRecord]) -> Result<(), String> {
        *self.peers.lock().unwrap() = peers.to_vec();
        Ok(())
    }

    fn load_regions(&self) -> Vec<RegionSummary> {
        Vec::new()
    }

    fn save_regions(&self, _regions: &[RegionSummary]) -> Result<(), String> {
        Ok(())
    }

    fn next_generation(&self, now_ms: u64) -> u64 {
        let mut g = self.generation.lock().unwrap();
        *g = (*g + 1).max(now_ms);
        *g
    }
}

/// One node of a test network.
struct TestNode {
    membership: Membership,
    store: Arc<MemoryStore>,
    addr: SocketAddr,
}

/// Starts a node of `region` on `port` of the shared in-memory network, seeded with
/// `region_seeds` and `bridge_seeds`.
async fn start(
    net: &ChannelTransport,
    region: &str,
    node_type: NodeType,
    port: u16,
    region_seeds: &[SocketAddr],
    bridge_seeds: &[SocketAddr],
) -> TestNode {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let store = Arc::new(MemoryStore::default());
    let net = net.clone();
    let membership = Membership::start(MembershipParams {
        identity: Identity::generate(),
        region: Region::new(region).unwrap(),
        node_type,
        chain_id: "qnet-test".into(),
        bind_addr: addr,
        advertise_addr: addr,
        config: MembershipConfig::default(),
        retention: Duration::from_secs(3600),
        region_seeds: region_seeds.to_vec(),
        bridge_seeds: bridge_seeds.to_vec(),
        expect_peers: !region_seeds.is_empty() || !bridge_seeds.is_empty(),
        store: store.clone(),
        metrics: Metrics::new().unwrap(),
        clock: Arc::new(TokioClock::new(START_MS)),
        transport: Arc::new(move || Box::new(net.clone()) as Box<dyn Transport>),
    })
    .await
    .unwrap();
    TestNode {
        membership,
        store,
        addr,
    }
}

/// Waits (simulated time) until `cond` holds of every node's view, at most `limit`.
async fn until(nodes: &[&TestNode], limit: Duration, cond: impl Fn(&MembershipView) -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !nodes.iter().all(|n| cond(&n.membership.view())) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {limit:?}: {:#?}",
            nodes
                .iter()
                .map(|n| n.membership.view())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn region(name: &str) -> Region {
    Region::new(name).unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_nodes_of_one_region_join_elect_a_bridge_and_remember_each_other() {
    let net = ChannelTransport::default();
    let a = start(&net, "eu", NodeType::Super, 10_000, &[], &[]).await;
    let b = start(&net, "eu", NodeType::Full, 10_010, &[a.addr], &[]).await;
    until(&[&a, &b], Duration::from_secs(30), |v| {
        v.live_peers().count() == 1 && v.regions[&region("eu")].live == 2
    })
    .await;
    assert!(a.membership.joined() && b.membership.joined());
    // the super node is the region's bridge, after its settle rounds
    until(&[&a, &b], Duration::from_secs(30), |v| {
        v.members.iter().filter(|m| m.bridge).count() == 1
    })
    .await;
    let bridge = a.membership.view().self_id.clone();
    assert!(b
        .membership
        .view()
        .members
        .iter()
        .any(|m| m.bridge && m.node_id == bridge));
    until(&[&a], Duration::from_secs(30), |v| v.is_bridge).await;
    // the peer store holds both, for a restart without bootstrap peers
    until(&[&b], Duration::from_secs(90), |_| {
        b.store.load_peers().len() == 2
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn three_nodes_in_two_regions_see_each_other_through_the_bridges_and_a_region_lost() {
    let net = ChannelTransport::default();
    let eu1 = start(&net, "eu", NodeType::Super, 20_000, &[], &[]).await;
    let eu2 = start(&net, "eu", NodeType::Full, 20_010, &[eu1.addr], &[]).await;
    let na = start(
        &net,
        "na",
        NodeType::Super,
        20_100,
        &[],
        &[bridge_gossip_addr(eu1.addr)],
    )
    .await;
    // eu2 is no bridge: it hears of na only through eu1's copy in the regional cluster
    until(&[&eu1, &eu2, &na], Duration::from_secs(60), |v| {
        v.live_regions() == vec![region("eu"), region("na")]
    })
    .await;
    assert!(!eu2.membership.view().is_bridge);
    // na leaves: its bridge is gone from the bridge cluster, both eu nodes see it missing
    na.membership.leave().await;
    until(&[&eu1, &eu2], Duration::from_secs(60), |v| {
        v.missing_regions() == vec![region("na")]
    })
    .await;
    assert_eq!(eu2.membership.view().regions[&region("na")].live, 0);
}
