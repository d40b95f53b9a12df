//! REST handlers, one per route of DESIGN §9, each documented for OpenAPI.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::dto::{
    AccountDto, BlockDto, BlocksDto, ChainSpecDto, ErrorBody, FailoverDto, HealthDto, PeersDto,
    PendingTxsDto, RegionsDto, StatusDto, SubmitTxDto, TopologyDto, TxDto, TxHashDto,
};
use crate::params;
use crate::rest::error::RestError;
use crate::rest::extract::{ApiJson, ApiPath, ApiQuery, TxRateLimited};
use crate::rest::AppState;
use crate::service::NodeService;

/// Content type of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// Content type of the OpenAPI document.
pub const YAML_CONTENT_TYPE: &str = "application/yaml";

/// Runs a service call on the blocking pool; a panic in the node becomes a 500.
async fn run<T, F>(state: &AppState, f: F) -> Result<T, RestError>
where
    T: Send + 'static,
    F: FnOnce(&dyn NodeService) -> T + Send + 'static,
{
    let service = state.service.clone();
    tokio::task::spawn_blocking(move || f(service.as_ref()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "node service call panicked");
            RestError::internal()
        })
}

/// Query parameter selecting full transactions.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FullTxsQuery {
    /// Return full transactions instead of hashes (default false).
    pub full_txs: Option<bool>,
}

/// Query parameters of a block range.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlocksQuery {
    /// First height (default 0).
    #[param(maximum = 9223372036854775807_u64)]
    pub from: Option<u64>,
    /// Number of blocks, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// Query parameter filtering pending transactions.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MempoolQuery {
    /// Only transactions sent by or to this address (default: every one).
    #[param(pattern = r"^q[0-9a-fA-F]{48}$")]
    pub address: Option<String>,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "process is running", body = HealthDto)))]
pub async fn health_live() -> Json<HealthDto> {
    Json(HealthDto {
        status: "live".to_string(),
    })
}

/// Readiness: 200 when joined and synced, else 503.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "joined and synced", body = HealthDto),
        (status = 503, description = "not joined or not synced (code `not_ready`)", body = ErrorBody),
    ))]
pub async fn health_ready(State(state): State<AppState>) -> Result<Json<HealthDto>, RestError> {
    if run(&state, |s| s.ready()).await? {
        Ok(Json(HealthDto {
            status: "ready".to_string(),
        }))
    } else {
        Err(RestError::not_ready())
    }
}

/// Node identity, head, strategy and failover state.
#[utoipa::path(get, path = "/v1/status", tag = "node",
    responses(
        (status = 200, description = "node status", body = StatusDto),
        (status = 503, description = "request timed out", body = ErrorBody),
    ))]
pub async fn status(State(state): State<AppState>) -> Result<Json<StatusDto>, RestError> {
    Ok(Json(run(&state, |s| s.status()).await?))
}

/// Members seen by membership.
#[utoipa::path(get, path = "/v1/peers", tag = "network",
    responses(
        (status = 200, description = "members, live or not", body = PeersDto),
        (status = 503, description = "request timed out", body = ErrorBody),
    ))]
pub async fn peers(State(state): State<AppState>) -> Result<Json<PeersDto>, RestError> {
    Ok(Json(run(&state, |s| s.peers()).await?))
}

/// Per-region health and the network health score.
#[utoipa::path(get, path = "/v1/regions", tag = "network",
    responses(
        (status = 200, description = "region health", body = RegionsDto),
        (status = 503, description = "request timed out", body = ErrorBody),
    ))]
pub async fn regions(State(state): State<AppState>) -> Result<Json<RegionsDto>, RestError> {
    Ok(Json(run(&state, |s| s.regions()).await?))
}

/// Routing strategy, bridges and links in use.
#[utoipa::path(get, path = "/v1/topology", tag = "network",
    responses(
        (status = 200, description = "topology", body = TopologyDto),
        (status = 503, description = "request timed out", body = ErrorBody),
    ))]
pub async fn topology(State(state): State<AppState>) -> Result<Json<TopologyDto>, RestError> {
    Ok(Json(run(&state, |s| s.topology()).await?))
}

/// Failover state, missing regions and recent events.
#[utoipa::path(get, path = "/v1/failover", tag = "network",
    responses(
        (status = 200, description = "failover state", body = FailoverDto),
        (status = 503, description = "request timed out", body = ErrorBody),
    ))]
