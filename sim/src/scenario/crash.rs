//! One node crashes: how long until its whole region sees it dead.

use std::collections::HashSet;
use std::time::Duration;

use super::{timing_row, Ctx, SimError, TIMING_HEADER};
use crate::report::Table;

pub(super) async fn crash(ctx: &mut Ctx) -> Result<(), SimError> {
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let Some(victim) = ctx
        .in_regions(&[0], true)
        .into_iter()
        .find(|i| !bridges.contains(i))
    else {
        return Ok(());
    };
    ctx.phase("one node crash");
    let victim_id = ctx.fleet.nodes[victim].plan.identity.node_id().clone();
    let cells = ctx.fleet.cells;
    let victim_cell = ctx.fleet.nodes[victim].plan.cell(cells);
    ctx.fleet.crash(victim);
    let since = ctx.now();
    // its region's members that gossip with it: its cell when regions are split
    let who: Vec<usize> = ctx
        .in_regions(&[0], true)
        .into_iter()
        .filter(|i| ctx.fleet.nodes[*i].plan.cell(cells) == victim_cell)
        .collect();
    let times = ctx
        .until_all(&who, since, Duration::from_secs(60), |f, i| {
            f.nodes[i]
                .view()
                .members
                .iter()
                .all(|m| m.node_id != victim_id || !m.live)
        })
        .await;
    let mut table = Table::new(
        "one node crash: detection across its region",
        &TIMING_HEADER,
    );
    table.row(timing_row("crashed member seen dead", &times));
    let done = times.iter().flatten().count();
    ctx.check(
        "crash: detected by its whole region",
        done == times.len(),
        format!("{done}/{}", times.len()),
    );
    ctx.emit(table, "crash")
}
