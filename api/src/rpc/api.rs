//! The JSON-RPC methods, declared as a jsonrpsee trait and served from a [`NodeService`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::server::{Extensions, PendingSubscriptionSink, SubscriptionMessage};
use tokio::sync::broadcast::error::RecvError;

use crate::config::ApiConfig;
use crate::dto::{
    AccountDto, BlockDto, ChainSpecDto, FailoverDto, HeadDto, PeersDto, PendingTxsDto, RegionsDto,
    StatusDto, TopologyDto, TxDto,
};
use crate::metrics::ApiMetrics;
use crate::params;
use crate::rate_limit::RateLimiter;
use crate::rpc::codes;
use crate::service::NodeService;

/// Name of the notification carrying new heads.
pub const NEW_HEAD_NOTIFICATION: &str = "chain_newHead";

/// JSON-RPC 2.0 methods of a qnet node (positional parameters).
#[rpc(server)]
pub trait QnetRpc {
    /// Chain id, genesis, slot length, producers and the next 10 slots of the schedule.
    #[method(name = "chain_getSpec", blocking)]
    fn chain_get_spec(&self) -> RpcResult<ChainSpecDto>;

    /// Head of the best chain, or null.
    #[method(name = "chain_getHead", blocking)]
    fn chain_get_head(&self) -> RpcResult<Option<HeadDto>>;

    /// Block at a height, or null.
    #[method(name = "chain_getBlockByHeight", blocking)]
    fn chain_get_block_by_height(
        &self,
        height: u64,
        full_txs: Option<bool>,
    ) -> RpcResult<Option<BlockDto>>;

    /// Block by hash, or null.
    #[method(name = "chain_getBlockByHash", blocking)]
    fn chain_get_block_by_hash(
        &self,
        hash: String,
        full_txs: Option<bool>,
    ) -> RpcResult<Option<BlockDto>>;

    /// Blocks from a height upwards, transactions as hashes.
    #[method(name = "chain_getBlocks", blocking)]
    fn chain_get_blocks(&self, from: u64, limit: Option<u32>) -> RpcResult<Vec<BlockDto>>;

    /// Notifies every new best head as `chain_newHead`.
    #[subscription(
        name = "chain_subscribeNewHeads" => "chain_newHead",
        unsubscribe = "chain_unsubscribeNewHeads",
        item = HeadDto
    )]
    fn chain_subscribe_new_heads(&self) -> SubscriptionResult;

    /// Submits a hex-encoded signed transaction; returns its hash.
    #[method(name = "tx_send", blocking, with_extensions)]
    fn tx_send(&self, tx: String) -> RpcResult<String>;

    /// Transaction by hash, or null.
    #[method(name = "tx_get", blocking)]
    fn tx_get(&self, hash: String) -> RpcResult<Option<TxDto>>;

    /// Pending transactions sent by or to an address (every one without it), at most 1,000.
    #[method(name = "tx_pending", blocking)]
    fn tx_pending(&self, address: Option<String>) -> RpcResult<PendingTxsDto>;

    /// Account by address, or null.
    #[method(name = "account_get", blocking)]
    fn account_get(&self, address: String) -> RpcResult<Option<AccountDto>>;

    /// Members seen by membership.
    #[method(name = "net_peers", blocking)]
    fn net_peers(&self) -> RpcResult<PeersDto>;

    /// Per-region health.
    #[method(name = "net_regions", blocking)]
    fn net_regions(&self) -> RpcResult<RegionsDto>;

    /// Routing strategy and links.
    #[method(name = "net_topology", blocking)]
    fn net_topology(&self) -> RpcResult<TopologyDto>;

    /// Failover state and events.
    #[method(name = "net_failover", blocking)]
    fn net_failover(&self) -> RpcResult<FailoverDto>;

    /// Node status.
    #[method(name = "node_status", blocking)]
    fn node_status(&self) -> RpcResult<StatusDto>;
}

/// Serves [`QnetRpcServer`] from a [`NodeService`].
pub struct RpcHandler {
    service: Arc<dyn NodeService>,
    config: Arc<ApiConfig>,
    limiter: Option<Arc<RateLimiter>>,
    metrics: ApiMetrics,
}

