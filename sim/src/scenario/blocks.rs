//! Block propagation over the links each node plans, once per routing strategy.

use std::collections::BTreeSet;

use rand::Rng;

use super::{Ctx, SimError};
use crate::journal::Journal;
use crate::propagation::{propagate, LinkGraph};
use crate::report::{ms, percentile, Table};
use qnet_node::identity::NodeId;
use qnet_node::topology::Strategy;

fn link_graph(ctx: &Ctx, strategy: Strategy) -> LinkGraph {
    let fleet = &ctx.fleet;
    let now = ctx.now();
    let mut graph = LinkGraph {
        region: fleet.nodes.iter().map(|n| n.plan.region).collect(),
        links: Vec::with_capacity(fleet.nodes.len()),
    };
    for (node, journal) in fleet.nodes.iter().zip(&ctx.journals) {
        let links = if node.crashed {
            Default::default()
        } else {
            journal.links(&node.view(), strategy, now)
        };
        let ids: Vec<&NodeId> = links.in_region.iter().chain(&links.cross_region).collect();
        graph.links.push(
            ids.into_iter()
                .filter_map(|id| fleet.by_id.get(id).copied())
                .collect(),
        );
    }
    graph
}

pub(super) fn propagation(ctx: &mut Ctx) -> Result<(), SimError> {
    ctx.phase("block propagation");
    let in_force: BTreeSet<Strategy> = ctx.journals.iter().map(Journal::strategy).collect();
    let mut table = Table::new(
        &format!(
            "block propagation over planned links ({} blocks each, {} ms per hop processing; matrix floor {} ms)",
            ctx.cfg.blocks,
            ctx.cfg.processing_ms,
            ctx.latency.floor_ms()
        ),
        &[
            "strategy",
            "targets",
            "t50_ms_p50",
            "t99_ms_p50",
            "t99_ms_max",
            "t100_ms_p50",
            "t100_ms_max",
            "min_reached",
            "msgs/block/node",
        ],
    );
    let alive = ctx.alive();
    for strategy in Strategy::ALL {
        let graph = link_graph(ctx, *strategy);
        let (mut t50, mut t99, mut t100, mut msgs) = (vec![], vec![], vec![], vec![]);
        let mut min_reached = f64::MAX;
        let mut targets_n = 0;
        for _ in 0..ctx.cfg.blocks {
            let origin = alive[ctx.rng.gen_range(0..alive.len())];
            let origin_region = ctx.fleet.nodes[origin].plan.region;
            // direct is the 0-1 live region strategy: its targets are the producer's region
            let targets: Vec<usize> = if *strategy == Strategy::Direct {
                ctx.in_regions(&[origin_region], true)
            } else {
                alive.clone()
            };
            targets_n = targets.len();
            let spread = propagate(
                &graph,
                origin,
                &ctx.latency,
                ctx.cfg.processing_ms,
                &mut ctx.rng,
            );
            t50.extend(spread.time_to(0.5, &targets));
            t99.extend(spread.time_to(0.99, &targets));
            t100.extend(spread.time_to(1.0, &targets));
            msgs.push(spread.messages as f64 / targets.len().max(1) as f64);
            min_reached =
                min_reached.min(spread.reached(&targets) as f64 / targets.len().max(1) as f64);
        }
        let name = if in_force.contains(strategy) {
            format!("{strategy} (in force)")
        } else {
            strategy.to_string()
        };
        table.row(vec![
            name,
            targets_n.to_string(),
            ms(percentile(&t50, 50.0)),
            ms(percentile(&t99, 50.0)),
            ms(percentile(&t99, 100.0)),
            ms(percentile(&t100, 50.0)),
            ms(percentile(&t100, 100.0)),
            format!("{:.1}%", min_reached * 100.0),
            format!("{:.2}", msgs.iter().sum::<f64>() / msgs.len().max(1) as f64),
        ]);
        ctx.check(
            &format!("propagation: {strategy} reaches every target"),
            (min_reached - 1.0).abs() < f64::EPSILON,
            format!("min reached {:.1}%", min_reached * 100.0),
        );
    }
    ctx.emit(table, "propagation")
}
