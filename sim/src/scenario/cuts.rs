//! One region, then two, cut off and healed: who sees them missing, failover on the
//! surviving nodes (never for one region, exactly once for two) and its restoration.

use std::collections::HashSet;
use std::time::Duration;

use super::{timing_row, Ctx, SimError, TIMING_HEADER};
use crate::report::Table;
use qnet_node::monitor::EventKind;
use qnet_node::region::Region;

fn first_event_after(
    ctx: &Ctx,
    i: usize,
    kind: EventKind,
    since: u64,
    region: Option<&Region>,
) -> Option<f64> {
    ctx.journals[i]
        .events_since(kind, since)
        .into_iter()
        .find(|e| region.is_none_or(|r| e.regions.contains(r)))
        .map(|e| e.at_ms.saturating_sub(since) as f64)
}

pub(super) async fn region_cuts(ctx: &mut Ctx) -> Result<(), SimError> {
    let n_regions = ctx.fleet.regions.len();
    if n_regions < 4 {
        return Ok(());
    }
    let interval = ctx.cfg.failover_interval;
    let mut table = Table::new(
        "region cut-offs (times from the cut or heal)",
        &TIMING_HEADER,
    );

    // when each survivor saw each cut, one row per node (region_cut_nodes.csv)
    let mut per_node = Table::new(
        "region cut-offs per surviving node",
        &["cut", "node", "region", "cell", "bridge", "seen_ms"],
    );

    // one region cut off
    let one = [1usize];
    let one_names = ctx.names_of(&one);
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let (cut_at, survivors, seen) = ctx.cut_regions("one region cut off", &one).await;
    per_node_rows(ctx, &mut per_node, "1", &bridges, &survivors, &seen);
    ctx.run_for(interval * 2 + Duration::from_secs(2)).await;
    table.row(timing_row(
        "1 cut: survivors' view shows the region missing",
        &seen,
    ));
    let lost: Vec<Option<f64>> = survivors
        .iter()
        .map(|&i| first_event_after(ctx, i, EventKind::RegionLost, cut_at, one_names.first()))
        .collect();
    table.row(timing_row("1 cut: region_lost event on survivors", &lost));
    let activated = ctx.activated_since(&survivors, cut_at);
    let inside = ctx.in_regions(&one, true);
    let inside_activated = ctx.activated_since(&inside, cut_at);
    let lost_n = lost.iter().flatten().count();
    ctx.check(
        "1 region cut: region_lost seen by every surviving node",
        lost_n == survivors.len(),
        format!("{lost_n}/{}", survivors.len()),
    );
    ctx.check(
        "1 region cut: no failover on any surviving node",
        activated == 0,
        format!(
            "{activated} of {} activated; inside the cut region {inside_activated}/{} activated (they see {} regions missing)",
            survivors.len(),
            inside.len(),
            n_regions - 1
        ),
    );
    let warned = ctx.health_warned(&survivors, cut_at, ctx.now());
    ctx.check(
        "1 region cut: no health warning on any surviving node",
        warned == 0,
        format!(
            "{warned} of {} warned (one region of six missing: health about 0.83, threshold 0.8)",
            survivors.len()
        ),
    );
    let (healed_at, back) = ctx.heal_regions("heal one region", &one).await;
    table.row(timing_row(
        "1 heal: every node sees all regions live again",
        &back,
    ));
    ctx.run_for(interval * 2 + Duration::from_secs(2)).await;
    let restored: Vec<Option<f64>> = inside
        .iter()
        .map(|&i| first_event_after(ctx, i, EventKind::Deactivated, healed_at, None))
        .collect();
    table.row(timing_row(
        "1 heal: failover deactivated inside the cut region",
        &restored,
    ));

    // two regions cut off
    let two = [1usize, 2usize];
    let bridges: HashSet<usize> = ctx.fleet.bridges().into_iter().collect();
    let (cut_at, survivors, seen) = ctx.cut_regions("two regions cut off", &two).await;
    per_node_rows(ctx, &mut per_node, "2", &bridges, &survivors, &seen);
    table.row(timing_row(
        "2 cut: survivors' view shows both missing",
        &seen,
    ));
    ctx.run_for(interval * 2 + Duration::from_secs(2)).await;
    let activation: Vec<Option<f64>> = survivors
        .iter()
        .map(|&i| first_event_after(ctx, i, EventKind::Activated, cut_at, None))
        .collect();
    table.row(timing_row(
        "2 cut: failover activated on survivors",
        &activation,
    ));
    let warned = ctx.health_warned(&survivors, cut_at, ctx.now());
    ctx.check(
        "2 regions cut: health warning on every surviving node",
        warned == survivors.len(),
        format!(
            "{warned}/{} (health about 0.67, threshold 0.8)",
            survivors.len()
        ),
    );
    let (healed_at, back) = ctx.heal_regions("heal two regions", &two).await;
    table.row(timing_row(
        "2 heal: every node sees all regions live again",
        &back,
    ));
    ctx.run_for(interval * 3 + Duration::from_secs(2)).await;
    let restore: Vec<Option<f64>> = survivors
        .iter()
        .map(|&i| first_event_after(ctx, i, EventKind::Deactivated, healed_at, None))
        .collect();
    table.row(timing_row(
        "2 heal: failover deactivated on survivors",
        &restore,
    ));
    let once = survivors
        .iter()
        .filter(|&&i| {
            ctx.journals[i]
                .events_since(EventKind::Activated, cut_at)
                .len()
                == 1
        })
        .count();
    ctx.check(
        "2 regions cut: failover activated exactly once on every surviving node",
        once == survivors.len(),
        format!("{once}/{}", survivors.len()),
    );
    let restored_n = restore.iter().flatten().count();
    ctx.check(
        "2 regions healed: failover deactivated on every surviving node",
        restored_n == survivors.len(),
        format!("{restored_n}/{}", survivors.len()),
    );
    let still = ctx
        .alive()
        .iter()
        .filter(|&&i| ctx.journals[i].failover_active())
        .count();
    ctx.check(
        "after healing: failover inactive everywhere",
        still == 0,
        format!("{still} still active"),
    );
    per_node.write_csv(&ctx.cfg.out, "region_cut_nodes")?;
    ctx.emit(table, "regions")
}

/// Rows of `table` for cut `cut`: each survivor's region, cell, whether it was a bridge when
/// the cut began (`bridges`), and when it saw the cut regions missing (empty: never).
fn per_node_rows(
    ctx: &Ctx,
    table: &mut Table,
    cut: &str,
    bridges: &HashSet<usize>,
    survivors: &[usize],
    seen: &[Option<f64>],
) {
    let cells = ctx.fleet.cells;
    for (&i, t) in survivors.iter().zip(seen) {
        let plan = &ctx.fleet.nodes[i].plan;
        table.row(vec![
            cut.to_string(),
            i.to_string(),
            ctx.fleet.regions[plan.region].to_string(),
            plan.cell(cells).to_string(),
            bridges.contains(&i).to_string(),
            t.map_or(String::new(), |v| format!("{v:.0}")),
        ]);
    }
}
