//! Conservative failover (DESIGN §5): activates when several other regions are missing at once,
//! restores gradually.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::health::{merge_counts, RegionCount};
use crate::region::Region;

/// Default number of missing other regions that activates failover.
pub const DEFAULT_MIN_FAILED_REGIONS: usize = 2;

/// Default failover monitor interval, also the default restore window.
pub const DEFAULT_FAILOVER_INTERVAL_MS: u64 = 300_000;

/// When failover activates and how long a returning region is kept on probation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverPolicy {
    /// Missing regions other than the own one needed to activate; 0 is treated as 1.
    pub min_failed_regions: usize,
    /// How long a returned region must stay live before it counts as restored.
    pub restore_window_ms: u64,
}

impl FailoverPolicy {
    /// The policy for a monitor checking every `interval_ms`: restore window of one interval.
    pub fn for_interval(min_failed_regions: usize, interval_ms: u64) -> Self {
        FailoverPolicy {
            min_failed_regions,
            restore_window_ms: interval_ms,
        }
    }
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        Self::for_interval(DEFAULT_MIN_FAILED_REGIONS, DEFAULT_FAILOVER_INTERVAL_MS)
    }
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Failover turned on.
    Activated,
    /// Failover turned off.
    Deactivated,
    /// A known region has no live member any more.
    RegionLost,
    /// A missing region has a live member again (restoration window starts).
    RegionReturned,
}

impl EventKind {
    /// Every kind; for metric labels.
    pub const ALL: &'static [EventKind] = &[
        EventKind::Activated,
        EventKind::Deactivated,
        EventKind::RegionLost,
        EventKind::RegionReturned,
    ];

    /// The snake_case name used in the API, in storage and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Activated => "activated",
            EventKind::Deactivated => "deactivated",
            EventKind::RegionLost => "region_lost",
            EventKind::RegionReturned => "region_returned",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failover event, to be logged, counted, stored and listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverEvent {
    /// Time of the check that produced it.
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// For region events the one region; for `activated` the missing other regions; for
    /// `deactivated` the other regions still missing or restoring (fewer than the threshold).
    pub regions: Vec<Region>,
}

/// The failover state machine, fed one membership view per monitor check.
///
/// A region is *missing* when it is known but has no live member. When a missing region is
/// seen live again it becomes *restoring*; it is restored once a check at least
/// `restore_window_ms` after its return still sees it live. A restoring region seen missing
/// again is lost again and its window restarts on its next return.
///
/// Region events are reported for every region, the own one included, but only regions
/// other than the own one count towards failover. Failover activates when at least
/// `min_failed_regions` of them are missing (restoring ones do not count: they are live) and
/// deactivates when fewer than `min_failed_regions` are missing or restoring, so a region
/// flapping back is not trusted until its window has passed.
///
/// A region absent from a check's counts keeps its state (no information is not a return);
/// a region reported with `known == 0` has aged out of the retention window and is forgotten
/// without an event.
#[derive(Clone, Debug)]
pub struct FailoverMonitor {
    policy: FailoverPolicy,
    active: bool,
    missing: BTreeSet<Region>,
    restoring: BTreeMap<Region, u64>,
    last_check_ms: Option<u64>,
    activations: u64,
    restorations: u64,
}

impl FailoverMonitor {
    /// A monitor with no region missing and failover inactive.
    pub fn new(policy: FailoverPolicy) -> Self {
        FailoverMonitor {
            policy,
            active: false,
            missing: BTreeSet::new(),
            restoring: BTreeMap::new(),
            last_check_ms: None,
            activations: 0,
            restorations: 0,
        }
    }

