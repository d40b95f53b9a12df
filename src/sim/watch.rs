//! What each simulated node decides from its own view, as the node's routing and failover
//! tasks would: the strategy selector with hysteresis and the failover monitor on its
//! interval (each node with its own phase), driven from the simulator's sampling loop.

use crate::membership::MembershipView;
use crate::monitor::{EventKind, FailoverEvent, FailoverMonitor, FailoverPolicy};
use crate::node::monitors::region_counts;
use crate::node::routing::links_for;
use crate::topology::{strategy_for, Links, Strategy, StrategySelector};

/// The routing and failover state of one simulated node.
#[derive(Debug, Clone)]
pub struct NodeWatch {
    selector: Option<StrategySelector>,
    settle_ms: u64,
    monitor: FailoverMonitor,
    interval_ms: u64,
    next_check_ms: u64,
    /// Every failover event, in order.
    pub events: Vec<FailoverEvent>,
}

impl NodeWatch {
    /// A watch whose first failover check is at `first_check_ms`.
    pub fn new(
        policy: FailoverPolicy,
        settle_ms: u64,
        interval_ms: u64,
        first_check_ms: u64,
    ) -> Self {
        NodeWatch {
            selector: None,
            settle_ms,
            monitor: FailoverMonitor::new(policy),
            interval_ms: interval_ms.max(1),
            next_check_ms: first_check_ms,
            events: Vec::new(),
        }
    }

    /// Feeds the current view at `now_ms`: observes the strategy and runs the failover check
    /// when due. Returns the events of this call.
    pub fn observe(&mut self, view: &MembershipView, now_ms: u64) -> Vec<FailoverEvent> {
        let live = view.live_regions().len();
        self.selector
            .get_or_insert_with(|| {
                StrategySelector::new(strategy_for(live), self.settle_ms, now_ms)
            })
            .observe(live, now_ms);
        if now_ms < self.next_check_ms {
            return Vec::new();
        }
        while self.next_check_ms <= now_ms {
            self.next_check_ms += self.interval_ms;
        }
        let events = self
            .monitor
            .check(&view.self_region, &region_counts(view), now_ms);
        self.events.extend(events.iter().cloned());
        events
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.selector
            .as_ref()
            .map_or(Strategy::Direct, StrategySelector::current)
    }

    /// Whether failover is active.
    pub fn failover_active(&self) -> bool {
        self.monitor.active()
    }

    /// The links the node would use with `strategy` (its own when `None`).
    pub fn links(&self, view: &MembershipView, strategy: Option<Strategy>) -> Links {
        let restoring: Vec<_> = self.monitor.restoring_regions().keys().cloned().collect();
        let strategy = strategy.unwrap_or_else(|| self.strategy());
        links_for(view, strategy, self.monitor.active(), &restoring).1
    }

    /// Events of `kind` at or after `since_ms`.
    pub fn events_since(&self, kind: EventKind, since_ms: u64) -> Vec<&FailoverEvent> {
        self.events
            .iter()
            .filter(|e| e.kind == kind && e.at_ms >= since_ms)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::membership::RegionStatus;
    use crate::region::Region;

    fn view(live: &[(&str, u32)]) -> MembershipView {
        let id = Identity::generate().node_id().clone();
        let mut v = MembershipView::empty(id, Region::new("eu").unwrap());
        for (name, l) in live {
            let r = Region::new(name).unwrap();
            v.regions.insert(r.clone(), RegionStatus::counted(r, 3, *l));
        }
        v
    }

    #[test]
    fn checks_only_on_its_interval() {
        let mut w = NodeWatch::new(FailoverPolicy::for_interval(2, 1000), 0, 1000, 500);
        let down = view(&[("eu", 3), ("na", 0), ("asia", 0), ("sa", 3)]);
        assert!(w.observe(&down, 100).is_empty(), "before the first check");
        let events = w.observe(&down, 500);
        assert!(events.iter().any(|e| e.kind == EventKind::Activated));
        assert!(w.failover_active());
        assert!(w.observe(&down, 900).is_empty(), "between checks");
        assert!(w.observe(&down, 1500).is_empty(), "no repeated events");
        assert_eq!(w.events_since(EventKind::Activated, 0).len(), 1);
        assert_eq!(w.events_since(EventKind::RegionLost, 0).len(), 2);
        assert_eq!(w.events_since(EventKind::RegionLost, 501).len(), 0);
    }

    #[test]
    fn strategy_follows_live_regions_after_settling() {
        let mut w = NodeWatch::new(FailoverPolicy::default(), 1000, 60_000, 60_000);
        let one = view(&[("eu", 3)]);
        let four = view(&[("eu", 3), ("na", 3), ("asia", 3), ("sa", 3)]);
        w.observe(&one, 0);
        assert_eq!(w.strategy(), Strategy::Direct);
        w.observe(&four, 100);
        assert_eq!(w.strategy(), Strategy::Direct, "settling");
        w.observe(&four, 1100);
        assert_eq!(w.strategy(), Strategy::GlobalMesh);
    }
}
