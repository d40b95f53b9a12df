//! The decision loop: what a node decides from its own membership view, written once and
//! driven alike by the node's decision task and by the simulator.
//!
//! [`DecisionLoop::observe`] takes the view, whether membership has joined and the time, and
//! returns [`Decisions`]: a routing strategy switch (the [`StrategySelector`]'s hysteresis), a
//! [`HealthReport`] when a regional health check ran, and the [`FailoverEvent`]s and
//! [`FailoverStatus`] when a failover check ran. [`DecisionLoop::routing`] plans the links of
//! the decision in force, leaving out regions back from missing until they have stayed live
//! for the restoration window (see [`DecisionLoop`]). Each check runs on its own [`Cadence`]
//! and only once membership has joined (a node still joining would see every region
//! missing). Time is injected; nothing here sleeps, logs or counts: the caller carries the
//! decisions out.

use std::collections::{BTreeMap, HashMap};

use crate::identity::NodeId;
use crate::membership::MembershipView;
use crate::monitor::{
    assess, FailoverEvent, FailoverMonitor, FailoverPolicy, HealthReport, RegionCount,
};
use crate::region::Region;
use crate::topology::{
    plan_links, strategy_for, LinkLimits, LinkView, Links, RegionMember, Strategy, StrategyChange,
    StrategySelector,
};

/// A check repeated every `interval_ms` from a first time.
///
/// Checks missed while the caller was away are not made up: one check runs and the next is
/// the first interval boundary after it. The schedule follows elapsed time, not clock
/// readings: a clock stepped back moves the next check back by the same step, so checks do
/// not pause for as long as the step (the node's tasks once ran on tokio intervals, which a
/// wall-clock step does not touch either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    interval_ms: u64,
    next_ms: u64,
    last_seen_ms: Option<u64>,
}

impl Cadence {
    /// A check every `interval_ms` (at least 1 ms), the first at `first_ms`.
    pub fn new(interval_ms: u64, first_ms: u64) -> Self {
        Cadence {
            interval_ms: interval_ms.max(1),
            next_ms: first_ms,
            last_seen_ms: None,
        }
    }

    /// When the next check is due.
    pub fn next_ms(&self) -> u64 {
        self.next_ms
    }

    /// Whether a check is due at `now_ms`; if so, schedules the next one.
    fn due(&mut self, now_ms: u64) -> bool {
        if let Some(last) = self.last_seen_ms.filter(|&last| now_ms < last) {
            self.next_ms = self.next_ms.saturating_sub(last - now_ms);
        }
        self.last_seen_ms = Some(now_ms);
        if now_ms < self.next_ms {
            return false;
        }
        let behind = (now_ms - self.next_ms) / self.interval_ms + 1;
        self.next_ms += behind * self.interval_ms;
        true
    }
}

/// How a [`DecisionLoop`] decides and when it checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionParams {
    /// How long a new strategy must hold before it is adopted.
    pub settle_ms: u64,
    /// Network health below which a health check warns.
    pub health_threshold: f64,
    /// When the regional health check runs.
    pub health: Cadence,
    /// When failover activates and how long a returning region is on probation.
    pub failover_policy: FailoverPolicy,
    /// When the failover check runs.
    pub failover: Cadence,
}

/// What the failover check last decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailoverStatus {
    /// Whether failover is active.
    pub active: bool,
    /// Missing regions at the last check.
    pub missing: Vec<Region>,
    /// Regions back but inside their restoration window, as of the last check (routing
    /// follows returns between checks too, so it may use one before the check that restores
    /// it: see [`DecisionLoop`]).
    pub restoring: Vec<Region>,
    /// Time of the last check (ms since epoch).
    pub last_check_ms: Option<u64>,
}

/// The outcome of a failover check.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverCheck {
    /// Events of this check, region events first.
    pub events: Vec<FailoverEvent>,
    /// The state after it.
    pub status: FailoverStatus,
}

/// What one [`DecisionLoop::observe`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decisions {
    /// The strategy switch adopted now, if any.
    pub strategy_change: Option<StrategyChange>,
    /// The report of the regional health check, when one ran.
    pub health: Option<HealthReport>,
    /// The outcome of the failover check, when one ran.
    pub failover: Option<FailoverCheck>,
}

