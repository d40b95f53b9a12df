//! The two monitor tasks of DESIGN §5. Both only read the local membership view. The
//! regional health monitor logs one WARN line per check below the threshold and nothing
//! otherwise; the failover monitor applies the conservative failover state machine and
//! records its events (log, metrics, sled).

use std::sync::Arc;

use tokio::sync::watch;
use tracing::{info, warn};

use super::NodeShared;
use crate::membership::MembershipView;
use crate::metrics::{MONITOR_FAILOVER, MONITOR_HEALTH};
use crate::monitor::{
    assess, warning_fields, EventKind, FailoverEvent, FailoverMonitor, FailoverPolicy, RegionCount,
};
use crate::region::Region;

/// Failover events kept in the store.
pub const STORED_EVENTS: usize = 1000;

/// What the failover monitor last decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailoverStatus {
    /// Whether failover is active.
    pub active: bool,
    /// Missing regions at the last check.
    pub missing: Vec<Region>,
    /// Regions back but inside their restoration window.
    pub restoring: Vec<Region>,
    /// Time of the last check (ms since epoch).
    pub last_check_ms: Option<u64>,
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

/// Regional health monitor: runs every `regional_interval` until `stop`.
pub async fn run_health(shared: Arc<NodeShared>, mut stop: watch::Receiver<bool>) {
    let interval = shared.config.monitor.regional_interval;
    let threshold = shared.config.monitor.health_warning_threshold;
    let m = shared.metrics.clone();
    m.monitor_interval
        .with_label_values(&[MONITOR_HEALTH])
        .set(interval.as_secs_f64());
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if !*shared.joined.borrow() {
            continue;
        }
        let view = shared.view.borrow().clone();
        let report = assess(&region_counts(&view), threshold);
        m.monitor_checks.with_label_values(&[MONITOR_HEALTH]).inc();
        m.network_health.set(report.health_score);
        m.regions_missing.set(report.missing_regions().len() as i64);
        m.region_health.reset();
        for r in &report.regions {
            m.region_health
                .with_label_values(&[r.region.as_str()])
                .set(r.health);
        }
        if report.below_threshold {
            m.health_warnings.inc();
            warn!(
                health_score = report.health_score,
                threshold,
                regions = %warning_fields(&report),
                "network health below threshold"
            );
        }
    }
}

/// Failover monitor: runs every `failover_interval` until `stop`.
pub async fn run_failover(shared: Arc<NodeShared>, mut stop: watch::Receiver<bool>) {
    let interval = shared.config.monitor.failover_interval;
    let m = shared.metrics.clone();
    m.monitor_interval
        .with_label_values(&[MONITOR_FAILOVER])
        .set(interval.as_secs_f64());
    let policy = FailoverPolicy::for_interval(
        shared.config.monitor.min_failed_regions,
        interval.as_millis() as u64,
    );
    let mut monitor = FailoverMonitor::new(policy);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if !*shared.joined.borrow() {
            continue;
        }
        let now = shared.clock.now_ms();
        let view = shared.view.borrow().clone();
        let events = monitor.check(&view.self_region, &region_counts(&view), now);
        m.monitor_checks
            .with_label_values(&[MONITOR_FAILOVER])
            .inc();
        for event in &events {
            record(&shared, event);
        }
        m.failover_active.set(i64::from(monitor.active()));
        *shared.failover.write().unwrap_or_else(|e| e.into_inner()) = FailoverStatus {
            active: monitor.active(),
            missing: monitor.missing_regions().iter().cloned().collect(),
            restoring: monitor.restoring_regions().keys().cloned().collect(),
            last_check_ms: monitor.last_check_ms(),
        };
    }
}

fn record(shared: &NodeShared, event: &FailoverEvent) {
    let m = &shared.metrics;
    let regions: Vec<&str> = event.regions.iter().map(Region::as_str).collect();
    let regions = regions.join(",");
    m.failover_events
        .with_label_values(&[event.kind.as_str()])
        .inc();
    match event.kind {
        EventKind::Activated => {
            m.failover_activations.inc();
            warn!(missing = %regions, "conservative failover activated");
        }
        EventKind::Deactivated => {
            m.failover_restorations.inc();
            info!(still_missing = %regions, "conservative failover deactivated");
        }
        EventKind::RegionLost => warn!(regions = %regions, "region lost"),
        EventKind::RegionReturned => info!(regions = %regions, "region returned"),
    }
    match serde_json::to_vec(event) {
        Ok(bytes) => {
            if let Err(e) = shared.store.append_event(&bytes) {
                warn!(error = %e, "cannot store failover event");
            }
            let _ = shared.store.retain_events(STORED_EVENTS);
        }
        Err(e) => warn!(error = %e, "cannot encode failover event"),
    }
}

/// The most recent stored failover events, newest last.
pub fn recent_events(shared: &NodeShared, limit: usize) -> Vec<FailoverEvent> {
    shared
        .store
        .recent_events(limit)
        .unwrap_or_default()
        .into_iter()
        .rev()
        .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok())
        .collect()
}
