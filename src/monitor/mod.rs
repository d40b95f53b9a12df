//! Monitors (DESIGN §5): regional health and conservative failover, as pure decisions.
//!
//! Both read only counts from the local membership view; the caller runs them on their
//! intervals, logs, counts and stores what they return.

pub mod failover;
pub mod health;

pub use failover::{
    EventKind, FailoverEvent, FailoverMonitor, FailoverPolicy, DEFAULT_FAILOVER_INTERVAL_MS,
    DEFAULT_MIN_FAILED_REGIONS,
};
pub use health::{
    assess, warning_fields, HealthReport, RegionCount, RegionHealth,
    DEFAULT_HEALTH_WARNING_THRESHOLD,
};
