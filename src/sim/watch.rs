//! What each simulated node decides from its own view, as the node's routing and monitor
//! tasks would: the strategy selector with hysteresis, the failover monitor on its interval
//! (each node with its own phase) and the regional health assessment, driven from the
//! simulator's sampling loop. The health check runs at every failover check here (a node
//! runs it on its own interval, 120 s by default); the decision, `monitor::assess` against
//! the default 0.8 threshold, is the node's.

use crate::membership::MembershipView;
use crate::monitor::{
    assess, EventKind, FailoverEvent, FailoverMonitor, FailoverPolicy,
    DEFAULT_HEALTH_WARNING_THRESHOLD,
};
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
    /// When the health check warned (network health below the threshold), in order.
    pub health_warnings: Vec<u64>,
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
            health_warnings: Vec::new(),
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
        let counts = region_counts(view);
        if assess(&counts, DEFAULT_HEALTH_WARNING_THRESHOLD).below_threshold {
            self.health_warnings.push(now_ms);
        }
        let events = self.monitor.check(&view.self_region, &counts, now_ms);
        self.events.extend(events.iter().cloned());
        events
    }

    /// Whether the health check warned at or after `since_ms` and before `until_ms`.
    pub fn health_warned(&self, since_ms: u64, until_ms: u64) -> bool {
        self.health_warnings
            .iter()
            .any(|&t| t >= since_ms && t < until_ms)
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
        assert_eq!(
            w.health_warnings,
            vec![500, 1500],
            "health 6/12 at each check"
        );
        assert!(w.health_warned(500, 501));
        assert!(!w.health_warned(501, 1500));
    }

    #[test]
    fn one_region_of_six_missing_is_no_health_warning_two_are() {
        let mut w = NodeWatch::new(FailoverPolicy::for_interval(2, 1000), 0, 1000, 0);
        let six = ["eu", "na", "asia", "sa", "africa", "oceania"];
        let with_down = |down: usize| {
            let live: Vec<(&str, u32)> = six
                .iter()
                .enumerate()
                .map(|(i, r)| (*r, if i > 0 && i <= down { 0 } else { 3 }))
                .collect();
            view(&live)
        };
        w.observe(&with_down(1), 0);
        assert!(w.health_warnings.is_empty(), "health 15/18 = 0.83");
        w.observe(&with_down(2), 1000);
        assert_eq!(w.health_warnings, vec![1000], "health 12/18 = 0.67");
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
