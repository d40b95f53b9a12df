//! Random loss (5 %, then 20 %) on every datagram: no false death, no false failover.

use std::collections::HashSet;

use super::{Ctx, SimError};
use crate::report::Table;
use qnet_node::identity::NodeId;
use qnet_node::region::Region;

pub(super) async fn loss(ctx: &mut Ctx) -> Result<(), SimError> {
    let mut table = Table::new(
        "loss: false deaths and false failovers",
        &[
            "loss",
            "seconds",
            "false_dead_pairs",
            "false_dead_members",
            "false_missing_regions",
            "failover_activations",
        ],
    );
    // each (observer, region) pair that saw a region missing, when it first did and whether
    // the observer was a bridge then (loss_missing.csv; empty when none did)
    let mut first_missing = Table::new(
        "regions seen missing under loss",
        &[
            "loss",
            "node",
            "node_region",
            "cell",
            "bridge",
            "region",
            "first_ms",
        ],
    );
    for loss in [0.05, 0.20] {
        ctx.phase(&format!("loss {:.0}%", loss * 100.0));
        ctx.fleet.set_loss(loss);
        let since = ctx.now();
        let end = since + ctx.cfg.loss_phase.as_millis() as u64;
        let crashed: HashSet<NodeId> = ctx
            .fleet
            .nodes
            .iter()
            .filter(|n| n.crashed)
            .map(|n| n.plan.identity.node_id().clone())
            .collect();
        let mut pairs: HashSet<(usize, NodeId)> = HashSet::new();
        let mut missing: HashSet<(usize, Region)> = HashSet::new();
        let cells = ctx.fleet.cells;
        while ctx.now() < end {
            ctx.sample().await;
            for i in ctx.alive() {
                let view = ctx.fleet.nodes[i].view();
                for m in view
                    .members
                    .iter()
                    .filter(|m| !m.live && !crashed.contains(&m.node_id))
                {
                    pairs.insert((i, m.node_id.clone()));
                }
                for r in view.regions.values().filter(|r| r.live == 0) {
                    if missing.insert((i, r.region.clone())) {
                        let plan = &ctx.fleet.nodes[i].plan;
                        first_missing.row(vec![
                            format!("{:.0}%", loss * 100.0),
                            i.to_string(),
                            ctx.fleet.regions[plan.region].to_string(),
                            plan.cell(cells).to_string(),
                            view.is_bridge.to_string(),
                            r.region.to_string(),
                            (ctx.now() - since).to_string(),
                        ]);
                    }
                }
            }
        }
        let members: HashSet<&NodeId> = pairs.iter().map(|(_, id)| id).collect();
        let activations = ctx.activations_since(&ctx.alive(), since);
        table.row(vec![
            format!("{:.0}%", loss * 100.0),
            format!("{:.0}", ctx.cfg.loss_phase.as_secs_f64()),
            pairs.len().to_string(),
            members.len().to_string(),
            missing.len().to_string(),
            activations.to_string(),
        ]);
        let pct = loss * 100.0;
        ctx.check(
            &format!("loss {pct:.0}%: no false deaths"),
            pairs.is_empty() && missing.is_empty(),
            format!(
                "{} (observer, member) pairs, {} missing regions",
                pairs.len(),
                missing.len()
            ),
        );
        ctx.check(
            &format!("loss {pct:.0}%: no false failover"),
            activations == 0,
            format!("{activations} activations"),
        );
        let warned = ctx.health_warned(&ctx.alive(), since, end + 1);
        ctx.check(
            &format!("loss {pct:.0}%: no health warning"),
            warned == 0,
            format!("{warned} nodes warned"),
        );
    }
    ctx.fleet.set_loss(0.0);
    first_missing.write_csv(&ctx.cfg.out, "loss_missing")?;
    ctx.emit(table, "loss")
}
