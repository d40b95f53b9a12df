//! Prometheus metrics of the node (prefix `qnet_`, base units, counters end in `_total`).
//! One [`Metrics`] value owns the registry; the API crate registers its own metrics on it.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry,
};

/// Gossip cluster label values.
pub const CLUSTER_REGIONAL: &str = "regional";
/// Gossip cluster label value of the bridge cluster.
pub const CLUSTER_BRIDGE: &str = "bridge";

/// Reasons an authenticated data-plane peer is cut off (`qnet_peer_disconnects_total`).
pub const PEER_DISCONNECT_REASONS: [&str; 3] = ["rate_limit", "bad_message", "banned"];

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
    /// Gossip digests refused by the transport guard, by cluster and reason.
    pub gossip_digests_refused: IntCounterVec,
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
    /// Authenticated data-plane peers cut off, by reason (`rate_limit`, `bad_message`, `banned`).
    pub peer_disconnects: IntCounterVec,
    /// Health (live / known) per region.
    pub region_health: GaugeVec,
    /// Network health score (live / known over all regions).
    pub network_health: Gauge,
    /// Regions known but without a live member.
    pub regions_missing: IntGauge,
    /// 1 for the current routing strategy, 0 for the others.
    pub topology_strategy: IntGaugeVec,
    /// 1 while conservative failover is active.
    pub failover_active: IntGauge,
    /// Failover activations.
    pub failover_activations: IntCounter,
    /// Failover deactivations after gradual restoration.
    pub failover_restorations: IntCounter,
    /// Failover events by kind.
    pub failover_events: IntCounterVec,
    /// Monitor checks by monitor (`regional_health`, `failover`).
    pub monitor_checks: IntCounterVec,
    /// Configured monitor intervals in seconds.
    pub monitor_interval: GaugeVec,
    /// Health warnings logged.
    pub health_warnings: IntCounter,
    /// Links in use by kind (`in_region`, `cross_region`).
    pub links: IntGaugeVec,
    /// Chain metrics.
    pub chain: ChainMetrics,
}

/// Monitor label of the regional health monitor.
pub const MONITOR_HEALTH: &str = "regional_health";
/// Monitor label of the failover monitor.
pub const MONITOR_FAILOVER: &str = "failover";

