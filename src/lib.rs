//! qnet-node: a region-aware peer-to-peer node that produces and carries microblocks.
//!
//! Entry types: [`config::NodeConfig`] (what to run), [`node::start`] (a running node),
//! [`membership::Membership`] (the two-level chitchat view), [`topology`] (routing strategy
//! and links), [`monitor`] (health and failover decisions), [`decision::DecisionLoop`] (what
//! a node decides from its view, driven by the node and the simulator alike),
//! [`identity::Identity`].
//!
//! Feature `testing` (off by default, enabled by the `qnet-sim` crate) adds what only test
//! tooling needs: a clock that follows tokio's paused time and membership diagnostics.

pub mod chain;
pub mod clock;
pub mod command;
pub mod config;
pub mod decision;
pub mod devnet;
pub mod identity;
pub mod membership;
pub mod metrics;
pub mod monitor;
pub mod net;
pub mod node;
pub mod region;
pub mod topology;
pub mod wallet;