/// The routing decision in force.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingState {
    /// Current strategy.
    pub strategy: Strategy,
    /// When it was adopted (ms since epoch).
    pub since_ms: u64,
    /// Regions with a live member.
    pub live_regions: Vec<Region>,
    /// Live bridges per region used for routing (regions held back after a return left out).
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

/// The strategy selector, the health check and the failover monitor of one node.
///
/// Routing after a return (DESIGN §5, gradual restoration): a region the failover monitor
/// counted missing at a check is *held back* from routing. At every observation (not only at
/// checks) a held-back region seen live starts its live time, and one seen without a live
/// member restarts it on its next return. It is left out of routing from the moment it is
/// seen live again until it has stayed live for the restoration window (the policy's
/// `restore_window_ms`, one failover interval), and is then released: used for routing and
/// kept in use until the monitor counts it missing again. So a returning region goes from
/// unused to used once, never on, off, on. Decided here rather than from the monitor's
/// restoring set because that set changes only at checks: following it routed to a region
/// between its return and the next check, then left it out for a window. The monitor's events
/// and activation/deactivation are unchanged (decided at checks, as before).
#[derive(Debug, Clone)]
pub struct DecisionLoop {
    params: DecisionParams,
    /// Made at the first observation, from the live regions seen then: a node starts with the
    /// strategy that fits what it sees instead of switching to it after a settle time.
    selector: Option<StrategySelector>,
    monitor: FailoverMonitor,
    /// Regions held back from routing, with the time each was first seen live in the current
    /// unbroken live stretch (`None` while it has no live member).
    held_back: BTreeMap<Region, Option<u64>>,
}

impl DecisionLoop {
    /// A loop that has observed nothing yet.
    pub fn new(params: DecisionParams) -> Self {
        DecisionLoop {
            params,
            selector: None,
            monitor: FailoverMonitor::new(params.failover_policy),
            held_back: BTreeMap::new(),
        }
    }

    /// Feeds the view at `now_ms`: observes the strategy, and runs each check that is due,
    /// provided membership has `joined` (a due check is skipped, not postponed, otherwise).
    pub fn observe(&mut self, view: &MembershipView, joined: bool, now_ms: u64) -> Decisions {
        let live = view.live_regions().len();
        let settle_ms = self.params.settle_ms;
        let strategy_change = self
            .selector
            .get_or_insert_with(|| StrategySelector::new(strategy_for(live), settle_ms, now_ms))
            .observe(live, now_ms);
        let health_due = self.params.health.due(now_ms) && joined;
        let failover_due = self.params.failover.due(now_ms) && joined;
        if !health_due && !failover_due {
            self.follow_returns(view, false, now_ms);
            return Decisions {
                strategy_change,
                health: None,
                failover: None,
            };
        }
        let counts = region_counts(view);
        let health = health_due.then(|| assess(&counts, self.params.health_threshold));
        let failover = failover_due.then(|| FailoverCheck {
            events: self.monitor.check(&view.self_region, &counts, now_ms),
            status: self.failover_status(),
        });
        self.follow_returns(view, failover_due, now_ms);
        Decisions {
            strategy_change,
            health,
            failover,
        }
    }

    /// Updates the regions held back from routing with `view` at `now_ms`: after a failover
    /// check (`checked`) holds back the regions it counts missing, then starts or restarts
    /// their live time, and releases those live for the restoration window and those aged out
    /// of the view (as the monitor forgets them). Held back only at checks, not whenever the
    /// monitor lists a region missing: a region released before the check that sees it back
    /// is still listed, and holding it back again would be on, off, on.
    fn follow_returns(&mut self, view: &MembershipView, checked: bool, now_ms: u64) {
        if checked {
            for region in self.monitor.missing_regions() {
                self.held_back.insert(region.clone(), None);
            }
        }
        let window_ms = self.params.failover_policy.restore_window_ms;
        self.held_back.retain(|region, live_since| {
            let status = view.regions.get(region);
            if status.is_some_and(|r| r.known == 0 && r.live == 0) {
                return false;
            }
            if !region_live(view, region) {
                *live_since = None;
                return true;
            }
            let since = *live_since.get_or_insert(now_ms);
            now_ms.saturating_sub(since) < window_ms
        });
    }

