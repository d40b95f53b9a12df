//! Prometheus metrics of the node (prefix `qnet_`, base units, counters end in `_total`).
//! One [`Metrics`] value owns the registry; the API crate registers its own metrics on it.

use prometheus::{
    Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Gossip cluster label values.
pub const CLUSTER_REGIONAL: &str = "regional";
/// Gossip cluster label value of the bridge cluster.
pub const CLUSTER_BRIDGE: &str = "bridge";

/// All node metrics.
#[derive(Clone)]
pub struct Metrics {
    /// The registry served at `/metrics`.
    pub registry: Registry,
    /// Members per region and state (`live`, `dead`), as this node sees them.
    pub members: IntGaugeVec,
    /// Regions known to this node.
    pub regions_known: IntGauge,
    /// Whether this node is currently a bridge of its region.
    pub bridge: IntGauge,
    /// Gossip datagrams by cluster and direction (`sent`, `received`, `dropped`).
    pub gossip_messages: IntCounterVec,
    /// Gossip bytes by cluster and direction.
    pub gossip_bytes: IntCounterVec,
    /// Node information (value 1) with node id, type, region and version labels.
    pub info: GaugeVec,
    /// Whether the node is ready (joined).
    pub ready: IntGauge,
    /// Unix time the node started, in seconds.
    pub start_time: Gauge,
    /// Peers seen through the peer store at start.
    pub peer_store_records: IntGauge,
    /// Data-plane connections refused by the handshake.
    pub handshake_failures: IntCounter,
}

impl Metrics {
    /// Creates and registers every node metric plus process metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let members = IntGaugeVec::new(
            Opts::new("qnet_members", "Members per region and state as seen by this node"),
            &["region", "state"],
        )?;
        let regions_known = IntGauge::new("qnet_regions_known", "Regions known to this node")?;
        let bridge = IntGauge::new("qnet_bridge", "1 when this node is a bridge of its region")?;
        let gossip_messages = IntCounterVec::new(
            Opts::new("qnet_gossip_messages_total", "Gossip datagrams by cluster and direction"),
            &["cluster", "direction"],
        )?;
        let gossip_bytes = IntCounterVec::new(
            Opts::new("qnet_gossip_bytes_total", "Gossip bytes by cluster and direction"),
            &["cluster", "direction"],
        )?;
        let info = GaugeVec::new(
            Opts::new("qnet_node_info", "Node information; the value is always 1"),
            &["node_id", "node_type", "region", "version"],
        )?;
        let ready = IntGauge::new("qnet_ready", "1 when the node is joined and ready")?;
        let start_time = Gauge::new(
            "qnet_start_time_seconds",
            "Unix time the node started, in seconds",
        )?;
        let peer_store_records = IntGauge::new(
            "qnet_peer_store_records",
            "Peers recorded in the peer store",
        )?;
        let handshake_failures = IntCounter::new(
            "qnet_handshake_failures_total",
            "Data-plane connections refused by the handshake",
        )?;
        registry.register(Box::new(members.clone()))?;
        registry.register(Box::new(regions_known.clone()))?;
        registry.register(Box::new(bridge.clone()))?;
        registry.register(Box::new(gossip_messages.clone()))?;
        registry.register(Box::new(gossip_bytes.clone()))?;
        registry.register(Box::new(info.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(start_time.clone()))?;
        registry.register(Box::new(peer_store_records.clone()))?;
        registry.register(Box::new(handshake_failures.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        for cluster in [CLUSTER_REGIONAL, CLUSTER_BRIDGE] {
            for direction in ["sent", "received", "dropped"] {
                gossip_messages.with_label_values(&[cluster, direction]);
                gossip_bytes.with_label_values(&[cluster, direction]);
            }
        }
        Ok(Metrics {
            registry,
            members,
            regions_known,
            bridge,
            gossip_messages,
            gossip_bytes,
            info,
            ready,
            start_time,
            peer_store_records,
            handshake_failures,
        })
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# metrics encoding failed: {e}\n"))
    }
}
