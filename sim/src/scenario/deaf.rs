//! A bridge deaf in the bridge cluster for a few seconds: its own detector counts members
//! dead, but no node sees a region missing or raises failover.

use std::collections::HashSet;
use std::time::Duration;

use super::{Ctx, SimError};
use crate::report::Table;
use qnet_node::membership::bridge_gossip_addr;
use qnet_node::region::Region;

/// How long the deaf bridge hears nothing in the bridge cluster: longer than the bridge
/// detector's timeouts (about 1.6 s settled, 2–3 s in young windows), shorter than the
/// silence after which a death counts whatever a bridge hears (`hearing::LIMIT_INTERVALS`,
/// 5 s at the default interval).
pub const DEAF_FOR: Duration = Duration::from_secs(3);
/// How long the network is watched after the deaf bridge hears again.
const DEAF_AFTER: Duration = Duration::from_secs(8);
/// Loss-free time before the deafness begins.
const DEAF_SETTLE: Duration = Duration::from_secs(3);

/// After [`DEAF_SETTLE`] without loss, one bridge of the first region hears nothing in the
/// bridge cluster for [`DEAF_FOR`] (every datagram to its bridge socket lost, as a streak of
/// losses would do), then hears again: its own detector must count members dead (the
/// deafness bites), and no node may see a region missing or raise failover. Its regional
/// cluster is untouched.
pub(super) async fn deaf_bridge(ctx: &mut Ctx) -> Result<(), SimError> {
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let Some(deaf) = ctx
        .in_regions(&[0], true)
        .into_iter()
        .find(|i| bridges.contains(i))
    else {
        return Ok(());
    };
    ctx.phase("a deaf bridge");
    // a moment without loss first: what the loss phases left is not the deaf bridge's doing
    ctx.run_for(DEAF_SETTLE).await;
    let addr = bridge_gossip_addr(ctx.fleet.nodes[deaf].plan.addr);
    let since = ctx.now();
    let hears_at = since + DEAF_FOR.as_millis() as u64;
    let end = hears_at + DEAF_AFTER.as_millis() as u64;
    ctx.fleet.deafen(addr);
    let mut missing: HashSet<(usize, Region)> = HashSet::new();
    let mut deaf_saw = 0;
    // the most bridge-cluster members the deaf bridge's own detector counted dead at once:
    // the deafness did bite (without the hearing rule their regions were seen lost)
    let mut detector_dead = 0;
    while ctx.now() < end {
        if ctx.now() >= hears_at {
            ctx.fleet.undeafen(addr);
        }
        ctx.sample().await;
        detector_dead = detector_dead.max(
            ctx.fleet.nodes[deaf]
                .membership
                .bridge_detector_dead()
                .await,
        );
        for i in ctx.alive() {
            let view = ctx.fleet.nodes[i].view();
            for r in view.regions.values().filter(|r| r.live == 0) {
                if missing.insert((i, r.region.clone())) && i == deaf {
                    deaf_saw += 1;
                }
            }
        }
    }
    ctx.fleet.undeafen(addr);
    let observers: HashSet<usize> = missing.iter().map(|(i, _)| *i).collect();
    let activations = ctx.activations_since(&ctx.alive(), since);
    let mut table = Table::new(
        "a bridge deaf in the bridge cluster",
        &[
            "deaf_s",
            "watched_s",
            "missing_pairs",
            "observers",
            "detector_dead_max",
            "regions_missing_at_deaf_bridge",
            "failover_activations",
        ],
    );
    table.row(vec![
        format!("{:.1}", DEAF_FOR.as_secs_f64()),
        format!("{:.1}", (DEAF_FOR + DEAF_AFTER).as_secs_f64()),
        missing.len().to_string(),
        observers.len().to_string(),
        detector_dead.to_string(),
        deaf_saw.to_string(),
        activations.to_string(),
    ]);
    ctx.check(
        "deaf bridge: its own detector counted members dead",
        detector_dead > 0,
        format!("up to {detector_dead} at once"),
    );
    ctx.check(
        "deaf bridge: no region seen missing",
        missing.is_empty(),
        format!(
            "{} (observer, region) pairs on {} nodes, {deaf_saw} at the deaf bridge",
            missing.len(),
            observers.len()
        ),
    );
    ctx.check(
        "deaf bridge: no failover",
        activations == 0,
        format!("{activations} activations"),
    );
    ctx.emit(table, "deaf_bridge")
}
