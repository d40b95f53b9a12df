//! The node's implementation of the API's [`NodeService`]: answers from the membership
//! view, the routing and failover state, the chain store and the metrics registry.

use std::sync::Arc;

use qnet_api::dto::{
    AccountDto, BlockDto, BlockTxs, ChainSpecDto, FailoverDto, FailoverEventDto, HeadDto, LinkDto,
    LinkKind as LinkKindDto, LinkState, PeerDto, PeersDto, PendingTxsDto, RegionDto, RegionsDto,
    ScheduledSlotDto, StatusDto, TopologyDto, TxDto, TxStatus, MAX_PENDING_LISTED, UPCOMING_SLOTS,
};
use qnet_api::{NodeService, ServiceError};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use super::chain::{self, Inclusion, TxLookup};
use super::{decisions, NodeError, NodeShared};
use crate::chain::block::Block;
use crate::chain::tx::{Address, SignedTransfer};
use crate::chain::Hash;
use crate::identity::{from_hex, to_hex};
use crate::topology::LinkKind;

/// Failover events listed by the API.
pub const API_EVENTS: usize = 50;

/// [`NodeService`] over the node's shared state.
pub struct Service {
    shared: Arc<NodeShared>,
}

/// Serves the API on `listener` until `stop` turns true.
pub fn spawn_api(
    listener: TcpListener,
    shared: Arc<NodeShared>,
    mut stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, NodeError> {
    let registry = shared.metrics.registry.clone();
    let limits = shared.config.api.clone();
    let service: Arc<dyn NodeService> = Arc::new(Service { shared });
    let server = qnet_api::ApiServer::new(service, limits, &registry)
        .map_err(|e| NodeError::Api(e.to_string()))?;
    Ok(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = server.serve(listener, shutdown).await {
            warn!(error = %e, "api server stopped");
        }
    }))
}

impl NodeService for Service {
    fn status(&self) -> StatusDto {
        let s = &self.shared;
        let view = s.view.borrow().clone();
        let routing = s.routing.read().unwrap_or_else(|e| e.into_inner()).clone();
        let failover = s.failover.read().unwrap_or_else(|e| e.into_inner()).active;
        StatusDto {
            node_id: s.identity.node_id().to_string(),
            node_type: s.config.node_type.to_string(),
            region: s.config.region.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            chain_id: s.chain_id.clone(),
            peers_live: view.live_peers().count() as u64,
            head: self.head(),
            syncing: s.chain.syncing(),
            strategy: routing.strategy.as_str().to_string(),
            failover_active: failover,
            ready: s.ready(),
        }
    }

    fn ready(&self) -> bool {
        self.shared.ready()
    }

    fn peers(&self) -> PeersDto {
        let view = self.shared.view.borrow().clone();
        PeersDto {
            peers: view
                .members
                .iter()
                .filter(|m| m.node_id != view.self_id)
                .map(|m| PeerDto {
                    node_id: m.node_id.to_string(),
                    region: m.region.to_string(),
                    node_type: m.node_type.to_string(),
                    gossip_addr: m.gossip_addr.to_string(),
                    p2p_addr: Some(m.gossip_addr.to_string()),
                    api_addr: None,
                    live: m.live,
                    last_seen_ms: m.last_seen_ms,
                    bridge: m.bridge,
                    head_height: m.head.map(|h| h.height),
                })
                .collect(),
        }
    }

    fn regions(&self) -> RegionsDto {
        let view = self.shared.view.borrow().clone();
        RegionsDto {
            health_score: view.health_score(),
            regions: view
                .regions
                .values()
                .map(|r| RegionDto {
                    region: r.region.to_string(),
                    known: u64::from(r.known),
                    live: u64::from(r.live),
                    health: r.health(),
                    missing: r.missing,
                    bridges: r.bridges.iter().map(|b| b.to_string()).collect(),
                })
                .collect(),
        }
    }

