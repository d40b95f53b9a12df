//! The decision task: drives the node's [`DecisionLoop`] on every membership change, every
//! second (strategy hysteresis needs time to pass) and whenever a monitor check is due, and
//! carries its decisions out: the routing state and failover status the API and the data
//! plane read, metrics, log lines and the failover events kept in the store (DESIGN §4, §5).
//! The regional health check logs one WARN line per check below the threshold and nothing
//! otherwise.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

use super::NodeShared;
use crate::decision::{Cadence, DecisionLoop, DecisionParams, Decisions, RoutingState};
use crate::membership::MembershipView;
use crate::metrics::{MONITOR_FAILOVER, MONITOR_HEALTH};
use crate::monitor::{warning_fields, EventKind, FailoverEvent, FailoverPolicy, HealthReport};
use crate::region::Region;
use crate::topology::{LinkKind, Strategy};

/// Failover events kept in the store.
pub const STORED_EVENTS: usize = 1000;

/// Runs until `stop`.
pub async fn run(shared: Arc<NodeShared>, mut stop: watch::Receiver<bool>) {
    let monitor = &shared.config.monitor;
    let (health_interval, failover_interval) =
        (monitor.regional_interval, monitor.failover_interval);
    let m = &shared.metrics;
    m.monitor_interval
        .with_label_values(&[MONITOR_HEALTH])
        .set(health_interval.as_secs_f64());
    m.monitor_interval
        .with_label_values(&[MONITOR_FAILOVER])
        .set(failover_interval.as_secs_f64());
    let start_ms = shared.clock.now_ms();
    let cadence = |interval: Duration| {
        let interval_ms = interval.as_millis() as u64;
        Cadence::new(interval_ms, start_ms + interval_ms)
    };
    let mut decisions = DecisionLoop::new(DecisionParams {
        settle_ms: shared.config.membership.strategy_settle_time.as_millis() as u64,
        health_threshold: monitor.health_warning_threshold,
        health: cadence(health_interval),
        failover_policy: FailoverPolicy::for_interval(
            monitor.min_failed_regions,
            failover_interval.as_millis() as u64,
        ),
        failover: cadence(failover_interval),
    });
    let mut view_rx = shared.view.clone();
    // A light node's view never changes and its sender is gone; it still ticks.
    let mut view_open = true;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let now = shared.clock.now_ms();
        let view = view_rx.borrow_and_update().clone();
        let joined = *shared.joined.borrow();
        carry_out(&shared, &view, decisions.observe(&view, joined, now));
        let routing = decisions.routing(&view, now);
        publish_routing(&shared, routing);
        let until_check = decisions
            .next_check_ms()
            .saturating_sub(shared.clock.now_ms());
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::time::sleep(Duration::from_millis(until_check)) => {}
            r = view_rx.changed(), if view_open => view_open = r.is_ok(),
            _ = stop.changed() => return,
        }
    }
}

fn carry_out(shared: &NodeShared, view: &MembershipView, decisions: Decisions) {
    if let Some(change) = decisions.strategy_change {
        let live_regions = view.live_regions().len();
        info!(from = %change.from, to = %change.to, live_regions, "routing strategy changed");
    }
    if let Some(report) = decisions.health {
        report_health(shared, &report);
    }
    if let Some(check) = decisions.failover {
        shared
            .metrics
            .monitor_checks
            .with_label_values(&[MONITOR_FAILOVER])
            .inc();
        for event in &check.events {
            record(shared, event);
        }
        shared
            .metrics
            .failover_active
            .set(i64::from(check.status.active));
        *shared.failover.write().unwrap_or_else(|e| e.into_inner()) = check.status;
    }
}

fn report_health(shared: &NodeShared, report: &HealthReport) {
    let m = &shared.metrics;
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
            threshold = shared.config.monitor.health_warning_threshold,
            regions = %warning_fields(report),
            "network health below threshold"
        );
    }
}

fn publish_routing(shared: &NodeShared, routing: RoutingState) {
    let m = &shared.metrics;
    for s in Strategy::ALL {
        m.topology_strategy
            .with_label_values(&[s.as_str()])
            .set(i64::from(*s == routing.strategy));
    }
    let list = routing.links.list();
    for kind in LinkKind::ALL {
        let n = list.iter().filter(|l| l.kind == *kind).count();
        m.links.with_label_values(&[kind.as_str()]).set(n as i64);
    }
    *shared.routing.write().unwrap_or_else(|e| e.into_inner()) = routing;
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
