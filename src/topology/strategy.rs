//! Routing strategy: which DESIGN §4 strategy fits the live regions, adopted with hysteresis.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How blocks and transactions travel, derived from the number of live regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// 0–1 live regions: push to the region's peers, no cross-region links.
    Direct,
    /// 2–3 live regions: in-region push, bridges of all regions fully meshed.
    RegionalClustering,
    /// 4+ live regions: in-region push, bridges in a bounded-degree multi-hop mesh.
    GlobalMesh,
}

impl Strategy {
    /// Every strategy, in escalating order; for metric labels.
    pub const ALL: &'static [Strategy] = &[
        Strategy::Direct,
        Strategy::RegionalClustering,
        Strategy::GlobalMesh,
    ];

    /// The snake_case name used in the API and as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Direct => "direct",
            Strategy::RegionalClustering => "regional_clustering",
            Strategy::GlobalMesh => "global_mesh",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The strategy the DESIGN §4 table assigns to a number of live regions.
pub fn strategy_for(live_regions: usize) -> Strategy {
    match live_regions {
        0..=1 => Strategy::Direct,
        2..=3 => Strategy::RegionalClustering,
        _ => Strategy::GlobalMesh,
    }
}

/// A strategy switch adopted by [`StrategySelector::observe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyChange {
    /// The strategy given up.
    pub from: Strategy,
    /// The strategy adopted.
    pub to: Strategy,
    /// When the switch was adopted.
    pub at_ms: u64,
}

/// Picks the strategy with hysteresis so that a briefly flapping region does not flap routing.
///
/// A different strategy becomes a *candidate* the first time it is observed; it is adopted
/// at the first observation that is at least `settle_ms` later, provided every observation in
/// between asked for that same strategy. An observation of the current strategy drops the
/// candidate; an observation of a third strategy replaces it and restarts the wait.
///
/// Adoption only happens inside [`observe`](Self::observe), so the caller must observe on a
/// periodic tick as well as on membership changes; [`pending`](Self::pending) tells when the
/// candidate becomes due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrategySelector {
    current: Strategy,
    since_ms: u64,
    settle_ms: u64,
    candidate: Option<(Strategy, u64)>,
}

impl StrategySelector {
    /// A selector that starts with `initial`, adopted at `now_ms`.
    pub fn new(initial: Strategy, settle_ms: u64, now_ms: u64) -> Self {
        StrategySelector {
            current: initial,
            since_ms: now_ms,
            settle_ms,
            candidate: None,
        }
    }

    /// Feeds the number of live regions seen at `now_ms`; returns the switch if one is adopted.
    pub fn observe(&mut self, live_regions: usize, now_ms: u64) -> Option<StrategyChange> {
        let wanted = strategy_for(live_regions);
        if wanted == self.current {
            self.candidate = None;
            return None;
        }
        let first_seen = match self.candidate {
            Some((candidate, first_seen)) if candidate == wanted => first_seen,
            _ => {
                self.candidate = Some((wanted, now_ms));
                now_ms
            }
        };
        if now_ms.saturating_sub(first_seen) < self.settle_ms {
            return None;
        }
        let change = StrategyChange {
            from: self.current,
            to: wanted,
            at_ms: now_ms,
        };
        self.current = wanted;
        self.since_ms = now_ms;
        self.candidate = None;
        Some(change)
    }

    /// The strategy in use.
    pub fn current(&self) -> Strategy {
        self.current
    }

    /// When the strategy in use was adopted.
    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    /// The waiting candidate and the earliest time it can be adopted, if any.
    pub fn pending(&self) -> Option<(Strategy, u64)> {
        self.candidate
            .map(|(strategy, first_seen)| (strategy, first_seen.saturating_add(self.settle_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_edges() {
        assert_eq!(strategy_for(0), Strategy::Direct);
        assert_eq!(strategy_for(1), Strategy::Direct);
        assert_eq!(strategy_for(2), Strategy::RegionalClustering);
        assert_eq!(strategy_for(3), Strategy::RegionalClustering);
        assert_eq!(strategy_for(4), Strategy::GlobalMesh);
        assert_eq!(strategy_for(usize::MAX), Strategy::GlobalMesh);
    }

    #[test]
    fn names_match_serde() {
        for s in Strategy::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Strategy>(&json).unwrap(), *s);
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(Strategy::ALL.len(), 3);
    }

    #[test]
    fn adopts_after_settle_exactly() {
        let mut sel = StrategySelector::new(Strategy::Direct, 1_000, 0);
        assert_eq!(sel.observe(2, 100), None);
        assert_eq!(sel.pending(), Some((Strategy::RegionalClustering, 1_100)));
        assert_eq!(sel.observe(2, 1_099), None);
        assert_eq!(sel.current(), Strategy::Direct);
        let change = sel.observe(3, 1_100).unwrap();
        assert_eq!(
            change,
            StrategyChange {
                from: Strategy::Direct,
                to: Strategy::RegionalClustering,
                at_ms: 1_100
            }
        );
        assert_eq!(sel.current(), Strategy::RegionalClustering);
        assert_eq!(sel.since_ms(), 1_100);
        assert_eq!(sel.pending(), None);
    }

    #[test]
    fn going_back_drops_candidate() {
        let mut sel = StrategySelector::new(Strategy::Direct, 1_000, 0);
        assert_eq!(sel.observe(2, 0), None);
        assert_eq!(sel.observe(1, 500), None);
        assert_eq!(sel.pending(), None);
        // The candidate restarts at 900, so 1_500 is too early.
        assert_eq!(sel.observe(2, 900), None);
        assert_eq!(sel.observe(2, 1_500), None);
        assert!(sel.observe(2, 1_900).is_some());
    }

    #[test]
    fn third_strategy_restarts_wait() {
        let mut sel = StrategySelector::new(Strategy::Direct, 1_000, 0);
        assert_eq!(sel.observe(2, 0), None);
        assert_eq!(sel.observe(5, 800), None);
        assert_eq!(sel.observe(5, 1_700), None);
        assert_eq!(sel.current(), Strategy::Direct);
        let change = sel.observe(4, 1_800).unwrap();
        assert_eq!(change.to, Strategy::GlobalMesh);
        assert_eq!(change.from, Strategy::Direct);
    }

    #[test]
    fn zero_settle_switches_at_once() {
        let mut sel = StrategySelector::new(Strategy::GlobalMesh, 0, 0);
        assert_eq!(sel.observe(1, 5).map(|c| c.to), Some(Strategy::Direct));
        assert_eq!(sel.observe(1, 6), None);
    }

    #[test]
    fn clock_going_back_does_not_adopt() {
        let mut sel = StrategySelector::new(Strategy::Direct, 1_000, 5_000);
        assert_eq!(sel.observe(2, 5_000), None);
        assert_eq!(sel.observe(2, 4_000), None);
        assert_eq!(sel.current(), Strategy::Direct);
    }
}