    fn topology(&self) -> TopologyDto {
        let routing = self
            .shared
            .routing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let view = self.shared.view.borrow().clone();
        let open = self
            .shared
            .open_links
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let region_of = |id: &crate::identity::NodeId| -> String {
            routing
                .bridges
                .iter()
                .find(|(_, ids)| ids.contains(id))
                .map(|(r, _)| r.to_string())
                .unwrap_or_else(|| view.self_region.to_string())
        };
        TopologyDto {
            strategy: routing.strategy.as_str().to_string(),
            since_ms: routing.since_ms,
            live_regions: routing.live_regions.iter().map(|r| r.to_string()).collect(),
            bridges: routing
                .bridges
                .iter()
                .map(|(r, ids)| (r.to_string(), ids.iter().map(|i| i.to_string()).collect()))
                .collect(),
            links: routing
                .links
                .list()
                .into_iter()
                .map(|l| LinkDto {
                    region: region_of(&l.peer),
                    peer: l.peer.to_string(),
                    kind: match l.kind {
                        LinkKind::InRegion => LinkKindDto::InRegion,
                        LinkKind::CrossRegion => LinkKindDto::Bridge,
                    },
                    state: if open.contains(&l.peer) {
                        LinkState::Open
                    } else {
                        LinkState::Planned
                    },
                })
                .collect(),
        }
    }

    fn failover(&self) -> FailoverDto {
        let f = self
            .shared
            .failover
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        FailoverDto {
            active: f.active,
            missing_regions: f.missing.iter().map(|r| r.to_string()).collect(),
            restoring_regions: f.restoring.iter().map(|r| r.to_string()).collect(),
            last_check_ms: f.last_check_ms,
            events: decisions::recent_events(&self.shared, API_EVENTS)
                .into_iter()
                .map(|e| FailoverEventDto {
                    at_ms: e.at_ms,
                    kind: e.kind.as_str().to_string(),
                    regions: e.regions.iter().map(|r| r.to_string()).collect(),
                })
                .collect(),
        }
    }

    fn chain_spec(&self) -> ChainSpecDto {
        let chain = &self.shared.chain;
        let spec = chain.spec();
        ChainSpecDto {
            chain_id: spec.chain_id.clone(),
            genesis_time_ms: spec.genesis_time_ms,
            genesis_hash: to_hex(&chain.genesis_hash()),
            slot_ms: spec.slot_ms,
            producers: spec.producer_keys().iter().map(|k| to_hex(k)).collect(),
            next_slots: chain
                .upcoming_slots(UPCOMING_SLOTS)
                .into_iter()
                .map(|s| ScheduledSlotDto {
                    slot: s.slot,
                    start_ms: s.start_ms,
                    producer: to_hex(&s.producer),
                })
                .collect(),
        }
    }

    fn head(&self) -> Option<HeadDto> {
        Some(chain::head_dto(&self.shared.chain.head()))
    }

    fn block_by_height(&self, height: u64, full: bool) -> Result<Option<BlockDto>, ServiceError> {
        let head_height = self.shared.chain.head().height;
        let block = self
            .shared
            .chain
            .block_by_height(height)
            .map_err(internal)?;
        Ok(block.map(|b| block_dto(&b, full.then_some(head_height))))
    }

    fn block_by_hash(&self, hash: &str, full: bool) -> Result<Option<BlockDto>, ServiceError> {
        let hash = parse_hash(hash)?;
        let head_height = self.shared.chain.head().height;
        let block = self.shared.chain.block_by_hash(&hash).map_err(internal)?;
        Ok(block.map(|b| block_dto(&b, full.then_some(head_height))))
    }

    fn blocks(&self, from: u64, limit: u32) -> Result<Vec<BlockDto>, ServiceError> {
        let blocks = self
            .shared
            .chain
            .blocks_from(from, limit as usize)
            .map_err(internal)?;
        Ok(blocks.iter().map(|b| block_dto(b, None)).collect())
    }

    fn tx(&self, hash: &str) -> Result<Option<TxDto>, ServiceError> {
        let hash = parse_hash(hash)?;
        Ok(self
            .shared
            .chain
            .tx(&hash)
            .map_err(internal)?
            .map(|found| match found {
                TxLookup::Pending(tx) => tx_dto(&tx, None),
                TxLookup::Included(tx, at) => tx_dto(&tx, Some(&at)),
            }))
    }