    /// Runs one check on the view at `now_ms`; returns the events, region events first.
    pub fn check(
        &mut self,
        own_region: &Region,
        regions: &[RegionCount],
        now_ms: u64,
    ) -> Vec<FailoverEvent> {
        let mut events = Vec::new();
        let event = |kind, regions| FailoverEvent {
            at_ms: now_ms,
            kind,
            regions,
        };
        for (region, (known, live)) in merge_counts(regions) {
            if known == 0 && live == 0 {
                self.missing.remove(region);
                self.restoring.remove(region);
            } else if live == 0 {
                self.restoring.remove(region);
                if self.missing.insert(region.clone()) {
                    events.push(event(EventKind::RegionLost, vec![region.clone()]));
                }
            } else if self.missing.remove(region) {
                self.restoring.insert(region.clone(), now_ms);
                events.push(event(EventKind::RegionReturned, vec![region.clone()]));
            } else if let Some(&returned_at) = self.restoring.get(region) {
                if now_ms.saturating_sub(returned_at) >= self.policy.restore_window_ms {
                    self.restoring.remove(region);
                }
            }
        }

        let threshold = self.policy.min_failed_regions.max(1);
        let missing = others(self.missing.iter(), own_region);
        if !self.active && missing.len() >= threshold {
            self.active = true;
            self.activations += 1;
            events.push(event(EventKind::Activated, missing));
        } else if self.active {
            let mut unrestored =
                others(self.missing.iter().chain(self.restoring.keys()), own_region);
            if unrestored.len() < threshold {
                self.active = false;
                self.restorations += 1;
                unrestored.sort();
                events.push(event(EventKind::Deactivated, unrestored));
            }
        }
        self.last_check_ms = Some(now_ms);
        events
    }

    /// Whether failover is active.
    pub fn active(&self) -> bool {
        self.active
    }

    /// Regions known but without a live member, the own region included, sorted.
    pub fn missing_regions(&self) -> &BTreeSet<Region> {
        &self.missing
    }

    /// Regions back but not yet restored, with the time each was seen live again.
    pub fn restoring_regions(&self) -> &BTreeMap<Region, u64> {
        &self.restoring
    }

    /// Time of the last check, if any.
    pub fn last_check_ms(&self) -> Option<u64> {
        self.last_check_ms
    }

    /// How many times failover has activated.
    pub fn activations(&self) -> u64 {
        self.activations
    }

    /// How many times failover has deactivated after a restoration.
    pub fn restorations(&self) -> u64 {
        self.restorations
    }

    /// The policy in force.
    pub fn policy(&self) -> FailoverPolicy {
        self.policy
    }
}

