//! Steady state: gossip traffic per node and per cluster over a window, idle and with a
//! chain head announced every second.

use std::collections::HashSet;

use super::{Ctx, SimError};
use crate::network::Traffic;
use crate::report::{percentile, Table};

pub(super) async fn steady_state(ctx: &mut Ctx) -> Result<(), SimError> {
    // let the strategy settle and bridges finish joining before measuring
    let gossip = ctx.cfg.membership.gossip_interval;
    ctx.run_for(ctx.cfg.membership.strategy_settle_time + gossip * 3)
        .await;
    ctx.phase("steady state, idle chain");
    let (idle, idle_clusters) = steady_window(ctx, "idle chain").await;
    ctx.heads = true;
    // a few rounds so every member's head key exists before the window opens
    ctx.run_for(gossip * 3).await;
    ctx.phase("steady state, head announced every 1 s slot");
    let (heads, heads_clusters) = steady_window(ctx, "head every 1 s").await;
    ctx.heads = false;
    let mut table = idle;
    table.title = format!(
        "steady state: gossip sent per node per second over {:.0} s, idle chain vs a head announced by every node every 1 s slot",
        ctx.cfg.steady.as_secs_f64()
    );
    table.rows.extend(heads.rows);
    let mut clusters = idle_clusters;
    clusters.rows.extend(heads_clusters.rows);
    ctx.emit(clusters, "steady_clusters")?;
    let bridges = ctx.fleet.bridges().len();
    let expected = ctx.fleet.expected_bridges;
    ctx.check(
        "steady state: bridges elected",
        bridges == expected,
        format!("{bridges} bridges, expected {expected}"),
    );
    ctx.emit(table, "steady_state")
}

async fn steady_window(ctx: &mut Ctx, label: &str) -> (Table, Table) {
    let before: Vec<[(u64, u64); 2]> = ctx.fleet.nodes.iter().map(|n| n.sent()).collect();
    ctx.fleet.net.reset_window_max();
    let net_before = ctx.fleet.net.traffic();
    let window = ctx.cfg.steady;
    ctx.run_for(window).await;
    let net = ctx.fleet.net.traffic().since(&net_before);
    let secs = window.as_secs_f64();
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let mut table = Table::new(
        "steady state",
        &[
            "class",
            "nodes",
            "regional_B/s_mean",
            "regional_B/s_max",
            "bridge_B/s_mean",
            "bridge_B/s_max",
            "total_B/s_mean",
            "total_B/s_p99",
            "total_B/s_max",
            "msgs/s_mean",
        ],
    );
    for (class, is_bridge) in [("non-bridge", false), ("bridge", true)] {
        let rows: Vec<[f64; 3]> = ctx
            .fleet
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| !n.crashed && bridges.contains(i) == is_bridge)
            .map(|(i, n)| {
                let [r, b] = n.sent();
                let [r0, b0] = before[i];
                [
                    (r.0 - r0.0) as f64 / secs,
                    (b.0 - b0.0) as f64 / secs,
                    ((r.1 - r0.1) + (b.1 - b0.1)) as f64 / secs,
                ]
            })
            .collect();
        let col = |k: usize| rows.iter().map(|r| r[k]).collect::<Vec<f64>>();
        let total: Vec<f64> = rows.iter().map(|r| r[0] + r[1]).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        table.row(vec![
            format!("{class}, {label}"),
            rows.len().to_string(),
            format!("{:.0}", mean(&col(0))),
            format!("{:.0}", max(&col(0))),
            format!("{:.0}", mean(&col(1))),
            format!("{:.0}", max(&col(1))),
            format!("{:.0}", mean(&total)),
            format!("{:.0}", percentile(&total, 99.0).unwrap_or(0.0)),
            format!("{:.0}", max(&total)),
            format!("{:.1}", mean(&col(2))),
        ]);
    }
    let total = net.total_bytes();
    let cross = net.cross_region_bytes();
    table.row(vec![
        format!("network, {label}"),
        ctx.fleet.nodes.len().to_string(),
        format!(
            "cross-region share {:.2}%",
            cross as f64 / total.max(1) as f64 * 100.0
        ),
        format!(
            "largest datagram {} B, largest SYN {} B",
            net.largest, net.largest_syn
        ),
        format!("oversized sends {}", net.oversized),
        String::new(),
        format!(
            "{:.0}",
            total as f64 / secs / ctx.fleet.nodes.len().max(1) as f64
        ),
        String::new(),
        String::new(),
        String::new(),
    ]);
    (table, cluster_table(&net, secs, label))
}

/// Gossip received over a window by cluster and message kind, per second over the network.
fn cluster_table(net: &Traffic, secs: f64, label: &str) -> Table {
    let mut table = Table::new(
        "steady state: gossip by cluster and message kind (whole network, per second; largest in the window)",
        &[
            "cluster",
            "SYN_B/s",
            "SYN-ACK_B/s",
            "ACK_B/s",
            "msgs/s",
            "largest_SYN_B",
            "largest_datagram_B",
            "hosts_ever_bridging",
        ],
    );
    for (c, name) in ["regional", "bridge"].iter().enumerate() {
        let b = net.by_kind[c];
        let m: u64 = net.msgs_by_kind[c].iter().sum();
        table.row(vec![
            format!("{name}, {label}"),
            format!("{:.0}", b[0] as f64 / secs),
            format!("{:.0}", b[1] as f64 / secs),
            format!("{:.0}", b[2] as f64 / secs),
            format!("{:.1}", m as f64 / secs),
            net.window_largest_syn[c].to_string(),
            net.window_largest[c].to_string(),
            if c == 1 {
                net.bridge_hosts.to_string()
            } else {
                String::new()
            },
        ]);
    }
    table
}
