//! REST API for operators: routes, handlers, errors and extractors.

pub mod error;
pub mod extract;
pub mod handlers;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::config::ApiConfig;
use crate::rate_limit::RateLimiter;
use crate::service::NodeService;

/// State shared by the REST handlers.
#[derive(Clone)]
pub struct AppState {
    /// The node behind the API.
    pub service: Arc<dyn NodeService>,
    /// Limits.
    pub config: Arc<ApiConfig>,
    /// Tx submission limiter, shared with `tx_send`.
    pub limiter: Option<Arc<RateLimiter>>,
    /// The OpenAPI document, generated once.
    pub openapi_yaml: Arc<str>,
}

/// The REST routes of DESIGN §9.
pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/health/live", get(handlers::health_live))
        .route("/health/ready", get(handlers::health_ready))
        .route("/v1/status", get(handlers::status))
        .route("/v1/peers", get(handlers::peers))
        .route("/v1/regions", get(handlers::regions))
        .route("/v1/topology", get(handlers::topology))
        .route("/v1/failover", get(handlers::failover))
        .route("/v1/blocks", get(handlers::blocks))
        .route("/v1/blocks/latest", get(handlers::latest_block))
        .route("/v1/blocks/{height}", get(handlers::block_by_height))
        .route("/v1/blocks/hash/{hash}", get(handlers::block_by_hash))
        .route("/v1/txs", post(handlers::submit_tx))
        .route("/v1/txs/{hash}", get(handlers::tx))
        .route("/v1/mempool", get(handlers::mempool))
        .route("/v1/chain", get(handlers::chain))
        .route("/v1/accounts/{address}", get(handlers::account))
        .route("/metrics", get(handlers::metrics))
        .route("/openapi.yaml", get(handlers::openapi))
        .with_state(state)
}
