//! JSON-RPC 2.0 for wallets and explorers: methods, error codes, metrics and transport.

pub mod api;
pub mod codes;
pub mod middleware;
pub mod transport;
