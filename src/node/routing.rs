//! The routing task: re-evaluates the strategy on every membership change and every second
//! (hysteresis needs time to pass), and recomputes the links the data plane uses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use super::NodeShared;
use crate::identity::NodeId;
use crate::membership::MembershipView;
use crate::region::Region;
use crate::topology::{
    plan_links, strategy_for, LinkKind, LinkLimits, LinkView, Links, RegionMember, Strategy,
    StrategySelector,
};

/// The routing decision in force.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingState {
    /// Current strategy.
    pub strategy: Strategy,
    /// When it was adopted (ms since epoch).
    pub since_ms: u64,
    /// Regions with a live member.
    pub live_regions: Vec<Region>,
    /// Live bridges per region used for routing (restoring regions left out).
    pub bridges: BTreeMap<Region, Vec<NodeId>>,
    /// Links in use.
    pub links: Links,
}

impl RoutingState {
    /// The state before the first evaluation.
    pub fn initial(now_ms: u64) -> Self {
        RoutingState {
            strategy: Strategy::Direct,
            since_ms: now_ms,
            live_regions: Vec::new(),
            bridges: BTreeMap::new(),
            links: Links::default(),
        }
    }
}

/// Live bridges per live region, leaving out regions still restoring after failover. The
/// own region's bridges are checked against this node's members; those of its other gossip
/// cells (a region split into cells, `membership::cell`) are not members and are kept as
/// their cells' summaries list them.
pub fn routing_bridges(
    view: &MembershipView,
    restoring: &[Region],
) -> BTreeMap<Region, Vec<NodeId>> {
    let own: std::collections::HashMap<&NodeId, bool> =
        view.members.iter().map(|m| (&m.node_id, m.live)).collect();
    view.regions
        .values()
        .filter(|r| r.live > 0 && !restoring.contains(&r.region))
        .map(|r| {
            let bridges = if r.region == view.self_region {
                r.bridges
                    .iter()
                    .filter(|b| own.get(b).copied().unwrap_or(true))
                    .cloned()
                    .collect()
            } else {
                r.bridges.clone()
            };
            (r.region.clone(), bridges)
        })
        .filter(|(_, b): &(Region, Vec<NodeId>)| !b.is_empty())
        .collect()
}

/// Links of this node for a view, strategy and failover state.
pub fn links_for(
    view: &MembershipView,
    strategy: Strategy,
    failover_active: bool,
    restoring: &[Region],
) -> (BTreeMap<Region, Vec<NodeId>>, Links) {
    let members: Vec<RegionMember> = view
        .members
        .iter()
        .map(|m| RegionMember {
            node_id: m.node_id.clone(),
            live: m.live,
        })
        .collect();
    let bridges = routing_bridges(view, restoring);
    let links = plan_links(&LinkView {
        self_id: &view.self_id,
        self_region: &view.self_region,
        strategy,
        failover_active,
        region_members: &members,
        bridges: &bridges,
        limits: LinkLimits::default(),
    });
    (bridges, links)
}

/// Runs until `stop`; writes the decision into `shared.routing`.
pub async fn run(shared: Arc<NodeShared>, mut stop: watch::Receiver<bool>) {
    let mut view_rx = shared.view.clone();
    let settle_ms = shared.config.membership.strategy_settle_time.as_millis() as u64;
    let mut selector: Option<StrategySelector> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let now = shared.clock.now_ms();
        let view = view_rx.borrow_and_update().clone();
        let live = view.live_regions();
        let sel = selector
            .get_or_insert_with(|| StrategySelector::new(strategy_for(live.len()), settle_ms, now));
        if let Some(change) = sel.observe(live.len(), now) {
            info!(from = %change.from, to = %change.to, live_regions = live.len(), "routing strategy changed");
        }
        let (failover_active, restoring) = {
            let f = shared.failover.read().unwrap_or_else(|e| e.into_inner());
            (f.active, f.restoring.clone())
        };
        let (bridges, links) = links_for(&view, sel.current(), failover_active, &restoring);
        let m = &shared.metrics;
        for s in Strategy::ALL {
            m.topology_strategy
                .with_label_values(&[s.as_str()])
                .set(i64::from(*s == sel.current()));
        }
        let list = links.list();
        for kind in LinkKind::ALL {
            let n = list.iter().filter(|l| l.kind == *kind).count();
            m.links.with_label_values(&[kind.as_str()]).set(n as i64);
        }
        *shared.routing.write().unwrap_or_else(|e| e.into_inner()) = RoutingState {
            strategy: sel.current(),
            since_ms: sel.since_ms(),
            live_regions: live,
            bridges,
            links,
        };
        tokio::select! {
            _ = tick.tick() => {}
            r = view_rx.changed() => if r.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}
