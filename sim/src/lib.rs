//! Large-scale simulator (DESIGN §11): many nodes of the real membership code in one
//! process on tokio's paused clock, over an in-memory network with a per-region latency
//! matrix, loss and region cut-offs; the real strategy, link planning and failover decisions
//! driven from every node's own view; block propagation modelled over the planned links.
//!
//! Entry points: [`scenario::run`] (the two-level network, every scenario) and
//! [`flat::run`] (the flat chitchat baseline). The `qnet-sim` binary runs both.

pub mod flat;
pub mod fleet;
pub mod journal;
pub mod latency;
pub mod network;
pub mod propagation;
pub mod report;
pub mod scenario;

pub use scenario::{run, Check, Coverage, Outcome, SimConfig, SimError};

/// Resident set size of this process in bytes (Linux), if readable.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Builds the current-thread runtime with paused time that simulations run on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
}
