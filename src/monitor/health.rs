//! Regional health (DESIGN §5): per-region and network health from known and live member counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::region::Region;

/// Default network health below which the monitor warns.
pub const DEFAULT_HEALTH_WARNING_THRESHOLD: f64 = 0.8;

/// Member counts of one region in the local view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionCount {
    /// The region.
    pub region: Region,
    /// Members seen within the retention window.
    pub known: usize,
    /// Members live now.
    pub live: usize,
}

/// Health of one region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegionHealth {
    /// The region.
    pub region: Region,
    /// Members seen within the retention window (at least `live`).
    pub known: usize,
    /// Members live now.
    pub live: usize,
    /// `live / known`, in 0..=1; 1 when nothing is known.
    pub health: f64,
    /// Known but without a live member.
    pub missing: bool,
}

/// Outcome of one health check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Per region, sorted by region name.
    pub regions: Vec<RegionHealth>,
    /// Live over known members across all regions; 1 when nothing is known.
    pub health_score: f64,
    /// Whether `health_score` is strictly below the warning threshold.
    pub below_threshold: bool,
}

impl HealthReport {
    /// The missing regions, sorted by name.
    pub fn missing_regions(&self) -> Vec<Region> {
        self.regions
            .iter()
            .filter(|r| r.missing)
            .map(|r| r.region.clone())
            .collect()
    }
}

/// Computes region and network health and compares the score with `threshold`.
///
/// Counts for the same region are added together. A live member is always a known one, so
/// `known` is raised to `live` if a racy view reports fewer known than live members; health
/// therefore never exceeds 1. A region with nothing known has health 1 (nothing is expected
/// of it) and is not missing. A NaN threshold never warns.
pub fn assess(regions: &[RegionCount], threshold: f64) -> HealthReport {
    let regions: Vec<RegionHealth> = merge_counts(regions)
        .into_iter()
        .map(|(region, (known, live))| {
            let known = known.max(live);
            RegionHealth {
                region: region.clone(),
                known,
                live,
                health: ratio(live, known),
                missing: known > 0 && live == 0,
            }
        })
        .collect();
    let known = regions
        .iter()
        .fold(0usize, |acc, r| acc.saturating_add(r.known));
    let live = regions
        .iter()
        .fold(0usize, |acc, r| acc.saturating_add(r.live));
    let health_score = ratio(live, known);
    HealthReport {
        regions,
        health_score,
        below_threshold: health_score < threshold,
    }
}

/// Known and live counts per region, duplicates added together, in region order.
pub(crate) fn merge_counts(regions: &[RegionCount]) -> BTreeMap<&Region, (usize, usize)> {
    let mut merged: BTreeMap<&Region, (usize, usize)> = BTreeMap::new();
    for count in regions {
        let entry = merged.entry(&count.region).or_default();
        entry.0 = entry.0.saturating_add(count.known);
        entry.1 = entry.1.saturating_add(count.live);
    }
    merged
}

/// `live / known`, or 1 when nothing is known.
fn ratio(live: usize, known: usize) -> f64 {
    if known == 0 {
        1.0
    } else {
        live as f64 / known as f64
    }
}

/// Each region's status for the warning line, e.g. `eu=3/4 na=0/2(missing)`.
pub fn warning_fields(report: &HealthReport) -> String {
    let parts: Vec<String> = report
        .regions
        .iter()
        .map(|r| {
            let flag = if r.missing { "(missing)" } else { "" };
            format!("{}={}/{}{flag}", r.region, r.live, r.known)
        })
        .collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(region: &str, known: usize, live: usize) -> RegionCount {
        RegionCount {
            region: Region::new(region).unwrap(),
            known,
            live,
        }
    }

    #[test]
    fn per_region_and_network_health() {
        let report = assess(&[count("na", 2, 0), count("eu", 4, 3)], 0.8);
        assert_eq!(report.regions.len(), 2);
        assert_eq!(report.regions[0].region.as_str(), "eu");
        assert_eq!(report.regions[0].health, 0.75);
        assert!(!report.regions[0].missing);
        assert_eq!(report.regions[1].health, 0.0);
        assert!(report.regions[1].missing);
        assert_eq!(report.health_score, 0.5);
        assert!(report.below_threshold);
        assert_eq!(report.missing_regions(), vec![Region::new("na").unwrap()]);
        assert_eq!(warning_fields(&report), "eu=3/4 na=0/2(missing)");
    }

    #[test]
    fn threshold_is_strict() {
        let at = assess(&[count("eu", 5, 4)], 0.8);
        assert_eq!(at.health_score, 0.8);
        assert!(!at.below_threshold);
        let below = assess(&[count("eu", 1000, 799)], 0.8);
        assert!(below.below_threshold);
        let above = assess(&[count("eu", 1000, 801)], 0.8);
        assert!(!above.below_threshold);
    }

    #[test]
    fn nothing_known_is_healthy() {
        let empty = assess(&[], DEFAULT_HEALTH_WARNING_THRESHOLD);
        assert_eq!(empty.health_score, 1.0);
        assert!(!empty.below_threshold);
        assert_eq!(warning_fields(&empty), "");
        let zero = assess(&[count("eu", 0, 0)], DEFAULT_HEALTH_WARNING_THRESHOLD);
        assert_eq!(zero.regions[0].health, 1.0);
        assert!(!zero.regions[0].missing);
        assert_eq!(zero.health_score, 1.0);
    }

    #[test]
    fn live_above_known_is_capped() {
        let report = assess(&[count("eu", 2, 3)], 0.8);
        assert_eq!(report.regions[0].known, 3);
        assert_eq!(report.regions[0].health, 1.0);
        assert_eq!(report.health_score, 1.0);
    }

    #[test]
    fn duplicate_regions_are_merged() {
        let report = assess(&[count("eu", 2, 1), count("eu", 2, 2)], 0.8);
        assert_eq!(report.regions.len(), 1);
        assert_eq!(report.regions[0].known, 4);
        assert_eq!(report.regions[0].live, 3);
    }

    #[test]
    fn threshold_edges() {
        let full = assess(&[count("eu", 4, 4)], 1.0);
        assert!(!full.below_threshold);
        let zero = assess(&[count("eu", 4, 0)], 0.0);
        assert!(!zero.below_threshold);
        assert!(!assess(&[count("eu", 4, 0)], f64::NAN).below_threshold);
    }
}
