//! The narrow interface the node implements so the API can serve it.

use thiserror::Error;
use tokio::sync::broadcast;

use crate::dto::{
    AccountDto, BlockDto, ChainSpecDto, FailoverDto, HeadDto, PeersDto, PendingTxsDto, RegionsDto,
    StatusDto, TopologyDto, TxDto,
};

/// Why a query or command failed, mapped to REST statuses and JSON-RPC codes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ServiceError {
    /// The caller sent a malformed argument (REST 400, JSON-RPC -32602).
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The node refused a transaction (REST 422, JSON-RPC -32001); `code` is a stable
    /// machine-readable reason such as `bad_signature` or `nonce_too_low`.
    #[error("rejected: {message}")]
    Rejected {
        /// Machine-readable reason.
        code: String,
        /// Human-readable message.
        message: String,
    },
    /// The node cannot answer now, e.g. still syncing (REST 503, JSON-RPC -32003).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or a storage failure (REST 500, JSON-RPC -32603); the message is logged, not sent.
    #[error("internal: {0}")]
    Internal(String),
}

/// Queries and commands the node answers for the API.
///
/// Every method is synchronous and cheap (membership snapshots, sled reads); the API calls
/// them on tokio's blocking pool, so a slow disk never stalls the async workers and the
/// request timeout still applies. "Not found" is `Ok(None)`, never an error.
pub trait NodeService: Send + Sync + 'static {
    /// Node identity, head, strategy and readiness.
    fn status(&self) -> StatusDto;
    /// True when joined and synced (`/health/ready`).
    fn ready(&self) -> bool;
    /// Members seen by membership.
    fn peers(&self) -> PeersDto;
    /// Per-region health and the network health score.
    fn regions(&self) -> RegionsDto;
    /// Routing strategy, bridges and links in use.
    fn topology(&self) -> TopologyDto;
    /// Failover state and recent events.
    fn failover(&self) -> FailoverDto;
    /// Chain id, genesis, slot length, producers and the next
    /// [`UPCOMING_SLOTS`](crate::dto::UPCOMING_SLOTS) slots of the schedule.
    fn chain_spec(&self) -> ChainSpecDto;
    /// Head of the best chain, `None` before genesis is loaded.
    fn head(&self) -> Option<HeadDto>;
    /// Block of the best chain at `height`; `full` selects full transactions over hashes.
    fn block_by_height(&self, height: u64, full: bool) -> Result<Option<BlockDto>, ServiceError>;
    /// Block by hash (64 hex chars, validated by the API); `full` as above.
    fn block_by_hash(&self, hash: &str, full: bool) -> Result<Option<BlockDto>, ServiceError>;
    /// Up to `limit` blocks of the best chain from height `from` upwards, transactions as hashes.
    /// The API guarantees `1 <= limit <= ApiConfig::max_blocks_per_request`.
    fn blocks(&self, from: u64, limit: u32) -> Result<Vec<BlockDto>, ServiceError>;
    /// Transaction by hash (64 hex chars, validated by the API), pending or included.
    fn tx(&self, hash: &str) -> Result<Option<TxDto>, ServiceError>;
    /// Pending transactions sent by or to `address` (every one when `None`), at most
    /// [`MAX_PENDING_LISTED`](crate::dto::MAX_PENDING_LISTED); `InvalidParams` for a malformed
    /// address.
    fn pending_txs(&self, address: Option<&str>) -> Result<PendingTxsDto, ServiceError>;
    /// Validates a signed transaction in its canonical encoding and adds it to the mempool;
    /// returns its hash. Decoding errors are `InvalidParams`, refusals `Rejected`.
    fn submit_tx(&self, raw: &[u8]) -> Result<String, ServiceError>;
    /// Account state by address; `InvalidParams` for a malformed address.
    fn account(&self, address: &str) -> Result<Option<AccountDto>, ServiceError>;
    /// A receiver of every new best head, in order.
    fn subscribe_heads(&self) -> broadcast::Receiver<HeadDto>;
    /// The node's Prometheus registry in text exposition format (it includes the API's metrics).
    fn metrics_text(&self) -> String;
}
