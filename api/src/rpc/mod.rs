//! JSON-RPC 2.0 for wallets and explorers: methods, error codes, metrics and transport.

pub mod api;
pub mod codes;
mod middleware;
pub(crate) mod transport;
