//! What each simulated node decided: the node's own [`DecisionLoop`], driven from the
//! simulator's sampling loop, and the record the scenarios check (failover events and health
//! warnings, in order). The health check runs on the failover check's interval and phase
//! here (a node runs it on its own interval, 120 s by default), against the default 0.8
//! threshold.

use qnet_node::decision::{Cadence, DecisionLoop, DecisionParams};
use qnet_node::membership::MembershipView;
use qnet_node::monitor::{
    EventKind, FailoverEvent, FailoverPolicy, DEFAULT_HEALTH_WARNING_THRESHOLD,
};
use qnet_node::topology::{Links, Strategy};

/// One simulated node's decision loop and what it decided.
#[derive(Debug, Clone)]
pub struct Journal {
    decisions: DecisionLoop,
    /// Every failover event, in order.
    pub events: Vec<FailoverEvent>,
    /// When the health check warned (network health below the threshold), in order.
    pub health_warnings: Vec<u64>,
}

impl Journal {
    /// A journal whose node checks every `interval_ms`, first at `first_check_ms`.
    pub fn new(
        policy: FailoverPolicy,
        settle_ms: u64,
        interval_ms: u64,
        first_check_ms: u64,
    ) -> Self {
        let cadence = Cadence::new(interval_ms, first_check_ms);
        Journal {
            decisions: DecisionLoop::new(DecisionParams {
                settle_ms,
                health_threshold: DEFAULT_HEALTH_WARNING_THRESHOLD,
                health: cadence,
                failover_policy: policy,
                failover: cadence,
            }),
            events: Vec::new(),
            health_warnings: Vec::new(),
        }
    }

    /// Feeds the view of a joined node at `now_ms` and records what its checks decided.
    pub fn observe(&mut self, view: &MembershipView, now_ms: u64) {
        let decisions = self.decisions.observe(view, true, now_ms);
        if decisions.health.is_some_and(|h| h.below_threshold) {
            self.health_warnings.push(now_ms);
        }
        if let Some(check) = decisions.failover {
            self.events.extend(check.events);
        }
    }

    /// Whether the health check warned at or after `since_ms` and before `until_ms`.
    pub fn health_warned(&self, since_ms: u64, until_ms: u64) -> bool {
        self.health_warnings
            .iter()
            .any(|&t| t >= since_ms && t < until_ms)
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.decisions.strategy()
    }

    /// Whether failover is active.
    pub fn failover_active(&self) -> bool {
        self.decisions.failover_active()
    }

    /// The links the node would use at `now_ms` with `strategy`.
    pub fn links(&self, view: &MembershipView, strategy: Strategy, now_ms: u64) -> Links {
        self.decisions.links(view, strategy, now_ms)
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
    use qnet_node::identity::Identity;
    use qnet_node::membership::RegionStatus;
    use qnet_node::region::Region;

    fn view(live: &[(&str, u32)]) -> MembershipView {
        let id = Identity::generate().node_id().clone();
        let mut v = MembershipView::empty(id, Region::new("eu").unwrap());
        for (name, l) in live {
            let r = Region::new(name).unwrap();
            let status = RegionStatus {
                region: r.clone(),
                known: 3,
                live: *l,
                missing: *l == 0,
                bridges: vec![],
                bridge_addrs: vec![],
                seeds: vec![],
                bridge_seeds: vec![],
                head_height: None,
                last_live_ms: 0,
            };
            v.regions.insert(r, status);
        }
        v
    }

    #[test]
    fn records_events_and_warnings_of_each_check() {
        let mut j = Journal::new(FailoverPolicy::for_interval(2, 1000), 0, 1000, 500);
        let down = view(&[("eu", 3), ("na", 0), ("asia", 0), ("sa", 3)]);
        j.observe(&down, 100);
        assert!(j.events.is_empty(), "before the first check");
        j.observe(&down, 500);
        assert!(j.failover_active());
        j.observe(&down, 900);
        j.observe(&down, 1500);
        assert_eq!(j.events_since(EventKind::Activated, 0).len(), 1);
        assert_eq!(j.events_since(EventKind::RegionLost, 0).len(), 2);
        assert_eq!(j.events_since(EventKind::RegionLost, 501).len(), 0);
        assert_eq!(
            j.health_warnings,
            vec![500, 1500],
            "health 6/12 at each check"
        );
        assert!(j.health_warned(500, 501));
        assert!(!j.health_warned(501, 1500));
    }
}
