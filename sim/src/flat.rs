//! Baseline: every node in one flat chitchat cluster (no regions, no bridges), same gossip
//! interval, failure detector and member keys as the two-level membership, over the same
//! simulated network, so the traffic and convergence can be compared side by side.

use std::time::Duration;

use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};

use crate::fleet::{plan_nodes, SIM_CHAIN_ID};
use crate::latency::LatencyMatrix;
use crate::network::SimNet;
use crate::report::{ms, percentile, Table};
use crate::scenario::{region_names, SimConfig, SimError};
use qnet_node::membership::{card, keys};

/// Phi threshold, as in the membership.
const PHI_THRESHOLD: f64 = 6.0;

/// What the flat baseline measured.
#[derive(Debug, Clone)]
pub struct FlatOutcome {
    /// Nodes that saw every other node live, of all.
    pub converged: usize,
    /// The result table.
    pub table: Table,
}

/// Runs the flat baseline with `cfg.nodes` nodes; call inside a paused current-thread runtime.
pub async fn run(cfg: &SimConfig) -> Result<FlatOutcome, SimError> {
    let regions = region_names(cfg.regions);
    let latency = LatencyMatrix::continental(regions.len(), cfg.jitter);
    let net = SimNet::new(latency, cfg.seed);
    let plans = plan_nodes(cfg.nodes, &regions, cfg.super_every, cfg.seed);
    let interval = cfg.membership.gossip_interval;
    let seeds: Vec<String> = plans.iter().take(3).map(|p| p.addr.to_string()).collect();
    let mut handles: Vec<ChitchatHandle> = Vec::with_capacity(plans.len());
    for (k, p) in plans.iter().enumerate() {
        net.place(p.addr.ip(), p.region);
        let id = ChitchatId::new(p.identity.node_id().as_str(), k as u64 + 1, p.addr);
        let card_value = card::issue(&p.identity, &id, &p.region_name, p.node_type);
        let config = ChitchatConfig {
            chitchat_id: id.clone(),
            cluster_id: format!("{SIM_CHAIN_ID}/flat"),
            gossip_interval: interval,
            listen_addr: p.addr,
            seed_nodes: seeds
                .iter()
                .filter(|s| **s != p.addr.to_string())
                .cloned()
                .collect(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: PHI_THRESHOLD,
                initial_interval: interval,
                dead_node_grace_period: cfg.membership.dead_node_grace_period,
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: cfg.membership.dead_node_grace_period,
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V1,
        };
        let initial = vec![
            (keys::KEY_CARD.to_string(), card_value),
            (keys::KEY_READY.to_string(), "1".to_string()),
        ];
        let handle = spawn_chitchat(config, initial, &net.transport())
            .await
            .map_err(|e| SimError::Output(std::io::Error::other(e.to_string())))?;
        handles.push(handle);
    }
    let n = handles.len();
    let started = tokio::time::Instant::now();
    let mut first: Vec<Option<f64>> = vec![None; n];
    let chitchats: Vec<_> = handles.iter().map(ChitchatHandle::chitchat).collect();
    while started.elapsed() < cfg.converge_limit && first.iter().any(Option::is_none) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for (k, c) in chitchats.iter().enumerate() {
            if first[k].is_some() {
                continue;
            }
            let live = c.lock().await.live_nodes().count();
            if live >= n {
                first[k] = Some(started.elapsed().as_millis() as f64);
            }
        }
    }
    let converged = first.iter().flatten().count();
    let before = net.traffic();
    tokio::time::sleep(cfg.steady).await;
    let window = net.traffic().since(&before);
    let secs = cfg.steady.as_secs_f64();
    let done: Vec<f64> = first.iter().flatten().copied().collect();
    let mut table = Table::new(
        &format!("flat chitchat baseline: {n} nodes in one cluster"),
        &[
            "nodes",
            "converged",
            "p50_ms",
            "p99_ms",
            "max_ms",
            "sent_B/s_per_node",
            "msgs/s_per_node",
            "largest_datagram_B",
            "largest_syn_B",
            "oversized_sends",
            "crashed_servers",
        ],
    );
    let msgs: u64 = window.messages.iter().flatten().sum();
    let dead_servers = handles.iter().filter(|h| server_ended(h)).count();
    table.row(vec![
        n.to_string(),
        format!("{converged}/{n}"),
        ms(percentile(&done, 50.0)),
        ms(percentile(&done, 99.0)),
        ms(percentile(&done, 100.0)),
        format!(
            "{:.0}",
            window.total_bytes() as f64 / secs / n.max(1) as f64
        ),
        format!("{:.1}", msgs as f64 / secs / n.max(1) as f64),
        window.largest.to_string(),
        window.largest_syn.to_string(),
        window.oversized.to_string(),
        dead_servers.to_string(),
    ]);
    table.emit(&cfg.out, &format!("flat_{n}"))?;
    for h in handles {
        let _ = h.initiate_shutdown();
    }
    Ok(FlatOutcome { converged, table })
}

/// Whether a chitchat server task has ended (crashed or stopped).
fn server_ended(handle: &ChitchatHandle) -> bool {
    futures::FutureExt::now_or_never(handle.termination_watcher()).is_some()
}