pub async fn failover(State(state): State<AppState>) -> Result<Json<FailoverDto>, RestError> {
    Ok(Json(run(&state, |s| s.failover()).await?))
}

/// The head block of the best chain.
#[utoipa::path(get, path = "/v1/blocks/latest", tag = "chain", params(FullTxsQuery),
    responses(
        (status = 200, description = "head block", body = BlockDto),
        (status = 400, description = "bad query", body = ErrorBody),
        (status = 404, description = "no block yet", body = ErrorBody),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn latest_block(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FullTxsQuery>,
) -> Result<Json<BlockDto>, RestError> {
    let full = q.full_txs.unwrap_or(false);
    let block = run(&state, move |s| match s.head() {
        Some(head) => s.block_by_height(head.height, full),
        None => Ok(None),
    })
    .await??;
    block
        .map(Json)
        .ok_or_else(|| RestError::not_found("no block yet"))
}

/// The block at a height of the best chain.
#[utoipa::path(get, path = "/v1/blocks/{height}", tag = "chain",
    params(("height" = u64, Path, description = "block height", maximum = 9223372036854775807_u64),
        FullTxsQuery),
    responses(
        (status = 200, description = "the block", body = BlockDto),
        (status = 400, description = "height is not an unsigned integer", body = ErrorBody),
        (status = 404, description = "no block at this height", body = ErrorBody),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn block_by_height(
    State(state): State<AppState>,
    ApiPath(height): ApiPath<u64>,
    ApiQuery(q): ApiQuery<FullTxsQuery>,
) -> Result<Json<BlockDto>, RestError> {
    params::check_height(height).map_err(RestError::invalid_params)?;
    let full = q.full_txs.unwrap_or(false);
    run(&state, move |s| s.block_by_height(height, full))
        .await??
        .map(Json)
        .ok_or_else(|| RestError::not_found(format!("no block at height {height}")))
}

/// A range of blocks in ascending height, transactions as hashes.
#[utoipa::path(get, path = "/v1/blocks", tag = "chain", params(BlocksQuery),
    responses(
        (status = 200, description = "blocks from `from`, at most `limit`", body = BlocksDto),
        (status = 400, description = "bad `from` or `limit` (limit 1 to 100)", body = ErrorBody),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn blocks(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BlocksQuery>,
) -> Result<Json<BlocksDto>, RestError> {
    let limit = params::resolve_limit(
        q.limit,
        state.config.default_blocks_per_request,
        state.config.max_blocks_per_request,
    )
    .map_err(RestError::invalid_params)?;
    let from = q.from.unwrap_or(0);
    params::check_height(from).map_err(RestError::invalid_params)?;
    let blocks = run(&state, move |s| s.blocks(from, limit)).await??;
    Ok(Json(BlocksDto { blocks }))
}

/// A block by hash.
#[utoipa::path(get, path = "/v1/blocks/hash/{hash}", tag = "chain",
    params(("hash" = String, Path, description = "block hash, 64 hex chars",
        pattern = r"^[0-9a-fA-F]{64}$"), FullTxsQuery),
    responses(
        (status = 200, description = "the block", body = BlockDto),
        (status = 400, description = "malformed hash", body = ErrorBody),
        (status = 404, description = "no such block", body = ErrorBody),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn block_by_hash(
    State(state): State<AppState>,
    ApiPath(hash): ApiPath<String>,
    ApiQuery(q): ApiQuery<FullTxsQuery>,
) -> Result<Json<BlockDto>, RestError> {
    let hash = params::parse_hash(&hash).map_err(RestError::invalid_params)?;
    let full = q.full_txs.unwrap_or(false);
    run(&state, move |s| s.block_by_hash(&hash, full))
        .await??
        .map(Json)
        .ok_or_else(|| RestError::not_found("no such block"))
}

/// A transaction by hash, pending or included.
#[utoipa::path(get, path = "/v1/txs/{hash}", tag = "chain",
    params(("hash" = String, Path, description = "transaction hash, 64 hex chars",
        pattern = r"^[0-9a-fA-F]{64}$")),
    responses(
        (status = 200, description = "the transaction", body = TxDto),
        (status = 400, description = "malformed hash", body = ErrorBody),
        (status = 404, description = "no such transaction", body = ErrorBody),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn tx(
    State(state): State<AppState>,
    ApiPath(hash): ApiPath<String>,
) -> Result<Json<TxDto>, RestError> {
    let hash = params::parse_hash(&hash).map_err(RestError::invalid_params)?;
    run(&state, move |s| s.tx(&hash))
        .await??
        .map(Json)
        .ok_or_else(|| RestError::not_found("no such transaction"))
}

/// Pending transactions, by sender then nonce, at most 1,000; `total` counts every match.
#[utoipa::path(get, path = "/v1/mempool", tag = "chain", params(MempoolQuery),
    responses(
        (status = 200, description = "pending transactions", body = PendingTxsDto),
        (status = 400, description = "malformed address", body = ErrorBody),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn mempool(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<MempoolQuery>,
) -> Result<Json<PendingTxsDto>, RestError> {
    Ok(Json(
        run(&state, move |s| s.pending_txs(q.address.as_deref())).await??,
    ))
}

/// The chain: id, genesis, slot length, producers and the next 10 slots of the schedule.
#[utoipa::path(get, path = "/v1/chain", tag = "chain",
    responses(
        (status = 200, description = "the chain and its schedule", body = ChainSpecDto),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn chain(State(state): State<AppState>) -> Result<Json<ChainSpecDto>, RestError> {
    Ok(Json(run(&state, |s| s.chain_spec()).await?))
}

/// Submits a signed transaction (hex of its canonical encoding) to the mempool.
#[utoipa::path(post, path = "/v1/txs", tag = "chain",
    request_body(content = SubmitTxDto, content_type = "application/json"),
    responses(
        (status = 202, description = "accepted into the mempool", body = TxHashDto),
        (status = 400, description = "malformed JSON or hex", body = ErrorBody),
        (status = 413, description = "body larger than the limit", body = ErrorBody),
        (status = 415, description = "content type is not application/json", body = ErrorBody),
        (status = 422, description = "body lacks `tx`, or the node rejected the transaction (code = reason)", body = ErrorBody),
        (status = 429, description = "too many transactions from this client", body = ErrorBody,
            headers(("retry-after" = u32, description = "seconds to wait"))),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn submit_tx(
    State(state): State<AppState>,
    _limit: TxRateLimited,
    ApiJson(body): ApiJson<SubmitTxDto>,
) -> Result<(StatusCode, Json<TxHashDto>), RestError> {
    let raw = params::decode_tx_hex(&body.tx).map_err(RestError::invalid_params)?;
    let hash = run(&state, move |s| s.submit_tx(&raw)).await??;
    Ok((StatusCode::ACCEPTED, Json(TxHashDto { hash })))
}

/// Balance and nonces of an account.
#[utoipa::path(get, path = "/v1/accounts/{address}", tag = "chain",
    params(("address" = String, Path,
        description = "account address: `q` + 48 hex chars (20-byte address + 4-byte checksum)",
        pattern = r"^q[0-9a-fA-F]{48}$")),
    responses(
        (status = 200, description = "the account", body = AccountDto),
        (status = 400, description = "malformed address", body = ErrorBody),
        (status = 404, description = "account never seen", body = ErrorBody),
        (status = 500, description = "node failure", body = ErrorBody),
        (status = 503, description = "unavailable or timed out", body = ErrorBody),
    ))]
pub async fn account(
    State(state): State<AppState>,
    ApiPath(address): ApiPath<String>,
) -> Result<Json<AccountDto>, RestError> {
    let lookup = address.clone();
    run(&state, move |s| s.account(&lookup))
        .await??
        .map(Json)
        .ok_or_else(|| RestError::not_found(format!("no account {address}")))
}

/// Prometheus metrics of the node.
#[utoipa::path(get, path = "/metrics", tag = "node",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 503, description = "request timed out", body = ErrorBody),
    ))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, RestError> {
    let text = run(&state, |s| s.metrics_text()).await?;
    Ok(([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], text).into_response())
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.yaml", tag = "node",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object,
        content_type = "application/yaml")))]
pub async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, YAML_CONTENT_TYPE)],
        state.openapi_yaml.to_string(),
    )
        .into_response()
}

/// Unknown route: 404 with a JSON error body.
pub async fn not_found() -> RestError {
    RestError::not_found("no such route")
}

/// Known route, wrong HTTP method: 405 with a JSON error body.
pub async fn method_not_allowed() -> RestError {
    RestError::method_not_allowed()
}
