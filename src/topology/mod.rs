//! Topology analysis (DESIGN §4): the routing [`Strategy`], the region bridges and the link plan.
//!
//! Pure decisions only: callers pass a view of the membership and the current time.

pub mod bridges;
pub mod links;
pub mod mesh;
pub mod overlay;
pub mod strategy;

pub use bridges::{select_bridges, BridgeCandidate, DEFAULT_BRIDGES_PER_REGION};
pub use links::{is_bridge, plan_links, Link, LinkKind, LinkLimits, LinkView, Links, RegionMember};
pub use mesh::{bridge_mesh, mesh_peers, DEFAULT_BRIDGE_DEGREE};
pub use overlay::{region_peers, DEFAULT_FANOUT};
pub use strategy::{strategy_for, Strategy, StrategyChange, StrategySelector};