impl Metrics {
    /// Creates and registers every node metric plus process metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let members = IntGaugeVec::new(
            Opts::new(
                "qnet_members",
                "Members per region and state as seen by this node",
            ),
            &["region", "state"],
        )?;
        let regions_known = IntGauge::new("qnet_regions_known", "Regions known to this node")?;
        let bridge = IntGauge::new("qnet_bridge", "1 when this node is a bridge of its region")?;
        let gossip_messages = IntCounterVec::new(
            Opts::new(
                "qnet_gossip_messages_total",
                "Gossip datagrams by cluster and direction",
            ),
            &["cluster", "direction"],
        )?;
        let gossip_bytes = IntCounterVec::new(
            Opts::new(
                "qnet_gossip_bytes_total",
                "Gossip bytes by cluster and direction",
            ),
            &["cluster", "direction"],
        )?;
        let gossip_digests_refused = IntCounterVec::new(
            Opts::new(
                "qnet_gossip_digests_refused_total",
                "Gossip digests refused by the transport guard by cluster and reason",
            ),
            &["cluster", "reason"],
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
        let peer_disconnects = IntCounterVec::new(
            Opts::new(
                "qnet_peer_disconnects_total",
                "Authenticated data-plane peers cut off by reason",
            ),
            &["reason"],
        )?;
        let region_health = GaugeVec::new(
            Opts::new(
                "qnet_region_health",
                "Health of a region: live / known members",
            ),
            &["region"],
        )?;
        let network_health = Gauge::new(
            "qnet_network_health",
            "Network health score: live / known members over all regions",
        )?;
        let regions_missing = IntGauge::new(
            "qnet_regions_missing",
            "Regions known but without a live member",
        )?;
        let topology_strategy = IntGaugeVec::new(
            Opts::new(
                "qnet_topology_strategy",
                "1 for the current routing strategy",
            ),
            &["strategy"],
        )?;
        let failover_active = IntGauge::new(
            "qnet_failover_active",
            "1 while conservative failover is active",
        )?;
        let failover_activations = IntCounter::new(
            "qnet_failover_activations_total",
            "Conservative failover activations",
        )?;
        let failover_restorations = IntCounter::new(
            "qnet_failover_restorations_total",
            "Failover deactivations after gradual restoration",
        )?;
        let failover_events = IntCounterVec::new(
            Opts::new(
                "qnet_failover_events_total",
                "Failover monitor events by kind",
            ),
            &["kind"],
        )?;
        let monitor_checks = IntCounterVec::new(
            Opts::new("qnet_monitor_checks_total", "Monitor checks by monitor"),
            &["monitor"],
        )?;
        let monitor_interval = GaugeVec::new(
            Opts::new(
                "qnet_monitor_interval_seconds",
                "Configured monitor interval",
            ),
            &["monitor"],
        )?;
        let health_warnings = IntCounter::new(
            "qnet_health_warnings_total",
            "Health warnings logged by the regional health monitor",
        )?;
        let links = IntGaugeVec::new(
            Opts::new("qnet_links", "Data-plane links in use by kind"),
            &["kind"],
        )?;
        for c in [
            Box::new(region_health.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(network_health.clone()),
            Box::new(regions_missing.clone()),
            Box::new(topology_strategy.clone()),
            Box::new(failover_active.clone()),
            Box::new(failover_activations.clone()),
            Box::new(failover_restorations.clone()),
            Box::new(failover_events.clone()),
            Box::new(monitor_checks.clone()),
            Box::new(monitor_interval.clone()),
            Box::new(health_warnings.clone()),
            Box::new(links.clone()),
        ] {
            registry.register(c)?;
        }
        for kind in crate::monitor::failover::EventKind::ALL {
            failover_events.with_label_values(&[kind.as_str()]);
        }
        for monitor in [MONITOR_HEALTH, MONITOR_FAILOVER] {
            monitor_checks.with_label_values(&[monitor]);
        }
        for strategy in crate::topology::Strategy::ALL {
            topology_strategy.with_label_values(&[strategy.as_str()]);
        }
        registry.register(Box::new(members.clone()))?;
        registry.register(Box::new(regions_known.clone()))?;
        registry.register(Box::new(bridge.clone()))?;
        registry.register(Box::new(gossip_messages.clone()))?;
        registry.register(Box::new(gossip_bytes.clone()))?;
        registry.register(Box::new(gossip_digests_refused.clone()))?;
        registry.register(Box::new(info.clone()))?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(start_time.clone()))?;
        registry.register(Box::new(peer_store_records.clone()))?;
        registry.register(Box::new(handshake_failures.clone()))?;
        registry.register(Box::new(peer_disconnects.clone()))?;
        for reason in PEER_DISCONNECT_REASONS {
            peer_disconnects.with_label_values(&[reason]);
        }
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
        let chain = ChainMetrics::new(&registry)?;
        Ok(Metrics {
            chain,
            registry,
            members,
            regions_known,
            bridge,
            gossip_messages,
            gossip_bytes,
            gossip_digests_refused,
            info,
            ready,
            start_time,
            peer_store_records,
            handshake_failures,
            peer_disconnects,
            region_health,
            network_health,
            regions_missing,
            topology_strategy,
            failover_active,
            failover_activations,
            failover_restorations,
            failover_events,
            monitor_checks,
            monitor_interval,
            health_warnings,
            links,
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

/// Transaction result label of an admitted transaction.
pub const TX_ACCEPTED: &str = "accepted";

/// Metrics of the chain runtime: height, production, import, rejection, propagation, reorgs,
/// mempool, transactions and sync.
#[derive(Clone)]
pub struct ChainMetrics {
    /// Height of the best chain.
    pub height: IntGauge,
    /// Blocks produced by this node.
    pub blocks_produced: IntCounter,
    /// Blocks imported (own and received) that are now stored.
    pub blocks_imported: IntCounter,
    /// Blocks rejected by reason.
    pub blocks_rejected: IntCounterVec,
    /// Import time minus block timestamp, seconds.
    pub propagation: Histogram,
    /// Reorganisations.
    pub reorgs: IntCounter,
    /// Depth of reorganisations in blocks.
    pub reorg_depth: Histogram,
    /// Transactions in the mempool.
    pub mempool: IntGauge,
    /// Transactions submitted or received, by result (`accepted` or a rejection reason).
    pub transactions: IntCounterVec,
    /// Best head height seen at peers (what sync aims for).
    pub sync_target: IntGauge,
}

impl ChainMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = ChainMetrics {
            height: IntGauge::new("qnet_chain_height", "Height of the best chain")?,
            blocks_produced: IntCounter::new(
                "qnet_blocks_produced_total",
                "Blocks produced by this node",
            )?,
            blocks_imported: IntCounter::new(
                "qnet_blocks_imported_total",
                "Blocks validated and stored",
            )?,
            blocks_rejected: IntCounterVec::new(
                Opts::new("qnet_blocks_rejected_total", "Blocks rejected by reason"),
                &["reason"],
            )?,
            propagation: Histogram::with_opts(
                HistogramOpts::new(
                    "qnet_block_propagation_seconds",
                    "Import time minus block timestamp",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ]),
            )?,
            reorgs: IntCounter::new("qnet_reorgs_total", "Chain reorganisations")?,
            reorg_depth: Histogram::with_opts(
                HistogramOpts::new("qnet_reorg_depth", "Blocks reverted by a reorganisation")
                    .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0]),
            )?,
            mempool: IntGauge::new("qnet_mempool_transactions", "Transactions in the mempool")?,
            transactions: IntCounterVec::new(
                Opts::new(
                    "qnet_transactions_total",
                    "Transactions submitted or received, by result",
                ),
                &["result"],
            )?,
            sync_target: IntGauge::new(
                "qnet_sync_target_height",
                "Best head height announced by peers",
            )?,
        };
        for c in [
            Box::new(m.height.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.blocks_produced.clone()),
            Box::new(m.blocks_imported.clone()),
            Box::new(m.blocks_rejected.clone()),
            Box::new(m.propagation.clone()),
            Box::new(m.reorgs.clone()),
            Box::new(m.reorg_depth.clone()),
            Box::new(m.mempool.clone()),
            Box::new(m.transactions.clone()),
            Box::new(m.sync_target.clone()),
        ] {
            registry.register(c)?;
        }
        for reason in crate::chain::validate::RejectReason::LABELS {
            m.blocks_rejected.with_label_values(&[reason]);
        }
        m.transactions.with_label_values(&[TX_ACCEPTED]);
        Ok(m)
    }
}
