//! Limits of the API server, with documented defaults.

use std::time::Duration;

use crate::origins::CorsOrigins;

/// A token-bucket rate: `per_second` tokens refill per second, at most `burst` saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained rate in requests per second.
    pub per_second: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

/// Limits of the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// Largest request body, REST or JSON-RPC (HTTP body or WebSocket message). Default 1 MiB.
    pub max_body_bytes: u32,
    /// Largest JSON-RPC response, single or batch. Default 10 MiB.
    pub max_response_bytes: u32,
    /// Most calls in one JSON-RPC batch. Default 50.
    pub max_batch_len: u32,
    /// Most open JSON-RPC WebSocket connections. Default 100.
    pub max_ws_connections: u32,
    /// Most subscriptions on one WebSocket connection. Default 16.
    pub max_subscriptions_per_connection: u32,
    /// Most blocks returned by one range query (`/v1/blocks`, `chain_getBlocks`). Default 100.
    pub max_blocks_per_request: u32,
    /// Blocks returned by a range query without a limit. Default 20.
    pub default_blocks_per_request: u32,
    /// Time allowed to answer one HTTP request (not a whole WebSocket session). Default 10 s.
    pub request_timeout: Duration,
    /// Time a client has to send a request's headers; slow or silent connections (slowloris)
    /// are closed after it. Default 10 s.
    pub header_read_timeout: Duration,
    /// Most open HTTP connections (WebSockets included); connections over it are closed at
    /// once. Default 1,024.
    pub max_connections: u32,
    /// Per client IP limit on transaction submission (`POST /v1/txs` and `tx_send` share it);
    /// `None` disables it. Default 20/s, burst 40.
    pub tx_rate_limit: Option<RateLimit>,
    /// Most client IPs tracked by the rate limiter before idle ones are forgotten. Default 10,000.
    pub rate_limit_max_clients: usize,
    /// Origins whose browser pages may call REST and JSON-RPC over HTTP. Default none.
    pub cors_origins: CorsOrigins,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_response_bytes: 10 * 1024 * 1024,
            max_batch_len: 50,
            max_ws_connections: 100,
            max_subscriptions_per_connection: 16,
            max_blocks_per_request: 100,
            default_blocks_per_request: 20,
            request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1_024,
            tx_rate_limit: Some(RateLimit {
                per_second: 20,
                burst: 40,
            }),
            rate_limit_max_clients: 10_000,
            cors_origins: CorsOrigins::None,
        }
    }
}
