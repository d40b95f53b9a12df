//! Data plane (DESIGN §7): TCP on the p2p port, length-delimited frames of borsh messages,
//! an authenticating handshake before anything else.

pub mod handshake;
pub mod message;
pub mod rate;
pub mod server;

pub use handshake::{LocalInfo, PeerInfo};
pub use message::{Message, Seeds};