    /// Regions left out of routing at `now_ms`: held back and, if live in `view`, not yet live
    /// for the restoration window (a return this loop has not observed yet starts now).
    fn held_back_regions(&self, view: &MembershipView, now_ms: u64) -> Vec<Region> {
        let window_ms = self.params.failover_policy.restore_window_ms;
        self.held_back
            .iter()
            .filter(|(region, live_since)| {
                !region_live(view, region)
                    || live_since.is_none_or(|since| now_ms.saturating_sub(since) < window_ms)
            })
            .map(|(region, _)| region.clone())
            .collect()
    }

    /// When the next check (health or failover) is due: the caller observes again by then.
    pub fn next_check_ms(&self) -> u64 {
        self.params
            .health
            .next_ms()
            .min(self.params.failover.next_ms())
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

    /// The failover state now.
    pub fn failover_status(&self) -> FailoverStatus {
        FailoverStatus {
            active: self.monitor.active(),
            missing: self.monitor.missing_regions().iter().cloned().collect(),
            restoring: self.monitor.restoring_regions().keys().cloned().collect(),
            last_check_ms: self.monitor.last_check_ms(),
        }
    }

    /// The routing decision in force for `view`, links planned with the strategy in use.
    ///
    /// Apart from [`observe`](Self::observe) because planning links costs a pass over the
    /// region's members: the node plans at every observation, the simulator (which observes
    /// every node ten times a simulated second) only when it measures propagation.
    pub fn routing(&self, view: &MembershipView, now_ms: u64) -> RoutingState {
        let strategy = self.strategy();
        let (bridges, links) = self.plan(view, strategy, now_ms);
        RoutingState {
            strategy,
            since_ms: self
                .selector
                .as_ref()
                .map_or(now_ms, StrategySelector::since_ms),
            live_regions: view.live_regions(),
            bridges,
            links,
        }
    }

    /// The links this node would use at `now_ms` for `view` with `strategy` and its failover
    /// state.
    pub fn links(&self, view: &MembershipView, strategy: Strategy, now_ms: u64) -> Links {
        self.plan(view, strategy, now_ms).1
    }

    fn plan(
        &self,
        view: &MembershipView,
        strategy: Strategy,
        now_ms: u64,
    ) -> (BTreeMap<Region, Vec<NodeId>>, Links) {
        let restoring = self.held_back_regions(view, now_ms);
        let members: Vec<RegionMember> = view
            .members
            .iter()
            .map(|m| RegionMember {
                node_id: m.node_id.clone(),
                live: m.live,
            })
            .collect();
        let bridges = routing_bridges(view, &restoring);
        let links = plan_links(&LinkView {
            self_id: &view.self_id,
            self_region: &view.self_region,
            strategy,
            failover_active: self.monitor.active(),
            region_members: &members,
            bridges: &bridges,
            limits: LinkLimits::default(),
        });
        (bridges, links)
    }
}

/// Per-region counts of a view.
pub fn region_counts(view: &MembershipView) -> Vec<RegionCount> {
    view.regions
        .values()
        .map(|r| RegionCount {
            region: r.region.clone(),
            known: r.known as usize,
            live: r.live as usize,
        })
        .collect()
}

/// Whether `region` has a live member in `view`.
fn region_live(view: &MembershipView, region: &Region) -> bool {
    view.regions.get(region).is_some_and(|r| r.live > 0)
}

/// Live bridges per live region, leaving out `restoring` regions (held back after a return,
/// see [`DecisionLoop`]). The
/// own region's bridges are checked against this node's members; those of its other gossip
/// cells (a region split into cells, `membership::cell`) are not members and are kept as
/// their cells' summaries list them.
pub fn routing_bridges(
    view: &MembershipView,
    restoring: &[Region],
) -> BTreeMap<Region, Vec<NodeId>> {
    let own: HashMap<&NodeId, bool> = view.members.iter().map(|m| (&m.node_id, m.live)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::membership::RegionStatus;
    use crate::monitor::EventKind;

    const SIX: [&str; 6] = ["eu", "na", "asia", "sa", "africa", "oceania"];

    fn region(name: &str) -> Region {
        Region::new(name).unwrap()
    }

    /// A view from `eu` with 3 known members per region and the given live counts; every live
    /// region has one bridge.
    fn view(live: &[(&str, u32)]) -> MembershipView {
        let id = Identity::generate().node_id().clone();
        let mut v = MembershipView::empty(id, region("eu"));
        for (name, l) in live {
            let mut status = RegionStatus::counted(region(name), 3, *l);
            status.bridges = vec![Identity::generate().node_id().clone()];
            v.regions.insert(region(name), status);
        }
        v
    }

    /// Six regions, the `down` after `eu` with no live member.
    fn six_with_down(down: usize) -> MembershipView {
        let live: Vec<(&str, u32)> = SIX
            .iter()
            .enumerate()
            .map(|(i, r)| (*r, if i > 0 && i <= down { 0 } else { 3 }))
            .collect();
        view(&live)
    }

    fn params(interval_ms: u64, first_ms: u64) -> DecisionParams {
        DecisionParams {
            settle_ms: 0,
            health_threshold: 0.8,
            health: Cadence::new(interval_ms, first_ms),
            failover_policy: FailoverPolicy::for_interval(2, interval_ms),
            failover: Cadence::new(interval_ms, first_ms),
        }
    }

    fn kinds(d: &Decisions) -> Vec<EventKind> {
        d.failover
            .as_ref()
            .map(|f| f.events.iter().map(|e| e.kind).collect())
            .unwrap_or_default()
    }

    #[test]
    fn cadence_runs_once_per_interval_and_skips_missed_checks() {
        let mut c = Cadence::new(1000, 500);
        assert!(!c.due(499));
        assert!(c.due(500));
        assert!(!c.due(500), "one check per due time");
        assert!(!c.due(1499));
        assert!(c.due(1500));
        assert!(c.due(4200), "late: one check");
        assert_eq!(c.next_ms(), 4500, "then back on the interval boundaries");
        assert!(!c.due(4499));
    }

    #[test]
    fn cadence_follows_a_clock_stepped_back() {
        let mut c = Cadence::new(1000, 1000);
        assert!(!c.due(900));
        assert!(!c.due(100), "stepped back by 800 ms");
        assert_eq!(c.next_ms(), 200, "the next check moved back with the clock");
        assert!(c.due(200));
    }

    #[test]
    fn strategy_follows_live_regions_after_settling() {
        let mut p = params(60_000, 60_000);
        p.settle_ms = 1000;
        let mut d = DecisionLoop::new(p);
        let one = view(&[("eu", 3)]);
        let four = view(&[("eu", 3), ("na", 3), ("asia", 3), ("sa", 3)]);
        assert_eq!(d.observe(&one, true, 0).strategy_change, None);
        assert_eq!(d.strategy(), Strategy::Direct);
        assert_eq!(d.observe(&four, true, 100).strategy_change, None);
        assert_eq!(d.strategy(), Strategy::Direct, "settling");
        let change = d.observe(&four, true, 1100).strategy_change;
        assert_eq!(
            change,
            Some(StrategyChange {
                from: Strategy::Direct,
                to: Strategy::GlobalMesh,
                at_ms: 1100
            })
        );
        let routing = d.routing(&four, 1200);
        assert_eq!(routing.strategy, Strategy::GlobalMesh);
        assert_eq!(routing.since_ms, 1100);
        assert_eq!(routing.live_regions.len(), 4);
    }

    #[test]
    fn a_flapping_region_does_not_switch_the_strategy() {
        let mut p = params(60_000, 60_000);
        p.settle_ms = 1000;
        let mut d = DecisionLoop::new(p);
        let two = view(&[("eu", 3), ("na", 3)]);
        let one = view(&[("eu", 3), ("na", 0)]);
        d.observe(&two, true, 0);
        assert_eq!(d.strategy(), Strategy::RegionalClustering);
        assert_eq!(d.observe(&one, true, 100).strategy_change, None);
        assert_eq!(d.observe(&two, true, 200).strategy_change, None);
        let again = d.observe(&one, true, 1200).strategy_change;
        assert_eq!(again, None, "the wait restarted when the region came back");
        assert_eq!(d.observe(&one, true, 2100).strategy_change, None);
        assert_eq!(d.strategy(), Strategy::RegionalClustering);
        let held = d.observe(&one, true, 2200).strategy_change;
        assert_eq!(held.map(|c| c.to), Some(Strategy::Direct), "held 1 s");
    }

    #[test]
    fn the_first_observation_sets_the_strategy_without_settling() {
        let mut p = params(60_000, 60_000);
        p.settle_ms = 1000;
        let mut d = DecisionLoop::new(p);
        let two = view(&[("eu", 3), ("na", 3)]);
        assert_eq!(d.observe(&two, true, 0).strategy_change, None);
        assert_eq!(d.strategy(), Strategy::RegionalClustering);
    }

    #[test]
    fn health_checks_run_on_their_cadence_and_warn_below_the_threshold() {
        let mut p = params(60_000, 60_000);
        p.health = Cadence::new(1000, 500);
        let mut d = DecisionLoop::new(p);
        assert_eq!(d.observe(&six_with_down(2), true, 100).health, None);
        let report = d.observe(&six_with_down(1), true, 500).health.unwrap();
        assert!(!report.below_threshold, "health 15/18 = 0.83");
        assert_eq!(d.observe(&six_with_down(2), true, 900).health, None);
        let report = d.observe(&six_with_down(2), true, 1500).health.unwrap();
        assert!(report.below_threshold, "health 12/18 = 0.67");
        assert_eq!(report.missing_regions().len(), 2);
        assert_eq!(d.next_check_ms(), 2500);
    }

    #[test]
    fn failover_checks_run_on_their_cadence() {
        let mut d = DecisionLoop::new(params(1000, 500));
        let down = six_with_down(2);
        assert_eq!(d.observe(&down, true, 100).failover, None, "before");
        let first = d.observe(&down, true, 500);
        assert_eq!(
            kinds(&first),
            [
                EventKind::RegionLost,
                EventKind::RegionLost,
                EventKind::Activated
            ]
        );
        let status = first.failover.unwrap().status;
        assert!(status.active);
        assert_eq!(status.missing.len(), 2);
        assert_eq!(status.last_check_ms, Some(500));
        assert!(d.failover_active());
        assert_eq!(d.observe(&down, true, 900).failover, None, "between");
        let again = d.observe(&down, true, 1500);
        assert!(again.failover.is_some(), "checked again");
        assert!(kinds(&again).is_empty(), "no repeated events");
    }

    #[test]
    fn one_missing_region_is_no_failover() {
        let mut d = DecisionLoop::new(params(1000, 0));
        let d0 = d.observe(&six_with_down(1), true, 0);
        assert_eq!(kinds(&d0), [EventKind::RegionLost]);
        assert!(!d.failover_active());
    }

    #[test]
    fn nothing_is_checked_before_joining() {
        let mut d = DecisionLoop::new(params(1000, 0));
        let down = six_with_down(3);
        for t in [0, 1000, 2000] {
            let decisions = d.observe(&down, false, t);
            assert_eq!(decisions.health, None);
            assert_eq!(decisions.failover, None);
        }
        assert!(!d.failover_active());
        assert_eq!(d.failover_status().last_check_ms, None);
        assert_eq!(
            d.next_check_ms(),
            3000,
            "checks due while joining are skipped"
        );
        let joined = d.observe(&down, true, 3000);
        assert!(joined.health.is_some());
        assert!(d.failover_active());
    }

    #[test]
    fn restoring_regions_are_left_out_of_routing_bridges() {
        let mut d = DecisionLoop::new(params(1000, 0));
        d.observe(&six_with_down(2), true, 0);
        assert!(d.failover_active());
        let healed = six_with_down(0);
        let back = d.observe(&healed, true, 1000);
        assert_eq!(
            kinds(&back),
            [EventKind::RegionReturned, EventKind::RegionReturned]
        );
        let restoring = &back.failover.unwrap().status.restoring;
        assert_eq!(restoring.len(), 2);
        let routing = d.routing(&healed, 1000);
        assert_eq!(routing.live_regions.len(), 6);
        assert_eq!(routing.bridges.len(), 4, "two regions still restoring");
        assert!(restoring.iter().all(|r| !routing.bridges.contains_key(r)));
        let restored = d.observe(&healed, true, 2000);
        assert_eq!(kinds(&restored), [EventKind::Deactivated]);
        assert_eq!(d.routing(&healed, 2000).bridges.len(), 6);
    }

    /// Six regions, `na` and `sa` without a live member while `down(t)`; observes and samples
    /// routing every 500 ms of simulated time up to `until_ms` with a 3 s failover interval
    /// (also the restoration window); returns the times `na` starts and stops being routed to,
    /// and the failover events.
    fn sample_na(down: impl Fn(u64) -> bool, until_ms: u64) -> (Vec<(u64, bool)>, Vec<EventKind>) {
        let mut d = DecisionLoop::new(params(3000, 0));
        let mut used = true;
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for t in (0..=until_ms).step_by(500) {
            let v = if down(t) {
                six_with_down(2)
            } else {
                six_with_down(0)
            };
            let decisions = d.observe(&v, true, t);
            events.extend(kinds(&decisions));
            let now_used = d.routing(&v, t).bridges.contains_key(&region("na"));
            if now_used != used {
                changes.push((t, now_used));
                used = now_used;
            }
        }
        (changes, events)
    }

    #[test]
    fn a_returning_region_is_routed_to_once_its_window_has_passed() {
        // Lost at 1 s (counted at the 3 s check), back at 4.2 s between checks.
        let (changes, events) = sample_na(|t| (1000..4200).contains(&t), 15_000);
        assert_eq!(
            changes,
            [(1000, false), (7500, true)],
            "off once, on once: held back from 4.5 s (first sample live) for 3 s"
        );
        assert_eq!(
            events,
            [
                EventKind::RegionLost,
                EventKind::RegionLost,
                EventKind::Activated,
                EventKind::RegionReturned,
                EventKind::RegionReturned,
                EventKind::Deactivated
            ],
            "events at checks as before: lost at 3 s, returned at 6 s, deactivated at 9 s"
        );
    }

    #[test]
    fn a_return_that_flaps_inside_its_window_restarts_it() {
        // Back at 4.5 s, seen back by the 6 s check, missing again from 6.5 s to 7 s: the
        // window runs from 7 s.
        let (changes, events) = sample_na(|t| (1000..4500).contains(&t) || t == 6500, 15_000);
        assert_eq!(changes, [(1000, false), (10_000, true)]);
        assert_eq!(events.last(), Some(&EventKind::Deactivated));
        // Missing again before the check that would have seen it back: never counted back.
        let (changes, _) = sample_na(|t| (1000..4500).contains(&t) || t == 5000, 15_000);
        assert_eq!(changes, [(1000, false), (8500, true)]);
    }

    #[test]
    fn a_region_missing_between_checks_only_is_not_held_back() {
        let (changes, events) = sample_na(|t| (1000..2500).contains(&t), 6000);
        assert_eq!(changes, [(1000, false), (2500, true)]);
        assert!(events.is_empty(), "no check saw it missing");
    }

    #[test]
    fn own_region_bridges_must_be_live_members() {
        let mut v = view(&[("eu", 3), ("na", 3)]);
        let bridge = v.regions[&region("eu")].bridges[0].clone();
        v.members.push(crate::membership::Member {
            node_id: bridge,
            generation: 1,
            gossip_addr: "127.0.0.1:1".parse().unwrap(),
            region: region("eu"),
            node_type: crate::identity::NodeType::Super,
            live: false,
            ready: true,
            head: None,
            last_seen_ms: 0,
            bridge: true,
        });
        let bridges = routing_bridges(&v, &[]);
        assert!(
            !bridges.contains_key(&region("eu")),
            "its one bridge is dead"
        );
        assert_eq!(bridges[&region("na")].len(), 1, "other regions as listed");
    }
}