impl RpcHandler {
    /// A handler sharing the service, limits, tx rate limiter and metrics of the server.
    pub fn new(
        service: Arc<dyn NodeService>,
        config: Arc<ApiConfig>,
        limiter: Option<Arc<RateLimiter>>,
        metrics: ApiMetrics,
    ) -> Self {
        Self {
            service,
            config,
            limiter,
            metrics,
        }
    }
}

impl QnetRpcServer for RpcHandler {
    fn chain_get_spec(&self) -> RpcResult<ChainSpecDto> {
        Ok(self.service.chain_spec())
    }

    fn chain_get_head(&self) -> RpcResult<Option<HeadDto>> {
        Ok(self.service.head())
    }

    fn chain_get_block_by_height(
        &self,
        height: u64,
        full_txs: Option<bool>,
    ) -> RpcResult<Option<BlockDto>> {
        self.service
            .block_by_height(height, full_txs.unwrap_or(false))
            .map_err(codes::service_error)
    }

    fn chain_get_block_by_hash(
        &self,
        hash: String,
        full_txs: Option<bool>,
    ) -> RpcResult<Option<BlockDto>> {
        let hash = params::parse_hash(&hash).map_err(codes::invalid_params)?;
        self.service
            .block_by_hash(&hash, full_txs.unwrap_or(false))
            .map_err(codes::service_error)
    }

    fn chain_get_blocks(&self, from: u64, limit: Option<u32>) -> RpcResult<Vec<BlockDto>> {
        let limit = params::resolve_limit(
            limit,
            self.config.default_blocks_per_request,
            self.config.max_blocks_per_request,
        )
        .map_err(codes::invalid_params)?;
        self.service
            .blocks(from, limit)
            .map_err(codes::service_error)
    }

    fn chain_subscribe_new_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut heads = self.service.subscribe_heads();
        let guard = self.metrics.subscription_guard();
        tokio::spawn(async move {
            let Ok(sink) = pending.accept().await else {
                return;
            };
            let _guard = guard;
            loop {
                let head = tokio::select! {
                    _ = sink.closed() => return,
                    head = heads.recv() => head,
                };
                match head {
                    Ok(head) => {
                        let Ok(raw) = serde_json::value::to_raw_value(&head) else {
                            return;
                        };
                        if sink.send(SubscriptionMessage::from(raw)).await.is_err() {
                            return;
                        }
                    }
                    // A slow subscriber misses heads; the next one still arrives in order and
                    // its height shows the gap.
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "head subscriber lagging");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
        Ok(())
    }

    fn tx_send(&self, ext: &Extensions, tx: String) -> RpcResult<String> {
        if let Some(limiter) = &self.limiter {
            let allowed = match ext.get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(addr)) => limiter.check(addr.ip()),
                // Without a peer address (never the case behind `serve`) nothing can be keyed.
                None => true,
            };
            if !allowed {
                return Err(codes::rate_limited());
            }
        }
        let raw = params::decode_tx_hex(&tx).map_err(codes::invalid_params)?;
        self.service.submit_tx(&raw).map_err(codes::service_error)
    }

    fn tx_get(&self, hash: String) -> RpcResult<Option<TxDto>> {
        let hash = params::parse_hash(&hash).map_err(codes::invalid_params)?;
        self.service.tx(&hash).map_err(codes::service_error)
    }

    fn tx_pending(&self, address: Option<String>) -> RpcResult<PendingTxsDto> {
        self.service
            .pending_txs(address.as_deref())
            .map_err(codes::service_error)
    }

    fn account_get(&self, address: String) -> RpcResult<Option<AccountDto>> {
        self.service.account(&address).map_err(codes::service_error)
    }

    fn net_peers(&self) -> RpcResult<PeersDto> {
        Ok(self.service.peers())
    }

    fn net_regions(&self) -> RpcResult<RegionsDto> {
        Ok(self.service.regions())
    }

    fn net_topology(&self) -> RpcResult<TopologyDto> {
        Ok(self.service.topology())
    }

    fn net_failover(&self) -> RpcResult<FailoverDto> {
        Ok(self.service.failover())
    }

    fn node_status(&self) -> RpcResult<StatusDto> {
        Ok(self.service.status())
    }
}