    fn pending_txs(&self, address: Option<&str>) -> Result<PendingTxsDto, ServiceError> {
        let address = address
            .map(|a| {
                Address::parse(a).map_err(|e| ServiceError::InvalidParams(format!("address: {e}")))
            })
            .transpose()?;
        let (txs, total) = self
            .shared
            .chain
            .pending_of(address.as_ref(), MAX_PENDING_LISTED);
        Ok(PendingTxsDto {
            txs: txs.iter().map(|tx| tx_dto(tx, None)).collect(),
            total: total as u64,
        })
    }

    fn submit_tx(&self, raw: &[u8]) -> Result<String, ServiceError> {
        let chain = &self.shared.chain;
        let tx = SignedTransfer::decode(raw).map_err(|e| {
            chain.count_rejected_tx("malformed");
            ServiceError::InvalidParams(format!("not a signed transfer: {e}"))
        })?;
        chain
            .submit_tx(tx, None)
            .map(|hash| to_hex(&hash))
            .map_err(|e| ServiceError::Rejected {
                code: e.as_str().to_string(),
                message: e.to_string(),
            })
    }

    fn account(&self, address: &str) -> Result<Option<AccountDto>, ServiceError> {
        let parsed = Address::parse(address)
            .map_err(|e| ServiceError::InvalidParams(format!("address: {e}")))?;
        let (account, pending_nonce) = self.shared.chain.account(&parsed).map_err(internal)?;
        Ok(Some(AccountDto {
            address: parsed.to_string(),
            balance: account.balance,
            nonce: account.nonce,
            pending_nonce,
        }))
    }

    fn subscribe_heads(&self) -> broadcast::Receiver<HeadDto> {
        self.shared.heads.subscribe()
    }

    fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Internal(e.to_string())
}

fn parse_hash(hex: &str) -> Result<Hash, ServiceError> {
    from_hex(hex)
        .and_then(|b| Hash::try_from(b).ok())
        .ok_or_else(|| ServiceError::InvalidParams("hash must be 64 hex characters".into()))
}

/// A transaction as the API shows it: pending when `at` is `None`.
fn tx_dto(tx: &SignedTransfer, at: Option<&Inclusion>) -> TxDto {
    let t = &tx.transfer;
    TxDto {
        hash: to_hex(&tx.hash()),
        from: t.sender().to_string(),
        to: t.to.to_string(),
        amount: t.amount,
        fee: t.fee,
        nonce: t.nonce,
        status: if at.is_some() {
            TxStatus::Included
        } else {
            TxStatus::Pending
        },
        block_height: at.map(|a| a.height),
        block_hash: at.map(|a| to_hex(&a.block_hash)),
        index: at.map(|a| a.index),
        timestamp_ms: at.map(|a| a.timestamp_ms),
        confirmations: at.map_or(0, Inclusion::confirmations),
    }
}

/// A block as the API shows it: transaction hashes, or with `full_at_head` whole transactions
/// whose confirmations count from that head height (read just before the block: a block that
/// became the head in between still counts 1).
pub fn block_dto(b: &Block, full_at_head: Option<u64>) -> BlockDto {
    let h = &b.header;
    let height = h.height;
    let block_hash = b.hash();
    BlockDto {
        height,
        hash: to_hex(&block_hash),
        parent_hash: to_hex(&h.parent_hash),
        slot: h.slot,
        timestamp_ms: h.timestamp_ms,
        producer: to_hex(&h.producer),
        tx_root: to_hex(&h.tx_root),
        tx_count: u64::from(h.tx_count),
        txs: if let Some(head_height) = full_at_head {
            BlockTxs::Full(
                b.txs
                    .iter()
                    .zip(0u32..)
                    .map(|(tx, index)| {
                        let at = Inclusion {
                            height,
                            block_hash,
                            index,
                            timestamp_ms: h.timestamp_ms,
                            head_height,
                        };
                        tx_dto(tx, Some(&at))
                    })
                    .collect(),
            )
        } else {
            BlockTxs::Hashes(b.txs.iter().map(|tx| to_hex(&tx.hash())).collect())
        },
    }
}