/// The regions other than `own`.
fn others<'a>(regions: impl Iterator<Item = &'a Region>, own: &Region) -> Vec<Region> {
    regions.filter(|r| *r != own).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: u64 = 1_000;

    fn r(name: &str) -> Region {
        Region::new(name).unwrap()
    }

    /// Counts for the own region `eu` (always live) and the other regions named in `all`,
    /// those in `down` having no live member.
    fn view(all: &[&str], down: &[&str]) -> Vec<RegionCount> {
        std::iter::once("eu")
            .chain(all.iter().copied())
            .map(|name| RegionCount {
                region: r(name),
                known: 3,
                live: if down.contains(&name) { 0 } else { 2 },
            })
            .collect()
    }

    const OTHERS: &[&str] = &["na", "asia", "sa", "africa"];

    fn monitor(min_failed_regions: usize) -> FailoverMonitor {
        FailoverMonitor::new(FailoverPolicy::for_interval(min_failed_regions, WINDOW))
    }

    fn kinds(events: &[FailoverEvent]) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn zero_or_one_missing_never_activates() {
        let mut m = monitor(DEFAULT_MIN_FAILED_REGIONS);
        assert!(m.check(&r("eu"), &view(OTHERS, &[]), 0).is_empty());
        let events = m.check(&r("eu"), &view(OTHERS, &["na"]), WINDOW);
        assert_eq!(kinds(&events), vec![EventKind::RegionLost]);
        assert_eq!(events[0].regions, vec![r("na")]);
        assert!(m
            .check(&r("eu"), &view(OTHERS, &["na"]), 2 * WINDOW)
            .is_empty());
        assert!(!m.active());
        assert_eq!(m.activations(), 0);
        assert_eq!(m.last_check_ms(), Some(2 * WINDOW));
    }

    #[test]
    fn two_missing_activate_once() {
        let mut m = monitor(2);
        let events = m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 0);
        assert_eq!(
            kinds(&events),
            vec![
                EventKind::RegionLost,
                EventKind::RegionLost,
                EventKind::Activated
            ]
        );
        assert_eq!(events[2].regions, vec![r("na"), r("sa")]);
        assert!(m.active());
        let third = m.check(&r("eu"), &view(OTHERS, &["na", "sa", "asia"]), WINDOW);
        assert_eq!(kinds(&third), vec![EventKind::RegionLost]);
        assert!(m
            .check(&r("eu"), &view(OTHERS, &["na", "sa", "asia"]), 2 * WINDOW)
            .is_empty());
        assert_eq!(m.activations(), 1);
    }

    #[test]
    fn three_missing_activate_with_all_listed() {
        let mut m = monitor(2);
        let events = m.check(&r("eu"), &view(OTHERS, &["na", "sa", "asia"]), 0);
        let activated = events
            .iter()
            .find(|e| e.kind == EventKind::Activated)
            .unwrap();
        assert_eq!(activated.regions, vec![r("asia"), r("na"), r("sa")]);
        assert_eq!(m.missing_regions().len(), 3);
    }

    #[test]
    fn losses_on_separate_checks_activate_at_the_second() {
        let mut m = monitor(2);
        m.check(&r("eu"), &view(OTHERS, &["na"]), 0);
        assert!(!m.active());
        let events = m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), WINDOW);
        assert_eq!(
            kinds(&events),
            vec![EventKind::RegionLost, EventKind::Activated]
        );
        assert_eq!(events[0].regions, vec![r("sa")]);
    }

    #[test]
    fn own_region_missing_does_not_count() {
        let mut m = monitor(2);
        let mut counts = view(OTHERS, &["na"]);
        counts[0].live = 0;
        let events = m.check(&r("eu"), &counts, 0);
        assert!(!m.active());
        assert_eq!(
            kinds(&events),
            vec![EventKind::RegionLost, EventKind::RegionLost]
        );
        assert!(m.missing_regions().contains(&r("eu")));
        // With threshold 1 the one missing other region is enough, the own one still not.
        let mut one = monitor(1);
        let own_only = vec![RegionCount {
            region: r("eu"),
            known: 3,
            live: 0,
        }];
        one.check(&r("eu"), &own_only, 0);
        assert!(!one.active());
    }

    #[test]
    fn restoration_waits_exactly_one_window() {
        let mut m = monitor(2);
        m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 0);
        let back = m.check(&r("eu"), &view(OTHERS, &["sa"]), 10_000);
        assert_eq!(kinds(&back), vec![EventKind::RegionReturned]);
        assert_eq!(back[0].regions, vec![r("na")]);
        assert_eq!(m.restoring_regions().get(&r("na")), Some(&10_000));
        // Still counted as missing for deactivation just before the boundary.
        assert!(m
            .check(&r("eu"), &view(OTHERS, &["sa"]), 10_000 + WINDOW - 1)
            .is_empty());
        assert!(m.active());
        let done = m.check(&r("eu"), &view(OTHERS, &["sa"]), 10_000 + WINDOW);
        assert_eq!(kinds(&done), vec![EventKind::Deactivated]);
        assert_eq!(done[0].regions, vec![r("sa")]);
        assert!(!m.active());
        assert!(m.restoring_regions().is_empty());
        assert_eq!(m.restorations(), 1);
    }

    #[test]
    fn both_returning_deactivate_after_window_with_nothing_left() {
        let mut m = monitor(2);
        m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 0);
        let back = m.check(&r("eu"), &view(OTHERS, &[]), WINDOW);
        assert_eq!(back.len(), 2);
        assert!(m.active());
        let done = m.check(&r("eu"), &view(OTHERS, &[]), 2 * WINDOW);
        assert_eq!(kinds(&done), vec![EventKind::Deactivated]);
        assert!(done[0].regions.is_empty());
    }

    #[test]
    fn stays_active_while_enough_remain_missing() {
        let mut m = monitor(2);
        m.check(&r("eu"), &view(OTHERS, &["na", "sa", "asia"]), 0);
        m.check(&r("eu"), &view(OTHERS, &["sa", "asia"]), WINDOW);
        assert!(m
            .check(&r("eu"), &view(OTHERS, &["sa", "asia"]), 2 * WINDOW)
            .is_empty());
        assert!(m.active());
        assert!(m.restoring_regions().is_empty());
    }

    #[test]
    fn flapping_region_is_lost_again_and_window_restarts() {
        let mut m = monitor(2);
        m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 0);
        m.check(&r("eu"), &view(OTHERS, &["sa"]), WINDOW);
        let again = m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), WINDOW + 500);
        assert_eq!(kinds(&again), vec![EventKind::RegionLost]);
        assert!(m.restoring_regions().is_empty());
        let back = m.check(&r("eu"), &view(OTHERS, &["sa"]), WINDOW + 700);
        assert_eq!(kinds(&back), vec![EventKind::RegionReturned]);
        // The first return at WINDOW no longer counts: the window runs from WINDOW + 700.
        assert!(m
            .check(&r("eu"), &view(OTHERS, &["sa"]), 2 * WINDOW + 699)
            .is_empty());
        assert!(m.active());
        let done = m.check(&r("eu"), &view(OTHERS, &["sa"]), 2 * WINDOW + 700);
        assert_eq!(kinds(&done), vec![EventKind::Deactivated]);
        assert_eq!(m.activations(), 1);
    }

    #[test]
    fn flapping_while_inactive_never_activates() {
        let mut m = monitor(2);
        for step in 0..10u64 {
            let down: &[&str] = if step % 2 == 0 { &["na"] } else { &[] };
            m.check(&r("eu"), &view(OTHERS, down), step * WINDOW);
            assert!(!m.active());
        }
    }

    #[test]
    fn returned_but_restoring_does_not_count_for_activation() {
        let mut m = monitor(2);
        m.check(&r("eu"), &view(OTHERS, &["na"]), 0);
        m.check(&r("eu"), &view(OTHERS, &[]), WINDOW);
        let events = m.check(&r("eu"), &view(OTHERS, &["sa"]), WINDOW + 1);
        assert_eq!(kinds(&events), vec![EventKind::RegionLost]);
        assert!(!m.active());
    }

    #[test]
    fn threshold_one_activates_on_a_single_region() {
        let mut m = monitor(1);
        let events = m.check(&r("eu"), &view(OTHERS, &["na"]), 0);
        assert_eq!(
            kinds(&events),
            vec![EventKind::RegionLost, EventKind::Activated]
        );
        m.check(&r("eu"), &view(OTHERS, &[]), WINDOW);
        assert!(m.active());
        let done = m.check(&r("eu"), &view(OTHERS, &[]), 2 * WINDOW);
        assert_eq!(kinds(&done), vec![EventKind::Deactivated]);
        let mut zero = monitor(0);
        assert!(zero.check(&r("eu"), &view(OTHERS, &[]), 0).is_empty());
        assert!(!zero.active());
    }

    #[test]
    fn threshold_three() {
        let mut m = monitor(3);
        m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 0);
        assert!(!m.active());
        let events = m.check(&r("eu"), &view(OTHERS, &["na", "sa", "asia"]), WINDOW);
        assert_eq!(
            kinds(&events),
            vec![EventKind::RegionLost, EventKind::Activated]
        );
        // One back and restored: two missing is below three, so failover ends.
        m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 2 * WINDOW);
        assert!(m.active());
        let done = m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 3 * WINDOW);
        assert_eq!(kinds(&done), vec![EventKind::Deactivated]);
        assert_eq!(done[0].regions, vec![r("na"), r("sa")]);
    }

    #[test]
    fn second_episode_activates_again() {
        let mut m = monitor(2);
        m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 0);
        m.check(&r("eu"), &view(OTHERS, &[]), WINDOW);
        m.check(&r("eu"), &view(OTHERS, &[]), 2 * WINDOW);
        assert!(!m.active());
        let events = m.check(&r("eu"), &view(OTHERS, &["asia", "africa"]), 3 * WINDOW);
        assert_eq!(events.last().map(|e| e.kind), Some(EventKind::Activated));
        assert_eq!(m.activations(), 2);
        assert_eq!(m.restorations(), 1);
    }

    #[test]
    fn absent_region_keeps_state_and_aged_out_region_is_forgotten() {
        let mut m = monitor(2);
        m.check(&r("eu"), &view(OTHERS, &["na", "sa"]), 0);
        // No counts for na or sa at all: nothing changes.
        assert!(m.check(&r("eu"), &view(&["asia"], &[]), WINDOW).is_empty());
        assert!(m.active());
        // na aged out (known 0): forgotten silently, failover ends.
        let mut counts = view(&["sa"], &["sa"]);
        counts.push(RegionCount {
            region: r("na"),
            known: 0,
            live: 0,
        });
        let events = m.check(&r("eu"), &counts, 2 * WINDOW);
        assert_eq!(kinds(&events), vec![EventKind::Deactivated]);
        assert_eq!(
            m.missing_regions().iter().collect::<Vec<_>>(),
            vec![&r("sa")]
        );
    }

    #[test]
    fn kind_names_match_serde() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), *kind);
        }
        assert_eq!(EventKind::ALL.len(), 4);
    }
}
