//! qnet-node: a region-aware peer-to-peer node that produces and carries microblocks.
//!
//! Entry types: [`config::NodeConfig`] (what to run), [`node::Node`] (a running node),
//! [`membership::Membership`] (the two-level chitchat view), [`identity::Identity`].

pub mod clock;
pub mod config;
pub mod identity;
pub mod region;
pub mod command;
pub mod devnet;
pub mod membership;
pub mod metrics;
pub mod net;
pub mod node;
