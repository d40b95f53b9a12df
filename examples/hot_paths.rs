//! Hot paths of the control plane, timed in a loop (no assertions; figures for BENCHMARKS.md):
//! verifying a member card (what the gossip guard does once per member generation), the
//! gossip guard's digest admission (once per received SYN and SYN-ACK), electing a region's
//! bridges among 1,000 members, planning a bridge's links in a global mesh, and the Merkle
//! root of a block's transactions.
//!
//! ```text
//! cargo run --release --example hot_paths
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chitchat::ChitchatId;
use qnet_node::chain::merkle::merkle_root;
use qnet_node::identity::{Identity, NodeId, NodeType};
use qnet_node::membership::admission::{Admission, DigestKind, GuardView, Limits};
use qnet_node::membership::card::{issue, verify_card};
use qnet_node::membership::digest::checked_ids;
use qnet_node::membership::view::{elect_bridges, Member};
use qnet_node::region::Region;
use qnet_node::topology::links::{plan_links, LinkLimits, LinkView, RegionMember};
use qnet_node::topology::strategy::Strategy;

/// Runs `f` repeatedly for about `budget` and prints the mean time per call.
fn time<T>(name: &str, budget: Duration, mut f: impl FnMut() -> T) {
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < budget {
        black_box(f());
        calls += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / calls as f64;
    println!(
        "| {name} | {calls} | {:.2} µs | {:.0} /s |",
        per_call * 1e6,
        1.0 / per_call
    );
}

fn member(i: usize, region: &Region) -> Member {
    let identity = Identity::generate();
    Member {
        node_id: identity.node_id().clone(),
        generation: 1,
        gossip_addr: SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16)),
        region: region.clone(),
        node_type: if i % 10 == 0 {
            NodeType::Super
        } else {
            NodeType::Full
        },
        live: i % 17 != 0,
        ready: true,
        head: None,
        last_seen_ms: 0,
        bridge: false,
    }
}

fn main() {
    let budget = Duration::from_secs(2);
    let eu = Region::new("eu").expect("region");
    println!("| operation | calls | time per call | rate |");
    println!("|---|---|---|---|");

    let identity = Identity::generate();
    let id = ChitchatId::new(
        identity.node_id().to_string(),
        1,
        SocketAddr::from(([127, 0, 0, 1], 9876)),
    );
    let card = issue(&identity, &id, &eu, NodeType::Super);
    time("verify one member card (ed25519)", budget, || {
        verify_card(&id, &card).is_some()
    });

    let members: Vec<Member> = (0..1_000).map(|i| member(i, &eu)).collect();
    let ids: Vec<ChitchatId> = members
        .iter()
        .map(|m| ChitchatId::new(m.node_id.to_string(), m.generation, m.gossip_addr))
        .collect();
    let mut admission = Admission::new(id.clone(), Limits::default(), 0);
    admission.set_view(std::sync::Arc::new(GuardView {
        known: ids.iter().cloned().collect(),
        trusted: ids.iter().map(|i| i.gossip_advertise_addr).collect(),
    }));
    let from = ids[0].gossip_advertise_addr;
    time(
        "guard: admit a digest naming 1,000 known members",
        budget,
        || admission.judge(DigestKind::Syn, from, checked_ids(ids.iter()), 0),
    );
    let flood: Vec<ChitchatId> = (0..1_100u32)
        .map(|i| {
            ChitchatId::new(
                format!("{i:016x}"),
                1,
                SocketAddr::from(([127, 0, 0, 2], 10_000)),
            )
        })
        .collect();
    let stranger = SocketAddr::from(([127, 0, 0, 2], 9_999));
    time(
        "guard: refuse a stranger's digest naming 1,100 made-up members",
        budget,
        || admission.judge(DigestKind::Syn, stranger, checked_ids(flood.iter()), 0),
    );
    time("elect 3 bridges among 1,000 members", budget, || {
        elect_bridges(&members, 3)
    });

    let regions: Vec<Region> = (0..10)
        .map(|r| Region::new(&format!("r{r}")).expect("region"))
        .collect();
    let mut bridges: BTreeMap<Region, Vec<NodeId>> = BTreeMap::new();
    for r in &regions {
        bridges.insert(
            r.clone(),
            (0..3)
                .map(|_| Identity::generate().node_id().clone())
                .collect(),
        );
    }
    let self_id = bridges[&regions[0]][0].clone();
    let region_members: Vec<RegionMember> = members
        .iter()
        .map(|m| RegionMember {
            node_id: m.node_id.clone(),
            live: m.live,
        })
        .chain(std::iter::once(RegionMember {
            node_id: self_id.clone(),
            live: true,
        }))
        .collect();
    let limits = LinkLimits::default();
    time(
        "plan a bridge's links (global mesh, 10 regions, 1,000-member region)",
        budget,
        || {
            plan_links(&LinkView {
                self_id: &self_id,
                self_region: &regions[0],
                strategy: Strategy::GlobalMesh,
                failover_active: false,
                region_members: &region_members,
                bridges: &bridges,
                limits,
            })
        },
    );

    for n in [100usize, 1_000, 10_000] {
        let hashes: Vec<[u8; 32]> = (0..n as u32)
            .map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes())
            .collect();
        time(
            &format!("Merkle root of {n} transaction hashes"),
            budget,
            || merkle_root(&hashes),
        );
    }
}
