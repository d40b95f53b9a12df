//! End-to-end tests: real `qnet-node` processes on 127.0.0.1, real gossip, real sled,
//! real HTTP. One test binary; one module per area.

mod chain;
mod common;
mod membership;
mod metrics;
mod rpc;
mod unified;
