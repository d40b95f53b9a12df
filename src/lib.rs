//! qnet-node: a region-aware peer-to-peer node that produces and carries microblocks.
//!
//! Entry types: [`config::NodeConfig`] (what to run), [`node::Node`] (a running node),
//! [`membership::Membership`] (the two-level chitchat view), [`identity::Identity`].

pub mod chain;
pub mod clock;
pub mod identity;
pub mod region;
