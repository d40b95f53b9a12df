//! Cold start: every node joins at once; how long until every node sees its cell, its
//! region and every other region live, and whether any gossip digest was refused.

use super::{converged, timing_row, Ctx, SimError, TIMING_HEADER};
use crate::fleet::Fleet;
use crate::report::{svg_plot, Series, Table};
use qnet_node::membership::admission::Refusal;
use qnet_node::metrics::{CLUSTER_BRIDGE, CLUSTER_REGIONAL};

/// Digests refused by every node's gossip guard so far, by reason (both clusters).
fn refused_digests(fleet: &Fleet) -> Vec<(Refusal, u64)> {
    Refusal::ALL
        .iter()
        .map(|r| {
            let n = fleet
                .nodes
                .iter()
                .flat_map(|node| {
                    [CLUSTER_REGIONAL, CLUSTER_BRIDGE].map(|c| {
                        node.metrics
                            .gossip_digests_refused
                            .with_label_values(&[c, r.as_str()])
                            .get()
                    })
                })
                .sum();
            (*r, n)
        })
        .collect()
}

pub(super) async fn cold_start(ctx: &mut Ctx) -> Result<(), SimError> {
    ctx.phase("cold start");
    let who = ctx.alive();
    let limit = ctx.cfg.converge_limit;
    let t0 = ctx.t0;
    let times = ctx.until_all(&who, t0, limit, converged).await;
    let mut table = Table::new(
        &format!(
            "cold start: {} nodes, {} regions",
            who.len(),
            ctx.fleet.regions.len()
        ),
        &TIMING_HEADER,
    );
    table.row(timing_row(
        "sees every region live and all own-region members",
        &times,
    ));
    let done = times.iter().flatten().count();
    ctx.check(
        "cold start: every node converges",
        done == times.len(),
        format!("{done}/{} within {:?}", times.len(), limit),
    );
    let refused = refused_digests(&ctx.fleet);
    let malformed = refused
        .iter()
        .find(|(r, _)| *r == Refusal::Malformed)
        .map_or(0, |(_, n)| *n);
    let detail: Vec<String> = refused
        .iter()
        .map(|(r, n)| format!("{} {n}", r.as_str()))
        .collect();
    ctx.check(
        "cold start: no gossip digest refused as malformed",
        malformed == 0,
        format!("digests refused by the guards: {}", detail.join(", ")),
    );
    let mut curve: Vec<f64> = times.iter().flatten().copied().collect();
    curve.sort_by(f64::total_cmp);
    let points: Vec<(f64, f64)> = curve
        .iter()
        .enumerate()
        .map(|(k, t)| (t / 1000.0, (k + 1) as f64 / who.len().max(1) as f64 * 100.0))
        .collect();
    std::fs::create_dir_all(&ctx.cfg.out)?;
    std::fs::write(
        ctx.cfg.out.join("cold_start.svg"),
        svg_plot(
            "cold start: nodes converged",
            "seconds after start",
            "% of nodes",
            &[Series {
                name: "converged".into(),
                points,
            }],
        ),
    )?;
    ctx.emit(table, "cold_start")
}
