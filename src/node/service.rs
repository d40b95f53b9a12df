//! The node's implementation of the API's [`NodeService`]: answers from the membership
//! view, the routing and failover state, the chain store and the metrics registry.

use std::sync::Arc;

use qnet_api::dto::{
    AccountDto, BlockDto, FailoverDto, FailoverEventDto, HeadDto, LinkDto, LinkKind as LinkKindDto,
    PeerDto, PeersDto, RegionDto, RegionsDto, StatusDto, TopologyDto, TxDto,
};
use qnet_api::{ApiConfig, NodeService, ServiceError};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::warn;

use super::{monitors, NodeError, NodeShared};
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
    let service: Arc<dyn NodeService> = Arc::new(Service { shared });
    let server = qnet_api::ApiServer::new(service, ApiConfig::default(), &registry)
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
            syncing: false,
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
            events: monitors::recent_events(&self.shared, API_EVENTS)
                .into_iter()
                .map(|e| FailoverEventDto {
                    at_ms: e.at_ms,
                    kind: e.kind.as_str().to_string(),
                    regions: e.regions.iter().map(|r| r.to_string()).collect(),
                })
                .collect(),
        }
    }

    fn head(&self) -> Option<HeadDto> {
        None
    }

    fn block_by_height(&self, _height: u64, _full: bool) -> Result<Option<BlockDto>, ServiceError> {
        Ok(None)
    }

    fn block_by_hash(&self, _hash: &str, _full: bool) -> Result<Option<BlockDto>, ServiceError> {
        Ok(None)
    }

    fn blocks(&self, _from: u64, _limit: u32) -> Result<Vec<BlockDto>, ServiceError> {
        Ok(Vec::new())
    }

    fn tx(&self, _hash: &str) -> Result<Option<TxDto>, ServiceError> {
        Ok(None)
    }

    fn submit_tx(&self, _raw: &[u8]) -> Result<String, ServiceError> {
        Err(ServiceError::Unavailable(
            "this node does not run a chain yet".into(),
        ))
    }

    fn account(&self, _address: &str) -> Result<Option<AccountDto>, ServiceError> {
        Ok(None)
    }

    fn subscribe_heads(&self) -> broadcast::Receiver<HeadDto> {
        self.shared.heads.subscribe()
    }

    fn metrics_text(&self) -> String {
        self.shared.metrics.render()
    }
}
